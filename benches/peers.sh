#!/usr/bin/env bash
# benches/peers.sh - ebb beside curl, wget and aria2c on one private nginx, in one run, as ratios.
#
#   benches/peers.sh [--quick] [--rounds N] [--cases "single https small med kill netbed queue"]
#
# Self-contained on a fresh Debian machine with Rust: installs the peers (and nginx, openssl,
# bc) from Debian when missing, builds the binaries it runs, makes its data, serves it
# from its own nginx on 127.0.0.1 (HTTP and HTTPS), and stops what it started by PID.
# - Every ebb run has its own data directory and socket and a fresh daemon, started before the
#   clock starts and stopped after; ebb's CPU includes its daemon's.
# - The tools are interleaved: each round runs every tool once, in an order rotated from round to
#   round, so that they share the machine's noise (and ext4's cost of recently deleted inodes).
# - Every result is checked (SHA-256 of the bytes) before it counts.
# - Report: medians and ranges per tool, and ebb's time over each peer's as the median and range
#   of per-round ratios. Written to $RES/report.md (default under $WORK).
# Cases: single (1 GiB, durable), https (the same over TLS), small (2,000 x 16 KiB, one job), med
# (200 x 1 MiB), kill (SIGKILL of the engine mid-file, re-fetched bytes), netbed (200 mbit,
# 100 ms, 0.5 % loss; root, ../shared/netbed), queue (100,000 jobs: cargo bench --bench daemon).
# --quick: a smoke run for CI - the debug build, 16 MiB and 50 + 5 files, one round, no netbed or
# queue. It checks that every tool and case works; its figures mean little.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$here/.." && pwd)
source "$here/peers/lib.sh"
source "$here/peers/cases.sh"

QUICK=0 CASES="single https small med kill netbed queue" ROUNDS=${ROUNDS:-5}
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1; CASES="single https small med kill"; ROUNDS=1; shift ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --cases) CASES=$2; shift 2 ;;
    *) sed -n '2,20p' "$0" >&2; exit 2 ;;
  esac
done

WORK=${WORK:-${TMPDIR:-/tmp}/ebb-peers}
WWW=$WORK/www
RES=${RES:-$WORK/results-$(date +%Y%m%d-%H%M%S)}
PORT=${PORT:-18180} TLS_PORT=${TLS_PORT:-18543}
NETBED=${NETBED:-$ROOT/../shared/netbed}
if ((QUICK)); then
  BIG_MIB=16 SMALL_N=50 MED_N=5 SLOW_RATE=4m PROFILE=debug
else
  BIG_MIB=${BIG_MIB:-1024} SMALL_N=${SMALL_N:-2000} MED_N=${MED_N:-200} SLOW_RATE=${SLOW_RATE:-200m}
  PROFILE=release
fi
NETBED_MIB=${NETBED_MIB:-64} NETBED_LINK=${NETBED_LINK:-200mbit 100ms 0.5%}
QUEUE_JOBS=${QUEUE_JOBS:-100000}
mkdir -p "$WORK/runs" "$RES"
: > "$RES/runs.tsv"; : > "$RES/kill.tsv"

cleanup() {
  ebb_down
  stop_nginx
  if [[ -n ${NETBED_PREFIX:-} ]]; then "$NETBED/bed.sh" down >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

install_tools
log "building ebb ($PROFILE)"
if [[ $PROFILE == release ]]; then
  (cd "$ROOT" && cargo build --release --locked --bins)
else
  (cd "$ROOT" && cargo build --locked --bins)
fi
EBB=$ROOT/target/$PROFILE/ebb EBBD=$ROOT/target/$PROFILE/ebbd
make_data
start_nginx
log "nginx $NGINX_PID on 127.0.0.1:$PORT and :$TLS_PORT; $ROUNDS round(s); results in $RES"

{
  echo "# ebb beside its peers ($(date -u +%F), $(nproc) cores, $ROUNDS rounds)"
  echo
  echo "single/https/kill: one file of $BIG_MIB MiB; small: $SMALL_N x 16 KiB; med: $MED_N x 1 MiB;"
  echo "netbed: $NETBED_MIB MiB over $NETBED_LINK. Durable: every tool's bytes are synced to disk before its clock stops."
  echo
} > "$RES/report.md"
for c in $CASES; do
  log "case $c"
  case $c in
    kill) case_kill >> "$RES/report.md"; echo >> "$RES/report.md" ;;
    queue) { echo '```'; case_queue; echo '```'; echo; } >> "$RES/report.md" ;;
    single|https|small|med|netbed) "case_$c" ;;
    *) die "unknown case $c" ;;
  esac
done
if [[ -s $RES/runs.tsv ]]; then report >> "$RES/report.md"; fi
cat "$RES/report.md"
log "report: $RES/report.md"
