#!/usr/bin/env bash
# test_progress: on a pseudo-terminal (util-linux `script`) the progress line is redrawn in
# place (\r ... \033[K) with a percent and an ETA, at most about 4 times a second, and the
# summary starts on a clean line; without a terminal, logfmt `event=progress` lines come
# every --progress-interval with the total and an ETA; --log-format json writes one JSON
# object per line; --log-file is reopened on SIGHUP after a rotation; the total is counted
# for a small table (with --where) and, on a keyset resume, covers the IDs after the
# checkpoint.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v script >/dev/null || fail "util-linux script (bsdutils) is needed"
command -v jq >/dev/null || fail "jq is needed (scripts/deps installs it)"

N=1500
seed_bigint "$N"
# 16 lookups of 60 ms at a time: about 250 IDs/s, a run of about 6 s.
start_mock --latency-ms 60
common=(--dsn "$IT_DSN" --base-url "$MOCK_URL" --concurrency 16)

# --- 1. a terminal: the live line -------------------------------------------------------------
printf -v cmd '%q ' "$PGENRICH_BIN" run "${common[@]}" --job tty
t0=$(date +%s.%N)
RC=0
timeout -k 5 "$IT_RUN_TIMEOUT" script -qfec "$cmd" /dev/null </dev/null >"$IT_TMP/tty.out" 2>&1 ||
    RC=$?
t1=$(date +%s.%N)
LAST_RUN=tty
cp "$IT_TMP/tty.out" "$IT_TMP/tty.err"
expect_rc 5 "the run on a pseudo-terminal (done; the mock's unknown IDs in the ledger)"
# Each redraw is "\r" + the line + "\033[K"; a log line over it starts "\r\033[K".
tr '\r' '\n' <"$IT_TMP/tty.out" | sed -n 's/\x1b\[K$//p' | grep -E '/' >"$IT_TMP/redraws" || true
redraws=$(wc -l <"$IT_TMP/redraws")
elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
log "tty: $redraws redraws in $elapsed s; last: $(tail -n 1 "$IT_TMP/redraws")"
[ "$redraws" -ge 8 ] || fail "tty: only $redraws redraws of the progress line"
awk -v n="$redraws" -v t="$elapsed" 'BEGIN { exit !(n <= 4.5 * t + 2) }' ||
    fail "tty: $redraws redraws in $elapsed s: more than 4 a second"
grep -qE "^tty  [0-9,]+/1,500  [0-9.]+%  [0-9,]+ ids/s  ETA [0-9]+(s|m[0-9]{2}s)" \
    "$IT_TMP/redraws" || fail "tty: no redraw with the total, a percent and an ETA value"
grep -qE '^tty  [0-9,]+/1,500  [0-9.]+%  \? ids/s  ETA --' "$IT_TMP/redraws" ||
    log "tty: (the first redraw already had a rate)"
# Percent never passes 100, and the ETA comes down.
awk '{ for (i = 1; i <= NF; i++) if ($i ~ /%$/) { p = $i + 0; if (p > 100) exit 1 } }' \
    "$IT_TMP/redraws" || fail "tty: a percent above 100"
# The summary is on a line of its own: the live line was erased before it.
grep -qa $'\r\x1b\\[Ksummary: ids_read=1500 ' "$IT_TMP/tty.out" ||
    grep -qa '^summary: ids_read=1500 ' "$IT_TMP/tty.out" ||
    fail "tty: the summary line does not start on a clean line"
grep -qa 'event=estimate ids=1500 exact=true' "$IT_TMP/tty.out" ||
    fail "tty: the estimate is not the table's count"

# --- 2. no terminal: logfmt progress lines ----------------------------------------------------
run_pgenrich plain run "${common[@]}" --job plain --where 'id <= 1200' --progress-interval 0.5
expect_done "the run without a terminal"
grep -q $'\r' "$IT_TMP/plain.err" && fail "plain: a carriage return without a terminal"
assert_stderr_has plain "event=estimate ids=1200 exact=true"
lines=$(grep -c 'level=info event=progress ' "$IT_TMP/plain.err" || true)
log "plain: $lines progress lines; $(grep 'event=progress' "$IT_TMP/plain.err" | tail -n 1)"
[ "$lines" -ge 4 ] || fail "plain: $lines event=progress lines at --progress-interval 0.5"
grep -qE 'event=progress job="plain" done=[0-9]+ total=1200 percent=[0-9.]+ ids_per_s=[0-9.]+ eta_s=[0-9]+ elapsed_s=[0-9.]+ in_flight=[0-9]+ retries=[0-9]+ rows_loaded=[0-9]+ failures=[0-9]+ not_found=[0-9]+' \
    "$IT_TMP/plain.err" || fail "plain: no progress line with the total and an ETA"
