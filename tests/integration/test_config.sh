#!/usr/bin/env bash
# test_config: the job file's [source], [target] and [limits] sections, PGENRICH_* variables
# and flags, in that order of precedence. `pgenrich check-config FILE` prints the effective
# settings with every secret masked and exits 0 without connecting to anything; a bad
# value, an unknown key, a setting in the wrong section or a bad variable prints exactly
# `FILE:LINE: KEY: reason` (or `PGENRICH_X: reason`) and exits 2. Then a run from a job file
# that uses the new sections, with its dsn from PGENRICH_DSN, loads every ID where the
# sections said.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PASSWORD="pw-$$-$RANDOM-secret"
APIKEY="key-$$-$RANDOM-secret"
URLPASS="up-$$-$RANDOM-secret"
QUERYKEY="qk-$$-$RANDOM-secret"

# check LABEL ARGS...: pgenrich check-config ARGS (bounded in time), output in LABEL.out/.err.
check() {
    local label=$1
    shift
    run_pgenrich "$label" check-config "$@"
}

# has LABEL REGEX: a line of LABEL's stdout matches REGEX (extended, whole line).
has() {
    grep -qxE -- "$2" "$IT_TMP/$1.out" ||
        LAST_RUN=$1 fail "check-config $1: no line matching '$2' in:
$(cat "$IT_TMP/$1.out")"
}

# err_is LABEL TEXT: LABEL's stderr is exactly TEXT (one line), and stdout is empty.
err_is() {
    local got
    got=$(cat "$IT_TMP/$1.err")
    [ "$got" = "$2" ] || LAST_RUN=$1 fail "$1: stderr is '$got', expected '$2'"
    [ ! -s "$IT_TMP/$1.out" ] || LAST_RUN=$1 fail "$1: printed settings despite the error"
}

# --- 1. a valid file: effective settings, secrets masked, nothing connected -----------------
# Port 1 on loopback: nothing listens there, so any attempt to connect would fail the check.
F="$IT_TMP/nightly.ini"
cat >"$F" <<EOF
; every section
[job]
job = nightly

[source]
dsn = host=127.0.0.1 port=1 user=u password='$PASSWORD' dbname=x
source_table = things
page-size = 500

[target]
target-table = enriched
flush_rows = 100

[limits]
concurrency = 128
rate = 500
timeout = 9

[provider primary]
url = http://u:$URLPASS@127.0.0.1:1/api/v2/entities/{id}?select=id&api_key=$QUERYKEY
header = X-Api-Key: $APIKEY
header = X-Client: pgenrich

[provider backup]
url = http://127.0.0.1:1/v1/lookup?entity={id}
mapping = secondary
token_env = BACKUP_TOKEN_FOR_TEST
EOF
BACKUP_TOKEN_FOR_TEST=tok-backup PGENRICH_TOKEN=tok-global check valid "$F"
expect_rc 0 "check-config on a valid file"
has valid "source\.dsn = host=127\.0\.0\.1 port=1 user=u password=\*\*\*\* dbname=x +# $F:6"
has valid "source\.source-table = things +# $F:7"
has valid "source\.page-size = 500 +# $F:8"
has valid "target\.target-table = enriched +# $F:11"
has valid "target\.failures-table = enrich_failures +# default"
has valid "limits\.concurrency = 128 +# $F:15"
has valid "limits\.max-attempts = 5 +# default"
has valid "job\.job = nightly +# $F:3"
has valid "job\.base-url = \(none\) +# default"
has valid "provider\.primary\.url = http://u:\*\*\*\*@127\.0\.0\.1:1/api/v2/entities/\{id\}\?select=id&api_key=\*\*\*\*"
has valid "provider\.primary\.header = X-Api-Key: \*\*\*\*"
has valid "provider\.primary\.header = X-Client: pgenrich"
has valid "provider\.primary\.token = inherit .*"
has valid "provider\.backup\.token_env = BACKUP_TOKEN_FOR_TEST"
has valid "provider\.backup\.map\.label = /results/0/name"
for secret in "$PASSWORD" "$APIKEY" "$URLPASS" "$QUERYKEY" tok-backup tok-global; do
    assert_no_secret "$secret"
done
log "valid file: effective settings printed, secrets masked"

# The same settings from the environment only (no file), and DATABASE_URL as the dsn.
DATABASE_URL="postgresql://u:$PASSWORD@127.0.0.1:1/x" PGENRICH_JOB=envjob \
    PGENRICH_BASE_URL=http://127.0.0.1:1 check envonly
