#!/usr/bin/env bash
# Proves the README's quickstart on a fresh Debian 12 (bookworm) root, as root:
#
#   npm install && npm start      # (start checked in a network namespace of its own)
#   npm test
#
# 1. builds a fresh Debian 12 root with debootstrap, from the Debian mirror this machine's apt
#    sources name (read at run time), in a temp dir (--cache keeps a tarball of it for re-runs);
# 2. gives it what a new machine of this kind has besides Debian: the machine's Node 20 and npm
#    (Debian 12's nodejs is 18), npm's config (/etc/npmrc cafile=, /usr/etc/npmrc, /root/.npmrc)
#    and Node's headers, the CA bundle and NODE_EXTRA_CA_CERTS, resolv.conf, hosts, the apt sources
#    and apt settings, policy-rc.d (no service starts on install), and python3, make and g++;
# 3. copies the repository's HEAD in as a clean clone (committed files only, no node_modules);
# 4. in a chroot (/proc, /sys, /dev, /dev/pts, /dev/shm mounted, the root bind-mounted onto
#    itself so `unshare --mount` works inside): `npm install` with the network; `npm start` inside
#    `unshare --net` (loopback only: it binds 0.0.0.0 and announces by mDNS), checked by HTTP on
#    8632 and an IPP Get-Printer-Attributes on 8631, then stopped by SIGTERM; `npm test` (test/run.ts
#    installs its Debian packages with the network, then enters its own loopback-only namespace);
# 5. ends the processes it started in the root, unmounts everything and removes the temp dir,
#    also on failure (trap);
# 6. prints each step's result and duration and the test line; exits non-zero on any failure.
#
# Not a *.test.ts file: it needs root, debootstrap and the network, and runs for 20-40 minutes.
#
# Usage: bash test/fresh-debian.sh [--cache[=DIR]] [--keep-root] [--log FILE]
#                                  [--with-uncommitted PATH]... [-- npm-test-filters...]
#   --cache[=DIR]             reuse (or make) a tarball of the debootstrapped root in DIR
#                             (default /var/cache/printmesh-fresh-debian); without it the root is new
#   --keep-root               leave the (unmounted) temp root in place for inspection
#   --log FILE                log file (default /tmp/printmesh-fresh-debian-<time>.log)
#   --with-uncommitted PATH   apply the working tree's uncommitted diff of PATH to the clone
#                             (to try a fix before it is committed); repeatable
#   -- FILTERS                passed to `npm test -- FILTERS` (default: the whole suite)
set -u -o pipefail

SUITE=bookworm
INCLUDE=ca-certificates,python3,make,g++
HTTP_PORT=8632
IPP_PORT=8631
START_TIMEOUT_S=180
STOP_TIMEOUT_S=20

CACHE_DIR=''
KEEP_ROOT=0
LOG=''
WITH_UNCOMMITTED=()
TEST_FILTERS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) CACHE_DIR=/var/cache/printmesh-fresh-debian ;;
    --cache=*) CACHE_DIR="${1#--cache=}" ;;
    --keep-root) KEEP_ROOT=1 ;;
    --log) LOG="$2"; shift ;;
    --log=*) LOG="${1#--log=}" ;;
    --with-uncommitted) WITH_UNCOMMITTED+=("$2"); shift ;;
    --with-uncommitted=*) WITH_UNCOMMITTED+=("${1#--with-uncommitted=}") ;;
    --) shift; TEST_FILTERS=("$@"); break ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "fresh-debian: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$(id -u)" != 0 ]; then echo 'fresh-debian: needs root (debootstrap, chroot, mount, unshare)' >&2; exit 2; fi
REPO="$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)" || { echo 'fresh-debian: not in a git checkout' >&2; exit 2; }
: "${LOG:=/tmp/printmesh-fresh-debian-$(date +%Y%m%d-%H%M%S).log}"
WORK="$(mktemp -d /tmp/printmesh-fresh-debian.XXXXXX)"
ROOT="$WORK/root"
APP=/root/printmesh # the clone, as seen inside the root
mkdir -p "$ROOT"
exec > >(tee -a "$LOG") 2>&1

