#!/usr/bin/env bash
# test_dblock: another session holds a lock on the target that keeps writers out (SHARE).
# The flush waits for it, says so (event=flush_slow, naming the likely lock) instead of
# hanging silently, and the statement_timeout then ends it with a message that names the
# timeout: exit 1, nothing of the batch committed. Once the lock is gone a rerun finishes.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

seed_bigint 300
start_mock
run_pgenrich init init --dsn "$IT_DSN"
expect_rc 0 "pgenrich init"

# The lock holder: a session that locks the target and sleeps (bounded).
sql -c "BEGIN; LOCK TABLE standardized_locations IN SHARE MODE; SELECT pg_sleep(25); COMMIT;" \
    >/dev/null 2>&1 &
LOCKER=$!
BG_PIDS+=("$LOCKER")
for _ in $(seq 1 50); do
    [ "$(q "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
            WHERE c.relname = 'standardized_locations' AND l.mode = 'ShareLock' AND l.granted")" = 1 ] && break
    sleep 0.1
done

t0=$SECONDS
run_pgenrich locked run --dsn "$IT_DSN" --job lk --base-url "$MOCK_URL" --statement-timeout 12
took=$((SECONDS - t0))
expect_rc 1 "a run whose flush waits on a lock past statement_timeout"
assert_stderr_has locked 'event=flush_slow' 'statement_timeout'
assert_le "seconds until the run gave up (statement_timeout 12)" "$took" 20
assert_eq "rows committed under the lock" 0 "$(q "SELECT count(*) FROM standardized_locations")"
log "gave up after ${took}s with: $(grep -o 'error="[^"]*' "$IT_TMP/locked.err" | tail -n 1 | cut -c1-160)"

kill "$LOCKER" 2>/dev/null || true
wait "$LOCKER" 2>/dev/null || true
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
   WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%pg_sleep%'" >/dev/null
run_pgenrich rerun run --dsn "$IT_DSN" --job lk --base-url "$MOCK_URL"
expect_done "the rerun once the lock is gone"
