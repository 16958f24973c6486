/* Unit tests for connerr: which failures below HTTP stop a job as configuration errors
 * (and when), their words and hints, a URL's host, loopback, and the key-file mode rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "connerr.h"

typedef struct ConfigCase {
    ConnFault fault;
    bool before_answer; /* configuration while the provider has never answered */
    bool after_answer;  /* and once it has */
} ConfigCase;

static const ConfigCase config_cases[] = {
    {CF_NONE, false, false},
    {CF_REFUSED, false, false},
    {CF_TIMEOUT, false, false},
    {CF_CONNECT_TIMEOUT, false, false},
    {CF_RESET, false, false},
    {CF_OTHER, false, false},
    {CF_RESOLVE, true, false},
    {CF_RESOLVE_PROXY, true, false},
    {CF_PROXY, true, false},
    {CF_PROXY_PROTOCOL, true, true},
    {CF_TLS_HANDSHAKE, true, false},
    {CF_CERT_UNTRUSTED, true, true},
    {CF_CERT_NAME, true, true},
    {CF_TLS_LOCAL, true, true},
    {CF_CLIENT_CERT_REQUIRED, true, true},
    {CF_CLIENT_CERT_REFUSED, true, true},
    {CF_PROTOCOL, true, true},
    {CF_URL, true, true},
};

static void test_is_config(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof config_cases / sizeof config_cases[0]; i++) {
        const ConfigCase *c = &config_cases[i];
        if (connerr_is_config(c->fault, false) != c->before_answer ||
            connerr_is_config(c->fault, true) != c->after_answer) {
            print_error("fault %d (%s)\n", (int)c->fault, connerr_word(c->fault));
            fail();
        }
    }
    /* out of range counts as "other": transient */
    assert_false(connerr_is_config((ConnFault)999, false));
}

static void test_unreachable(void **state)
{
    (void)state;
    /* Refused, a connect timeout, a lost host name: the request never got there. */
    assert_true(connerr_unreachable(CF_REFUSED));
    assert_true(connerr_unreachable(CF_CONNECT_TIMEOUT));
    assert_true(connerr_unreachable(CF_RESOLVE));
    /* It may have got there, or the fault is ours or the proxy's. */
    static const ConnFault reached[] = {CF_NONE,
                                        CF_TIMEOUT,
                                        CF_RESET,
                                        CF_RESOLVE_PROXY,
                                        CF_PROXY,
                                        CF_PROXY_PROTOCOL,
                                        CF_CERT_UNTRUSTED,
                                        CF_CERT_NAME,
                                        CF_TLS_HANDSHAKE,
                                        CF_TLS_LOCAL,
                                        CF_CLIENT_CERT_REQUIRED,
                                        CF_CLIENT_CERT_REFUSED,
                                        CF_PROTOCOL,
                                        CF_URL,
                                        CF_OTHER};
    for (size_t i = 0; i < sizeof reached / sizeof reached[0]; i++)
        assert_false(connerr_unreachable(reached[i]));
    assert_false(connerr_unreachable((ConnFault)999));
    assert_string_equal(connerr_word(CF_CONNECT_TIMEOUT), "connect timeout");
}

static void test_words_and_hints(void **state)
{
    (void)state;
    char hint[256];
    assert_string_equal(connerr_word(CF_REFUSED), "connection refused");
    assert_string_equal(connerr_cause(CF_CERT_UNTRUSTED),
                        "the server's certificate is not trusted");
    connerr_hint(CF_CERT_UNTRUSTED, "geo", hint, sizeof hint);
    assert_string_equal(hint, "give the CA with --cacert or cacert = in [provider geo]");
    connerr_hint(CF_RESOLVE, NULL, hint, sizeof hint);
    assert_non_null(strstr(hint, "[provider NAME]"));
    connerr_hint(CF_RESET, "geo", hint, sizeof hint);
    assert_string_equal(hint, "");
    connerr_hint(CF_CERT_UNTRUSTED, "geo", hint, 10); /* cut, still terminated */
    assert_int_equal(strlen(hint), 9);
    for (int f = CF_NONE; f <= CF_OTHER; f++) {
        assert_true(connerr_cause((ConnFault)f)[0] != '\0');
        assert_true(connerr_word((ConnFault)f)[0] != '\0');
        connerr_hint((ConnFault)f, "p", hint, sizeof hint);
        assert_null(strstr(hint, "%s"));
    }
}

