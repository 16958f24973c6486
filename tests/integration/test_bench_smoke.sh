#!/usr/bin/env bash
# test_bench_smoke: `scripts/bench --smoke` (every row of the benchmark on a few IDs and
# seconds) keeps working: it exits 0 and prints its markdown table with each row once, every
# figure a number and every ratio a number naming its rows. It asserts no performance
# figure: the benchmark itself stays out of pass/fail. It runs on a private scripts/pg
# server that the test starts; the bench must leave it running, with its CPU mask as it
# was, and stop the nginx and mocks it started.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
for tool in nginx wrk taskset pgrep openssl /usr/bin/time; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/deps)"
done
BUILD=$(dirname "$PGENRICH_BIN")
[ "$(dirname "$MOCKAPI_BIN")" = "$BUILD" ] || fail "pgenrich and the mock are not in one build folder"
[ -x "$BUILD/pgenrich-floor" ] || fail "$BUILD/pgenrich-floor is not built"
PEER=${PGENRICH_PEER:-$ROOT/../shared/peer/peer_aiohttp.py}
# the user's PGENRICH_BENCH_* settings (a SKIP list, sizes) are not the smoke run's
for v in "${!PGENRICH_BENCH_@}"; do unset "$v"; done

start_private_pg
pg_pid=$(pgc status | sed -n 's/^running: pid \([0-9]*\),.*/\1/p')
mask_before=$(taskset -p "$pg_pid" | sed 's/.*: //')

mkdir -p "$IT_TMP/tmp"
log "scripts/bench --smoke on the server at port $port"
rc=0
PGENRICH_PGDIR="$IT_TMP/pg" PGENRICH_PGPORT=$port PGENRICH_BUILD=$BUILD TMPDIR="$IT_TMP/tmp" \
    timeout -k 5 120 "$ROOT/scripts/bench" --smoke >"$IT_TMP/bench.out" 2>"$IT_TMP/bench.err" ||
    rc=$?
if [ "$rc" -ne 0 ]; then
    grep -E 'FAILED|error' "$IT_TMP/bench.err" >&2 || tail -n 20 "$IT_TMP/bench.err" >&2
    fail "scripts/bench --smoke exited with $rc"
fi
log "scripts/bench --smoke done: $(grep -c '^| [0-9]' "$IT_TMP/bench.out") table rows"

# The servers and the work folder it made are gone; the server it did not start is not.
left=$(pgrep -f "$IT_TMP/tmp/" || true)
[ -z "$left" ] || fail "processes of the bench left running: $(ps -o pid,args -p "${left//$'\n'/,}")"
[ -z "$(ls -A "$IT_TMP/tmp")" ] || fail "the bench left its work folder: $(ls "$IT_TMP/tmp")"
pgc status >/dev/null || fail "the bench stopped a server it did not start"
assert_eq "the server's CPU mask after the bench" "$mask_before" \
    "$(taskset -p "$pg_pid" | sed 's/.*: //')"

# The table: its header, then rows 1..13 once each, in order.
grep -qxF '| # | server | client | N | wall s | IDs/s | CPU s/1k IDs | peak RSS MiB | ratios and shares (#: row) |' \
    "$IT_TMP/bench.out" || fail "no table header in: $(head -c 600 "$IT_TMP/bench.out")"
assert_eq "the table's rows" "$(seq -s ' ' 1 13)" \
    "$(sed -n 's/^| \([0-9][0-9]*\) | .*/\1/p' "$IT_TMP/bench.out" | tr '\n' ' ' | sed 's/ $//')"

num='[0-9]+([.][0-9]+)?'
peer_rows=" 4 7 9 "
for r in $(seq 1 13); do
    line=$(grep "^| $r | " "$IT_TMP/bench.out")
    IFS='|' read -r _ _ server client n wall ips cpu rss notes _ <<<"$line"
    if [ ! -f "$PEER" ] && [[ $peer_rows == *" $r "* ]]; then
        [[ $notes == *"skipped: no peer_aiohttp.py"* ]] || fail "row $r without the peer: $line"
        continue
    fi
    for f in "$n" "$wall" "$ips" "$cpu" "$rss"; do
        f=${f# }
        f=${f% }
        [[ $f =~ ^$num$ ]] || fail "row $r: figure '$f' is not a number: $line"
    done
    if [ -z "${server// /}" ] || [ -z "${client// /}" ]; then
        fail "row $r names no command: $line"
    fi
    # every ratio is a number and names the row it divides by
    rest=$notes
    while [[ $rest =~ x([^ ]*)\ of\ #([^ ;]*) ]]; do
        m=("${BASH_REMATCH[@]}")
        if ! [[ ${m[1]} =~ ^$num$ && ${m[2]} =~ ^[0-9]+$ ]]; then
            fail "row $r: a ratio that is not 'xNUMBER of #ROW': $line"
        fi
        rest=${rest#*"${m[0]}"}
    done
done

# The rows' own figures: the ratios and shares each row promises.
note_of() { grep "^| $1 | " "$IT_TMP/bench.out" | awk -F'|' '{ print $10 }'; }
expect_note() {
    [[ $(note_of "$1") =~ $2 ]] || fail "row $1: its note does not match '$2': $(note_of "$1")"
}
expect_note 2 "IDs/s x$num of #1"
expect_note 3 "CPU/1k x$num of #2"
expect_note 5 "RSS x$num of #3 .*wall $num s"
# row 10, HTTPS against nginx with TLS: against row 3 (the same nginx over HTTP), and what
# nginx negotiated
expect_note 10 "CPU/1k x$num of #3; IDs/s x$num of #3; RSS x$num of #3; TLS: TLSv1[.][23] [A-Z0-9_-]+ on [0-9]+ connections"
for r in 11 12 13; do
    expect_note "$r" "429s $num % of [0-9]+ requests; ok-rate $num/s = $num of $num/s"
done
if [ -f "$PEER" ]; then
    expect_note 3 "CPU/1k x$num of #4; IDs/s x$num of #4"
    expect_note 6 "IDs/s x$num of #7; CPU/1k x$num of #7"
    expect_note 8 "IDs/s x$num of #9; .*eff $num of "
fi
grep -q '^Run: scripts/bench --smoke' "$IT_TMP/bench.out" || fail "no 'Run:' line under the table"
log "the table has its 13 rows, numeric figures and ratios"
