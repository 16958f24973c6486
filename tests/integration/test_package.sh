#!/usr/bin/env bash
# test_package: what an operator gets. docker-compose.yml is valid for Compose v1 (Debian's
# docker-compose, `config -q`, no engine needed), with health checks that the jobs wait
# for and the token a secret read as a file; its worker service (profile shared) can be
# scaled and sets only pgenrich settings, making a --shared worker. A Release build without
# the tests (its own build directory, the default prefix) installs with `cmake --install
# --prefix DIR` (units naming DIR/bin/pgenrich, verified), and `cpack -G DEB` from it makes
# pgenrich_VERSION_ARCH.deb, under /usr, whose control data names the package, the version
# and dpkg-shlibdeps' Depends on the five libraries, and which holds the binary, the man
# page, the units and the example job file. As root with
# apt, the package is installed with `apt-get install ./pgenrich_*.deb`, its units pass
# systemd-analyze verify where they are installed, /usr/bin/pgenrich runs a short job
# against the test PostgreSQL and the mock, and the package is removed again (also when the
# test fails). Not root, no apt, or a pgenrich package already there: that part is skipped,
# saying so. scripts/test runs this test last (ctest label `package`).
IT_RUN_TIMEOUT=${IT_RUN_TIMEOUT:-60}
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT=$IT_ROOT
STEP_TIMEOUT=240 # one configure, build, cpack or apt-get, in seconds

# --- 1. docker-compose.yml ---------------------------------------------------------------
grep -q 'dockerfile_inline' "$ROOT/docker-compose.yml" &&
    fail "docker-compose.yml has an inline Dockerfile (Compose v1 cannot read it)"
# Every $ that Compose would interpolate is escaped as $$ (the file sets no variables);
# comment lines aside.
if grep -v '^ *#' "$ROOT/docker-compose.yml" | sed 's/\$\$//g' | grep -n '\$'; then
    fail "docker-compose.yml has a \$ that is not escaped as \$\$"
fi
if command -v docker-compose >/dev/null; then
    (cd "$ROOT" && timeout 60 docker-compose -f docker-compose.yml config -q) \
        >"$IT_TMP/compose.err" 2>&1 ||
        fail "docker-compose config -q: $(cat "$IT_TMP/compose.err")"
    log "docker-compose.yml: valid for $(docker-compose version --short 2>/dev/null || echo v1)"
    # The worker service (profile shared) scales: no host port, no container name; its
    # environment is pgenrich settings only, and makes a shared worker.
    (cd "$ROOT" && timeout 60 docker-compose -f docker-compose.yml --profile shared config) \
        >"$IT_TMP/compose.yml" 2>"$IT_TMP/compose.err" ||
        fail "docker-compose --profile shared config: $(cat "$IT_TMP/compose.err")"
    python3 - "$IT_TMP/compose.yml" >"$IT_TMP/worker.env" <<'PY' || fail "the worker service: $(cat "$IT_TMP/worker.env")"
import sys, yaml
w = yaml.safe_load(open(sys.argv[1]))["services"]["worker"]
bad = [k for k in ("ports", "container_name") if k in w]
if bad or w.get("command") != ["run"]:
    print("not scalable or not `run`:", bad, w.get("command"))
    sys.exit(1)
for k, v in w["environment"].items():
    if k.startswith("PGENRICH_") and k != "PGENRICH_TOKEN_FILE":
        print(f"{k}={v}")
PY
    mapfile -t wenv <"$IT_TMP/worker.env"
    printf 'demo\n' >"$IT_TMP/token"
    # (env -i: the test's own PGENRICH_BIN and PGENRICH_TEST_DSN are not the service's)
    env -i PATH="$PATH" "${wenv[@]}" PGENRICH_TOKEN_FILE="$IT_TMP/token" \
        PGENRICH_BASE_URL=http://127.0.0.1:9 \
        "$PGENRICH_BIN" check-config >"$IT_TMP/worker_cfg.out" 2>"$IT_TMP/worker_cfg.err" || true
    if grep -F 'is not a pgenrich setting' "$IT_TMP/worker_cfg.err"; then
        fail "the worker service sets a variable pgenrich does not know"
    fi
    grep -qE '^job\.shared = true +# PGENRICH_SHARED$' "$IT_TMP/worker_cfg.out" ||
        fail "the worker service does not make a shared worker: $(cat "$IT_TMP/worker_cfg.out" "$IT_TMP/worker_cfg.err")"
    log "docker-compose.yml: the worker service scales (--scale worker=N) and runs --shared"
    # PostgreSQL and the mock with health checks, a job that waits for both to be healthy,
    # the token a secret that pgenrich reads as a file (in no environment, on no command line).
    python3 - "$IT_TMP/compose.yml" "$(cat "$ROOT/packaging/compose/api_token")" \
        >"$IT_TMP/services.err" <<'PY' || fail "docker-compose.yml: $(cat "$IT_TMP/services.err")"
