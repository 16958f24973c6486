#!/usr/bin/env bash
# test_docs: the documentation agrees with the binary, and the shipped files are valid.
# - every flag the parser knows (`pgenrich help --list-flags`) is in the man page and in
#   `pgenrich --help`, and neither the per-command help nor the man page's OPTIONS names a
#   flag the parser does not know;
# - every command has `pgenrich help CMD`, the same as `pgenrich CMD --help`, and an entry
#   in the man page; every exit status of src/exitcode.h is in the man page and the README;
# - the man page renders without a warning (groff -ww and man -l);
# - the man page names the CMake version; the README's build packages are scripts/deps';
# - docs/example.ini passes check-config;
# - the systemd units have the directives the docs describe (Type=exec, the token as a
#   credential, DynamicUser, ProtectSystem=strict, NoNewPrivileges, src/exitcode.h's
#   statuses in SuccessExitStatus and the restart lists, the timer Persistent=true) and,
#   filled in as `cmake --install` does, pass systemd-analyze verify.
# Needs no database.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
PGENRICH_BIN=${PGENRICH_BIN:-$ROOT/build/pgenrich}
MAN=$ROOT/docs/pgenrich.1
T0=$SECONDS
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgenrich-it-docs.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

log() { printf '[docs +%ss] %s\n' "$((SECONDS - T0))" "$*"; }
fail() {
    printf '[docs] FAIL: %s\n' "$*" >&2
    exit 1
}
[ -x "$PGENRICH_BIN" ] || fail "$PGENRICH_BIN is not built (set PGENRICH_BIN, or scripts/build)"
command -v groff >/dev/null || fail "groff is not installed (scripts/deps: groff-base)"
# man renders the page, and systemd-analyze verify runs it for the units' Documentation=
command -v man >/dev/null || fail "man is not installed (scripts/deps: man-db)"

# The man page as text a grep can read: roff's \- is a plain '-', font escapes go.
sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\e/\\/g' "$MAN" >"$TMP/man.txt"
"$PGENRICH_BIN" --help >"$TMP/help.txt"
"$PGENRICH_BIN" help --list-flags >"$TMP/flags"
[ "$(wc -l <"$TMP/flags")" -ge 40 ] || fail "help --list-flags printed $(wc -l <"$TMP/flags") flags"
grep -qx -- --dsn "$TMP/flags" || fail "help --list-flags does not list --dsn"

# has_flag FILE FLAG: FLAG as a whole word (--log-file is not --log-format).
has_flag() { grep -qE -- "(^|[^a-z-])$2([^a-z-]|$)" "$1"; }

missing=()
while read -r flag; do
    has_flag "$TMP/man.txt" "$flag" || missing+=("$flag (man page)")
    has_flag "$TMP/help.txt" "$flag" || missing+=("$flag (pgenrich --help)")
    # Each flag heads an entry of its own: the tag line of a .TP item names it.
    grep -A1 -x '\.TP' "$TMP/man.txt" | grep -E '^\.B' | grep -qE -- "(^|[^a-z-])$flag([^a-z-]|$)" ||
        missing+=("$flag (no .TP entry in the man page)")
