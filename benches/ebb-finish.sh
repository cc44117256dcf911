#!/usr/bin/env bash
# ebb-finish.sh NAME - the resume half of the SIGKILL benchmark: run the job to the end, complete.
set -euo pipefail
"$EBB" resume "$1" --wait
exec "$EBB" complete "$1"