other=$(grep -cvE '^ts=[0-9-]{10}T[0-9:.]{12}Z level=(error|warn|info|debug) ' \
    "$IT_TMP/plain.err" || true)
[ "$other" -eq 0 ] || fail "plain: $other stderr lines not in the ts= level= logfmt shape"

# --quiet: no progress at all, on a terminal or not.
run_pgenrich quiet run "${common[@]}" --job quiet --where 'id <= 100' --progress-interval 0.1 --quiet
expect_done "the --quiet run"
[ ! -s "$IT_TMP/quiet.err" ] || fail "quiet: stderr is not empty: $(head -n 2 "$IT_TMP/quiet.err")"

# --- 3. JSON lines ----------------------------------------------------------------------------
run_pgenrich json run "${common[@]}" --job json --where 'id <= 600' --progress-interval 0.5 \
    --log-format json --log-level debug
expect_done "the --log-format json run"
# jcount FILTER: how many of json.err's lines, each parsed, FILTER selects (jq fails on a
# line that is not JSON).
jcount() { jq -R -n "[inputs | fromjson | select($1)] | length" "$IT_TMP/json.err"; }
bad=$(jcount 'type != "object"') || fail "json: a stderr line is not JSON"
[ "$bad" -eq 0 ] || fail "json: $bad stderr lines are not JSON objects"
[ "$(jcount '.event == "progress" and .total == 600 and (.eta_s | type) == "number"')" -gt 0 ] ||
    fail "json: no progress object with total 600 and eta_s"
[ "$(jcount '.level == "debug" and .event == "id_failed" and (.id | type) == "string"')" -gt 0 ] ||
    fail "json: no debug line per failed ID at --log-level debug"
log "json: $(wc -l <"$IT_TMP/json.err") lines, all objects"

# Per-ID lines only at debug: none at info.
grep -q 'event=id_failed' "$IT_TMP/plain.err" && fail "plain: per-ID failure lines at info"

# --- 4. --log-file and SIGHUP -----------------------------------------------------------------
logf="$IT_TMP/pgenrich.log"
start_pgenrich hup run "${common[@]}" --job hup --progress-interval 0.3 --log-file "$logf"
for _ in $(seq 1 50); do
    grep -q 'event=progress' "$logf" 2>/dev/null && break
    sleep 0.1
done
grep -q 'event=progress' "$logf" || fail "hup: no progress line in the log file"
mv "$logf" "$logf.1"
kill -HUP "$PGENRICH_PID"
wait_pgenrich 60
expect_done "the run whose log file was rotated"
[ -f "$logf" ] || fail "hup: SIGHUP did not create a new log file"
grep -q 'event=start job="hup"' "$logf.1" || fail "hup: the old file lost its first lines"
grep -q 'event=log_reopened' "$logf" || fail "hup: the new file does not say it was reopened"
grep -q 'event=finished job="hup"' "$logf" || fail "hup: later lines did not go to the new file"
grep -q 'event=finished' "$logf.1" && fail "hup: the old file still got lines after SIGHUP"
[ ! -s "$IT_TMP/hup.err" ] || fail "hup: stderr is not empty with --log-file: $(head -n 2 "$IT_TMP/hup.err")"
log "hup: $(wc -l <"$logf.1") lines before the rotation, $(wc -l <"$logf") after"

# --- 5. a keyset resume counts the IDs after the checkpoint -----------------------------------
# A checkpoint as an interrupted run leaves it: IDs up to 1000 settled.
sql -c "INSERT INTO enrich_checkpoints (job, position, paging) VALUES ('resume', '1000', 'keyset')" \
    >/dev/null
run_pgenrich resume run "${common[@]}" --job resume --progress-interval 0.5
expect_done "the resumed run"
assert_stderr_has resume "event=resume" "event=estimate ids=500 exact=true"
grep -qE 'event=progress .*total=500 ' "$IT_TMP/resume.err" ||
    fail "resume: the progress total is not the 500 IDs after the checkpoint"
log "resume: $(grep -m1 'event=estimate' "$IT_TMP/resume.err")"

log "ok"
