/* Unit tests for jobfile: the documented example parses to the right chain and maps, every
 * kind of mistake names the right FILE:LINE: KEY, strings outlive the text they came from,
 * and jobfile_free releases everything, after errors too (run under ASan or valgrind). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "jobfile.h"

/* The complete example of docs/jobfile.md: API.md's two providers. */
static const char example[] =
    "; nightly enrichment against the mock API\n"
    "[job]\n"
    "job = nightly\n"
    "concurrency = 128\n"
    "rate = 500\n"
    "restart = false\n"
    "\n"
    "[provider primary]\n"
    "url = http://127.0.0.1:8080/api/v2/entities/{id}?select=id,label,location\n"
    "header = X-Api-Key: abc\n"
    "mapping = primary\n"
    "\n"
    "[provider secondary]\n"
    "url = http://127.0.0.1:8080/v1/lookup?entity={id}\n"
    "mapping = secondary\n";

typedef struct Loaded {
    Config cfg;
    JobFile jf;
    char err[512];
} Loaded;

static bool load(Loaded *l, const char *text)
{
    config_defaults(&l->cfg);
    l->err[0] = '\0';
    return jobfile_load_string(text, "t.ini", &l->cfg, &l->jf, l->err, sizeof l->err);
}

static void assert_map_equal(const ProviderMap *a, const ProviderMap *b)
{
    assert_string_equal(a->presence, b->presence);
    for (int c = 0; c < COL_COUNT; c++) {
        if (b->ptr[c] == NULL)
            assert_null(a->ptr[c]);
        else
            assert_string_equal(a->ptr[c], b->ptr[c]);
    }
}

static void test_example(void **state)
{
    (void)state;
    Loaded l;
    assert_true(load(&l, example));
    assert_string_equal(l.err, "");
    assert_int_equal(l.jf.n_providers, 2);

    const ProviderConf *p = &l.jf.providers[0];
    assert_string_equal(p->name, "primary");
    assert_string_equal(p->url,
                        "http://127.0.0.1:8080/api/v2/entities/{id}?select=id,label,location");
    assert_false(p->post);
    assert_null(p->body);
    assert_int_equal(p->n_headers, 1);
    assert_string_equal(p->headers[0], "X-Api-Key: abc");
    assert_map_equal(&p->map, &provider_map_primary);

    p = &l.jf.providers[1];
    assert_string_equal(p->name, "secondary");
    assert_string_equal(p->url, "http://127.0.0.1:8080/v1/lookup?entity={id}");
    assert_false(p->post);
    assert_int_equal(p->n_headers, 0);
    assert_map_equal(&p->map, &provider_map_secondary);

    assert_string_equal(l.cfg.job, "nightly");
    assert_int_equal(l.cfg.concurrency, 128);
    assert_true(l.cfg.rate == 500.0);
    assert_false(l.cfg.restart);
    jobfile_free(&l.jf);
    assert_int_equal(l.jf.n_providers, 0);
    assert_null(l.jf.strings);
}

/* [job] values land in Config through config_set, with the flags' names and parsing. */
static void test_job_settings(void **state)
{
    (void)state;
    Loaded l;
    assert_true(load(&l, "[job]\n"
                         "job = j1\n"
                         "base-url = https://api.example.org/\n"
                         "page-size = 500\n"
                         "paging = offset\n"
                         "restart = true\n"
                         "max-body = 4096\n"
                         "timeout = 2.5\n"
                         "source-table = public.things\n"
                         "where = kind = 'city'\n"));
    assert_string_equal(l.cfg.job, "j1");
    assert_string_equal(l.cfg.base_url, "https://api.example.org/");
    assert_int_equal(l.cfg.page_size, 500);
    assert_true(l.cfg.paging_offset);
    assert_true(l.cfg.restart);
    assert_int_equal(l.cfg.max_body, 4096);
    assert_true(l.cfg.timeout == 2.5);
    assert_string_equal(l.cfg.source_table, "public.things");
    /* inih splits at the first '=': the rest of the line is the value */
    assert_string_equal(l.cfg.where, "kind = 'city'");
    assert_int_equal(l.jf.n_providers, 0); /* no provider section: the chain stays empty */
    jobfile_free(&l.jf);

    /* [job] twice, around a provider; a comment after a value */
    assert_true(load(&l, "[job]\nrestart = no\n[provider p]\nurl = http://h/{id}\n"
                         "[job]\nquiet = on\nrate = 5 ; per second\n"));
    assert_false(l.cfg.restart);
    assert_true(l.cfg.quiet);
    assert_true(l.cfg.rate == 5.0);
    assert_int_equal(l.jf.n_providers, 1);
    jobfile_free(&l.jf);
}