STEP_NAMES=() STEP_RESULTS=() STEP_SECONDS=() STEP_NOTES=()
FAILED=0
CLEANED=0
TEST_LINE=''
NOTE=''

say () { printf '[fresh-debian %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# step NAME FUNCTION: runs FUNCTION, records PASS/FAIL, duration and the note FUNCTION left in NOTE.
step () {
  local name=$1; shift
  local t0=$SECONDS rc
  NOTE=''
  say "=== $name"
  "$@"; rc=$?
  local r=PASS
  if [ $rc -ne 0 ]; then r=FAIL; FAILED=1; fi
  STEP_NAMES+=("$name") STEP_RESULTS+=("$r") STEP_SECONDS+=($((SECONDS - t0))) STEP_NOTES+=("$NOTE")
  say "=== $name: $r in $((SECONDS - t0)) s${NOTE:+ ($NOTE)}"
  return $rc
}
skip () { STEP_NAMES+=("$1") STEP_RESULTS+=(SKIP) STEP_SECONDS+=(0) STEP_NOTES+=("$2"); say "=== $1: SKIP ($2)"; }

# The environment inside the root: a login's basics plus the CA settings a machine of this kind has.
ROOT_ENV=(HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb LANG=C.UTF-8
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
for v in NODE_EXTRA_CA_CERTS SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE GIT_SSL_CAINFO REQUESTS_CA_BUNDLE; do
  if [ -n "${!v:-}" ]; then ROOT_ENV+=("$v=${!v}"); fi
done
case " ${ROOT_ENV[*]} " in *' NODE_EXTRA_CA_CERTS='*) ;; *) ROOT_ENV+=(NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt) ;; esac

# inroot SCRIPT: bash -c SCRIPT in the chroot with a clean environment (host network).
inroot () { chroot "$ROOT" /usr/bin/env -i "${ROOT_ENV[@]}" /bin/bash -c "$1"; }

# The first enabled `deb` entry for $SUITE in this machine's apt sources: "URI".
find_mirror () {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$SUITE" '
      function flush () { if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no" && uri != "") { print uri; found = 1; exit } types = suites = uri = ""; enabled = "" }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0 }
      /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
      /^URIs:/ { sub(/^URIs:[ \t]*/, ""); split($0, u, /[ \t]+/); uri = u[1] }
      /^Enabled:/ { sub(/^Enabled:[ \t]*/, ""); enabled = tolower($0) }
      END { if (!found) flush() }' "$f" | head -n 1
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v suite="$SUITE" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ } if ($(i + 1) == suite) { print $i; exit } }' "$f"
  done
}

# ---------------------------------------------------------------------------------------- steps

host_prerequisites () {
  local missing=()
  command -v debootstrap > /dev/null || missing+=(debootstrap)
  command -v unshare > /dev/null || missing+=(util-linux)
  command -v ip > /dev/null || missing+=(iproute2)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing on the host: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" || return 1
  fi
  df -h /tmp | tail -n 1
  MIRROR="$(find_mirror | head -n 1)"
  if [ -z "$MIRROR" ]; then say "no enabled 'deb' entry for $SUITE in /etc/apt/sources.list{,.d}"; return 1; fi
  NOTE="mirror from the machine's apt sources"
  say "mirror: $MIRROR; repository: $REPO at $(git -C "$REPO" rev-parse --short HEAD); work dir: $WORK; log: $LOG"
  if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no)" ]; then
    say "note: the working tree has uncommitted changes; the proof uses HEAD only${WITH_UNCOMMITTED[*]:+, plus the uncommitted diff of ${WITH_UNCOMMITTED[*]}}"
  fi
}