import sys, yaml
svc = yaml.safe_load(open(sys.argv[1]))["services"]
token = sys.argv[2]
for name in ("postgres", "mockapi"):
    if "healthcheck" not in svc.get(name, {}):
        sys.exit(f"no {name} service with a healthcheck")
for name in ("pgenrich", "worker"):
    s = svc[name]
    deps = s.get("depends_on", {})
    for dep in ("postgres", "mockapi"):
        if deps.get(dep, {}).get("condition") != "service_healthy":
            sys.exit(f"{name} does not wait for {dep} to be healthy: {deps}")
    if "api_token" not in [x["source"] if isinstance(x, dict) else x for x in s.get("secrets", [])]:
        sys.exit(f"{name} does not get the api_token secret")
    if s["environment"].get("PGENRICH_TOKEN_FILE") != "/run/secrets/api_token":
        sys.exit(f"{name}: PGENRICH_TOKEN_FILE is not the secret")
    if token in str(s["environment"]) + str(s.get("command")) or "PGENRICH_TOKEN" in s["environment"]:
        sys.exit(f"{name} has the token in its environment or command")
PY
    log "docker-compose.yml: health checks, the job waits for them, the token a secret read as a file"
else
    log "SKIP docker-compose config: docker-compose is not installed (scripts/deps)"
fi
if command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; then
    log "a Docker engine is available, but this test starts no container (docker compose up is by hand)"
else
    log "no Docker engine here (docker info fails): no container was started, the file was only validated"
fi
for f in Dockerfile .dockerignore packaging/compose/seed.sql packaging/compose/api_token; do
    [ -f "$ROOT/$f" ] || fail "$f is missing"
done
grep -q '^FROM debian:12 AS build' "$ROOT/Dockerfile" || fail "Dockerfile: no debian:12 build stage"
grep -q '^FROM debian:12-slim AS runtime' "$ROOT/Dockerfile" || fail "Dockerfile: no runtime stage"
[ "$(grep '^FROM ' "$ROOT/Dockerfile" | tail -n 1)" = "FROM debian:12-slim AS runtime" ] ||
    fail "Dockerfile: the runtime stage must be the last one (docker build's default)"
grep -q '^USER ' "$ROOT/Dockerfile" || fail "Dockerfile: no non-root USER"

# --- 2. the .deb ---------------------------------------------------------------------------
for tool in cpack dpkg-deb dpkg-shlibdeps; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/deps: cmake, dpkg-dev)"
done
OUT=$IT_TMP/deb-build
# The default prefix (/usr/local), as an operator's first build has it: the package is
# under /usr all the same.
log "configure and build: Release, BUILD_TESTING=OFF, the default prefix ($OUT)"
timeout "$STEP_TIMEOUT" cmake -S "$ROOT" -B "$OUT" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
    >"$IT_TMP/configure.log" 2>&1 ||
    fail "configure: $(tail -n 20 "$IT_TMP/configure.log")"
grep -qiE 'cmocka|microhttpd' "$OUT/CMakeCache.txt" &&
    fail "BUILD_TESTING=OFF still looks for cmocka or libmicrohttpd"
timeout "$STEP_TIMEOUT" cmake --build "$OUT" -j 2 >"$IT_TMP/build.log" 2>&1 ||
    fail "build: $(tail -n 20 "$IT_TMP/build.log")"
[ ! -e "$OUT/pgenrich-mockapi" ] || fail "BUILD_TESTING=OFF built the mock API"

# cmake --install --prefix: the binary, the man page, the example and the units, which name
# the installed binary and pass systemd-analyze verify where they are (no root needed).
PREFIX=$IT_TMP/prefix
timeout "$STEP_TIMEOUT" cmake --install "$OUT" --prefix "$PREFIX" >"$IT_TMP/install-prefix.log" 2>&1 ||
    fail "cmake --install: $(tail -n 20 "$IT_TMP/install-prefix.log")"
