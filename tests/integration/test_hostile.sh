#!/usr/bin/env bash
# test_hostile: hostile input never gives a wrong row or a crash. IDs that try to escape the
# path or the query (../admin, a/b, ?x=1, #f, %2e%2e, dots, spaces, unicode, 3000 bytes) load
# their own entity or land in the ledger with a clear reason; answers over the body cap,
# with a content type that is not JSON or nested too deep are bad_response (and load when
# the same answers are within bounds); the empty ID is rejected without a request; a
# refused token (401) stops the job with exit 3, the checkpoint where it was, and the token
# printed nowhere.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cols="label, geo_label, street_address, city_label, postal_code, country_label, latitude, longitude"

# check_vs EXPECTED JOB TARGET SOURCE [FAILURES]: TARGET holds exactly EXPECTED's found
# rows (values included), the ledger exactly EXPECTED's other IDs with outcome as reason,
# and every SOURCE ID sits in exactly one place.
check_vs() {
    local exp=$1 job=$2 target=$3 source=$4 failures=${5:-enrich_failures}
    assert_none "$job: loaded rows that differ from the expected ones" \
        "SELECT id, $cols FROM $target EXCEPT SELECT id, $cols FROM $exp WHERE outcome = 'found'"
    assert_none "$job: expected rows missing" \
        "SELECT id, $cols FROM $exp WHERE outcome = 'found' EXCEPT SELECT id, $cols FROM $target"
    assert_none "$job: failures that differ from the expected outcomes" \
        "SELECT id, reason FROM $failures WHERE job = '$job'
         EXCEPT SELECT id, outcome FROM $exp WHERE outcome <> 'found'"
    assert_none "$job: expected failures not recorded" \
        "SELECT id, outcome FROM $exp WHERE outcome <> 'found'
         EXCEPT SELECT id, reason FROM $failures WHERE job = '$job'"
    check_one_place "$job" "$target" "$failures" "$source" id
}

# run_vs LABEL EXPECTED [pgenrich run flags...]: run job LABEL over q_source into table
# LABEL (the current mock), then check_vs.
run_vs() {
    local label=$1 exp=$2
    shift 2
    run_pgenrich "$label" run --dsn "$IT_DSN" --job "$label" --base-url "$MOCK_URL" \
        --source-table q_source --target-table "$label" --concurrency 32 --quiet "$@"
    expect_done "pgenrich run $label"
    check_summary_shape "$label"
    check_vs "$exp" "$label" "$label" q_source
    log "$label: $(grep -E '^failures:' "$IT_TMP/$label.out") (mock requests: $(mock_stat requests))"
}

