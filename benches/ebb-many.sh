#!/usr/bin/env bash
# ebb-many.sh URLS DIR - every URL of the list into DIR, as one job of ebb transfer.
set -euo pipefail
args=()
while IFS= read -r url; do
  [[ -n $url ]] && args+=("$url" "$2/${url##*/}")
done < "$1"
exec "$(dirname "$0")/ebb-fresh.sh" transfer "${args[@]}"
