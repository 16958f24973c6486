#!/usr/bin/env bash
# test_tls: HTTPS providers with a CA the test makes (openssl). Against a mock serving a
# certificate of that CA: without the CA the run stops within 10 s, exit 2, naming the
# certificate problem and the --cacert hint, checkpoint and ledger untouched; with --cacert
# (and with cacert = in the provider's section) exactly the expected rows. A host name the
# certificate does not name stops the same way, and so does a failed handshake (a server
# offering TLS 1.2 at most against --tls-min-version 1.3; https:// to a plain HTTP port).
# --capath (a hashed CA directory) loads the rows as --cacert does. Mutual TLS: a mock that
# requires a client certificate refuses the handshake without one (exit 2, "requires a
# client certificate"), one from another CA (exit 2, "refused"), and loads every row with
# client_cert/client_key. A group-readable key, alone or inside the client certificate's
# file, is refused before anything connects; --insecure with a token is refused for a host
# that is not loopback and warned about loudly for 127.0.0.1.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v openssl >/dev/null || fail "openssl is not installed (scripts/deps)"
N=300
seed_bigint "$N"
load_expected bigint

# ---- a CA, a server certificate for localhost (not 127.0.0.1), client certificates
PKI="$IT_TMP/pki"
mkdir -p "$PKI"
(
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
        -subj "/CN=pgenrich test CA"
    openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=localhost"
    printf 'subjectAltName=DNS:localhost\n' >srv.ext
    openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem \
        -days 2 -extfile srv.ext
    openssl req -newkey rsa:2048 -nodes -keyout cli.key -out cli.csr -subj "/CN=pgenrich client"
    openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cli.pem -days 2
    openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 \
        -subj "/CN=a stranger"
    chmod 600 cli.key other.key
    mkdir capath
    cp ca.pem capath/
    openssl rehash capath
) >"$IT_TMP/openssl.log" 2>&1 || {
    cat "$IT_TMP/openssl.log" >&2
    fail "openssl could not make the test CA"
}

# https_url: the HTTPS base URL of the mock started last (MOCK_URL is its http:// form).
https_url() {
    printf 'https://%s:%s\n' "${1:-localhost}" "${MOCK_URL##*:}"
}

fresh() {
    sql -c "DROP TABLE IF EXISTS standardized_locations, enrich_failures, enrich_checkpoints,
            enrich_runs" >/dev/null
}

# config_stop LABEL TEXT...: the run stopped as a configuration error (exit 2) naming TEXT,
# with nothing loaded, nothing in the ledger and no checkpoint.
config_stop() {
    local label=$1
    shift
    expect_rc 2 "$label"
    assert_stderr_has "$label" "event=provider_config_error" "$@"
    assert_eq "$label: rows" 0 "$(q "SELECT count(*) FROM standardized_locations")"
    assert_eq "$label: ledger" 0 "$(q "SELECT count(*) FROM enrich_failures")"
    assert_eq "$label: checkpoint" "" "$(q "SELECT position FROM enrich_checkpoints")"
}

common=(--dsn "$IT_DSN" --concurrency 16 --max-attempts 3 --backoff-base 0.01 --backoff-cap 0.05)

# ---- server authentication
start_mock --tls-cert "$PKI/srv.pem" --tls-key "$PKI/srv.key"
BASE=$(https_url)

fresh
t0=$SECONDS
run_pgenrich no_ca run --job tls_noca --base-url "$BASE" "${common[@]}"
assert_le "no CA: seconds to stop" $((SECONDS - t0)) 10
config_stop no_ca "host=localhost" "the server's certificate is not trusted" \
    "give the CA with --cacert or cacert = in [provider primary]" "certificate"
[ "$(summary no_ca requests)" -ge 1 ] || fail "no CA: the failed request was not counted"
log "no CA: exit 2 in $((SECONDS - t0)) s: $(grep -o 'detail=[^h]*' "$IT_TMP/no_ca.err" | head -n 1)"

# A batch provider (API.md section 2) stops the same way: its calls were retried as
# transient, so the job paused it, spent its IDs' attempts and exited 75 after the bound.
fresh
printf '[job]\njob = tls_batch\n[provider primary]\nkind = batch\nurl = %s/api/v2/entities/batch\n' \
    "$BASE" >"$IT_TMP/batch.ini"
t0=$SECONDS
run_pgenrich no_ca_batch run --config "$IT_TMP/batch.ini" "${common[@]}"
assert_le "no CA, batch provider: seconds to stop" $((SECONDS - t0)) 10
config_stop no_ca_batch "host=localhost" "the server's certificate is not trusted" \
    "give the CA with --cacert or cacert = in [provider primary]"
[ "$(summary no_ca_batch requests)" -ge 1 ] ||
    fail "no CA, batch provider: the failed request was not counted"
fresh
run_pgenrich with_ca_batch run --config "$IT_TMP/batch.ini" --cacert "$PKI/ca.pem" "${common[@]}"
expect_done "a batch provider with --cacert"
check_against_expected tls_batch

fresh
run_pgenrich with_ca run --job tls_ca --base-url "$BASE" --cacert "$PKI/ca.pem" "${common[@]}"
expect_done "with --cacert"
check_against_expected tls_ca
log "with --cacert: $(summary with_ca rows_loaded) rows, exact"