expect_rc 0 "check-config from the environment alone"
has envonly "source\.dsn = postgresql://u:\*\*\*\*@127\.0\.0\.1:1/x +# DATABASE_URL"
has envonly "job\.job = envjob +# PGENRICH_JOB"
has envonly "provider\.primary\.url = http://127\.0\.0\.1:1/api/v2/entities/\{id\}\?select=id,label,location"
assert_no_secret "$PASSWORD"

# --- 2. flags beat the environment, which beats the file ------------------------------------
BACKUP_TOKEN_FOR_TEST=x PGENRICH_CONCURRENCY=32 PGENRICH_RATE=7 PGENRICH_PAGE_SIZE=250 \
    check precedence "$F" --rate 1
expect_rc 0 "check-config with env and flags"
has precedence "limits\.concurrency = 32 +# PGENRICH_CONCURRENCY"
has precedence "limits\.rate = 1 +# --rate"
has precedence "limits\.timeout = 9 +# $F:17"
has precedence "source\.page-size = 250 +# PGENRICH_PAGE_SIZE"
has precedence "limits\.backoff-base = 0\.2 +# default"
log "precedence: flags > PGENRICH_* > file > defaults"

# --- 3. errors: exactly FILE:LINE: KEY: reason, exit 2 ---------------------------------------
B="$IT_TMP/bad_value.ini"
printf '[job]\njob = x\n[limits]\nconcurrency = 0\n' >"$B"
check bad_value "$B"
expect_rc 2 "check-config with a bad value"
err_is bad_value "$B:4: concurrency: must be an integer between 1 and 10000, not \"0\""

U="$IT_TMP/unknown.ini"
printf '[job]\njob = x\n[source]\ncolour = blue\n' >"$U"
check unknown "$U"
expect_rc 2 "check-config with an unknown key"
err_is unknown "$U:4: colour: unknown key in [source]"

W="$IT_TMP/wrong_section.ini"
printf '[job]\njob = x\n\n[source]\npage_size = 10\nconcurrency = 8\n' >"$W"
check wrong_section "$W"
expect_rc 2 "check-config with a setting in the wrong section"
err_is wrong_section "$W:6: concurrency: belongs in [limits] (or [job]), not [source]"

S="$IT_TMP/bad_section.ini"
printf '[job]\njob = x\n[sources]\npage_size = 10\n' >"$S"
check bad_section "$S"
expect_rc 2 "check-config with an unknown section"
err_is bad_section "$S:3: [sources]: unknown section (expected [job], [source], [target], [limits] or [provider NAME])"

D="$IT_TMP/twice.ini"
printf '[source]\npage-size = 10\n[job]\njob = x\npage_size = 20\n' >"$D"
check twice "$D"
expect_rc 2 "check-config with a setting given twice"
err_is twice "$D:5: page_size: given twice (first on line 2)"

X="$IT_TMP/cross.ini"
printf '[job]\njob = x\nbase-url = http://127.0.0.1:1\n[limits]\nbackoff-cap = 0.1\n' >"$X"
check cross "$X"
expect_rc 2 "check-config with backoff-cap below backoff-base"
err_is cross "$X:5: backoff-cap: must not be below backoff-base (0.2)"

# A clash between two settings names the one the file gave, with its line.
C="$IT_TMP/clash.ini"
printf '[job]\njob = x\nbase-url = http://127.0.0.1:1\n[source]\npaging = offset\nonly-missing = true\n' >"$C"
check clash "$C"
expect_rc 2 "check-config with only-missing and offset paging in the file"
err_is clash "$C:6: only-missing: --only-missing and --refresh-older-than need --paging keyset (skipping rows would shift the offsets)"
check clash_flag "$C" --paging keyset --shared
expect_rc 2 "check-config with --shared and the file's only-missing"
err_is clash_flag "$C:6: only-missing: --shared works on keyset ranges of a plain run: it does not go with retry-failed, --paging offset, --only-missing, --refresh-older-than, --restart or --explain"
C2="$IT_TMP/clash2.ini"
printf '[job]\njob = x\nbase-url = http://127.0.0.1:1\nrestart = true\n' >"$C2"
check clash_restart "$C2" --refresh-older-than 1d
expect_rc 2 "check-config with restart in the file and --refresh-older-than"
err_is clash_restart "$C2:4: restart: --refresh-older-than alone covers the job's checkpoint, which --restart forgets: add --only-missing, or drop --restart"

