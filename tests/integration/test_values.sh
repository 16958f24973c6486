#!/usr/bin/env bash
# test_values: every value pgenrich loads equals what the mock says it must, for text keys
# with awkward IDs (dots, slashes, '?', '#', quotes, backslashes, tabs, emoji, a long ID) and
# for bigint keys; every other ID is a failure with the right reason, and none is lost.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_mock --latency-ms 0

# run_case KEYTYPE: init, run over master_table, and check everything against --expect.
run_case() {
    local keytype=$1 job="values_$1" n
    n=$(q "SELECT count(*) FROM master_table")
    load_expected "$keytype"
    run_pgenrich "init_$keytype" init --dsn "$IT_DSN"
    expect_done "pgenrich init ($keytype)"
    run_pgenrich "run_$keytype" run --dsn "$IT_DSN" --job "$job" --base-url "$MOCK_URL" \
        --page-size 500 --concurrency 64 --quiet
    expect_done "pgenrich run ($keytype)"
    check_summary_shape "run_$keytype"

    check_against_expected "$job"
    assert_eq "ids_read ($keytype)" "$n" "$(summary "run_$keytype" ids_read)"
    assert_eq "rows_loaded ($keytype)" "$(q "SELECT count(*) FROM expected WHERE outcome = 'found'")" \
        "$(summary "run_$keytype" rows_loaded)"
    assert_eq "failures ($keytype)" "$(q "SELECT count(*) FROM expected WHERE outcome <> 'found'")" \
        "$(summary "run_$keytype" failures)"
    local reason
    for reason in not_found no_location bad_response; do
        assert_eq "failures: $reason ($keytype)" \
            "$(q "SELECT count(*) FROM expected WHERE outcome = '$reason'")" \
            "$(summary "run_$keytype" "$reason")"
    done
    assert_eq "retries without faults ($keytype)" 0 "$(summary "run_$keytype" retries)"
    assert_none "not_found failures without HTTP 404 or with a retry" \
        "SELECT id, http_status, attempts FROM enrich_failures
         WHERE reason = 'not_found' AND (http_status IS DISTINCT FROM 404 OR attempts <> 1)"
    assert_none "loaded rows without provider or fetched_at" \
        "SELECT id FROM standardized_locations WHERE provider IS NULL OR fetched_at IS NULL"
    assert_eq "checkpoint ($keytype)" "t|$(summary "run_$keytype" rows_loaded)|$n" \
        "$(q "SELECT finished, rows_loaded, rows_loaded + failures FROM enrich_checkpoints
              WHERE job = '$job'")"
    log "$keytype keys: $n IDs, values and failures as expected"
}

# Text keys: the awkward IDs of awkward_ids.txt, a very long one, and 2000 ordinary ones.
sql -c "CREATE TABLE master_table (id text PRIMARY KEY)"
sql -c '\copy master_table FROM pstdin' <"$IT_ROOT/tests/integration/awkward_ids.txt"
sql <<'EOF'
INSERT INTO master_table VALUES (repeat('very-long/id?#%', 60)), ('Q90'), ('Q64');
INSERT INTO master_table SELECT 'Q' || g FROM generate_series(100, 2099) g;
EOF
run_case text
awkward=$(q "SELECT count(*) FROM master_table m
             WHERE id !~ '^Q[0-9]+$'
               AND (EXISTS (SELECT 1 FROM standardized_locations t WHERE t.id = m.id)
                 OR EXISTS (SELECT 1 FROM enrich_failures f WHERE f.id = m.id))")
assert_eq "awkward IDs settled" "$(($(wc -l <"$IT_ROOT/tests/integration/awkward_ids.txt") + 1))" \
    "$awkward"
assert_eq "awkward IDs answered without 400 (percent-encoding)" 0 "$(mock_stat bad_request)"

# Bigint keys, including the extremes of the type.
sql <<'EOF'
DROP TABLE standardized_locations, enrich_failures, enrich_checkpoints, master_table, expected;
CREATE TABLE master_table (id bigint PRIMARY KEY);
INSERT INTO master_table SELECT g FROM generate_series(1, 2000) g;
INSERT INTO master_table VALUES (0), (-1), (-9223372036854775808), (9223372036854775807);
EOF
run_case bigint
