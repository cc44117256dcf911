#!/usr/bin/env bash
# Run ebb on an empty queue (the benchmarks compare one transfer, not a queue's history). A
# transfer replaces what an earlier run left, as the peers do (`--overwrite`).
set -euo pipefail
rm -rf "$EBB_DATA_DIR"
if [[ ${1:-} == transfer ]]; then
  shift
  exec "$EBB" transfer --overwrite "$@"
fi
exec "$EBB" "$@"
