#!/usr/bin/env bash
# Run ebb on an empty queue (the benchmarks compare one transfer, not a queue's history).
set -euo pipefail
rm -rf "$EBB_DATA_DIR"
exec "$EBB" "$@"
