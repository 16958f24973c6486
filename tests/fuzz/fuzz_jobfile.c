/* Fuzz target: any bytes as a job file, through jobfile_load_string. Checks what main and
 * the scheduler rely on: a loaded chain holds only valid names, URL templates, headers and
 * pointers; every setting the file gave is marked as from the file, with its line; what
 * check-config prints of it is printable lines; an error is one printable line that names
 * the file; jobfile_free releases everything either way. Built with libFuzzer, or replayed
 * by replay.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jobfile.h"
#include "fuzz.h"

static bool printable_line(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7F)
            return false;
    }
    return true;
}

static bool pointer_ok(const char *p)
{
    if (p[0] == '\0')
        return true;
    if (p[0] != '/' || strlen(p) > JOBFILE_POINTER_MAX)
        return false;
    for (; *p; p++) {
        if (p[0] == '~' && p[1] != '0' && p[1] != '1')
            return false;
    }
    return true;
}

static void check_provider(const ProviderConf *p)
{
    size_t n = strlen(p->name);
    CHECK(n >= 1 && n <= PROVIDER_NAME_MAX);
    CHECK(strspn(p->name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") ==
          n);
    CHECK(p->url != NULL && provider_template_check(p->url, NULL, 0));
    CHECK(strncmp(p->url, "http://", 7) == 0 || strncmp(p->url, "https://", 8) == 0);
    CHECK(p->body == NULL || (p->post && p->body[0] != '\0'));
    CHECK(p->n_headers <= PROVIDER_HEADERS_MAX);
    for (size_t i = 0; i < p->n_headers; i++) {
        const char *h = p->headers[i];
        const char *colon = strchr(h, ':');
        CHECK(colon != NULL && colon > h && colon[1] == ' ' && colon[2] != '\0');
        CHECK(strncasecmp(h, "Authorization:", 14) != 0 && strncasecmp(h, "Host:", 5) != 0);
        for (const char *c = h; *c; c++)
            CHECK(*c == '\t' || ((unsigned char)*c >= 0x20 && *c != 0x7F));
    }
    CHECK(p->map.presence != NULL && pointer_ok(p->map.presence));
    for (int c = 0; c < COL_COUNT; c++)
        CHECK(p->map.ptr[c] == NULL || pointer_ok(p->map.ptr[c]));
}

/* check-config's output: lines of printable characters. */
static void check_dump(const Config *cfg, const JobFile *jf)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        return;
    config_dump(cfg, out);
    jobfile_dump(jf, out);
    CHECK(fclose(out) == 0);
    CHECK(len > 0 && text[len - 1] == '\n');
    for (size_t i = 0; i < len; i++)
        CHECK(text[i] == '\n' || ((unsigned char)text[i] >= 0x20 && text[i] != 0x7F));
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char fname[] = "fuzz.ini";
    Config cfg;
    JobFile jf;
    char err[512];
    char *text = malloc(size + 1);

    if (!text)
        return 0;
    memcpy(text, data, size); /* an embedded NUL just ends the text early */
    text[size] = '\0';
    /* the masker takes any text (a dsn or URL from the environment is not checked) */
    char masked[64];
    config_mask_dsn(text, masked, sizeof masked);
    CHECK(strlen(masked) < sizeof masked);
    config_defaults(&cfg);
    err[0] = '\0';
    bool ok = jobfile_load_string(text, fname, &cfg, &jf, err, sizeof err);
    if (ok) {
        int lines = 1;
        for (const char *p = text; *p; p++)
            lines += *p == '\n';
        for (size_t i = 0; i < config_n_settings(); i++) {
            CHECK(cfg.origin[i] == CONFIG_FROM_DEFAULT || cfg.origin[i] == CONFIG_FROM_FILE);
            CHECK(cfg.origin[i] == CONFIG_FROM_DEFAULT ||
                  (cfg.origin_line[i] >= 1 && cfg.origin_line[i] <= lines));
        }
        check_dump(&cfg, &jf);
        CHECK(jf.n_providers <= PROVIDERS_MAX);
        for (size_t i = 0; i < jf.n_providers; i++) {
            check_provider(&jf.providers[i]);
            for (size_t j = 0; j < i; j++)
                CHECK(strcmp(jf.providers[i].name, jf.providers[j].name) != 0);
        }
        if (jf.n_providers == 0) {
            CHECK(jobfile_default_chain("http://127.0.0.1:8080/", &jf, err, sizeof err));
            check_provider(&jf.providers[0]);
        }
    } else {
        CHECK(strncmp(err, fname, sizeof fname - 1) == 0 && err[sizeof fname - 1] == ':');
        CHECK(printable_line(err));
    }
    memset(text, 0, size); /* the chain must not point into the text */
    for (size_t i = 0; ok && i < jf.n_providers; i++)
        CHECK(jf.providers[i].name[0] != '\0' && jf.providers[i].url[0] == 'h');
    jobfile_free(&jf);
    free(text);
    return 0;
}