for path in bin/pgenrich share/man/man1/pgenrich.1.gz share/doc/pgenrich/example.ini \
    lib/systemd/system/pgenrich@.service lib/systemd/system/pgenrich@.timer; do
    [ -f "$PREFIX/$path" ] || fail "cmake --install --prefix DIR did not install $path"
done
"$PREFIX/bin/pgenrich" --version >/dev/null || fail "the installed $PREFIX/bin/pgenrich does not run"
grep -qxF "ExecStart=$PREFIX/bin/pgenrich run --config /etc/pgenrich/%i.ini" \
    "$PREFIX/lib/systemd/system/pgenrich@.service" ||
    fail "the installed unit does not run $PREFIX/bin/pgenrich: $(grep ExecStart \
        "$PREFIX/lib/systemd/system/pgenrich@.service")"
if command -v systemd-analyze >/dev/null; then
    (cd "$PREFIX/lib/systemd/system" && MANPATH="$PREFIX/share/man" SYSTEMD_LOG_COLOR=0 \
        systemd-analyze verify ./pgenrich@.service ./pgenrich@.timer) >"$IT_TMP/verify-prefix.out" 2>&1 ||
        fail "systemd-analyze verify (cmake --install): $(cat "$IT_TMP/verify-prefix.out")"
    [ ! -s "$IT_TMP/verify-prefix.out" ] ||
        fail "systemd-analyze verify (cmake --install) says: $(cat "$IT_TMP/verify-prefix.out")"
fi
log "cmake --install --prefix DIR: bin, man page, example, units (ExecStart=DIR/bin/pgenrich, verified)"
(cd "$OUT" && timeout "$STEP_TIMEOUT" cpack -G DEB) >"$IT_TMP/cpack.log" 2>&1 ||
    fail "cpack: $(tail -n 20 "$IT_TMP/cpack.log")"
VERSION=$(sed -nE 's/^project\(pgenrich VERSION ([0-9.]+).*/\1/p' "$ROOT/CMakeLists.txt")
ARCH=$(dpkg --print-architecture)
DEB=$OUT/pgenrich_${VERSION}_${ARCH}.deb
[ -f "$DEB" ] || fail "no $(basename "$DEB"): $(ls "$OUT"/*.deb 2>/dev/null)"
log "built $(basename "$DEB") ($(stat -c %s "$DEB") bytes)"

dpkg-deb --info "$DEB" >"$IT_TMP/info.txt"
field() { dpkg-deb --field "$DEB" "$1"; }
[ "$(field Package)" = pgenrich ] || fail "Package: $(field Package)"
[ "$(field Version)" = "$VERSION" ] || fail "Version: $(field Version), expected $VERSION"
[ "$(field Architecture)" = "$ARCH" ] || fail "Architecture: $(field Architecture)"
[ -n "$(field Maintainer)" ] || fail "no Maintainer"
[ -n "$(field Section)" ] || fail "no Section"
[ -n "$(field Description)" ] || fail "no Description"
depends=$(field Depends)
for lib in libpq5 libcurl4 libev4 libjson-c5 libinih1; do
    grep -qE "(^|, )$lib( |,|$)" <<<"$depends" || fail "Depends lacks $lib: $depends"
done
for lib in libcmocka0 libmicrohttpd12; do
    ! grep -q "$lib" <<<"$depends" || fail "Depends names the tests' $lib: $depends"
done
log "Depends: $depends"

dpkg-deb --contents "$DEB" | awk '{print $NF}' >"$IT_TMP/contents.txt"
for path in ./usr/bin/pgenrich ./usr/share/man/man1/pgenrich.1.gz \
    ./usr/lib/systemd/system/pgenrich@.service ./usr/lib/systemd/system/pgenrich@.timer \
    ./usr/share/doc/pgenrich/example.ini; do
    grep -qx -- "$path" "$IT_TMP/contents.txt" || fail "the package lacks $path"
done
! grep -q mockapi "$IT_TMP/contents.txt" || fail "the package holds the mock API"
! grep -q '^\./usr/local' "$IT_TMP/contents.txt" ||
    fail "the package installs under /usr/local: $(grep '^\./usr/local' "$IT_TMP/contents.txt" | head -n 3)"