/* Everything a provider section can say, in an order that puts overrides first. */
static void test_provider_keys(void **state)
{
    (void)state;
    Loaded l;
    assert_true(load(&l, "[provider alt-1.v2_b]\n"
                         "map.label = /name\n"
                         "map.postal_code = none\n"
                         "map.latitude = /geo/a~1b/0\n"
                         "presence = /geo\n"
                         "mapping = secondary\n"
                         "method = POST\n"
                         "body = {\"id\": \"{id}\", \"n\": 1}\n"
                         "url = https://h.example/x;v=1/{id}\n"
                         "header = Content-Type:application/json\n"
                         "header = X-Trace:\t a;b  \n"
                         "header = Accept-Language: fr ; a comment\n"));
    assert_int_equal(l.jf.n_providers, 1);
    const ProviderConf *p = &l.jf.providers[0];
    assert_string_equal(p->name, "alt-1.v2_b");
    assert_true(p->post);
    assert_string_equal(p->body, "{\"id\": \"{id}\", \"n\": 1}");
    assert_string_equal(p->url, "https://h.example/x;v=1/{id}");
    assert_int_equal(p->n_headers, 3);
    assert_string_equal(p->headers[0], "Content-Type: application/json");
    assert_string_equal(p->headers[1], "X-Trace: a;b");
    assert_string_equal(p->headers[2], "Accept-Language: fr");

    ProviderMap want = provider_map_secondary;
    want.presence = "/geo";
    want.ptr[COL_LABEL] = "/name";
    want.ptr[COL_POSTAL_CODE] = NULL;
    want.ptr[COL_LATITUDE] = "/geo/a~1b/0";
    assert_map_equal(&p->map, &want);
    jobfile_free(&l.jf);

    /* the empty pointer is the whole document: a provider that never misses */
    assert_true(load(&l, "[provider p]\nurl = http://h/{id}\npresence =\nmap.city_label =\n"));
    assert_string_equal(l.jf.providers[0].map.presence, "");
    assert_string_equal(l.jf.providers[0].map.ptr[COL_CITY_LABEL], "");
    assert_string_equal(l.jf.providers[0].map.ptr[COL_LABEL], "/label"); /* primary default */
    jobfile_free(&l.jf);

    /* the longest name */
    assert_true(
        load(&l, "[provider 012345678901234567890123456789012345678]\nurl = http://h/{id}\n"));
    assert_int_equal(strlen(l.jf.providers[0].name), PROVIDER_NAME_MAX);
    jobfile_free(&l.jf);
}

/* Where each provider's token comes from; a provider that says nothing: TOKEN_FROM_DEFAULT
 * (the rule of who gets the global token is token.c's). */
static void test_token_keys(void **state)
{
    (void)state;
    Loaded l;
    assert_true(load(&l, "[provider a]\nurl = http://h/{id}\n"
                         "[provider b]\nurl = http://h/{id}\ntoken = inherit\n"
                         "[provider c]\ntoken = none\nurl = http://h/{id}\n"
                         "[provider d]\nurl = http://h/{id}\ntoken_env = _Second_TOKEN2\n"
                         "[provider e]\nurl = http://h/{id}\n"
                         "token_file = /run/secrets/e token ; a comment\n"
                         "[provider f]\nurl = http://h/{id}\ntoken_file = rel/tok.txt\n"));
    assert_int_equal(l.jf.n_providers, 6);
    const ProviderConf *p = l.jf.providers;
    assert_int_equal(p[0].token_from, TOKEN_FROM_DEFAULT);
    assert_null(p[0].token_ref);
    assert_int_equal(p[1].token_from, TOKEN_FROM_INHERIT);
    assert_null(p[1].token_ref);
    assert_int_equal(p[2].token_from, TOKEN_FROM_NONE);
    assert_null(p[2].token_ref);
    assert_int_equal(p[3].token_from, TOKEN_FROM_ENV);
    assert_string_equal(p[3].token_ref, "_Second_TOKEN2");
    assert_int_equal(p[4].token_from, TOKEN_FROM_FILE);
    assert_string_equal(p[4].token_ref, "/run/secrets/e token");
    assert_int_equal(p[5].token_from, TOKEN_FROM_FILE);
    assert_string_equal(p[5].token_ref, "rel/tok.txt");
    jobfile_free(&l.jf);

    /* the default chain says nothing either */
    JobFile jf;
    char err[128];
    memset(&jf, 0, sizeof jf);
    assert_true(jobfile_default_chain("http://127.0.0.1:9", &jf, err, sizeof err));
    assert_int_equal(jf.providers[0].token_from, TOKEN_FROM_DEFAULT);
    assert_null(jf.providers[0].token_ref);
    jobfile_free(&jf);
}

/* TLS and proxy keys per provider; the rest inherit the global settings. */
static void test_tls_keys(void **state)
{
    (void)state;
    Loaded l;
    assert_true(load(&l, "[job]\ncacert = /etc/global.pem\nproxy = http://p:3128\n"
                         "insecure = true\n"
                         "[provider a]\nurl = https://h/{id}\ncacert = /ca/a.pem\n"
                         "client-cert = c.pem\nclient_key = c.key\ntls_min_version = 1.3\n"
                         "proxy = none\nnoproxy = .internal\ninsecure = false\n"
                         "[provider b]\nurl = https://h/{id}\ncapath = /ca/dir\n"));
    const ProviderConf *p = l.jf.providers;
    ProviderTls t;
    jobfile_effective_tls(&p[0], &l.cfg, &t);
    assert_string_equal(t.cacert, "/ca/a.pem");
    assert_null(t.capath);
    assert_string_equal(t.client_cert, "c.pem");
    assert_string_equal(t.client_key, "c.key");
    assert_string_equal(t.tls_min_version, "1.3");
    assert_string_equal(t.proxy, "none");
    assert_string_equal(t.noproxy, ".internal");
    assert_false(t.insecure);
    jobfile_effective_tls(&p[1], &l.cfg, &t);
    assert_string_equal(t.cacert, "/etc/global.pem");
    assert_string_equal(t.capath, "/ca/dir");
    assert_null(t.client_cert);
    assert_null(t.tls_min_version);
    assert_string_equal(t.proxy, "http://p:3128");
    assert_true(t.insecure);
    jobfile_free(&l.jf);
}

/* [source], [target] and [limits] hold their settings; [job] still takes any; keys with '_'
 * or '-'; each setting remembers its line. */