done <"$TMP/flags"
[ ${#missing[@]} -eq 0 ] || fail "undocumented flags: $(printf '\n    %s' "${missing[@]}")"
log "all $(wc -l <"$TMP/flags") flags are in the man page and in pgenrich --help"

# No stale flags: what the help texts and the OPTIONS section name, the parser knows.
unknown_flags() { # FILE: the --words in FILE that are no flag
    grep -oE -- '--[a-z][a-z-]*[a-z]' "$1" | sort -u | while read -r f; do
        grep -qx -- "$f" "$TMP/flags" || echo "$f"
    done
}
sed -n '/^\.SH OPTIONS/,/^\.SH /p' "$TMP/man.txt" >"$TMP/man-options.txt"
bad=$(unknown_flags "$TMP/man-options.txt")
[ -z "$bad" ] || fail "the man page's OPTIONS names flags the parser does not know: $bad"

commands=(init run retry-failed status check-config help version)
for cmd in "${commands[@]}"; do
    "$PGENRICH_BIN" help "$cmd" >"$TMP/help-$cmd.txt" || fail "pgenrich help $cmd: exit $?"
    grep -q "usage: pgenrich $cmd" "$TMP/help-$cmd.txt" ||
        fail "pgenrich help $cmd has no 'usage: pgenrich $cmd' line"
    bad=$(unknown_flags "$TMP/help-$cmd.txt")
    [ -z "$bad" ] || fail "pgenrich help $cmd names flags the parser does not know: $bad"
    if [ "$cmd" != help ] && [ "$cmd" != version ]; then
        "$PGENRICH_BIN" "$cmd" --help >"$TMP/dash-$cmd.txt" || fail "pgenrich $cmd --help: exit $?"
        cmp -s "$TMP/help-$cmd.txt" "$TMP/dash-$cmd.txt" ||
            fail "pgenrich $cmd --help differs from pgenrich help $cmd"
    fi
    # An entry under COMMANDS and a line in the SYNOPSIS.
    sed -n '/^\.SH COMMANDS/,/^\.SH /p' "$TMP/man.txt" | grep -qE "^\.BR? $cmd( |$)" ||
        fail "the man page's COMMANDS has no entry for $cmd"
    sed -n '/^\.SH SYNOPSIS/,/^\.SH /p' "$TMP/man.txt" | grep -q "pgenrich $cmd" ||
        fail "the man page's SYNOPSIS has no pgenrich $cmd"
done
if "$PGENRICH_BIN" help no-such-command >/dev/null 2>&1; then
    fail "pgenrich help no-such-command succeeded"
fi
log "help for ${commands[*]}: present, the same as COMMAND --help, in the man page"

# Exit statuses: each value of src/exitcode.h in the man page's EXIT STATUS and the README.
mapfile -t codes < <(sed -nE 's/^ *EXIT_[A-Z]+ *= *([0-9]+).*/\1/p' "$ROOT/src/exitcode.h")
[ ${#codes[@]} -ge 8 ] || fail "read ${#codes[@]} exit codes from src/exitcode.h"
sed -n '/^\.SH EXIT STATUS/,/^\.SH /p' "$TMP/man.txt" >"$TMP/man-exit.txt"
for code in "${codes[@]}"; do
    grep -qx "\.B $code" "$TMP/man-exit.txt" || fail "exit status $code is not in the man page"
    grep -qE "^\| $code \|" "$ROOT/README.md" || fail "exit status $code is not in a README table"
done
log "exit statuses ${codes[*]} are in the man page and the README"

# The page names the version CMake builds, and the README's install path the packages that
# scripts/deps installs for the build (a clean machine's first command).
version=$(sed -nE 's/^project\(pgenrich VERSION ([0-9.]+).*/\1/p' "$ROOT/CMakeLists.txt")
grep -qE "^\.TH PGENRICH 1 .*\"pgenrich $version\"" "$MAN" ||
    fail "the man page's .TH does not name pgenrich $version: $(grep '^\.TH' "$MAN")"
mapfile -t build_pkgs < <(sed -n '/^BUILD_PACKAGES=(/,/^)/p' "$ROOT/scripts/deps" | sed '1d;$d' | tr -s ' ' '\n' | sed '/^$/d')
[ ${#build_pkgs[@]} -ge 5 ] || fail "read ${#build_pkgs[@]} packages from scripts/deps' BUILD_PACKAGES"
sed -n '/^    apt-get install --no-install-recommends build-essential/,/^    cmake /p' "$ROOT/README.md" >"$TMP/apt.txt"
for p in "${build_pkgs[@]}"; do
    grep -qw -- "$p" "$TMP/apt.txt" || fail "the README's apt-get install line for the build lacks $p"
done
log "the man page is pgenrich $version's; the README's build packages are scripts/deps'"

# The page renders without a warning.
LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$MAN" 2>"$TMP/groff.err" || fail "groff failed"
[ ! -s "$TMP/groff.err" ] || fail "groff warns: $(cat "$TMP/groff.err")"
LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$MAN" >"$TMP/man.out" 2>"$TMP/man.err" ||
    fail "man -l failed: $(cat "$TMP/man.err")"
[ ! -s "$TMP/man.err" ] || fail "man -l warns: $(cat "$TMP/man.err")"
grep -q -- '--statement-timeout' "$TMP/man.out" || fail "man -l: no --statement-timeout"
log "the man page renders without a warning (groff -ww, man -l)"

# The example job file is valid, whatever PGENRICH_* the caller has.
env -i PATH="$PATH" "$PGENRICH_BIN" check-config "$ROOT/docs/example.ini" >"$TMP/check.out" \
    2>&1 || fail "check-config docs/example.ini: $(cat "$TMP/check.out")"
log "docs/example.ini passes check-config"

# The units do what the README and the man page say: one directive per line, read as-is.
SERVICE=$ROOT/packaging/systemd/pgenrich@.service.in
TIMER=$ROOT/packaging/systemd/pgenrich@.timer.in
code_of() { sed -nE "s/^ *EXIT_$1 *= *([0-9]+).*/\1/p" "$ROOT/src/exitcode.h"; }
# directive FILE KEY: the value of KEY's last line in FILE
directive() { sed -nE "s/^$2=(.*)/\1/p" "$1" | tail -n 1; }
for kv in Type=exec ProtectSystem=strict NoNewPrivileges=yes DynamicUser=yes \
    'ExecStart=@PGENRICH_BIN@ run --config /etc/pgenrich/%i.ini' \
    'LoadCredential=token:/etc/pgenrich/%i.token' 'Environment=PGENRICH_TOKEN_FILE=%d/token'; do
    [ "$(directive "$SERVICE" "${kv%%=*}")" = "${kv#*=}" ] ||
        fail "pgenrich@.service: no $kv (has: $(directive "$SERVICE" "${kv%%=*}"))"
done
! grep -E '^Exec' "$SERVICE" | grep -qiE 'token|password' ||
    fail "pgenrich@.service: a token or password on a command line: $(grep -E '^Exec' "$SERVICE")"
# exit_in FILE KEY NAME...: each exit status NAME of src/exitcode.h is in KEY's list
exit_in() {
    local file=$1 key=$2 name code
    shift 2
    for name in "$@"; do
        code=$(code_of "$name")
        [ -n "$code" ] || fail "src/exitcode.h has no EXIT_$name"
        grep -qw -- "$code" <<<"$(directive "$file" "$key")" ||
            fail "$(basename "$file" .in): $key=$(directive "$file" "$key") lacks EXIT_$name ($code)"
    done
}
exit_in "$SERVICE" SuccessExitStatus FAILURES TEMPFAIL
exit_in "$SERVICE" RestartForceExitStatus TEMPFAIL
exit_in "$SERVICE" RestartPreventExitStatus CONFIG AUTH LOCKED
[ "$(directive "$TIMER" Persistent)" = true ] || fail "pgenrich@.timer: no Persistent=true"
log "the units: Type=exec, the job file in /etc/pgenrich, the token as a credential, hardened," \
    "SuccessExitStatus=$(directive "$SERVICE" SuccessExitStatus), Persistent=true"

# The units as `cmake --install` fills them in, naming this binary, with the man page where
# their Documentation= finds it.
if command -v systemd-analyze >/dev/null; then
    mkdir -p "$TMP/units" "$TMP/man/man1"
    cp "$MAN" "$TMP/man/man1/pgenrich.1"
    for unit in "$ROOT"/packaging/systemd/*.in; do
        name=$(basename "$unit" .in)
        sed "s|@PGENRICH_BIN@|$PGENRICH_BIN|g" "$unit" >"$TMP/units/$name"
        ! grep -q '@[A-Z_]*@' "$TMP/units/$name" || fail "$name: a placeholder is left"
    done
    (cd "$TMP/units" && MANPATH="$TMP/man" SYSTEMD_LOG_COLOR=0 \
        systemd-analyze verify ./pgenrich@.service ./pgenrich@.timer) >"$TMP/verify.out" 2>&1 ||
        fail "systemd-analyze verify: $(cat "$TMP/verify.out")"
    [ ! -s "$TMP/verify.out" ] || fail "systemd-analyze verify says: $(cat "$TMP/verify.out")"
    log "pgenrich@.service and pgenrich@.timer pass systemd-analyze verify"
else
    log "SKIP systemd-analyze verify: systemd-analyze is not installed (scripts/deps: systemd)"
fi
log PASS
