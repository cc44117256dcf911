# benches/peers/cases.sh - the cases of benches/peers.sh: each times ebb beside the peers users
# would otherwise run, on the same server in the same run. Sourced after lib.sh.

A2='aria2c -q --allow-overwrite=true --auto-file-renaming=false --file-allocation=none'
URL=
CA=

# --- checks ------------------------------------------------------------------------------------
big_ok() { [[ $(sha256sum < "$1/big.bin" | cut -d' ' -f1) == "$(cat "$WWW/big.sha256")" ]]; }
set_ok() {
  local set=$CHECK_SET
  diff -q <(cd "$WWW/$set" && cat $(cat "$WORK/$set.names") | sha256sum) \
    <(cd "$1" && cat $(cat "$WORK/$set.names") 2>/dev/null | sha256sum) >/dev/null
}

# --- one large file, durable on disk (the peers fsync it; ebb always does) --------------------
tool_curl() { curl -fsS ${CA:+--cacert "$CA"} -o "$1/big.bin" "$URL" && sync "$1/big.bin"; }
tool_wget() { wget -q ${CA:+--ca-certificate="$CA"} -O "$1/big.bin" "$URL" && sync "$1/big.bin"; }
tool_aria2c_x4() { $A2 -x4 -s4 -k1M ${CA:+--ca-certificate="$CA"} -d "$1" -o big.bin "$URL" && sync "$1/big.bin"; }
prep_ebb() { ebb_up "$1.engine"; }
tool_ebb() { "$EBB" transfer --quiet ${CA:+--ca-file "$CA"} "$URL" "$1/big.bin"; }
post_ebb() { ebb_down; rm -rf "$1.engine"; }

case_single() {
  URL=http://127.0.0.1:$PORT/big.bin CA=
  race single big_ok curl wget aria2c_x4 ebb
}

case_https() {
  URL=https://127.0.0.1:$TLS_PORT/big.bin CA=$WORK/tls/cert.pem
  race https big_ok curl wget aria2c_x4 ebb
  CA=
}

# --- many files: one command (one job) for the whole set, durable -----------------------------
many_urls() { sed "s|^|http://127.0.0.1:$PORT/$CHECK_SET/|" "$WORK/$CHECK_SET.names"; }
tool_curl_seq() {
  many_urls | sed 's/.*/url = "&"/' > "$1.curl"
  curl -fsS --remote-name-all --output-dir "$1" -K "$1.curl" && sync -f "$1"
}
tool_wget_many() { many_urls | wget -q -nd -P "$1" -i - && sync -f "$1"; }
tool_aria2c_j16() { many_urls | $A2 -j16 -d "$1" -i - && sync -f "$1"; }
prep_ebb_many() { ebb_up "$1.engine"; }
tool_ebb_many() {
  local args=() name
  while IFS= read -r name; do
    args+=("http://127.0.0.1:$PORT/$CHECK_SET/$name" "$1/$name")
  done < "$WORK/$CHECK_SET.names"
  "$EBB" transfer --quiet "${args[@]}"
}
post_ebb_many() { post_ebb "$@"; }

case_small() { CHECK_SET=small race small set_ok curl_seq wget_many aria2c_j16 ebb_many; }
case_med() { CHECK_SET=med race med set_ok curl_seq wget_many aria2c_j16 ebb_many; }

# --- SIGKILL of the engine mid-file, then resume ----------------------------------------------
# Each tool fetches the large file through /slow/ (paced, so that the kill lands mid-file); once
# a third of it is on disk the engine is killed with SIGKILL: ebb's daemon (its client goes with
# it), or the peer itself. The same command then runs again to the end. Re-fetched bytes are
# what nginx sent for the file beyond its size.
kill_start_curl() { exec curl -fsS -o "$1/big.bin" "$URL"; }
kill_resume_curl() { curl -fsS -C - -o "$1/big.bin" "$URL"; }
kill_start_wget() { exec wget -q -O "$1/big.bin" "$URL"; }
kill_resume_wget() { wget -q -c -O "$1/big.bin" "$URL"; }
kill_start_aria2c() { exec $A2 -d "$1" -o big.bin "$URL"; }
kill_resume_aria2c() { $A2 -c -d "$1" -o big.bin "$URL"; }
kill_start_ebb() { exec "$EBB" transfer --quiet --name bench-kill "$URL" "$1/big.bin"; }
kill_resume_ebb() { "$EBB" transfer --quiet --name bench-kill "$URL" "$1/big.bin"; }

# (The start commands exec, so that the PID the benchmark kills is the tool's own.)

# Bytes on disk so far: the file, or ebb's hidden temporary file beside it.
on_disk() { du -cb "$1"/big.bin "$1"/.ebb-*.tmp 2>/dev/null | tail -1 | cut -f1; }