static void test_sections(void **state)
{
    (void)state;
    Loaded l;
    assert_true(load(&l, "[job]\n"
                         "job = nightly\n"
                         "max_attempts = 3\n" /* [job] takes any setting */
                         "[source]\n"
                         "dsn = host=db password=x\n"
                         "source_table = things\n"
                         "page-size = 500\n"
                         "paging = offset\n"
                         "statement_timeout = 60\n"
                         "[target]\n"
                         "target-table = t\n"
                         "flush_rows = 100\n"
                         "[limits]\n"
                         "concurrency = 16\n"
                         "retry_after_max = 5\n"
                         "backoff-base = 0.5\n"));
    assert_string_equal(l.cfg.job, "nightly");
    assert_int_equal(l.cfg.max_attempts, 3);
    assert_string_equal(l.cfg.dsn, "host=db password=x");
    assert_string_equal(l.cfg.source_table, "things");
    assert_int_equal(l.cfg.page_size, 500);
    assert_true(l.cfg.paging_offset);
    assert_true(l.cfg.statement_timeout == 60.0);
    assert_string_equal(l.cfg.target_table, "t");
    assert_int_equal(l.cfg.flush_rows, 100);
    assert_int_equal(l.cfg.concurrency, 16);
    assert_true(l.cfg.retry_after_max == 5.0);
    assert_true(l.cfg.backoff_base == 0.5);
    int i = config_find("page-size");
    assert_int_equal(l.cfg.origin[i], CONFIG_FROM_FILE);
    assert_int_equal(l.cfg.origin_line[i], 7);
    i = config_find("max-attempts");
    assert_int_equal(l.cfg.origin[i], CONFIG_FROM_FILE);
    assert_int_equal(l.cfg.origin_line[i], 3);
    i = config_find("rate");
    assert_int_equal(l.cfg.origin[i], CONFIG_FROM_DEFAULT);
    assert_int_equal(l.jf.n_providers, 0);
    jobfile_free(&l.jf);

    /* a section may come back, and sit between providers */
    assert_true(load(&l, "[limits]\nrate = 5\n[provider p]\nurl = http://h/{id}\n"
                         "[limits]\ntimeout = 2\n"));
    assert_true(l.cfg.rate == 5.0);
    assert_true(l.cfg.timeout == 2.0);
    assert_int_equal(l.jf.n_providers, 1);
    jobfile_free(&l.jf);

    /* provider keys take '-' for '_' too */
    assert_true(load(&l, "[provider p]\nurl = http://h/{id}\nmap.geo-label = /g\n"
                         "[provider q]\nurl = http://h/{id}\ntoken-env = Q_TOKEN\n"));
    assert_string_equal(l.jf.providers[0].map.ptr[COL_GEO_LABEL], "/g");
    assert_int_equal(l.jf.providers[1].token_from, TOKEN_FROM_ENV);
    assert_string_equal(l.jf.providers[1].token_ref, "Q_TOKEN");
    jobfile_free(&l.jf);
    assert_false(load(&l, "[provider q]\nurl = http://h/{id}\ntoken-env = A\ntoken_env = B\n"));
    assert_string_equal(l.err, "t.ini:4: token_env: given twice in [provider q]");
    jobfile_free(&l.jf);
    assert_false(load(&l, "[provider q]\nurl = http://h/{id}\ntoken-env = A\ntoken = none\n"));
    assert_string_equal(l.err, "t.ini:4: token: token_env was given on line 3: at most one of "
                               "token, token_env and token_file per provider");
    jobfile_free(&l.jf);
}

/* What check-config prints of the chain: header values named like secrets and URL secrets
 * masked, token sources named. */
static void test_dump(void **state)
{
    (void)state;
    Loaded l;
    char *text = NULL;
    size_t len = 0;
    assert_true(load(&l,
                     "[provider a]\n"
                     "url = https://u:hunter2@h/x/{id}?api_key=k3y&select=id\n"
                     "header = X-Api-Key: abc123\n"
                     "header = X-Client: pgenrich\n"
                     "header = X-Auth-Token: zz9\n"
                     "[provider b]\nurl = http://h/{id}\ntoken_env = B_TOKEN\nmap.label = none\n"
                     "method = POST\nbody = {\"id\": {id}}\n"));
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    jobfile_dump(&l.jf, out);
    assert_int_equal(fclose(out), 0);
    assert_non_null(
        strstr(text, "provider.a.url = https://u:****@h/x/{id}?api_key=****&select=id\n"));
    assert_non_null(strstr(text, "provider.a.header = X-Api-Key: ****\n"));
    assert_non_null(strstr(text, "provider.a.header = X-Client: pgenrich\n"));
    assert_non_null(strstr(text, "provider.a.header = X-Auth-Token: ****\n"));
    assert_non_null(strstr(text, "provider.a.token = inherit  # default"));
    assert_non_null(strstr(text, "provider.a.presence = /location\n"));
    assert_non_null(strstr(text, "provider.b.method = POST\n"));
    assert_non_null(strstr(text, "provider.b.body = {\"id\": {id}}\n"));
    assert_non_null(strstr(text, "provider.b.token_env = B_TOKEN\n"));
    assert_non_null(strstr(text, "provider.b.map.label = none\n"));
    assert_null(strstr(text, "hunter2"));
    assert_null(strstr(text, "abc123"));
    assert_null(strstr(text, "zz9"));
    assert_null(strstr(text, "k3y"));
    free(text);
    jobfile_free(&l.jf);
}

/* A token pasted where its source belongs is never repeated in the message. */
static void test_token_not_echoed(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "[provider p]\nurl = http://h/{id}\ntoken = sk-live-SECRET42\n",
        "[provider p]\nurl = http://h/{id}\ntoken_env = sk-live-SECRET42\n",
        "[job]\ntoken = sk-live-SECRET42\n",
        "[provider p]\nurl = http://h/{id}\nheader = Authorization: Bearer sk-live-SECRET42\n",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        Loaded l;
        assert_false(load(&l, texts[i]));
        if (strstr(l.err, "SECRET42"))
            print_error("case %zu: %s\n", i, l.err);
        assert_null(strstr(l.err, "SECRET42"));
        jobfile_free(&l.jf);
    }
}

