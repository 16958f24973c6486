#!/usr/bin/env bash
# test_dblock: another session holds a lock on the target that keeps writers out (SHARE).
# The flush waits for it, says so (event=flush_slow, naming the likely lock) instead of
# hanging silently, and the statement_timeout then ends it with a message that names the
# timeout: exit 1, nothing of the batch committed. Once the lock is gone a rerun finishes.
# (2) An ACCESS EXCLUSIVE lock on the target (VACUUM FULL, ALTER TABLE) while a run starts:
# the blocking set-up says so too (event=db_slow), then statement_timeout ends it. (3) The
# same lock on the source mid-run: the waiting page query is reported (event=page_slow);
# once the lock goes the run goes on and ends exact.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

seed_bigint 2000
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

# lock_table TABLE SECONDS: a session that holds an ACCESS EXCLUSIVE lock on TABLE for
# SECONDS (bounded), in the background (LOCKER); returns once the lock is granted.
lock_table() {
    sql -c "BEGIN; LOCK TABLE $1 IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep($2); COMMIT;" \
        >/dev/null 2>&1 &
    LOCKER=$!
    BG_PIDS+=("$LOCKER")
    for _ in $(seq 1 100); do
        [ "$(q "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                WHERE c.relname = '$1' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ] &&
            return
        sleep 0.1
    done
    fail "no ACCESS EXCLUSIVE lock on $1 after 10 s"
}

# --- 2. the target locked while a run starts ---------------------------------------------------
lock_table standardized_locations 25
t0=$SECONDS
run_pgenrich start_locked run --dsn "$IT_DSN" --job lk_start --base-url "$MOCK_URL" \
    --statement-timeout 12
took=$((SECONDS - t0))
expect_rc 1 "a run whose set-up waits on a lock past statement_timeout"
assert_stderr_has start_locked 'event=db_slow waiting_s=10 what="creating the staging tables"' \
    'statement timeout'
assert_le "seconds until the run gave up (statement_timeout 12)" "$took" 20
log "set-up gave up after ${took}s with: $(grep -o 'msg="[^"]*' "$IT_TMP/start_locked.err" | tail -n 1)"
kill "$LOCKER" 2>/dev/null || true
wait "$LOCKER" 2>/dev/null || true

# --- 3. the source locked mid-run: reported, then the run goes on ------------------------------
load_expected bigint
start_mock --latency-ms 20
start_pgenrich src_locked run --dsn "$IT_DSN" --job lk_src --base-url "$MOCK_URL" \
    --target-table src_target --failures-table src_fail --concurrency 4 --page-size 100 \
    --flush-interval 0.2
for _ in $(seq 1 100); do
    [ "$(q "SELECT count(*) FROM pg_tables WHERE tablename = 'src_target'")" = 1 ] &&
        [ "$(q "SELECT count(*) FROM src_target")" -gt 0 ] && break
    kill -0 "$PGENRICH_PID" 2>/dev/null || fail "the run ended before its first flush"
    sleep 0.1
done
lock_table master_table 15
at_lock=$(q "SELECT count(*) FROM src_target")
wait_pgenrich 90
expect_done "the run whose source was locked for 15 s"
assert_stderr_has src_locked 'event=page_slow waiting_s=10'
check_against_expected lk_src src_target src_fail
log "source locked with $at_lock rows loaded: $(grep -m1 -o 'event=page_slow waiting_s=[0-9]*' "$IT_TMP/src_locked.err")"
