# benches/peers/lib.sh - what the peer benchmark stands on: the tools it installs, the private
# nginx it serves from, the data, a fresh ebbd per run, and the interleaved timing loop.
# Sourced by benches/peers.sh; every path lives under $WORK, every process started here is
# stopped by its PID.

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- tools -------------------------------------------------------------------------------------
# Debian packages of everything the cases run; installed when missing (root or sudo).
install_tools() {
  local need=() cmd pkg
  # (No hyperfine: it runs each command's rounds together, and the tools here must alternate.)
  for pair in nginx:nginx aria2c:aria2 curl:curl wget:wget bc:bc openssl:openssl; do
    cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
  done
  [[ ${#need[@]} -eq 0 ]] && return 0
  local sudo=
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  log "installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# --- data --------------------------------------------------------------------------------------
# $WWW/big.bin ($BIG_MIB MiB), $WWW/small/ ($SMALL_N x 16 KiB), $WWW/med/ ($MED_N x 1 MiB); kept
# between runs when their sizes match.
make_data() {
  mkdir -p "$WWW/small" "$WWW/med"
  if [[ $(stat -c %s "$WWW/big.bin" 2>/dev/null || echo 0) -ne $((BIG_MIB << 20)) ]]; then
    log "making a $BIG_MIB MiB file"
    head -c $((BIG_MIB << 20)) /dev/urandom > "$WWW/big.bin"
  fi
  sha256sum < "$WWW/big.bin" | cut -d' ' -f1 > "$WWW/big.sha256"
  make_set small "$SMALL_N" 16384
  make_set med "$MED_N" 1048576
  chmod -R a+rX "$WWW"
}

make_set() {
  local set=$1 n=$2 size=$3
  if [[ $(find "$WWW/$set" -type f | wc -l) -ne $n ]] ||
     [[ $(stat -c %s "$WWW/$set/f0000.bin" 2>/dev/null || echo 0) -ne $size ]]; then
    log "making $n x $size bytes in $set/"
    rm -rf "${WWW:?}/$set"; mkdir -p "$WWW/$set"
    head -c $((n * size)) /dev/urandom | split -b "$size" -d -a 4 --additional-suffix=.bin - "$WWW/$set/f"
  fi
  find "$WWW/$set" -type f -printf '%f\n' | sort > "$WORK/$set.names"
}

# --- the server --------------------------------------------------------------------------------
# A private nginx on 127.0.0.1: HTTP on $PORT, HTTPS on $TLS_PORT (a self-signed certificate for
# 127.0.0.1 in $WORK/tls), /slow/ paced at $SLOW_RATE per connection; every request logged with
# the body bytes it sent. Stopped by its PID when the benchmark exits.
start_nginx() {
  mkdir -p "$WORK/nginx/logs" "$WORK/tls"
  if [[ ! -s $WORK/tls/cert.pem ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
      -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
      -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" 2>/dev/null
  fi
  cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  default_type application/octet-stream;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 65; keepalive_requests 100000;
  log_format xfer '\$request_uri status=\$status body=\$body_bytes_sent range="\$http_range"';
  access_log $WORK/nginx/logs/xfer.log xfer;
  client_body_temp_path $WORK/nginx/body; proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fcgi; uwsgi_temp_path $WORK/nginx/uwsgi; scgi_temp_path $WORK/nginx/scgi;
  server {
    listen 127.0.0.1:$PORT;
    listen 127.0.0.1:$TLS_PORT ssl;
    ssl_certificate $WORK/tls/cert.pem; ssl_certificate_key $WORK/tls/key.pem;
    root $WWW;
    location /slow/ { alias $WWW/; limit_rate $SLOW_RATE; }
  }
}
CONF
  nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx/" -g 'daemon on;' ||
    die "nginx did not start (is port $PORT or $TLS_PORT taken?)"
  NGINX_PID=$(cat "$WORK/nginx/nginx.pid")
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/big.bin" -r 0-0 || die "nginx does not serve"
}

stop_nginx() {
  [[ -n ${NGINX_PID:-} ]] && kill "$NGINX_PID" 2>/dev/null || true
  NGINX_PID=
}

# Body bytes nginx sent for requests whose URI contains $1.
served_bytes() {
  grep -F -- "$1" "$WORK/nginx/logs/xfer.log" | sed -n 's/.* body=\([0-9]*\) .*/\1/p' |
    awk '{s += $1} END {print s + 0}'
}

# --- ebb ---------------------------------------------------------------------------------------
# A fresh engine for one run: its own data directory and socket under $1, the daemon started
# and answering before the clock starts. Sets EBBD_PID.
ebb_up() {
  export EBB_DATA_DIR=$1/data EBB_SOCKET=$1/ebbd.sock EBB_NO_AUTOSTART=1
  mkdir -p "$1"
  # EBBD_RUN: a prefix that runs the daemon elsewhere (the netbed's client namespace).
  ${EBBD_RUN:-} "$EBBD" >"$1/ebbd.out" 2>&1 &
  EBBD_PID=$!
  local i
  for i in $(seq 200); do
    "$EBB" list >/dev/null 2>&1 && return 0
    kill -0 "$EBBD_PID" 2>/dev/null || break
    sleep 0.05
  done
  cat "$1/ebbd.out" >&2
  die "ebbd did not answer on $EBB_SOCKET"
}

# Stop the daemon this run started (SIGTERM, then wait for it).
ebb_down() {
  [[ -n ${EBBD_PID:-} ]] || return 0
  kill "$EBBD_PID" 2>/dev/null || true
  wait "$EBBD_PID" 2>/dev/null || true
  EBBD_PID=
}

# CPU seconds (user + system) a process has used so far.
cpu_of() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# --- timing ------------------------------------------------------------------------------------
# race CASE CHECK TOOL...: $ROUNDS rounds, each running every tool once, the order rotated from
# round to round, so that the tools share the machine's noise. A tool is a function
# `tool_NAME DEST` (run in the timed part) with optional `prep_NAME DEST` / `post_NAME DEST`
# around it; CHECK DEST must succeed after every run (the bytes are right). Appends
# `case tool round wall_s cpu_s` to $RES/runs.tsv; ebb's CPU includes its daemon's.
race() {
  local case=$1 check=$2; shift 2
  local tools=("$@") n=$# round k i tool dest c0 c1 wall user sys
  local TIMEFORMAT='%R %U %S'
  for round in $(seq "$ROUNDS"); do
    for k in $(seq 0 $((n - 1))); do
      i=$(((k + round) % n)); tool=${tools[$i]}
      dest=$WORK/runs/$case-$tool-$round-$RANDOM
      mkdir -p "$dest"
      if declare -F "prep_$tool" >/dev/null; then "prep_$tool" "$dest"; fi
      sync
      c0=0; [[ -n ${EBBD_PID:-} ]] && c0=$(cpu_of "$EBBD_PID")
      { time "tool_$tool" "$dest" >"$dest.out" 2>&1; } 2>"$dest.time" ||
        { cat "$dest.out" >&2; die "$case: $tool failed"; }
      c1=0; [[ -n ${EBBD_PID:-} ]] && c1=$(cpu_of "$EBBD_PID")
      read -r wall user sys < "$dest.time"
      "$check" "$dest" || { cat "$dest.out" >&2; die "$case: $tool left wrong bytes in $dest"; }
      if declare -F "post_$tool" >/dev/null; then "post_$tool" "$dest"; fi
      printf '%s\t%s\t%s\t%s\t%.2f\n' "$case" "$tool" "$round" "$wall" \
        "$(bc -l <<< "$user + $sys + $c1 - $c0")" >> "$RES/runs.tsv"
      rm -rf "$dest" "$dest.out" "$dest.time"
    done
  done
}

# --- report ------------------------------------------------------------------------------------
# From $RES/runs.tsv: per case and tool the median wall time, its range and the median CPU; and
# for ebb, the ratio to every peer: the median of the per-round ratios (ebb's time over the
# peer's in the same round) and their range.
report() {
  awk -F'\t' '
    function median(list,   a, m, i, j, v) { m = split(list, a, " ")
      for (i = 2; i <= m; i++) { v = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
      return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
    function lo(list,   a, m, i, v) { m = split(list, a, " "); v = a[1]; for (i = 2; i <= m; i++) if (a[i] < v) v = a[i]; return v }
    function hi(list,   a, m, i, v) { m = split(list, a, " "); v = a[1]; for (i = 2; i <= m; i++) if (a[i] > v) v = a[i]; return v }
    { key = $1 SUBSEP $2; wall[key] = wall[key] " " $4; cpu[key] = cpu[key] " " $5
      t[$1, $2, $3] = $4; if (!(($1, $2) in seen)) { seen[$1, $2] = 1; order[$1] = order[$1] " " $2 }
      if (!($1 in cases)) { cases[$1] = 1; corder[++nc] = $1 } rounds[$1, $3] = 1 }
    END {
      print "| case | tool | runs | median s | range s | median CPU s |"
      print "| --- | --- | --- | --- | --- | --- |"
      for (c = 1; c <= nc; c++) { n = split(order[corder[c]], tl, " ")
        for (i = 1; i <= n; i++) { k = corder[c] SUBSEP tl[i]; m = split(wall[k], x, " ")
          printf "| %s | %s | %d | %.3f | %.3f-%.3f | %.2f |\n", corder[c], tl[i], m, median(wall[k]), lo(wall[k]), hi(wall[k]), median(cpu[k]) } }
      print ""
      print "| case | ebb / peer | median of per-round ratios | range |"
      print "| --- | --- | --- | --- |"
      for (c = 1; c <= nc; c++) { cs = corder[c]; n = split(order[cs], tl, " ")
        for (i = 1; i <= n; i++) { if (tl[i] ~ /^ebb/) continue
          for (j = 1; j <= n; j++) { if (tl[j] !~ /^ebb/) continue; r = ""
            for (rk in rounds) { split(rk, q, SUBSEP); if (q[1] != cs) continue
              if (((cs, tl[j], q[2]) in t) && ((cs, tl[i], q[2]) in t) && t[cs, tl[i], q[2]] > 0)
                r = r " " t[cs, tl[j], q[2]] / t[cs, tl[i], q[2]] }
            if (r != "") printf "| %s | %s / %s | %.2f | %.2f-%.2f |\n", cs, tl[j], tl[i], median(r), lo(r), hi(r) } } }
    }' "$RES/runs.tsv"
}