/* ';' starts a comment only after whitespace; '#' only at the start of a line. */
static void test_comments(void **state)
{
    (void)state;
    Loaded l;
    assert_true(load(&l, "# hash comment\n"
                         "  ; indented comment\n"
                         "[provider p] ; trailing comment\n"
                         "url = http://h/a;b/{id}#frag ; the comment\n"
                         "header = X-A: 1#2\n"));
    assert_string_equal(l.jf.providers[0].url, "http://h/a;b/{id}#frag");
    assert_string_equal(l.jf.providers[0].headers[0], "X-A: 1#2");
    jobfile_free(&l.jf);

    /* a ';' after a space ends the value: here it leaves a URL without {id} */
    assert_false(load(&l, "[provider p]\nurl = http://h/a ;{id}\n"));
    assert_string_equal(l.err, "t.ini:2: url: URL template has no {id}");
    jobfile_free(&l.jf);
}

/* An indented line after a key continues it: a new header for `header`, an error for a key
 * that takes one value. */
static void test_continuation_lines(void **state)
{
    (void)state;
    Loaded l;
    assert_true(load(&l, "[provider p]\n"
                         "url = http://h/{id}\n"
                         "header = X-A: 1\n"
                         "    X-B: 2\n"
                         "    X-C: 3\n"));
    assert_int_equal(l.jf.providers[0].n_headers, 3);
    assert_string_equal(l.jf.providers[0].headers[2], "X-C: 3");
    jobfile_free(&l.jf);

    assert_false(load(&l, "[provider p]\nurl = http://h/{id}\n  /more\n"));
    assert_string_equal(l.err, "t.ini:3: url: given twice in [provider p]");
    jobfile_free(&l.jf);
}

/* CRLF line ends and a UTF-8 byte order mark are fine. */
static void test_crlf_bom(void **state)
{
    (void)state;
    Loaded l;
    assert_true(load(&l, "\xEF\xBB\xBF[provider p]\r\nurl = http://h/{id}\r\n"
                         "header = X-A: 1\r\n[job]\r\njob = x\r\n"));
    assert_string_equal(l.jf.providers[0].url, "http://h/{id}");
    assert_string_equal(l.jf.providers[0].headers[0], "X-A: 1");
    assert_string_equal(l.cfg.job, "x");
    jobfile_free(&l.jf);
}

/* Strings belong to the JobFile: the text can go as soon as the load returns. */
static void test_strings_outlive_text(void **state)
{
    (void)state;
    Loaded l;
    char *text = strdup(example);
    assert_non_null(text);
    assert_true(load(&l, text));
    memset(text, 'x', strlen(text));
    free(text);
    assert_string_equal(l.jf.providers[0].name, "primary");
    assert_string_equal(l.jf.providers[0].headers[0], "X-Api-Key: abc");
    assert_string_equal(l.jf.providers[1].url, "http://127.0.0.1:8080/v1/lookup?entity={id}");
    assert_string_equal(l.cfg.job, "nightly");
    jobfile_free(&l.jf);
}

typedef struct BadCase {
    const char *text;
    const char *err;
} BadCase;