fresh
run_pgenrich wrong_name run --job tls_name --base-url "$(https_url 127.0.0.1)" \
    --cacert "$PKI/ca.pem" "${common[@]}"
# the same server, but the certificate names localhost only
config_stop wrong_name "host=127.0.0.1" "the server's certificate is not for this host name"

fresh
run_pgenrich with_capath run --job tls_capath --base-url "$BASE" --capath "$PKI/capath" \
    "${common[@]}"
expect_done "with --capath"
check_against_expected tls_capath

# cacert = in the provider's section, TLS 1.3 at least
fresh
cat >"$IT_TMP/ca.ini" <<EOF
[job]
job = tls_file
[provider primary]
url = $BASE/api/v2/entities/{id}?select=id,label,location
cacert = $PKI/ca.pem
tls_min_version = 1.3
EOF
run_pgenrich ca_file run --config "$IT_TMP/ca.ini" "${common[@]}"
expect_done "cacert = in [provider primary]"
check_against_expected tls_file

# ---- --insecure: loud, and never with a token off the loopback
fresh
PGENRICH_TOKEN=tok-$$ run_pgenrich insecure_remote check-config --job x \
    --base-url "https://api.example.com" --insecure
expect_rc 2 "--insecure with a token for a remote host"
assert_stderr_has insecure_remote "insecure (no certificate verification) with a token is refused" \
    "api.example.com"
run_pgenrich insecure_local run --job tls_insecure --base-url "$BASE" --insecure "${common[@]}"
expect_done "--insecure on loopback"
assert_stderr_has insecure_local "event=tls_insecure" "TLS CERTIFICATES ARE NOT VERIFIED"
check_against_expected tls_insecure

# ---- failed handshakes: a minimum above what the server offers, TLS to a plain HTTP port
start_mock --tls-cert "$PKI/srv.pem" --tls-key "$PKI/srv.key" --tls-max-version 1.2
fresh
t0=$SECONDS
run_pgenrich tls12_only run --job tls_v12 --base-url "$(https_url)" --cacert "$PKI/ca.pem" \
    --tls-min-version 1.3 "${common[@]}"
assert_le "TLS 1.3 against a TLS 1.2 server: seconds to stop" $((SECONDS - t0)) 10
config_stop tls12_only "host=localhost" "the TLS handshake failed" \
    "(--tls-min-version or tls_min_version = in [provider primary])"
start_mock
fresh
run_pgenrich tls_to_http run --job tls_plain --base-url "$(https_url)" --cacert "$PKI/ca.pem" \
    "${common[@]}"
config_stop tls_to_http "the TLS handshake failed" "check that the port speaks TLS"

# ---- mutual TLS
start_mock --tls-cert "$PKI/srv.pem" --tls-key "$PKI/srv.key" --tls-client-ca "$PKI/ca.pem"
BASE=$(https_url)

fresh
run_pgenrich mtls_none run --job mtls --base-url "$BASE" --cacert "$PKI/ca.pem" "${common[@]}"
config_stop mtls_none "the server requires a client certificate" "--client-cert"

fresh
run_pgenrich mtls_other run --job mtls --base-url "$BASE" --cacert "$PKI/ca.pem" \
    --client-cert "$PKI/other.pem" --client-key "$PKI/other.key" "${common[@]}"
config_stop mtls_other "the server refused the client certificate"

cp "$PKI/cli.key" "$PKI/open.key"
chmod 644 "$PKI/open.key"
run_pgenrich mtls_open run --job mtls --base-url "$BASE" --cacert "$PKI/ca.pem" \
    --client-cert "$PKI/cli.pem" --client-key "$PKI/open.key" "${common[@]}"
expect_rc 2 "a group/other-readable client key"
assert_stderr_has mtls_open "$PKI/open.key is readable or writable by group or others (mode 0644)" \
    "chmod 600"
# the key inside the certificate's file (no --client-key): the same rule for that file
cat "$PKI/cli.pem" "$PKI/cli.key" >"$PKI/both.pem"
chmod 644 "$PKI/both.pem"
run_pgenrich mtls_both_open run --job mtls --base-url "$BASE" --cacert "$PKI/ca.pem" \
    --client-cert "$PKI/both.pem" "${common[@]}"
expect_rc 2 "a group/other-readable client certificate holding its key"
assert_stderr_has mtls_both_open \
    "$PKI/both.pem (in client_cert) is readable or writable by group or others (mode 0644)"
chmod 600 "$PKI/both.pem"
fresh
run_pgenrich mtls_both run --job mtls_both --base-url "$BASE" --cacert "$PKI/ca.pem" \
    --client-cert "$PKI/both.pem" "${common[@]}"
expect_done "mutual TLS with the key in the certificate's file"
check_against_expected mtls_both

fresh
cat >"$IT_TMP/mtls.ini" <<EOF
[job]
job = mtls
[provider primary]
url = $BASE/api/v2/entities/{id}?select=id,label,location
cacert = $PKI/ca.pem
client_cert = $PKI/cli.pem
client_key = $PKI/cli.key
EOF
run_pgenrich mtls_ok run --config "$IT_TMP/mtls.ini" "${common[@]}"
expect_done "mutual TLS with the client certificate"
check_against_expected mtls
log "mutual TLS: $(summary mtls_ok rows_loaded) rows, exact"