debootstrap_root () {
  local key tarball=''
  if [ -n "$CACHE_DIR" ]; then
    key="$(printf '%s %s %s %s' "$SUITE" "$MIRROR" "$INCLUDE" "$(dpkg --print-architecture)" | sha256sum | cut -c1-12)"
    tarball="$CACHE_DIR/$SUITE-$key.tar.gz"
    if [ -f "$tarball" ]; then
      NOTE="from the cache $tarball"
      tar -C "$ROOT" --numeric-owner -xpzf "$tarball"
      return
    fi
  fi
  debootstrap --include="$INCLUDE" "$SUITE" "$ROOT" "$MIRROR" || { tail -n 30 "$ROOT/debootstrap/debootstrap.log" 2>/dev/null; return 1; }
  if [ -n "$tarball" ]; then
    mkdir -p "$CACHE_DIR" && tar -C "$ROOT" --numeric-owner -czpf "$tarball.part" . && mv "$tarball.part" "$tarball" && NOTE="cached as $tarball"
  fi
  NOTE="${NOTE:+$NOTE; }$(chroot "$ROOT" dpkg-query -W -f '.\n' | wc -l) packages"
}

# Copies host file or folder $1 into the root at the same path (or $2), when it exists.
copy_in () {
  local src=$1 dst="$ROOT${2:-$1}"
  [ -e "$src" ] || return 0
  mkdir -p "$(dirname "$dst")"
  rm -rf "$dst"
  cp -a "$src" "$dst"
}