static const BadCase bad_cases[] = {
    /* sections */
    {"[jobs]\nx = 1\n", "t.ini:1: [jobs]: unknown section (expected [job], [source], [target], "
                        "[limits] or [provider NAME])"},
    {"\n[job]\njob = a\n[Provider p]\nurl = http://h/{id}\n",
     "t.ini:4: [Provider p]: unknown section (expected [job], [source], [target], [limits] or "
     "[provider NAME])"},
    {"[provider]\nurl = http://h/{id}\n", "t.ini:1: [provider]: unknown section (expected [job], "
                                          "[source], [target], [limits] or [provider NAME])"},
    {"[provider a b]\nurl = http://h/{id}\n",
     "t.ini:1: [provider a b]: a provider name is 1 to 39 of A-Z a-z 0-9 _ . -"},
    {"[provider a/b]\nurl = http://h/{id}\n",
     "t.ini:1: [provider a/b]: a provider name is 1 to 39 of A-Z a-z 0-9 _ . -"},
    {"[provider ]\nurl = http://h/{id}\n",
     "t.ini:1: [provider ]: a provider name is 1 to 39 of A-Z a-z 0-9 _ . -"},
    /* 40 bytes: inih keeps 49 bytes of "provider NAME", so the name may have been cut */
    {"[provider 0123456789012345678901234567890123456789]\nurl = http://h/{id}\n",
     "t.ini:1: [provider 0123456789012345678901234567890...]: section name too long"},
    {"[provider 0123456789012345678901234567890123456789012345678901234567890]\nurl = x\n",
     "t.ini:1: [provider 0123456789012345678901234567890...]: section name too long"},
    {"[provider a]\nurl = http://h/{id}\n[provider b]\nurl = http://h/{id}\n"
     "[provider a]\nurl = http://h/{id}\n",
     "t.ini:5: [provider a]: provider \"a\" is defined twice"},
    {"[provider a]\nurl = http://h/{id}\n[provider a]\nmethod = GET\n",
     "t.ini:3: [provider a]: provider \"a\" is defined twice"},
    {"[provider p1]\nurl=http://h/{id}\n[provider p2]\nurl=http://h/{id}\n"
     "[provider p3]\nurl=http://h/{id}\n[provider p4]\nurl=http://h/{id}\n"
     "[provider p5]\nurl=http://h/{id}\n[provider p6]\nurl=http://h/{id}\n"
     "[provider p7]\nurl=http://h/{id}\n[provider p8]\nurl=http://h/{id}\n"
     "[provider p9]\nurl=http://h/{id}\n",
     "t.ini:17: [provider p9]: more than 8 providers"},
    {"[job]\njob = a\n[provider p]\n; all commented out\n[job]\nrate = 1\n",
     "t.ini:3: section has no keys"},
    {"[job]\njob = a\n[provider p]\n", "t.ini:3: section has no keys"},
    {"[job]\n  [provider p]\nurl = http://h/{id}\n",
     "t.ini:2: a section header must start at the beginning of its line"},
    {"[job\njob = a\n", "t.ini:1: syntax error: expected [section], key = value or a comment"},
    {"job = a\n", "t.ini:1: job: key before any section"},
    {"[job]\njob = a\njust words\n",
     "t.ini:3: syntax error: expected [section], key = value or a comment"},
    /* [job] and the other settings sections */
    {"[job]\nconcurrency = 0\n",
     "t.ini:2: concurrency: must be an integer between 1 and 10000, not \"0\""},
    {"[job]\nrestart = maybe\n", "t.ini:2: restart: must be true or false, not \"maybe\""},
    {"[job]\njob = a\nfrobnicate = 1\n", "t.ini:3: frobnicate: unknown key in [job]"},
    {"[job]\nconfig = other.ini\n", "t.ini:2: config: unknown key in [job]"},
    {"[job]\ntoken = s3cret\n",
     "t.ini:2: token: the token is never read from a job file: set PGENRICH_TOKEN or token-file "
     "(token_env and token_file name a provider's own)"},
    {"[limits]\ntoken = s3cret\n",
     "t.ini:2: token: the token is never read from a job file: set PGENRICH_TOKEN or token-file "
     "(token_env and token_file name a provider's own)"},
    {"[job]\ntoken_env = X\n", "t.ini:2: token_env: unknown key in [job]"},
    {"[job]\njob = a\n\n\njob = b\n", "t.ini:5: job: given twice (first on line 2)"},
    {"[job]\njob =\n", "t.ini:2: job: must not be empty"},
    {"[source]\nconcurrency = 3\n",
     "t.ini:2: concurrency: belongs in [limits] (or [job]), not [source]"},
    {"[limits]\npage_size = 3\n",
     "t.ini:2: page_size: belongs in [source] (or [job]), not [limits]"},
    {"[target]\njob = a\n", "t.ini:2: job: belongs in [job], not [target]"},
    {"[source]\nurl = http://h/{id}\n", "t.ini:2: url: unknown key in [source]"},
    {"[source]\nPage-Size = 3\n", "t.ini:2: Page-Size: unknown key in [source]"},
    /* one setting, once: across sections and spellings */
    {"[source]\npage-size = 3\n[job]\npage_size = 4\n",
     "t.ini:4: page_size: given twice (first on line 2)"},
    {"[limits]\nrate = 3\n[limits]\nrate = 4\n", "t.ini:4: rate: given twice (first on line 2)"},
    {"[Source]\npage-size = 3\n",
     "t.ini:1: [Source]: unknown section (expected [job], [source], [target], [limits] or "
     "[provider NAME])"},
    /* provider keys */
    {"[provider p]\nurl = http://h/{id}\nURL = http://h/{id}\n",
     "t.ini:3: URL: unknown key in [provider p]"},
    {"[provider p]\nurl = http://h/{id}\nmap.nope = /x\n",
     "t.ini:3: map.nope: unknown key in [provider p]"},
    {"[provider p]\nurl = http://h/{id}\ntimeout = 3\n",
     "t.ini:3: timeout: unknown key in [provider p]"},
    {"[provider p]\nurl = ftp://h/{id}\n", "t.ini:2: url: must start with http:// or https://"},
    {"[provider p]\nurl = http://h/x\n", "t.ini:2: url: URL template has no {id}"},
    {"[provider p]\nurl = http://h/{id}/{x}\n",
     "t.ini:2: url: URL template: stray '{' at offset 14 (only {id} is known)"},
    {"[provider p]\nurl = http://h/{id}\nurl = http://g/{id}\n",
     "t.ini:3: url: given twice in [provider p]"},
    {"[job]\njob = a\n[provider p]\nmethod = GET\n", "t.ini:3: [provider p]: no url"},
    {"[provider p]\nurl = http://h/{id}\nmethod = get\n", "t.ini:3: method: must be GET or POST"},
    {"[provider p]\nurl = http://h/{id}\nmethod = PUT\n", "t.ini:3: method: must be GET or POST"},
    {"[provider p]\nurl = http://h/{id}\nbody = {\"id\": \"{id}\"}\n\n",
     "t.ini:3: body: only with method = POST"},
    {"[provider p]\nurl = http://h/{id}\nmethod = POST\nbody =\n",
     "t.ini:4: body: must not be empty (leave body out to send none)"},
    {"[provider p]\nurl = http://h/{id}\nmapping = tertiary\n",
     "t.ini:3: mapping: must be primary or secondary"},
    {"[provider p]\nurl = http://h/{id}\nmapping = primary\nmapping = primary\n",
     "t.ini:4: mapping: given twice in [provider p]"},
    {"[provider p]\nurl = http://h/{id}\nmap.label = /a\nmap.label = /b\n",
     "t.ini:4: map.label: given twice in [provider p]"},
    /* pointers */
    {"[provider p]\nurl = http://h/{id}\npresence = location\n",
     "t.ini:3: presence: a JSON Pointer must be empty or start with '/'"},
    {"[provider p]\nurl = http://h/{id}\nmap.geo_label = /a~2b\n",
     "t.ini:3: map.geo_label: JSON Pointer: '~' at offset 2 must be followed by 0 or 1"},
    {"[provider p]\nurl = http://h/{id}\nmap.longitude = /a~\n",
     "t.ini:3: map.longitude: JSON Pointer: '~' at offset 2 must be followed by 0 or 1"},
    {"[provider p]\nurl = http://h/{id}\nmap.latitude = "
     "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
     "t.ini:3: map.latitude: JSON Pointer longer than 120 bytes"},
    {"[provider p]\nurl = http://h/{id}\npresence = none\n",
     "t.ini:3: presence: a JSON Pointer must be empty or start with '/'"},
    /* headers */
    {"[provider p]\nurl = http://h/{id}\nheader = X-Api-Key abc\n",
     "t.ini:3: header: must look like \"Name: value\" with a token name"},
    {"[provider p]\nurl = http://h/{id}\nheader = : abc\n",
     "t.ini:3: header: must look like \"Name: value\" with a token name"},
    {"[provider p]\nurl = http://h/{id}\nheader = X Key: abc\n",
     "t.ini:3: header: must look like \"Name: value\" with a token name"},
    {"[provider p]\nurl = http://h/{id}\nheader = X-Key:\n",
     "t.ini:3: header: the header has an empty value"},
    {"[provider p]\nurl = http://h/{id}\nheader = authorization: Bearer x\n",
     "t.ini:3: header: Authorization is never read from a job file: name the token's source "
     "with token_env or token_file"},
    {"[provider p]\nurl = http://h/{id}\nheader = Host: evil\n",
     "t.ini:3: header: Host is set by pgenrich and cannot be given"},
    {"[provider p]\nurl = http://h/{id}\nheader = CONTENT-LENGTH: 5\n",
     "t.ini:3: header: Content-Length is set by pgenrich and cannot be given"},
    {"[provider p]\nurl = http://h/{id}\nheader = X-A: a\rb\n",
     "t.ini:3: header: control character in the header value"},
    {"[provider p]\nurl = http://h/{id}\nheader=A:1\nheader=A:2\nheader=A:3\nheader=A:4\n"
     "header=A:5\nheader=A:6\nheader=A:7\nheader=A:8\nheader=A:9\nheader=A:10\nheader=A:11\n"
     "header=A:12\nheader=A:13\nheader=A:14\nheader=A:15\nheader=A:16\nheader=A:17\n",
     "t.ini:19: header: more than 16 headers"},
    /* token sources: one per provider, checked values, never echoed */
    {"[provider p]\nurl = http://h/{id}\ntoken = s3cret-pasted\n",
     "t.ini:3: token: must be inherit or none (a token itself never goes in a job file: name "
     "its source with token_env or token_file)"},
    {"[provider p]\nurl = http://h/{id}\ntoken = Inherit\n",
     "t.ini:3: token: must be inherit or none (a token itself never goes in a job file: name "
     "its source with token_env or token_file)"},
    {"[provider p]\nurl = http://h/{id}\ntoken =\n",
     "t.ini:3: token: must be inherit or none (a token itself never goes in a job file: name "
     "its source with token_env or token_file)"},
    {"[provider p]\nurl = http://h/{id}\ntoken_env = 9LIVES\n",
     "t.ini:3: token_env: must be the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*)"},
    {"[provider p]\nurl = http://h/{id}\ntoken_env = MY-TOKEN\n",
     "t.ini:3: token_env: must be the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*)"},
    {"[provider p]\nurl = http://h/{id}\ntoken_env = $TOKEN\n",
     "t.ini:3: token_env: must be the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*)"},
    {"[provider p]\nurl = http://h/{id}\ntoken_env =\n",
     "t.ini:3: token_env: must be the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*)"},
    {"[provider p]\nurl = http://h/{id}\ntoken_file =\n", "t.ini:3: token_file: must name a file"},
    {"[provider p]\nurl = http://h/{id}\ntoken_file = /run/a\x01b\n",
     "t.ini:3: token_file: control character in the path"},
    {"[provider p]\nurl = http://h/{id}\ntoken_env = A\ntoken_env = B\n",
     "t.ini:4: token_env: given twice in [provider p]"},
    {"[provider p]\nurl = http://h/{id}\ntoken = none\ntoken = none\n",
     "t.ini:4: token: given twice in [provider p]"},
    {"[provider p]\nurl = http://h/{id}\ntoken_env = A\n\ntoken_file = /run/t\n",
     "t.ini:5: token_file: token_env was given on line 3: at most one of token, token_env and "
     "token_file per provider"},
    {"[provider p]\ntoken_file = /run/t\nurl = http://h/{id}\ntoken = inherit\n",
     "t.ini:4: token: token_file was given on line 2: at most one of token, token_env and "
     "token_file per provider"},
    {"[provider p]\nurl = http://h/{id}\ntoken = none\ntoken_env = A\n",
     "t.ini:4: token_env: token was given on line 3: at most one of token, token_env and "
     "token_file per provider"},
    {"[provider p]\nurl = http://h/{id}\ntoken.env = A\n",
     "t.ini:3: token.env: unknown key in [provider p]"},
    {"[provider p]\nurl = http://h/{id}\ntls_min_version = 1.1\n",
     "t.ini:3: tls_min_version: must be 1.2 or 1.3"},
    {"[provider p]\nurl = http://h/{id}\ninsecure = maybe\n",
     "t.ini:3: insecure: must be true or false"},
    {"[provider p]\nurl = http://h/{id}\ncacert = a.pem\ncacert = b.pem\n",
     "t.ini:4: cacert: given twice in [provider p]"},
    {"[provider p]\nurl = http://h/{id}\nproxy = http://a\x01b\n",
     "t.ini:3: proxy: control character in the value"},
    /* the error text is one printable line, whatever the file held */
    {"[job\x1b]\nx = 1\n", "t.ini:1: [job?]: unknown section (expected [job], [source], [target], "
                           "[limits] or [provider NAME])"}, /* batch providers */
    {"[provider b]\nkind = batch\nurl = http://h/e/{id}\n",
     "t.ini:3: url: a batch url names the endpoint: no {id} or other braces"},
    {"[provider b]\nurl = http://h/e/{id}\nmax_batch = 5\n",
     "t.ini:3: max_batch: only with kind = batch"},
    {"[provider b]\nurl = http://h/e/{id}\npoll-url = http://h/{job}\n",
     "t.ini:3: poll-url: only with kind = batch"},
    {"[provider b]\nkind = bulk\nurl = http://h/e\n", "t.ini:2: kind: must be single or batch"},
    {"[provider b]\nkind = batch\nurl = http://h/e\nmax_batch = 0\n",
     "t.ini:4: max_batch: must be a whole number from 1 to 10000"},
    {"[provider b]\nkind = batch\nurl = http://h/e\nmax_batch = 10001\n",
     "t.ini:4: max_batch: must be a whole number from 1 to 10000"},
    {"[provider b]\nkind = batch\nurl = http://h/e\nbatch_linger = -1\n",
     "t.ini:4: batch_linger: must be a whole number of milliseconds from 0 to 60000"},
    {"[provider b]\nkind = batch\nurl = http://h/e\npoll_timeout = 0\n",
     "t.ini:4: poll_timeout: must be a number of seconds above 0, at most 86400"},
    {"[provider b]\nkind = batch\nurl = http://h/e\npoll_url = http://h/e/{id}\n",
     "t.ini:4: poll_url: only {job} may stand in braces"},
    {"[provider b]\nkind = batch\nurl = http://h/e\npoll_url = http://h/e/\n",
     "t.ini:4: poll_url: must hold {job}"},
    {"[provider b]\nkind = batch\nurl = http://h/e\ncount_ids = maybe\n",
     "t.ini:4: count_ids: must be true or false"},
    {"[provider b]\nkind = batch\nmethod = GET\nurl = http://h/e\n",
     "t.ini:3: method: a batch provider POSTs its IDs: leave method out"},
    {"[provider b]\nkind = batch\nmethod = POST\nbody = {\"x\":1}\nurl = http://h/e\n",
     "t.ini:4: body: a batch provider's body is its ID list: leave body out"},
    {"[provider b]\nurl = ftp://h/e\n", "t.ini:2: url: must start with http:// or https://"},
};