mkdir -p "$IT_TMP/x"
dpkg-deb -x "$DEB" "$IT_TMP/x"
grep -qx 'ExecStart=/usr/bin/pgenrich run --config /etc/pgenrich/%i.ini' \
    "$IT_TMP/x/usr/lib/systemd/system/pgenrich@.service" ||
    fail "the packaged service does not run /usr/bin/pgenrich: $(grep ExecStart \
        "$IT_TMP/x/usr/lib/systemd/system/pgenrich@.service")"
log "contents: the binary, the man page, the units (ExecStart=/usr/bin/pgenrich), the example"

# --- 3. install, run, remove --------------------------------------------------------------
skip_install() {
    log "SKIP installing the package: $*"
    exit 0
}
[ "$(id -u)" -eq 0 ] || skip_install "not root (run as root to install it)"
command -v apt-get >/dev/null || skip_install "no apt-get here"
if dpkg-query -W -f='${db:Status-Status}' pgenrich 2>/dev/null | grep -q installed; then
    skip_install "a pgenrich package is installed already; this test leaves it alone"
fi
[ ! -e /usr/bin/pgenrich ] || skip_install "/usr/bin/pgenrich exists and belongs to no package"

# Removed again whatever happens from here on (cleanup runs this at exit).
IT_AT_EXIT+=("DEBIAN_FRONTEND=noninteractive timeout $STEP_TIMEOUT apt-get purge -y pgenrich >/dev/null 2>&1")
# apt reads the file as the _apt user where it can: a directory it may enter.
mkdir -p "$IT_TMP/apt"
cp "$DEB" "$IT_TMP/apt/"
chmod 0755 "$IT_TMP" "$IT_TMP/apt"
chmod 0644 "$IT_TMP/apt/$(basename "$DEB")"
log "apt-get install ./$(basename "$DEB")"
(cd "$IT_TMP/apt" && DEBIAN_FRONTEND=noninteractive timeout "$STEP_TIMEOUT" \
    apt-get install -y --no-install-recommends "./$(basename "$DEB")") >"$IT_TMP/install.log" 2>&1 ||
    fail "apt-get install: $(tail -n 20 "$IT_TMP/install.log")"
[ -x /usr/bin/pgenrich ] || fail "no /usr/bin/pgenrich after the install"
/usr/bin/pgenrich --version | grep -q "pgenrich $VERSION" || fail "pgenrich --version: $(/usr/bin/pgenrich --version)"
if command -v man >/dev/null; then
    man -w pgenrich >/dev/null 2>&1 || fail "man -w pgenrich finds no page after the install"
fi
if command -v systemd-analyze >/dev/null; then
    SYSTEMD_LOG_COLOR=0 systemd-analyze verify /usr/lib/systemd/system/pgenrich@.service \
        /usr/lib/systemd/system/pgenrich@.timer >"$IT_TMP/verify.out" 2>&1 ||
        fail "systemd-analyze verify: $(cat "$IT_TMP/verify.out")"
    [ ! -s "$IT_TMP/verify.out" ] || fail "systemd-analyze verify says: $(cat "$IT_TMP/verify.out")"
    log "the installed units pass systemd-analyze verify"
fi

# A short real job with the installed binary.
N=3000
seed_bigint "$N"
load_expected bigint
start_mock --latency-ms 2
PGENRICH_BIN=/usr/bin/pgenrich
run_pgenrich installed run --dsn "$IT_DSN" --job pkg --base-url "$MOCK_URL" --concurrency 32 \
    --timeout 5 --quiet
expect_done "the installed pgenrich's run"
check_summary_shape installed
check_against_expected pkg
log "/usr/bin/pgenrich enriched $N IDs: $(grep '^summary:' "$IT_TMP/installed.out")"

log "apt-get purge pgenrich"
DEBIAN_FRONTEND=noninteractive timeout "$STEP_TIMEOUT" apt-get purge -y pgenrich \
    >"$IT_TMP/remove.log" 2>&1 || fail "apt-get purge: $(tail -n 20 "$IT_TMP/remove.log")"
[ ! -e /usr/bin/pgenrich ] || fail "/usr/bin/pgenrich is still there after the purge"
[ ! -e /usr/lib/systemd/system/pgenrich@.service ] || fail "the unit is still there after the purge"
