#!/usr/bin/env bash
# test_paging_cli: --paging offset gives the keyset result; --where filters; table and column
# names that need quoting work; bad flags exit 2, a dead database exits 1; refused
# credentials exit 3 and leave the checkpoint alone; SIGINT exits 75; the token is never
# printed.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=5000
seed_bigint "$N"
load_expected bigint
start_mock --latency-ms 0
PLAIN_URL=$MOCK_URL

# --- 1. keyset and offset paging give the same result -----------------------------------------
run_pgenrich init init --dsn "$IT_DSN"
expect_done "pgenrich init"
run_pgenrich init_off init --dsn "$IT_DSN" --target-table loc_offset \
    --failures-table fail_offset --checkpoint-table ck_offset
expect_done "pgenrich init (offset tables)"
run_pgenrich keyset run --dsn "$IT_DSN" --job keyset --base-url "$PLAIN_URL" --page-size 700 \
    --quiet
expect_done "keyset run"
run_pgenrich offset run --dsn "$IT_DSN" --job offset --base-url "$PLAIN_URL" --page-size 700 \
    --paging offset --target-table loc_offset --failures-table fail_offset \
    --checkpoint-table ck_offset --quiet
expect_done "offset run"
check_against_expected keyset
check_against_expected offset loc_offset fail_offset
assert_eq "offset ids_read" "$N" "$(summary offset ids_read)"
assert_eq "offset checkpoint records the paging" offset \
    "$(q "SELECT paging FROM ck_offset WHERE job = 'offset'")"

# --- 2. --where ----------------------------------------------------------------------------
run_pgenrich init_where init --dsn "$IT_DSN" --target-table loc_where \
    --failures-table fail_where --checkpoint-table ck_where
expect_done "pgenrich init (where tables)"
run_pgenrich where run --dsn "$IT_DSN" --job where --base-url "$PLAIN_URL" --page-size 300 \
    --where 'id % 7 = 0 AND id > 100' --target-table loc_where --failures-table fail_where \
    --checkpoint-table ck_where --quiet
expect_done "--where run"
assert_eq "--where ids_read" "$(q "SELECT count(*) FROM master_table WHERE id % 7 = 0 AND id > 100")" \
    "$(summary where ids_read)"
assert_none "IDs outside --where that were processed" \
    "SELECT id FROM loc_where WHERE NOT (id % 7 = 0 AND id > 100)
     UNION ALL SELECT id FROM fail_where WHERE NOT (id % 7 = 0 AND id > 100)"
assert_none "IDs inside --where that were not settled" \
    "SELECT id FROM master_table WHERE id % 7 = 0 AND id > 100
     EXCEPT (SELECT id FROM loc_where UNION ALL SELECT id FROM fail_where)"

# --- 3. names that need quoting ------------------------------------------------------------
sql <<'EOF'
CREATE TABLE "Master Table" ("Key" text PRIMARY KEY, "select" int);
INSERT INTO "Master Table" ("Key") SELECT 'Q' || g FROM generate_series(1, 300) g;
INSERT INTO "Master Table" ("Key") VALUES ('../admin'), ('a b?c'), ('it''s');
EOF
load_expected text 'SELECT "Key" FROM "Master Table"'
quoted=(--source-table "Master Table" --key-column Key --target-table 'Std "Locs"'
    --failures-table 'Fail Table' --checkpoint-table 'Check-Points')
run_pgenrich init_quoted init --dsn "$IT_DSN" "${quoted[@]}"
expect_done "pgenrich init with quoted names"
run_pgenrich quoted run --dsn "$IT_DSN" --job quoted --base-url "$PLAIN_URL" "${quoted[@]}" --quiet
expect_done "run with quoted names"
check_against_expected quoted '"Std ""Locs"""' '"Fail Table"' '"Master Table"' '"Key"'
assert_eq "quoted checkpoint" t "$(q "SELECT finished FROM \"Check-Points\" WHERE job = 'quoted'")"