static void test_batch_keys(void **state)
{
    (void)state;
    Loaded l;
    assert_true(load(&l, "[provider b]\nkind = batch\nurl = http://h/api/batch//\n"));
    const ProviderConf *p = &l.jf.providers[0];
    assert_int_equal(p->kind, PROVIDER_BATCH);
    assert_true(p->post);
    assert_null(p->body);
    assert_int_equal(p->max_batch, BATCH_DEFAULT_IDS);
    assert_int_equal(p->batch_linger_ms, BATCH_DEFAULT_LINGER);
    assert_true(p->poll_timeout == BATCH_DEFAULT_POLL_TO);
    assert_false(p->count_ids);
    assert_string_equal(p->poll_url, "http://h/api/batch/{job}");
    jobfile_free(&l.jf);

    assert_true(load(&l, "[provider b]\nkind = batch\nurl = https://h/b\nmax-batch = 250\n"
                         "batch_linger = 0\npoll_url = https://h/jobs/{job}?x=1\n"
                         "poll_timeout = 2.5\ncount_ids = yes\nmethod = POST\n"
                         "[provider s]\nurl = http://h/{id}\nkind = single\n"));
    p = &l.jf.providers[0];
    assert_int_equal(p->max_batch, 250);
    assert_int_equal(p->batch_linger_ms, 0);
    assert_string_equal(p->poll_url, "https://h/jobs/{job}?x=1");
    assert_true(p->poll_timeout == 2.5);
    assert_true(p->count_ids);
    assert_int_equal(l.jf.providers[1].kind, PROVIDER_SINGLE);
    assert_int_equal(l.jf.providers[1].max_batch, 0);
    jobfile_free(&l.jf);
}

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        Loaded l;
        bool ok = load(&l, bad_cases[i].text);
        if (ok || strcmp(l.err, bad_cases[i].err) != 0)
            print_error("case %zu: got %s \"%s\"\n", i, ok ? "success" : "error", l.err);
        assert_false(ok);
        assert_string_equal(l.err, bad_cases[i].err);
        jobfile_free(&l.jf); /* after an error too: nothing may leak */
    }
}

