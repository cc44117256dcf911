#!/usr/bin/env bash
# benches/peers.sh - ebb beside curl, wget and aria2c on one private nginx, in one run, using the
# peer scripts of shared/bench-peers (BENCH_PEERS=dir to point elsewhere). Cases: the 1 GiB file
# (tmpfs, disk, disk + fsync; ebb is durable in every case), 2,000 x 16 KiB and 200 x 1 MiB in
# one job, and SIGKILL-then-resume. Report: $RES/report.md, plus ratios in $RES/ratios.md.
# Needs: apt-get install nginx aria2 hyperfine time jq bc
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PEERS=${BENCH_PEERS:-$root/../shared/bench-peers}
[[ -x $PEERS/setup.sh ]] || { echo "peer scripts not found at $PEERS (set BENCH_PEERS)" >&2; exit 1; }
export RES=${RES:-${TMPDIR:-/tmp}/ebb-bench/results-$(date +%Y%m%d-%H%M%S)}
export EBB_DATA_DIR=${EBB_DATA_DIR:-${TMPDIR:-/tmp}/ebb-bench/data}
mkdir -p "$RES"
(cd "$root" && cargo build --release --locked --bins)
export EBB=$root/target/release/ebb
"$PEERS/setup.sh" >/dev/null
RUNS=${RUNS:-5} DESTS=${DESTS:-tmpfs disk disksync} TOOLS=${SINGLE_TOOLS:-curl wget aria2c-x4 ebb} \
  EXTRA_SINGLE="ebb|$here/ebb-fresh.sh transfer {URL} {DIR}/{NAME}" "$PEERS/bench-single.sh"
RUNS=${RUNS:-5} TOOLS=${MANY_TOOLS:-curl-seq curl-par wget aria2c-j16 ebb} \
  EXTRA_MANY="ebb|$here/ebb-many.sh {URLS} {DIR}" "$PEERS/bench-many.sh"
SCENARIOS=${SCENARIOS:-curl-KILL wget-TERM aria2c-x1-KILL ebb-KILL} \
  EXTRA_RESUME="ebb-KILL|KILL|2|$EBB transfer --overwrite --name bench-resume {URL} {FILE}|$here/ebb-finish.sh bench-resume" \
  "$PEERS/bench-resume.sh"
"$PEERS/report.sh" > "$RES/report.md"
"$here/ratios.sh" "$RES" > "$RES/ratios.md"
{ echo; echo "Interleaved, 2,000 x 16 KiB to disk:"; echo; "$here/interleaved.sh"; } >> "$RES/ratios.md"
cat "$RES/ratios.md"
echo "report: $RES/report.md" >&2
