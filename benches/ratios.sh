#!/usr/bin/env bash
# ratios.sh RES - ebb's median time over each peer's, per case, from one run's summary.tsv; and
# re-fetched bytes after SIGKILL from resume/runs.tsv.
set -euo pipefail
res=$1
echo "| case | dest | ebb s | peer | peer s | ebb / peer |"
echo "| --- | --- | --- | --- | --- | --- |"
awk -F'\t' '
  NR == 1 { next }
  { key = $1 "|" $3; t[key, $2] = $5; tools[$2] = 1; keys[key] = 1 }
  END {
    for (k in keys) {
      split(k, p, "|")
      if (!((k, "ebb") in t)) continue
      for (tool in tools) {
        if (tool == "ebb" || !((k, tool) in t)) continue
        printf "| %s | %s | %.3f | %s | %.3f | %.2f |\n", p[1], p[2], t[k, "ebb"], tool, t[k, tool], t[k, "ebb"] / t[k, tool]
      }
    }
  }' "$res/summary.tsv" | sort
if [[ -s $res/resume/runs.tsv ]]; then
  echo
  echo "| scenario | runs | re-fetched bytes (median) | sha256 |"
  echo "| --- | --- | --- | --- |"
  awk -F'\t' 'NR > 1 { r[$1] = r[$1] " " $9; n[$1]++; ok[$1] = ok[$1] " " $12 }
    END { for (s in r) print s "\t" n[s] "\t" r[s] "\t" ok[s] }' "$res/resume/runs.tsv" |
  while IFS=$'\t' read -r s n vals oks; do
    med=$(tr ' ' '\n' <<< "$vals" | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    printf '| %s | %s | %s | %s |\n' "$s" "$n" "$med" "$(tr ' ' '\n' <<< "$oks" | sort -u | paste -sd, | sed 's/^,//')"
  done
fi