/* The first mistake is the one reported, whoever finds it. */
static void test_first_error_wins(void **state)
{
    (void)state;
    Loaded l;
    assert_false(load(&l, "[job]\nnonsense\n[provider p]\nurl = nope\n"));
    assert_string_equal(l.err,
                        "t.ini:2: syntax error: expected [section], key = value or a comment");
    jobfile_free(&l.jf);
    assert_false(load(&l, "[job]\njob = a\njob = b\nnonsense\n"));
    assert_string_equal(l.err, "t.ini:3: job: given twice (first on line 2)");
    jobfile_free(&l.jf);
    /* a header line without ']' that has no keys: the syntax error, not "no keys" */
    assert_false(load(&l, "[job]\njob = a\n[provider p\n[job]\nrate = 1\n"));
    assert_string_equal(l.err,
                        "t.ini:3: syntax error: expected [section], key = value or a comment");
    jobfile_free(&l.jf);
}

static void test_long_lines(void **state)
{
    (void)state;
    Loaded l;
    const char *prefix = "header = X-Long: ";
    const size_t n = JOBFILE_LINE_MAX, fill = n - strlen(prefix);
    char *text = malloc(n + 100);
    assert_non_null(text);

    /* a line of exactly the limit is one value, with an '=' deep inside it: were the line
     * split, its tail would become a key of its own */
    char *p = text + sprintf(text, "[provider p]\n%s", prefix);
    memset(p, 'a', fill);
    p[fill - 100] = '=';
    strcpy(p + fill, "\nurl = http://h/{id}\n");
    assert_true(load(&l, text));
    assert_int_equal(strlen(l.jf.providers[0].headers[0]), n - strlen("header = "));
    jobfile_free(&l.jf);

    /* one byte more is refused, naming the line */
    memmove(p + 1, p, strlen(p) + 1);
    assert_false(load(&l, text));
    assert_string_equal(l.err, "t.ini:2: line longer than 4096 bytes");
    jobfile_free(&l.jf);
    free(text);
}

