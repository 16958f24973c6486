/* Unit tests for token: the check and trim of a token, which hosts count as loopback and
 * which URLs expose a token, and the chain's rule of who gets which token (environment
 * variables and temporary files, no network). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "token.h"

/* token_check on a copy of s (it writes the NUL); returns the reason, *out the result. */
static const char *check(const char *s, size_t len, bool trim, char *out, size_t *out_len)
{
    memcpy(out, s, len);
    out[len] = 'X'; /* must become the NUL when accepted */
    *out_len = len;
    return token_check(out, out_len, trim);
}

static void test_check_accepts(void **state)
{
    (void)state;
    char buf[64];
    size_t n;

    assert_null(check("abc.DEF-123_~+/=", 16, false, buf, &n));
    assert_int_equal(n, 16);
    assert_string_equal(buf, "abc.DEF-123_~+/=");
    /* a file's line end and trailing blanks go */
    assert_null(check("tok\n", 4, true, buf, &n));
    assert_string_equal(buf, "tok");
    assert_null(check("tok \t\r\n\r\n", 9, true, buf, &n));
    assert_int_equal(n, 3);
    assert_string_equal(buf, "tok");
    /* bytes over 0x7F pass: what a provider's key is made of is its business */
    assert_null(check("t\xc3\xa9", 3, false, buf, &n));
}

static void test_check_refuses(void **state)
{
    (void)state;
    char buf[64];
    size_t n;

    assert_string_equal(check("", 0, false, buf, &n), "is empty");
    assert_string_equal(check(" \r\n", 3, true, buf, &n), "is empty");
    /* no trimming from the environment: a trailing line break is refused, not cut */
    assert_string_equal(check("tok\n", 4, false, buf, &n), "holds a line break (CR or LF)");
    assert_string_equal(check("a\nb", 3, false, buf, &n), "holds a line break (CR or LF)");
    assert_string_equal(check("a\rb", 3, true, buf, &n), "holds a line break (CR or LF)");
    assert_string_equal(check("a\nb\n", 4, true, buf, &n), "holds a line break (CR or LF)");
    const char *ctl = "holds a space, a tab or a control character (a bearer token is one word)";
    assert_string_equal(check("a b", 3, false, buf, &n), ctl);
    assert_string_equal(check(" ab", 3, true, buf, &n), ctl);
    assert_string_equal(check("a\tb", 3, false, buf, &n), ctl);
    assert_string_equal(check("a\0b", 3, true, buf, &n), ctl);
    assert_string_equal(check("a\x7f", 2, false, buf, &n), ctl);
    assert_string_equal(check("\x1b[0m", 4, false, buf, &n), ctl);
    /* a refused token is left as it was: the caller wipes it */
    assert_int_equal(n, 4);
}

static void test_check_length(void **state)
{
    (void)state;
    char *buf = malloc(TOKEN_MAX + 2);
    size_t n = TOKEN_MAX;
    assert_non_null(buf);
    memset(buf, 'a', TOKEN_MAX + 1);
    assert_null(token_check(buf, &n, false));
    assert_int_equal(n, TOKEN_MAX);
    n = TOKEN_MAX + 1;
    assert_string_equal(token_check(buf, &n, false), "is longer than 8192 bytes");
    /* trailing blanks do not count */
    buf[TOKEN_MAX] = '\n';
    n = TOKEN_MAX + 1;
    assert_null(token_check(buf, &n, true));
    free(buf);
}

static void test_loopback(void **state)
{
    (void)state;
    static const char *const yes[] = {"localhost", "LocalHost",       "localhost.",
                                      "127.0.0.1", "127.1.2.3",       "127.255.255.255",
                                      "::1",       "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"};
    static const char *const no[] = {"",
                                     "example.com",
                                     "localhost.example.com",
                                     "mylocalhost",
                                     "127.0.0.1.nip.io",
                                     "127.evil.com",
                                     "128.0.0.1",
                                     "10.0.0.1",
                                     "126.255.255.255",
                                     "0.0.0.0",
                                     "::",
                                     "::2",
                                     "::ffff:10.0.0.1",
                                     "127.0.0.256",
                                     "1.127.0.0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (!token_host_is_loopback(yes[i]))
            print_error("%s should be loopback\n", yes[i]);
        assert_true(token_host_is_loopback(yes[i]));
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        if (token_host_is_loopback(no[i]))
            print_error("%s should not be loopback\n", no[i]);
        assert_false(token_host_is_loopback(no[i]));
    }
}