# --- 1. IDs that try to escape the path or the query ---------------------------------------
sql <<'EOF'
CREATE TABLE hostile_ids (id text PRIMARY KEY);
INSERT INTO hostile_ids VALUES ('../admin'), ('a/b'), ('?x=1'), ('#f'), ('%2e%2e'), ('%2E'),
    ('a b'), ('..'), ('.'), ('...'), ('/'), ('//'), ('../../etc/passwd'), ('./.'),
    ('a?b#c&d=e'), ('%00'), ('%'), ('a+b'), ('x=y&select=secret'), ('\'), ('\\N'), ('NULL'),
    ('Zürich 東京 🚀'), ('ﬁ ﹖ ／ ． ＼'), (E'tab\there'), (E'new\nline'), (E'cr\rhere'),
    (''), (' '), ('café'), ('it''s'), ('"'), ('ID;DROP TABLE hostile_ids;--'),
    ('http://evil.example/'), ('@evil.example'), ('Q1/../../admin'), ('%2F..%2F'),
    (repeat('a/', 1500)), (repeat('é', 1500)), (repeat('z', 5000));
CREATE TABLE q_source (id text PRIMARY KEY);
INSERT INTO q_source SELECT 'Q' || g FROM generate_series(1, 800) g;
EOF
load_expected_as exp_ids text "SELECT id FROM hostile_ids"
# The mock refuses IDs over 4096 bytes with 400: rejected, no value.
sql -c "UPDATE exp_ids SET outcome = 'rejected', label = NULL, geo_label = NULL,
        street_address = NULL, city_label = NULL, postal_code = NULL, country_label = NULL,
        latitude = NULL, longitude = NULL WHERE octet_length(id) > 4096"
# The empty ID would name the collection, not an entity: rejected without a request.
sql -c "UPDATE exp_ids SET outcome = 'rejected', label = NULL, geo_label = NULL,
        street_address = NULL, city_label = NULL, postal_code = NULL, country_label = NULL,
        latitude = NULL, longitude = NULL WHERE id = ''"
start_mock
run_pgenrich ids run --dsn "$IT_DSN" --job ids --base-url "$MOCK_URL" --source-table hostile_ids \
    --target-table ids_target --concurrency 8 --quiet
expect_done "pgenrich run over hostile IDs"
check_summary_shape ids
check_vs exp_ids ids ids_target hostile_ids
assert_eq "requests the mock refused (only the ID over its 4096-byte limit)" 1 \
    "$(mock_stat bad_request)"
assert_none "the over-long ID must be rejected with its HTTP status" \
    "SELECT id, reason, http_status FROM enrich_failures
     WHERE job = 'ids' AND octet_length(id) > 4096 AND http_status IS DISTINCT FROM 400"
assert_eq "requests made (every ID but the empty one)" "$(q "SELECT count(*) - 1 FROM hostile_ids")" \
    "$(mock_stat requests)"
assert_eq "hostile IDs settled" "$(q "SELECT count(*) FROM hostile_ids")" \
    "$(q "SELECT (SELECT count(*) FROM ids_target) +
                 (SELECT count(*) FROM enrich_failures WHERE job = 'ids')")"
log "hostile IDs: $(q "SELECT count(*) FROM ids_target") loaded," \
    "$(q "SELECT string_agg(reason || '=' || n, ' ') FROM (SELECT reason, count(*) n
          FROM enrich_failures WHERE job = 'ids' GROUP BY reason) s")"
stop_mock_pid "$MOCK_PID"

# exp_quirk NAME QUIRK-FLAGS...: table NAME of expectations for q_source where the IDs picked
# by the quirk and answered 200 (everything but the primary's 404) are bad_response.
exp_quirk() {
    local name=$1
    shift
    load_expected_as "$name" text "SELECT id FROM q_source" "$@"
    sql -c "UPDATE $name SET outcome = 'bad_response', label = NULL, geo_label = NULL,
            street_address = NULL, city_label = NULL, postal_code = NULL, country_label = NULL,
            latitude = NULL, longitude = NULL WHERE quirks <> '' AND outcome <> 'not_found'"
    [ "$(q "SELECT count(*) FROM $name WHERE quirks <> ''")" -gt 10 ] ||
        fail "$name: too few IDs picked by $*"
}
load_expected_as exp_plain text "SELECT id FROM q_source"

# --- 2. bodies over the cap -------------------------------------------------------------------
exp_quirk exp_pad --pad-mod 4
start_mock --pad-mod 4 --pad-bytes 20000
run_vs pad_small exp_pad --max-body 16384
assert_none "pad_small: a body over the cap must be retried never (one request per ID)" \
    "SELECT id, attempts FROM enrich_failures WHERE job = 'pad_small' AND attempts <> 1"
assert_eq "pad_small: requests" "$(q "SELECT count(*) FROM q_source")" "$(mock_stat requests)"
mock_reset_stats
# The same answers under a cap they fit: the unknown padding key is ignored.
run_vs pad_large exp_plain --max-body 65536
stop_mock_pid "$MOCK_PID"
# The default cap is 1 MiB.
exp_quirk exp_pad_default --pad-mod 20
start_mock --pad-mod 20 --pad-bytes 1100000
run_vs pad_default exp_pad_default
stop_mock_pid "$MOCK_PID"

# --- 3. content types ---------------------------------------------------------------------------
exp_quirk exp_ctype --ctype-mod 4
start_mock --ctype-mod 4
run_vs ctype_html exp_ctype
assert_none "ctype_html: the ledger should say why (content type)" \
    "SELECT f.id, f.last_error FROM enrich_failures f JOIN exp_ctype c USING (id)
         JOIN exp_plain p USING (id)
     WHERE f.job = 'ctype_html' AND c.quirks <> '' AND p.outcome = 'found'
       AND f.last_error NOT ILIKE '%content%type%'"
stop_mock_pid "$MOCK_PID"
# No Content-Type at all is accepted, and so is application/json with parameters.
start_mock --ctype-mod 4 --ctype ''
run_vs ctype_none exp_plain
stop_mock_pid "$MOCK_PID"
start_mock --ctype-mod 4 --ctype 'application/json; charset=utf-8'
run_vs ctype_params exp_plain
stop_mock_pid "$MOCK_PID"

# --- 4. nesting --------------------------------------------------------------------------------
exp_quirk exp_nest --nest-mod 4
start_mock --nest-mod 4 --nest-depth 5000
run_vs nest_deep exp_nest
stop_mock_pid "$MOCK_PID"
start_mock --nest-mod 4 --nest-depth 4
run_vs nest_shallow exp_plain
stop_mock_pid "$MOCK_PID"

# --- 5. a refused token: exit 3, checkpoint unchanged, the token printed nowhere -------------
TOKEN="right-token-$$-$RANDOM"
WRONG="wrong-token-$$-$RANDOM"
printf '%s\n' "$TOKEN" >"$IT_TMP/token"
printf '%s\n' "$WRONG" >"$IT_TMP/wrong-token"
sql <<'EOF'
CREATE TABLE auth_source (id bigint PRIMARY KEY);
INSERT INTO auth_source SELECT g FROM generate_series(1, 20000) g;
EOF
start_mock --token "$TOKEN" --latency-ms 20
auth=(run --dsn "$IT_DSN" --job auth --base-url "$MOCK_URL" --source-table auth_source
    --target-table auth_target --failures-table auth_failures --page-size 1000 --flush-rows 500 --flush-interval 0.3)

# 5a. a fresh job with the wrong token: nothing written.
PGENRICH_TOKEN=$WRONG run_pgenrich auth_fresh "${auth[@]}" --verbose
expect_rc 3 "a refused token (fresh job)"
grep -qE '401|credential|token' "$IT_TMP/auth_fresh.err" ||
    LAST_RUN=auth_fresh fail "exit 3 without saying why (401, credentials)"
assert_eq "auth_fresh: nothing loaded" 0 "$(q "SELECT count(*) FROM auth_target")"
assert_eq "auth_fresh: no failure recorded" 0 \
    "$(q "SELECT count(*) FROM auth_failures WHERE job = 'auth'")"
assert_none "auth_fresh: a checkpoint past the start" \
    "SELECT position, finished FROM enrich_checkpoints
     WHERE job = 'auth' AND (position IS NOT NULL OR finished)"

# 5b. the right token, interrupted once a checkpoint exists: exit 75.
start_pgenrich auth_part "${auth[@]}" --token-file "$IT_TMP/token" --concurrency 16 --quiet
for _ in $(seq 1 300); do
    [ -n "$(q "SELECT 1 FROM enrich_checkpoints WHERE job = 'auth' AND position IS NOT NULL")" ] &&
        break
    kill -0 "$PGENRICH_PID" 2>/dev/null || break
    sleep 0.1
done
kill -INT "$PGENRICH_PID" 2>/dev/null || true
wait_pgenrich 30
expect_rc 75 "SIGINT during the run with the right token"
cp=$(checkpoint_of auth)
loaded=$(q "SELECT count(*) FROM auth_target")
failed=$(q "SELECT count(*) FROM auth_failures WHERE job = 'auth'")
[ -n "$(q "SELECT 1 FROM enrich_checkpoints WHERE job = 'auth' AND position IS NOT NULL
           AND NOT finished")" ] || fail "no unfinished checkpoint after SIGINT: $cp"
log "interrupted: checkpoint $cp, $loaded rows, $failed failures"

# 5c. the wrong token again: exit 3, and the checkpoint, rows and ledger as they were.
run_pgenrich auth_wrong "${auth[@]}" --token-file "$IT_TMP/wrong-token" --verbose
expect_rc 3 "a refused token (job with a checkpoint)"
assert_eq "auth_wrong: checkpoint unchanged" "$cp" "$(checkpoint_of auth)"
assert_eq "auth_wrong: rows unchanged" "$loaded" "$(q "SELECT count(*) FROM auth_target")"
assert_eq "auth_wrong: ledger unchanged" "$failed" \
    "$(q "SELECT count(*) FROM auth_failures WHERE job = 'auth'")"
[ "$(mock_stat unauthorized)" -gt 0 ] || fail "the mock never answered 401"

# 5d. the right token: the job completes from the checkpoint, nothing lost.
mock_reset_stats
PGENRICH_TOKEN=$TOKEN run_pgenrich auth_done "${auth[@]}" --concurrency 256 --quiet
expect_done "the right token after the refusal"
assert_eq "auth_done: no 401" 0 "$(mock_stat unauthorized)"
load_expected_as exp_auth bigint "SELECT id FROM auth_source"
check_vs exp_auth auth auth_target auth_source auth_failures
assert_no_secret "$TOKEN"
assert_no_secret "$WRONG"