static void test_load_file(void **state)
{
    (void)state;
    Config cfg;
    JobFile jf;
    char err[512];
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[512];
    snprintf(path, sizeof path, "%s/test_jobfile_XXXXXX", dir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(example, f);
    fclose(f);

    config_defaults(&cfg);
    assert_true(jobfile_load(path, &cfg, &jf, err, sizeof err));
    assert_int_equal(jf.n_providers, 2);
    assert_string_equal(cfg.job, "nightly");
    jobfile_free(&jf);

    /* errors name the path */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("[job]\njob = a\n[provider p]\nurl = http://h/\n", f);
    fclose(f);
    assert_false(jobfile_load(path, &cfg, &jf, err, sizeof err));
    char want[600];
    snprintf(want, sizeof want, "%s:4: url: URL template has no {id}", path);
    assert_string_equal(err, want);
    jobfile_free(&jf);

    /* a NUL byte is refused with its line */
    f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("[job]\njob = a\nrate = 1\0\n", 1, 24, f);
    fclose(f);
    assert_false(jobfile_load(path, &cfg, &jf, err, sizeof err));
    snprintf(want, sizeof want, "%s:3: NUL byte in the file", path);
    assert_string_equal(err, want);
    jobfile_free(&jf);

    /* too large */
    f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < JOBFILE_SIZE_MAX / 64 + 1; i++)
        fputs("; a comment line that is sixty-four bytes long, padding padding\n", f);
    fclose(f);
    assert_false(jobfile_load(path, &cfg, &jf, err, sizeof err));
    snprintf(want, sizeof want, "%s: larger than 1048576 bytes", path);
    assert_string_equal(err, want);
    jobfile_free(&jf);

    unlink(path);
    assert_false(jobfile_load(path, &cfg, &jf, err, sizeof err));
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    assert_string_equal(err, want);
    jobfile_free(&jf);
}

static void test_default_chain(void **state)
{
    (void)state;
    JobFile jf;
    char err[256];

    memset(&jf, 0, sizeof jf);
    assert_true(jobfile_default_chain("http://127.0.0.1:8080//", &jf, err, sizeof err));
    assert_int_equal(jf.n_providers, 1);
    assert_string_equal(jf.providers[0].name, "primary");
    assert_string_equal(jf.providers[0].url,
                        "http://127.0.0.1:8080/api/v2/entities/{id}?select=id,label,location");
    assert_false(jf.providers[0].post);
    assert_int_equal(jf.providers[0].n_headers, 0);
    assert_map_equal(&jf.providers[0].map, &provider_map_primary);
    /* only onto an empty chain */
    assert_false(jobfile_default_chain("http://h", &jf, err, sizeof err));
    assert_string_equal(err, "the provider chain is not empty");
    jobfile_free(&jf);

    assert_true(jobfile_default_chain("https://api.example.org/base", &jf, err, sizeof err));
    assert_string_equal(
        jf.providers[0].url,
        "https://api.example.org/base/api/v2/entities/{id}?select=id,label,location");
    jobfile_free(&jf);

    /* after a job file without providers, keeping the file's strings */
    Loaded l;
    assert_true(load(&l, "[job]\njob = j\nbase-url = http://127.0.0.1:9/\n"));
    assert_true(jobfile_default_chain(l.cfg.base_url, &l.jf, err, sizeof err));
    assert_string_equal(l.jf.providers[0].url,
                        "http://127.0.0.1:9/api/v2/entities/{id}?select=id,label,location");
    assert_string_equal(l.cfg.job, "j");
    jobfile_free(&l.jf);

    static const char *const bad[] = {NULL,
                                      "",
                                      "ftp://h",
                                      "http://",
                                      "http:///",
                                      "h:80",
                                      "http://h?x=1",
                                      "http://h/#a",
                                      "http://h/{id}",
                                      "http://h /",
                                      "http://h\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&jf, 0, sizeof jf);
        err[0] = '\0';
        if (jobfile_default_chain(bad[i], &jf, err, sizeof err))
            print_error("base \"%s\" was accepted\n", bad[i] ? bad[i] : "(null)");
        assert_int_equal(jf.n_providers, 0);
        assert_true(err[0] != '\0');
        jobfile_free(&jf);
    }
}

static void test_free_zeroed(void **state)
{
    (void)state;
    JobFile jf;
    memset(&jf, 0, sizeof jf);
    jobfile_free(&jf);
    jobfile_free(NULL);
    /* a loader call zeroes jf first, so garbage in it is harmless */
    memset(&jf, 0xA5, sizeof jf);
    Config cfg;
    char err[128];
    config_defaults(&cfg);
    assert_true(jobfile_load_string("", NULL, &cfg, &jf, err, sizeof err));
    assert_int_equal(jf.n_providers, 0);
    jobfile_free(&jf);
    memset(&jf, 0xA5, sizeof jf);
    assert_false(jobfile_load_string("[x]\na=1\n", NULL, &cfg, &jf, err, sizeof err));
    assert_string_equal(err, "<string>:1: [x]: unknown section (expected [job], [source], "
                             "[target], [limits] or [provider NAME])");
    jobfile_free(&jf);
    /* a small err buffer gets a cut message, never an overflow */
    char tiny[8];
    assert_false(jobfile_load_string("[x]\na=1\n", "t.ini", &cfg, &jf, tiny, sizeof tiny));
    assert_string_equal(tiny, "t.ini:1");
    jobfile_free(&jf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_job_settings),
        cmocka_unit_test(test_provider_keys),
        cmocka_unit_test(test_tls_keys),
        cmocka_unit_test(test_token_keys),
        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_dump),
        cmocka_unit_test(test_token_not_echoed),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_continuation_lines),
        cmocka_unit_test(test_crlf_bom),
        cmocka_unit_test(test_strings_outlive_text),
        cmocka_unit_test(test_batch_keys),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_first_error_wins),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_default_chain),
        cmocka_unit_test(test_free_zeroed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
