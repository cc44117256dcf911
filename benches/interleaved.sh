#!/usr/bin/env bash
# interleaved.sh - the many-small-files case on disk, with the tools alternating run by run.
# Why: creating inodes right after a directory of 2,000 files was deleted costs ext4 a scan of
# recently deleted inodes (perf: recently_deleted/find_inode_bit), which grows with the deletions
# of the last seconds; a tool whose runs come first in a batch is measured on a quieter
# filesystem than one whose runs come later. Here the tools alternate run by run, and every run
# writes into a new directory (deleted only at the end), so no run inherits another's deletions.
# Uses the data and nginx of shared/bench-peers (run setup.sh first, or benches/peers.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
EXP=${EXP:-${TMPDIR:-/tmp}/bench-peers}
RUNS=${RUNS:-9}
SET=${SET:-small}
export EBB=${EBB:-$here/../target/release/ebb}
export EBB_DATA_DIR=${EBB_DATA_DIR:-${TMPDIR:-/tmp}/ebb-bench/data}
root=$EXP/dl/interleaved
rm -rf "$root"
declare -A cmd=(
  [curl-seq]='curl -sS --remote-name-all --output-dir $dir -K $EXP/$SET.curl'
  [curl-seq+syncfs]='curl -sS --remote-name-all --output-dir $dir -K $EXP/$SET.curl && sync -f $dir'
  [wget]='wget -q -nd -P $dir -i $EXP/$SET.urls'
  [ebb]='$here/ebb-many.sh $EXP/$SET.urls $dir'
)
tools=(curl-seq curl-seq+syncfs wget ebb)
declare -A times
for run in $(seq "$RUNS"); do
  for tool in "${tools[@]}"; do
    dir=$root/$run-$tool; mkdir -p "$dir"; sync
    t0=$(date +%s.%N)
    dir=$dir EXP=$EXP SET=$SET here=$here bash -c "${cmd[$tool]}" >/dev/null
    t1=$(date +%s.%N)
    n=$(find "$dir" -type f | wc -l)
    [[ $n -eq $(wc -l < "$EXP/$SET.urls") ]] || { echo "$tool: $n files" >&2; exit 1; }
    times[$tool]+="$(echo "$t1 - $t0" | bc -l) "
  done
done
rm -rf "$root"
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'; }
base=$(median <<< "${times[curl-seq]}")
echo "| tool | runs | median s | / curl-seq |"
echo "| --- | --- | --- | --- |"
for tool in "${tools[@]}"; do
  m=$(median <<< "${times[$tool]}")
  printf '| %s | %s | %s | %.2f |\n' "$tool" "$RUNS" "$m" "$(echo "$m / $base" | bc -l)"
done