# An unreadable global token file, and a metrics address without a port, name their lines
# (check-config checked neither before a run would have refused them).
T="$IT_TMP/token.ini"
printf '[job]\njob = x\nbase-url = http://127.0.0.1:1\ntoken-file = %s/no-such-token\n' "$IT_TMP" >"$T"
check token_missing "$T"
expect_rc 2 "check-config with a missing global token file"
err_is token_missing "$T:4: token-file: cannot open token file $IT_TMP/no-such-token: No such file or directory"
M="$IT_TMP/listen.ini"
printf '[job]\njob = x\nbase-url = http://127.0.0.1:1\nmetrics-listen = 127.0.0.1\n' >"$M"
check listen_shape "$M"
expect_rc 2 "check-config with metrics-listen lacking a port"
err_is listen_shape "$M:4: metrics-listen: \"127.0.0.1\" is not HOST:PORT (an IPv6 address goes in brackets: [::1]:9187)"
# A '%' in the host: curl takes it, then would say only that the host does not resolve.
PGENRICH_TOKEN=x check pct_host --job x --base-url 'https://exa%mple.com'
expect_rc 2 "check-config with a '%' in the host"
err_is pct_host "provider primary: the URL is malformed: the host \"exa%mple.com\" holds '%', which no host name has (hint: check url = of [provider primary] or --base-url)"

L="$IT_TMP/logfile.ini"
printf '[job]\njob = x\nbase-url = http://127.0.0.1:1\nlog-file = %s/no-such-dir/run.log\n' "$IT_TMP" >"$L"
PGENRICH_TOKEN=x check log_file "$L"
expect_rc 2 "check-config with a log file in a missing folder"
err_is log_file "$L:4: log-file: cannot open the log file $IT_TMP/no-such-dir/run.log: No such file or directory"
PGENRICH_TOKEN=x run_pgenrich run_log_file run --config "$L"
expect_rc 2 "run with a log file in a missing folder"
err_is run_log_file "pgenrich: $L:4: log-file: cannot open the log file $IT_TMP/no-such-dir/run.log: No such file or directory"
PGENRICH_TOKEN=x check log_file_ok "$L" --log-file "$IT_TMP/run.log"
expect_rc 0 "check-config with a log file that can be made"
[ ! -e "$IT_TMP/run.log" ] || fail "check-config created the log file"
PGENRICH_TOKEN=x check listen_flag "$X" --backoff-cap 1 --metrics-listen 127.0.0.1
expect_rc 2 "check-config with --metrics-listen lacking a port"
assert_stderr_has listen_flag "--metrics-listen \"127.0.0.1\" is not HOST:PORT"

PGENRICH_PAGE_SIZE=lots check bad_env "$X"
expect_rc 2 "check-config with a bad PGENRICH_ variable"
err_is bad_env "PGENRICH_PAGE_SIZE: must be an integer between 1 and 1000000, not \"lots\""

check bad_flag "$X" --backoff-cap 1 --concurrency 0
expect_rc 2 "check-config with a bad flag"
assert_stderr_has bad_flag "--concurrency must be an integer between 1 and 10000, not \"0\""

# A provider's token source is checked too (still nothing is connected).
check no_token "$F"
expect_rc 2 "check-config with a token_env that is not set"
err_is no_token "$F:27: token_env: environment variable BACKUP_TOKEN_FOR_TEST is not set (in [provider backup])"

# run reports the same errors, prefixed with the program's name.
run_pgenrich run_bad_value run --config "$B"
expect_rc 2 "run with a bad value in the job file"
err_is run_bad_value "pgenrich: $B:4: concurrency: must be an integer between 1 and 10000, not \"0\""
log "errors: FILE:LINE: KEY: reason, PGENRICH_X: reason, exit 2"

# --- 4. a run from the new sections ----------------------------------------------------------
seed_bigint 300
load_expected bigint
start_mock
R="$IT_TMP/run.ini"
cat >"$R" <<EOF
[job]
job = sections

[source]
page_size = 70

[target]
target-table = sec_target
failures_table = sec_failures
flush-rows = 50

[limits]
concurrency = 4
max-attempts = 2
backoff-base = 0.01
backoff-cap = 0.02

$(chain_providers "$MOCK_URL")
EOF
PGENRICH_DSN="$IT_DSN" PGENRICH_CONCURRENCY=8 run_pgenrich sections run --config "$R" --quiet
expect_rc 5 "run from a job file with [source], [target] and [limits] (done; the mock's unknown IDs in the ledger)"
check_summary_shape sections
check_against_expected sections sec_target sec_failures
assert_eq "no rows in the default target" 0 \
    "$(q "SELECT count(*) FROM pg_tables WHERE tablename = 'standardized_locations'")"
log "run: [source], [target], [limits] and PGENRICH_DSN applied"