# --- 4. exit codes: 2 for usage errors, 6 for a database that is not there ---------------------
check_usage() {
    local label=$1
    shift
    run_pgenrich "$label" "$@"
    expect_rc 2 "pgenrich $*"
    [ -s "$IT_TMP/$label.err" ] || fail "pgenrich $*: exit 2 without a message on stderr"
}
check_usage usage_none
check_usage usage_cmd frobnicate
check_usage usage_flag run --dsn "$IT_DSN" --job x --base-url "$PLAIN_URL" --no-such-flag
check_usage usage_nojob run --dsn "$IT_DSN" --base-url "$PLAIN_URL"
check_usage usage_nourl run --dsn "$IT_DSN" --job x
check_usage usage_conc run --dsn "$IT_DSN" --job x --base-url "$PLAIN_URL" --concurrency 0
check_usage usage_num run --dsn "$IT_DSN" --job x --base-url "$PLAIN_URL" --page-size 10k
check_usage usage_paging run --dsn "$IT_DSN" --job x --base-url "$PLAIN_URL" --paging sideways
check_usage usage_url run --dsn "$IT_DSN" --job x --base-url "ftp://example"
check_usage usage_extra run --dsn "$IT_DSN" --job x --base-url "$PLAIN_URL" stray
run_pgenrich help --help
expect_done "pgenrich --help"
grep -q -- '--page-size' "$IT_TMP/help.out" "$IT_TMP/help.err" || fail "--help does not list flags"

run_pgenrich nodb run --dsn "host=127.0.0.1 port=1 user=postgres dbname=x connect_timeout=3" \
    --job x --base-url "$PLAIN_URL"
expect_rc 6 "pgenrich against a database that is not there"
run_pgenrich notable run --dsn "$IT_DSN" --job x --base-url "$PLAIN_URL" --source-table no_such_table
expect_rc 1 "pgenrich with a missing source table"
DATABASE_URL=$IT_DSN run_pgenrich envdsn init
expect_done "pgenrich init with DATABASE_URL"

# --- 5. credentials: SIGINT -> 75, refused token -> 3 with the checkpoint untouched ---------------
SECRET=s3cret-Zq8-token
WRONG=wrong-Kx7-token
start_mock --token "$SECRET" --latency-ms 20
run_pgenrich init_tok init --dsn "$IT_DSN" --target-table loc_tok --failures-table fail_tok \
    --checkpoint-table ck_tok
expect_done "pgenrich init (token tables)"
tok=(run --dsn "$IT_DSN" --job tok --base-url "$MOCK_URL" --target-table loc_tok
    --failures-table fail_tok --checkpoint-table ck_tok --concurrency 8 --page-size 500
    --flush-rows 200 --flush-interval 0.2)
PGENRICH_TOKEN=$SECRET start_pgenrich sigint "${tok[@]}" --verbose
for _ in $(seq 1 150); do
    [ -n "$(q "SELECT 1 FROM ck_tok WHERE job = 'tok' AND position IS NOT NULL")" ] && break
    kill -0 "$PGENRICH_PID" 2>/dev/null || fail "pgenrich ended before a checkpoint was written"
    sleep 0.1
done
kill -INT "$PGENRICH_PID"
wait_pgenrich 20
expect_rc 75 "pgenrich after SIGINT"
snapshot="SELECT position, rows_loaded, failures, finished, updated_at,
                 (SELECT count(*) FROM loc_tok), (SELECT count(*) FROM fail_tok)
          FROM ck_tok WHERE job = 'tok'"
before=$(q "$snapshot")
[ -n "$before" ] || fail "no checkpoint after SIGINT"
log "after SIGINT: $before"

PGENRICH_TOKEN=$WRONG run_pgenrich wrong "${tok[@]}" --verbose
expect_rc 3 "pgenrich with a refused token"
assert_eq "checkpoint and tables after a refused token" "$before" "$(q "$snapshot")"
[ "$(mock_stat unauthorized)" -gt 0 ] || fail "the mock saw no unauthorized request"

printf '%s\n' "$SECRET" >"$IT_TMP/token"
unset PGENRICH_TOKEN
run_pgenrich tokfile "${tok[@]}" --concurrency 128 --token-file "$IT_TMP/token" --quiet
expect_done "run with --token-file after SIGINT and a refused token"
load_expected bigint
check_against_expected tok loc_tok fail_tok
assert_no_secret "$SECRET"
assert_no_secret "$WRONG"