static void test_proxy_addr(void **state)
{
    (void)state;
    char a[64];
    assert_true(connerr_proxy_addr("http://127.0.0.1:3128", a, sizeof a));
    assert_string_equal(a, "127.0.0.1:3128");
    assert_true(connerr_proxy_addr("proxy.corp:8080", a, sizeof a)); /* no scheme */
    assert_string_equal(a, "proxy.corp:8080");
    assert_true(connerr_proxy_addr("socks5h://user:s3cret@[::1]:1080/", a, sizeof a));
    assert_string_equal(a, "[::1]:1080"); /* never the credentials */
    assert_false(connerr_proxy_addr("http://", a, sizeof a));
    assert_string_equal(a, "");
    assert_false(connerr_proxy_addr(NULL, a, sizeof a));
    assert_false(connerr_proxy_addr("http://a-very-long-proxy-name.example.com:3128", a, 8));
}

static void test_url_host(void **state)
{
    (void)state;
    static const struct {
        const char *url, *host;
    } ok[] = {
        {"https://api.example.com/v1/{id}", "api.example.com"},
        {"http://127.0.0.1:8080/e/{id}?x=1", "127.0.0.1"},
        {"https://user:pw@host.test:443/", "host.test"},
        {"https://[::1]:9000/x", "::1"},
        {"http://h?q=a@b", "h"},
        {"http://h#frag", "h"},
        {"http://localhost", "localhost"},
    };
    char host[64];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_true(connerr_url_host(ok[i].url, host, sizeof host));
        assert_string_equal(host, ok[i].host);
    }
    assert_false(connerr_url_host("no-scheme/x", host, sizeof host));
    assert_string_equal(host, "");
    assert_false(connerr_url_host("http:///path", host, sizeof host));
    assert_false(connerr_url_host("http://[::1/x", host, sizeof host));
    assert_false(connerr_url_host("http://a-very-long-host-name.example/", host, 8));
}

static void test_loopback(void **state)
{
    (void)state;
    static const char *const yes[] = {"localhost", "LocalHost", "api.localhost",
                                      "127.0.0.1", "127.1.2.3", "127.255.255.255",
                                      "::1"};
    static const char *const no[] = {"example.com",
                                     "localhost.example",
                                     "128.0.0.1",
                                     "127.0.0.256",
                                     "127.0.0",
                                     "127.0.0.1.5",
                                     "127.0.0.1x",
                                     "::2",
                                     "",
                                     "127..0.1",
                                     "10.0.0.1"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_true(connerr_host_loopback(yes[i]));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        if (connerr_host_loopback(no[i])) {
            print_error("%s taken for loopback\n", no[i]);
            fail();
        }
    }
}

static void test_key_mode(void **state)
{
    (void)state;
    char why[200];
    assert_true(connerr_key_mode_ok(S_IFREG | 0600, 1000, why, sizeof why));
    assert_true(connerr_key_mode_ok(S_IFREG | 0400, 1000, why, sizeof why));
    assert_false(connerr_key_mode_ok(S_IFREG | 0640, 1000, why, sizeof why));
    assert_non_null(strstr(why, "mode 0640"));
    assert_non_null(strstr(why, "chmod 600"));
    assert_false(connerr_key_mode_ok(S_IFREG | 0604, 1000, why, sizeof why));
    assert_false(connerr_key_mode_ok(S_IFREG | 0620, 1000, why, sizeof why));
    /* root-owned: group read is the system's way to share a key */
    assert_true(connerr_key_mode_ok(S_IFREG | 0640, 0, why, sizeof why));
    assert_false(connerr_key_mode_ok(S_IFREG | 0644, 0, why, sizeof why));
    assert_false(connerr_key_mode_ok(S_IFREG | 0660, 0, why, sizeof why));
    assert_false(connerr_key_mode_ok(S_IFDIR | 0700, 1000, why, sizeof why));
    assert_string_equal(why, "is not a regular file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_config),       cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_words_and_hints), cmocka_unit_test(test_url_host),
        cmocka_unit_test(test_proxy_addr),      cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_key_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