static void test_url_exposed(void **state)
{
    (void)state;
    static const struct {
        const char *url, *host;
        bool exposed;
    } cases[] = {
        {"http://127.0.0.1:8080/api/v2/entities/{id}", "127.0.0.1", false},
        {"http://localhost/{id}", "localhost", false},
        {"http://[::1]:8080/{id}", "::1", false},
        {"HTTP://LOCALHOST:1/{id}", "LOCALHOST", false},
        {"http://api.example.com/v1/{id}", "api.example.com", true},
        {"http://api.example.com:8080/{id}", "api.example.com", true},
        {"http://10.1.2.3/{id}", "10.1.2.3", true},
        {"http://[2001:db8::1]:80/{id}", "2001:db8::1", true},
        {"https://api.example.com/{id}", "api.example.com", false},
        {"https://127.0.0.1/{id}", "127.0.0.1", false},
        /* userinfo is not the host: the host is what follows the last '@' */
        {"http://127.0.0.1@evil.example/{id}", "evil.example", true},
        {"http://user:pw@localhost:9/{id}", "localhost", false},
        /* the host ends at '?' or '#' as well as '/' */
        {"http://evil.example?x=127.0.0.1/{id}", "evil.example", true},
        {"http://localhost#frag", "localhost", false},
        {"http://{id}.example/x", "{id}.example", true},
        {"http:///{id}", "", true},
        {"ftp://example.com/{id}", "", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char host[TOKEN_HOST_MAX];
        bool got = token_url_exposed(cases[i].url, host, sizeof host);
        if (got != cases[i].exposed || strcmp(host, cases[i].host) != 0)
            print_error("%s: exposed=%d host=%s\n", cases[i].url, got, host);
        assert_int_equal(got, cases[i].exposed);
        assert_string_equal(host, cases[i].host);
    }
    /* a small buffer truncates the host, not the decision */
    char small[4];
    assert_true(token_url_exposed("http://localhost.evil.example/{id}", small, sizeof small));
    assert_string_equal(small, "loc");
    assert_false(token_url_exposed("http://localhost/{id}", small, sizeof small));
}

/* ---- token_from_env, token_from_file ---- */

static char tmpdir[64];

static const char *write_file(const char *name, const char *content, size_t len, mode_t mode)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static void test_from_env(void **state)
{
    (void)state;
    char err[256], *t = NULL;

    unsetenv("PGENRICH_UT_TOKEN");
    assert_true(token_from_env("PGENRICH_UT_TOKEN", false, &t, err, sizeof err));
    assert_null(t);
    assert_false(token_from_env("PGENRICH_UT_TOKEN", true, &t, err, sizeof err));
    assert_string_equal(err, "environment variable PGENRICH_UT_TOKEN is not set");
    setenv("PGENRICH_UT_TOKEN", "", 1);
    assert_true(token_from_env("PGENRICH_UT_TOKEN", false, &t, err, sizeof err));
    assert_null(t);
    assert_false(token_from_env("PGENRICH_UT_TOKEN", true, &t, err, sizeof err));
    assert_string_equal(err, "environment variable PGENRICH_UT_TOKEN is empty");
    setenv("PGENRICH_UT_TOKEN", "s3cret-env", 1);
    assert_true(token_from_env("PGENRICH_UT_TOKEN", true, &t, err, sizeof err));
    assert_string_equal(t, "s3cret-env");
    token_free(t);
    /* a line break is refused from the environment too, and the message does not quote */
    setenv("PGENRICH_UT_TOKEN", "s3cret\nX-Evil: 1", 1);
    assert_false(token_from_env("PGENRICH_UT_TOKEN", false, &t, err, sizeof err));
    assert_null(t);
    assert_string_equal(err, "the token in environment variable PGENRICH_UT_TOKEN holds a line "
                             "break (CR or LF)");
    setenv("PGENRICH_UT_TOKEN", "s3cret\n", 1);
    assert_false(token_from_env("PGENRICH_UT_TOKEN", false, &t, err, sizeof err));
    assert_null(strstr(err, "s3cret"));
    unsetenv("PGENRICH_UT_TOKEN");
    token_free(NULL);
}

static void test_from_file(void **state)
{
    (void)state;
    char err[512], *t = NULL;
    const char *p;

    p = write_file("ok", "s3cret-file\r\n", 13, 0600);
    assert_true(token_from_file(p, &t, err, sizeof err));
    assert_string_equal(t, "s3cret-file");
    token_free(t);

    p = write_file("two_lines", "s3cret\nmore\n", 12, 0600);
    assert_false(token_from_file(p, &t, err, sizeof err));
    assert_null(t);
    assert_non_null(strstr(err, "holds a line break (CR or LF)"));
    assert_non_null(strstr(err, "two_lines"));
    assert_null(strstr(err, "s3cret"));

    p = write_file("empty", "\n\n", 2, 0600);
    assert_false(token_from_file(p, &t, err, sizeof err));
    assert_non_null(strstr(err, "is empty"));

    p = write_file("nul", "s3c\0ret", 7, 0600);
    assert_false(token_from_file(p, &t, err, sizeof err));
    assert_non_null(strstr(err, "control character"));

    char *big = malloc(TOKEN_MAX + 2);
    assert_non_null(big);
    memset(big, 'a', TOKEN_MAX + 1);
    p = write_file("exact", big, TOKEN_MAX, 0600);
    assert_true(token_from_file(p, &t, err, sizeof err));
    assert_int_equal(strlen(t), TOKEN_MAX);
    token_free(t);
    p = write_file("big", big, TOKEN_MAX + 1, 0600);
    assert_false(token_from_file(p, &t, err, sizeof err));
    assert_non_null(strstr(err, "is larger than 8192 bytes"));
    free(big);

    /* readable by others: a warning (to stderr), still read */
    p = write_file("open", "s3cret-open\n", 12, 0644);
    assert_true(token_from_file(p, &t, err, sizeof err));
    assert_string_equal(t, "s3cret-open");
    token_free(t);

    assert_false(token_from_file("/nonexistent/pgenrich-token", &t, err, sizeof err));
    assert_string_equal(err, "cannot open token file /nonexistent/pgenrich-token: No such file or "
                             "directory");
}

/* ---- token_chain_load ---- */

static ProviderConf prov(const char *name, const char *url, TokenFrom from, const char *ref)
{
    ProviderConf p;
    memset(&p, 0, sizeof p);
    p.name = name;
    p.url = url;
    p.token_from = from;
    p.token_ref = ref;
    return p;
}

#define URL "http://127.0.0.1:9/{id}"

static void test_chain_default(void **state)
{
    (void)state;
    TokenChain tc;
    char err[512];
    ProviderConf ps[3] = {prov("a", URL, TOKEN_FROM_DEFAULT, NULL),
                          prov("b", URL, TOKEN_FROM_DEFAULT, NULL),
                          prov("c", URL, TOKEN_FROM_INHERIT, NULL)};

    /* the global token goes to the first provider and to those that inherit it, only */
    setenv(TOKEN_ENV, "global-tok", 1);
    assert_true(token_chain_load(&tc, NULL, ps, 3, err, sizeof err));
    assert_string_equal(tc.tokens[0], "global-tok");
    assert_null(tc.tokens[1]);
    assert_string_equal(tc.tokens[2], "global-tok");
    assert_ptr_equal(tc.tokens[0], tc.tokens[2]);
    assert_int_equal(tc.n_held, 1);
    token_chain_free(&tc);
    assert_int_equal(tc.n_held, 0);

    /* no global token: nobody gets one, and that is fine */
    unsetenv(TOKEN_ENV);
    assert_true(token_chain_load(&tc, NULL, ps, 3, err, sizeof err));
    assert_null(tc.tokens[0]);
    assert_null(tc.tokens[2]);
    token_chain_free(&tc);

    /* a global token-file beats the environment */
    setenv(TOKEN_ENV, "global-env", 1);
    const char *f = write_file("global", "global-file\n", 12, 0600);
    assert_true(token_chain_load(&tc, f, ps, 1, err, sizeof err));
    assert_string_equal(tc.tokens[0], "global-file");
    token_chain_free(&tc);

    /* a bad global token is an error even though the variable is optional */
    setenv(TOKEN_ENV, "a\nb", 1);
    assert_false(token_chain_load(&tc, NULL, ps, 1, err, sizeof err));
    assert_string_equal(err, "the token in environment variable " TOKEN_ENV
                             " holds a line break (CR or LF)");
    token_chain_free(&tc);
    unsetenv(TOKEN_ENV);
}

static void test_chain_own(void **state)
{
    (void)state;
    TokenChain tc;
    char err[512];
    const char *f = write_file("own", "file-tok\n", 9, 0600);
    char fpath[128];
    snprintf(fpath, sizeof fpath, "%s", f);
    ProviderConf ps[5] = {
        prov("a", URL, TOKEN_FROM_NONE, NULL), prov("b", URL, TOKEN_FROM_ENV, "PGENRICH_UT_B"),
        prov("c", URL, TOKEN_FROM_FILE, fpath), prov("d", URL, TOKEN_FROM_ENV, "PGENRICH_UT_B"),
        prov("e", URL, TOKEN_FROM_DEFAULT, NULL)};

    setenv(TOKEN_ENV, "global-tok", 1);
    setenv("PGENRICH_UT_B", "env-tok", 1);
    assert_true(token_chain_load(&tc, NULL, ps, 5, err, sizeof err));
    assert_null(tc.tokens[0]); /* token = none on the first: not even the global token */
    assert_string_equal(tc.tokens[1], "env-tok");
    assert_string_equal(tc.tokens[2], "file-tok");
    assert_ptr_equal(tc.tokens[1], tc.tokens[3]); /* one read per source */
    assert_null(tc.tokens[4]);
    assert_int_equal(tc.n_held, 2); /* the global token was not needed, so not read */
    token_chain_free(&tc);

    /* a provider's own source is required, and the error names the provider */
    unsetenv("PGENRICH_UT_B");
    assert_false(token_chain_load(&tc, NULL, ps, 5, err, sizeof err));
    assert_string_equal(err,
                        "[provider b] token_env: environment variable PGENRICH_UT_B is not set");
    token_chain_free(&tc);
    setenv("PGENRICH_UT_B", "env\rtok", 1);
    assert_false(token_chain_load(&tc, NULL, ps, 5, err, sizeof err));
    assert_string_equal(err, "[provider b] token_env: the token in environment variable "
                             "PGENRICH_UT_B holds a line break (CR or LF)");
    token_chain_free(&tc);
    setenv("PGENRICH_UT_B", "env-tok", 1);
    ps[2].token_ref = "/nonexistent/pgenrich-token";
    assert_false(token_chain_load(&tc, NULL, ps, 5, err, sizeof err));
    assert_string_equal(err, "[provider c] token_file: cannot open token file "
                             "/nonexistent/pgenrich-token: No such file or directory");
    token_chain_free(&tc);
    /* from a job file: named FILE:LINE: KEY: like every other setting's error */
    ps[2].token_origin = "job.ini:12";
    assert_false(token_chain_load(&tc, NULL, ps, 5, err, sizeof err));
    assert_string_equal(err, "job.ini:12: token_file: cannot open token file "
                             "/nonexistent/pgenrich-token: No such file or directory (in "
                             "[provider c])");
    token_chain_free(&tc);
    unsetenv("PGENRICH_UT_B");
    unsetenv(TOKEN_ENV);
}

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pgenrich-ut-token.XXXXXX");
    log_level = LOG_ERROR; /* the expected warnings stay quiet */
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    static const char *const names[] = {"ok",  "two_lines", "empty",  "nul", "exact",
                                        "big", "open",      "global", "own"};
    char path[128];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_accepts), cmocka_unit_test(test_check_refuses),
        cmocka_unit_test(test_check_length),  cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_url_exposed),   cmocka_unit_test(test_from_env),
        cmocka_unit_test(test_from_file),     cmocka_unit_test(test_chain_default),
        cmocka_unit_test(test_chain_own),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