kill_run() {
  local tool=$1 round=$2 dest pid victim size tag t0 t1 sent
  tag=kill-$tool-$round-$RANDOM
  URL="http://127.0.0.1:$PORT/slow/big.bin?$tag"
  dest=$WORK/runs/$tag; mkdir -p "$dest"
  [[ $tool == ebb ]] && ebb_up "$dest.engine"
  "kill_start_$tool" "$dest" >"$dest.out" 2>&1 & pid=$!
  victim=$pid; [[ $tool == ebb ]] && victim=$EBBD_PID
  size=$((BIG_MIB << 20))
  while (($(on_disk "$dest") < size / 3)); do
    kill -0 "$pid" 2>/dev/null || { cat "$dest.out" >&2; die "kill: $tool ended before the kill"; }
    sleep 0.01
  done
  kill -KILL "$victim"
  wait "$victim" 2>/dev/null || true
  if [[ $tool == ebb ]]; then
    # The client saw its daemon go; stop it if it is still waiting.
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    EBBD_PID=
    ebb_up "$dest.engine"
  fi
  t0=$(date +%s.%N)
  "kill_resume_$tool" "$dest" >>"$dest.out" 2>&1 || { cat "$dest.out" >&2; die "kill: $tool did not resume"; }
  t1=$(date +%s.%N)
  [[ $tool == ebb ]] && ebb_down
  big_ok "$dest" || die "kill: $tool resumed into wrong bytes"
  sleep 0.2 # nginx logs the request its client dropped
  sent=$(served_bytes "$tag")
  printf '%s\t%s\t%s\t%.3f\n' "$tool" "$round" $((sent - size)) "$(bc -l <<< "$t1 - $t0")" >> "$RES/kill.tsv"
  rm -rf "$dest" "$dest.engine" "$dest.out"
}

case_kill() {
  local round tool
  for round in $(seq "$ROUNDS"); do
    for tool in curl wget aria2c ebb; do kill_run "$tool" "$round"; done
  done
  echo "| SIGKILL of the engine, then resume | runs | re-fetched bytes, median | range | resume s, median |"
  echo "| --- | --- | --- | --- | --- |"
  awk -F'\t' '
    function median(list,   a, m, i, j, v) { m = split(list, a, " ")
      for (i = 2; i <= m; i++) { v = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
      return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
    { b[$1] = b[$1] " " $3; s[$1] = s[$1] " " $4; n[$1]++; if (!($1 in lo) || $3 < lo[$1]) lo[$1] = $3; if ($3 > hi[$1]) hi[$1] = $3 }
    END { for (t in b) printf "| %s | %d | %d | %d-%d | %.2f |\n", t, n[t], median(b[t]), lo[t], hi[t], median(s[t]) }' \
    "$RES/kill.tsv" | sort
}

# --- a long, lossy path: the netbed of ../shared/netbed ----------------------------------------
# $NETBED_LINK (default 200 mbit, 100 ms RTT, 0.5 % loss): where a single TCP stream is slow and
# aria2c's -x pays.
case_netbed() {
  local bed=$NETBED/bed.sh
  [[ -x $bed ]] || die "netbed: $bed not found (set NETBED=path to shared/netbed)"
  [[ $(id -u) -eq 0 ]] || die "netbed: needs root (network namespaces)"
  export NETBED_PREFIX=ebbpeers NETBED_DIR=$WORK/netbed
  "$bed" deps >/dev/null
  "$bed" down >/dev/null 2>&1 || true
  "$bed" files "${NETBED_MIB}M" >/dev/null
  # shellcheck disable=SC2086 # rate, delay, loss
  "$bed" up $NETBED_LINK >&2
  URL=http://10.77.1.1:8080/big1.bin
  EBBD_RUN="$bed run"
  race netbed netbed_ok nb_curl nb_aria2c_x4 ebb_fg ebb_x4
  EBBD_RUN=
  "$bed" down >/dev/null 2>&1 || true
}
# ebb as a foreground job: on its own it splits a slow large file over 4 connections
# (`connections` 0); with --connections 4 it splits at once, as aria2c -x4 -s4 does.
prep_ebb_fg() { ebb_up "$1.engine"; }
tool_ebb_fg() { "$EBB" transfer --quiet --priority foreground "$URL" "$1/big.bin"; }
post_ebb_fg() { post_ebb "$@"; }
prep_ebb_x4() { ebb_up "$1.engine"; }
tool_ebb_x4() { "$EBB" transfer --quiet --connections 4 "$URL" "$1/big.bin"; }
post_ebb_x4() { post_ebb "$@"; }
netbed_ok() { cmp -s "$1/big.bin" "$NETBED_DIR/www/big1.bin"; }
tool_nb_curl() { "$NETBED/bed.sh" run curl -fsS -o "$1/big.bin" "$URL" && sync "$1/big.bin"; }
tool_nb_aria2c_x4() { "$NETBED/bed.sh" run $A2 -x4 -s4 -k1M -d "$1" -o big.bin "$URL" && sync "$1/big.bin"; }

# --- 100,000 jobs in one queue -----------------------------------------------------------------
case_queue() {
  (cd "$ROOT" && EBB_BENCH_JOBS=$QUEUE_JOBS cargo bench --locked --bench daemon 2>/dev/null)
}
