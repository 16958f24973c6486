#!/usr/bin/env bash
# test_shared_many: 8 workers on one job of 200,000 IDs in 64 ranges (mock at 0 ms). Every
# range is done exactly once: a trigger on enrich_ranges logs each transition to done, and
# there is exactly one per range, each range was claimed once (fence 1), the ranges' counts
# add up to 200,000, and the target is exact.
IT_RUN_TIMEOUT=${IT_RUN_TIMEOUT:-100}
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=200000
seed_bigint "$N"
load_expected bigint
start_mock --latency-ms 0
run_pgenrich init init --dsn "$IT_DSN"
expect_rc 0 "init"
sql <<'EOF'
CREATE TABLE done_log (range_no int NOT NULL, owner text, fence bigint, at timestamptz DEFAULT now());
CREATE FUNCTION log_done() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'done' AND OLD.state IS DISTINCT FROM 'done' THEN
        INSERT INTO done_log (range_no, owner, fence) VALUES (NEW.range_no, NEW.owner, NEW.fence);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER log_done AFTER UPDATE ON enrich_ranges FOR EACH ROW EXECUTE FUNCTION log_done();
EOF

args=(--dsn "$IT_DSN" --job many --base-url "$MOCK_URL" --shared --ranges 64 --concurrency 16
    --page-size 1000 --flush-interval 0.5 --quiet)
pids=()
t0=$SECONDS
for w in $(seq 1 8); do
    start_pgenrich "w$w" run "${args[@]}"
    pids+=("$PGENRICH_PID")
done
for w in $(seq 1 8); do
    PGENRICH_PID=${pids[w - 1]}
    LAST_RUN=w$w
    LAST_ARGS=("${args[@]}")
    wait_pgenrich 90
    expect_done "worker $w"
done
log "8 workers done in $((SECONDS - t0)) s"
assert_eq "ranges" 64 "$(q "SELECT count(*) FROM enrich_ranges WHERE job = 'many'")"
assert_eq "ranges done" 64 "$(q "SELECT count(*) FROM enrich_ranges WHERE job = 'many' AND state = 'done'")"
assert_eq "done transitions: one per range" "64|64" \
    "$(q "SELECT count(*), count(DISTINCT range_no) FROM done_log")"
assert_eq "each range claimed once" 0 "$(q "SELECT count(*) FROM enrich_ranges WHERE job = 'many' AND fence <> 1")"
assert_eq "the ranges' counts add up to the IDs" "$N" \
    "$(q "SELECT sum(rows_loaded + failures) FROM enrich_ranges WHERE job = 'many'")"
assert_eq "workers that did ranges (more than one)" t \
    "$(q "SELECT count(DISTINCT owner) > 1 FROM enrich_ranges WHERE job = 'many'")"
assert_eq "lookups: one per ID" "$N" "$(mock_stat requests)"
check_against_expected many
log "every range done exactly once; the target is exact"