provision () {
  local node npm_dir f
  node="$(readlink -f "$(command -v node)")" || { say 'no node on this machine'; return 1; }
  npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
  say "node $("$node" --version) from $node, npm $(npm --version) from $npm_dir"
  install -D -m 0755 "$node" "$ROOT/usr/bin/node" || return 1
  copy_in "$npm_dir" /usr/lib/node_modules/npm || return 1
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOT/usr/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOT/usr/bin/npx"
  if [ -d "$(dirname "$npm_dir")/corepack" ]; then
    copy_in "$(dirname "$npm_dir")/corepack" /usr/lib/node_modules/corepack
    ln -sf ../lib/node_modules/corepack/dist/corepack.js "$ROOT/usr/bin/corepack"
  fi
  copy_in /usr/include/node # npm's nodedir=/usr builds native addons against these headers
  for f in /etc/npmrc /usr/etc/npmrc /root/.npmrc; do copy_in "$f"; done
  # CA trust: the bundle, the extra CAs it was made from, and NODE_EXTRA_CA_CERTS (ROOT_ENV)
  copy_in /etc/ssl/certs/ca-certificates.crt
  for f in /usr/local/share/ca-certificates/*; do copy_in "$f"; done
  copy_in /etc/resolv.conf
  copy_in /etc/hosts
  # apt: the machine's sources (only the files apt reads), their keyrings, its settings
  rm -f "$ROOT/etc/apt/sources.list"
  copy_in /etc/apt/sources.list
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources /usr/share/keyrings/* /etc/apt/trusted.gpg.d/*; do
    [ -e "$ROOT$f" ] || copy_in "$f"
  done
  for f in /etc/apt/apt.conf.d/*; do # the machine's own settings: files no Debian package owns
    if [ -f "$f" ] && [ ! -e "$ROOT$f" ] && ! dpkg -S "$f" > /dev/null 2>&1; then copy_in "$f"; fi
  done
  copy_in /usr/sbin/policy-rc.d # no package's service starts on install (as on the machine)
  [ -e "$ROOT/usr/sbin/policy-rc.d" ] || printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"
  chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
  NOTE="node $(chroot "$ROOT" /usr/bin/node --version), npm $(inroot 'npm --version' 2>/dev/null)"
}

clone () {
  local p
  git clone -q --no-hardlinks "$REPO" "$ROOT$APP" || return 1
  for p in "${WITH_UNCOMMITTED[@]}"; do
    say "applying the working tree's uncommitted diff of $p to the clone"
    git -C "$REPO" diff HEAD -- "$p" | git -C "$ROOT$APP" apply --verbose || return 1
  done
  NOTE="HEAD $(git -C "$ROOT$APP" rev-parse --short HEAD)${WITH_UNCOMMITTED[*]:+ + uncommitted ${WITH_UNCOMMITTED[*]}}; $(git -C "$ROOT$APP" ls-files | wc -l) files"
  [ ! -e "$ROOT$APP/node_modules" ]
}

# Mounts, recorded in MOUNTS so cleanup unmounts them in reverse order.
MOUNTS=()
mount_one () { mount "$@" && MOUNTS+=("${*: -1}") && mount --make-private "${*: -1}"; }
mount_root () {
  mount_one --bind "$ROOT" "$ROOT" || return 1 # a mount point, or `unshare --mount` inside fails
  mount_one -t proc proc "$ROOT/proc" || return 1
  mount_one --bind /sys "$ROOT/sys" || return 1
  mount_one --bind /dev "$ROOT/dev" || return 1
  mount_one --bind /dev/pts "$ROOT/dev/pts" || return 1
  mount_one -t tmpfs -o mode=1777 tmpfs "$ROOT/dev/shm" || return 1 # chromium's shared memory
  NOTE="${#MOUNTS[@]} mounts"
}

npm_install () {
  inroot "cd $APP && npm install" || return 1
  local v
  v="$(inroot "cd $APP && node_modules/.bin/node --version")"
  NOTE="the project's node: $v"
  case "$v" in v22.*) ;; *) say "expected the project's Node 22 in node_modules/.bin/node, got '$v'"; return 1 ;; esac
}

# The check run inside the root by the machine's node: HTTP page, IPP Get-Printer-Attributes, or ports closed.
write_checker () {
  cat > "$ROOT/tmp/fresh-check.mjs" << 'EOF'
import { connect } from 'node:net'
const [mode, httpPort, ippPort, timeoutS] = process.argv.slice(2)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
function attr (tag, name, value) {
  const n = Buffer.from(name); const v = Buffer.from(value)
  const b = Buffer.alloc(5 + n.length + v.length)
  b[0] = tag; b.writeUInt16BE(n.length, 1); n.copy(b, 3); b.writeUInt16BE(v.length, 3 + n.length); v.copy(b, 5 + n.length)
  return b
}
async function up () {
  const deadline = Date.now() + Number(timeoutS) * 1000
  let last = ''
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${httpPort}/`, { signal: AbortSignal.timeout(5000) })
      const body = await r.text()
      if (r.ok) { console.log(`HTTP ${httpPort}: ${r.status} ${r.headers.get('content-type')}, ${body.length} bytes`); break }
      last = `HTTP ${r.status}`
    } catch (err) { last = String(err.cause?.code ?? err.message) }
    if (Date.now() > deadline) { console.log(`HTTP ${httpPort}: no answer within ${timeoutS} s (${last})`); process.exit(1) }
    await sleep(500)
  }
  const uri = `ipp://127.0.0.1:${ippPort}/ipp/print`
  const req = Buffer.concat([Buffer.from([2, 0, 0x00, 0x0b, 0, 0, 0, 1, 0x01]),
    attr(0x47, 'attributes-charset', 'utf-8'), attr(0x48, 'attributes-natural-language', 'en'),
    attr(0x45, 'printer-uri', uri), attr(0x44, 'requested-attributes', 'printer-state'), Buffer.from([0x03])])
  const r = await fetch(`http://127.0.0.1:${ippPort}/ipp/print`, { method: 'POST', headers: { 'content-type': 'application/ipp' }, body: req, signal: AbortSignal.timeout(10000) })
  const res = Buffer.from(await r.arrayBuffer())
  const status = res.length >= 4 ? res.readUInt16BE(2) : -1
  console.log(`IPP ${ippPort}: HTTP ${r.status}, Get-Printer-Attributes status 0x${status.toString(16).padStart(4, '0')}, ${res.length} bytes, printer-state ${res.includes('printer-state') ? 'present' : 'absent'}`)
  process.exit(r.status === 200 && status >= 0 && status < 0x100 ? 0 : 1)
}
async function closed () {
  for (const port of [httpPort, ippPort]) {
    const open = await new Promise((resolve) => {
      const s = connect(Number(port), '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    console.log(`port ${port}: ${open ? 'still accepts connections' : 'closed'}`)
    if (open) process.exit(1)
  }
}
await (mode === 'up' ? up() : closed())
EOF
}

# Runs inside `unshare --net` (lo up) and the chroot: npm start, checks, SIGTERM, checks it ended.
START_SCRIPT='
cd '"$APP"'
setsid npm start > /tmp/npm-start.log 2>&1 < /dev/null &
pid=$!
echo "npm start: pid $pid"
ok=0
/usr/bin/node /tmp/fresh-check.mjs up '"$HTTP_PORT $IPP_PORT $START_TIMEOUT_S"' || ok=1
if [ -s data/admin-token ]; then echo "admin token written to ./data/admin-token"; else echo "no ./data/admin-token"; ok=1; fi
for p in '"$IPP_PORT $HTTP_PORT"'; do grep -q ":$p" /tmp/npm-start.log && echo "start output names port $p" || { echo "start output does not name port $p"; ok=1; }; done
kill -0 "$pid" 2> /dev/null || { echo "npm start is no longer running"; ok=1; }
echo "sending SIGTERM to npm (pid $pid)"
kill -TERM "$pid"
t=0
while kill -0 "$pid" 2> /dev/null && [ $t -lt '"$((STOP_TIMEOUT_S * 10))"' ]; do sleep 0.1; t=$((t + 1)); done
if kill -0 "$pid" 2> /dev/null; then
  echo "npm start did not exit within '"$STOP_TIMEOUT_S"' s of SIGTERM"; ok=1
  kill -KILL -- "-$pid" 2> /dev/null
else
  wait "$pid"; echo "npm start exited with status $? after $((t / 10)).$((t % 10)) s"
fi
sleep 0.5
# anything of its process group still running (a zombie has ended; reaping it is PID 1'"'"'s job)
left="$(ps -e -o pid=,pgid=,stat=,args= | awk -v g="$pid" '"'"'$2 == g && $3 !~ /^Z/'"'"')"
if [ -n "$left" ]; then echo "processes of npm start are left:"; echo "$left"; kill -KILL -- "-$pid"; ok=1; fi
/usr/bin/node /tmp/fresh-check.mjs closed '"$HTTP_PORT $IPP_PORT"' || ok=1
echo "--- npm start output:"; cat /tmp/npm-start.log
exit $ok
'

npm_start () {
  write_checker || return 1
  # lo up by the host's ip: the namespace is the harness's, not the project's
  unshare --net -- /bin/bash -c 'ip link set lo up && exec "$@"' _ \
    chroot "$ROOT" /usr/bin/env -i "${ROOT_ENV[@]}" /bin/bash -c "$START_SCRIPT"
  local rc=$?
  NOTE="site answered, stopped by SIGTERM"
  [ $rc -eq 0 ] || NOTE='see the log above'
  return $rc
}

npm_test () {
  local out="$WORK/npm-test.log" args='' rc f
  for f in "${TEST_FILTERS[@]}"; do args+=" $(printf '%q' "$f")"; done
  inroot "cd $APP && npm test${args:+ --$args}" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  TEST_LINE="$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)"
  FAILED_FILES="$(grep -E '^\[test\] (failed:|✖)' "$out")"
  FAILED_TESTS=''
  for f in $(sed -n 's/^\[test\] failed: //p' "$out" | sort -u); do # each failing file's failure lines
    FAILED_TESTS+="--- $f"$'\n'"$(awk -v f="$f" '$0 == "[test] ▶ " f { on = 1; next } on && /^\[test\] (▶|✖|failed:)/ { on = 0 } on' "$out" |
      grep -E -A 8 '✘|FAIL |Error|exceeded' | head -n 60)"$'\n'
  done
  NOTE="${TEST_LINE:-no 'N passed, N failed' line}; exit $rc"
  [ $rc -eq 0 ] && [ -n "$TEST_LINE" ]
}

# ------------------------------------------------------------------------------------- cleanup

root_pids () { # processes whose root is the chroot: all of them were started by this script
  local p r
  for p in /proc/[0-9]*; do
    r="$(readlink "$p/root" 2> /dev/null)" || continue
    [ "$r" = "$ROOT" ] && echo "${p#/proc/}"
  done
}

cleanup () {
  local pids m left
  pids="$(root_pids)"
  if [ -n "$pids" ]; then
    say "ending processes left in the root:"
    ps -o pid=,ppid=,etime=,args= -p "$(echo $pids | tr ' ' ,)" | cut -c1-200
    NOTE="ended $(echo $pids | wc -w) processes left in the root; "
    kill -TERM $pids 2> /dev/null; sleep 3
    pids="$(root_pids)"; [ -z "$pids" ] || kill -KILL $pids 2> /dev/null; sleep 1
  fi
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    m="${MOUNTS[$i]}"
    umount "$m" 2> /dev/null || umount -l "$m" || say "could not unmount $m"
  done
  MOUNTS=()
  left="$(awk -v r="$WORK" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo)"
  if [ -n "$left" ]; then say "still mounted, the temp dir is left in place: $left"; return 1; fi
  if [ "$KEEP_ROOT" = 1 ]; then NOTE+="root kept in $ROOT"; return 0; fi
  rm -rf --one-file-system "$WORK" && NOTE+="removed $WORK"
}

summary () {
  local i
  echo
  echo '==================== fresh Debian 12 proof: summary ===================='
  echo "repository: $REPO at $(git -C "$REPO" rev-parse --short HEAD)${WITH_UNCOMMITTED[*]:+ + uncommitted ${WITH_UNCOMMITTED[*]}}"
  for i in "${!STEP_NAMES[@]}"; do
    printf '  %-4s %-22s %6ss  %s\n' "${STEP_RESULTS[$i]}" "${STEP_NAMES[$i]}" "${STEP_SECONDS[$i]}" "${STEP_NOTES[$i]}"
  done
  echo "total: $((SECONDS / 60)) min $((SECONDS % 60)) s"
  echo "npm test${TEST_FILTERS[*]:+ -- ${TEST_FILTERS[*]}}: ${TEST_LINE:-(no result line)}"
  if [ -n "${FAILED_FILES:-}" ]; then echo 'failing test files:'; echo "$FAILED_FILES"; fi
  if [ -n "${FAILED_TESTS:-}" ]; then echo 'failing tests (uvu):'; echo "$FAILED_TESTS"; fi
  echo "log: $LOG"
  if [ "$FAILED" = 0 ]; then echo 'RESULT: PASS'; else echo 'RESULT: FAIL'; fi
}

finish () {
  local rc=$?
  trap - EXIT INT TERM
  [ "$rc" = 0 ] || FAILED=1
  if [ "$CLEANED" = 0 ]; then CLEANED=1; step cleanup cleanup; fi
  summary
  [ "$FAILED" = 0 ] && exit 0 || exit 1
}
trap finish EXIT
trap 'say "interrupted"; exit 130' INT TERM HUP

# ---------------------------------------------------------------------------------------- main

MIRROR=''
step 'host prerequisites' host_prerequisites || exit 1
step 'debootstrap bookworm' debootstrap_root || exit 1
step 'provision root' provision || exit 1
step 'clone HEAD' clone || exit 1
step 'mount' mount_root || exit 1
if step 'npm install' npm_install; then
  step 'npm start (no network)' npm_start
  step 'npm test' npm_test
else
  skip 'npm start (no network)' 'npm install failed'
  skip 'npm test' 'npm install failed'
fi
CLEANED=1
step cleanup cleanup
exit 0
