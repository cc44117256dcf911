#!/usr/bin/env bash
# benches/uploads.sh - uploads over loopback, in one run: ebb's client to ebb-server (the BITS
# upload protocol, durable on both ends) beside `curl -T` to an nginx WebDAV PUT location, the
# same file, runs interleaved so they share the noise. Reports medians and ranges of wall time,
# client CPU and server CPU per GiB, the ratios to curl (as it is, and with an fsync of what it
# sent, as durable as ebb-server's acknowledged bytes), and the bytes ebb re-sends after a
# `kill -9` of its engine mid-upload.
# Needs: nginx (Debian's has the dav module), curl, GNU time. SIZE_MIB (1024) and RUNS (3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
RES=${RES:-${TMPDIR:-/tmp}/ebb-bench/uploads-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$RES"
for tool in nginx curl /usr/bin/time; do
    command -v "$tool" >/dev/null 2>&1 || [[ -x /usr/sbin/$tool ]] ||
        { echo "uploads.sh: $tool is missing (apt-get install nginx curl time)" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
(cd "$root" && cargo build --release --locked --bins >&2)
BIN=$root/target/release
work=$(mktemp -d "${TMPDIR:-/tmp}/ebb-up.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.05; done; exit 1; }
# CPU seconds (user + system) a process has used so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }

src=$work/source.bin
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$src"
mkdir -p "$work/ebb-root" "$work/dav-root" "$work/nginx"
ebb_port=$(free_port)
"$BIN/ebb-server" --root "$work/ebb-root" --listen "127.0.0.1:$ebb_port" \
    2> "$work/ebb-server.log" > /dev/null &
ebb_server=$!
pids+=("$ebb_server")
dav_port=$(free_port)
cat > "$work/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $work/dav-root/.tmp;
    client_max_body_size 0;
    server {
        listen 127.0.0.1:$dav_port;
        root $work/dav-root;
        location / { dav_methods PUT; create_full_put_path on; }
    }
}
EOF
mkdir -p "$work/dav-root/.tmp"
"$NGINX" -c "$work/nginx/nginx.conf" &
nginx_pid=$!
pids+=("$nginx_pid")
wait_port "$ebb_port"
wait_port "$dav_port"

# One run of `tool`: prints "wall client_cpu server_cpu".
run_one() {
    local tool=$1 n=$2 server_pid out
    rm -rf "$work/ebb-root"/* "$work/dav-root"/run-* "$work/data"
    sync
    if [[ $tool == ebb ]]; then
        server_pid=$ebb_server
        local before; before=$(cpu_of "$server_pid")
        out=$(EBB_DATA_DIR=$work/data EBB_SECRET_STORE=file EBB_SECRET_KEY=$work/secret.key \
            /usr/bin/time -f "%e %U %S" "$BIN/ebb" --embedded transfer --upload \
            "http://127.0.0.1:$ebb_port/run-$n.bin" "$src" 2>&1 >/dev/null | tail -1)
        cmp -s "$src" "$work/ebb-root/run-$n.bin" || { echo "ebb: upload differs" >&2; exit 1; }
    else
        server_pid=$nginx_pid
        local before; before=$(cpu_of "$server_pid")
        # nginx writes a PUT's body without fsync; "curl+fsync" adds the fsync that makes it
        # as durable as ebb-server's acknowledged bytes.
        local sync=true
        [[ $tool == curl+fsync ]] && sync="python3 -c 'import os,sys; os.fsync(os.open(sys.argv[1], os.O_RDONLY))' $work/dav-root/run-$n.bin"
        out=$(/usr/bin/time -f "%e %U %S" bash -c "curl -sS -f -T '$src' \
            'http://127.0.0.1:$dav_port/run-$n.bin' >/dev/null && $sync" 2>&1 | tail -1)
        cmp -s "$src" "$work/dav-root/run-$n.bin" || { echo "curl: upload differs" >&2; exit 1; }
    fi
    local after; after=$(cpu_of "$server_pid")
    awk -v o="$out" -v b="$before" -v a="$after" 'BEGIN { split(o, f, " "); printf "%s %.3f %.3f\n", f[1], f[2] + f[3], a - b }'
}

for n in $(seq "$RUNS"); do
    for tool in ebb curl curl+fsync; do
        echo "$tool $(run_one "$tool" "$n")" | tee -a "$RES/runs.txt" >&2
    done
done

# Medians and ranges, per GiB.
python3 - "$RES/runs.txt" "$SIZE_MIB" > "$RES/report.md" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
gib = int(sys.argv[2]) / 1024
by = {}
for tool, wall, client, server in rows:
    by.setdefault(tool, []).append((float(wall), float(client), float(server)))
def med(xs): return statistics.median(xs)
print(f"Upload of {int(sys.argv[2])} MiB over loopback, {len(by['ebb'])} interleaved runs each (medians [min-max]):\n")
print("| tool | wall s | MiB/s | client CPU s/GiB | server CPU s/GiB |")
print("|---|---|---|---|---|")
for tool, label in [("ebb", "ebb -> ebb-server (BITS upload, durable per fragment)"),
                    ("curl", "curl -T -> nginx WebDAV PUT (not durable)"),
                    ("curl+fsync", "curl -T -> nginx WebDAV PUT, then fsync")]:
    w = [r[0] for r in by[tool]]; c = [r[1] / gib for r in by[tool]]; s = [r[2] / gib for r in by[tool]]
    print(f"| {label} | {med(w):.2f} [{min(w):.2f}-{max(w):.2f}] | {int(sys.argv[2]) / med(w):.0f} | "
          f"{med(c):.2f} [{min(c):.2f}-{max(c):.2f}] | {med(s):.2f} [{min(s):.2f}-{max(s):.2f}] |")
for peer in ("curl", "curl+fsync"):
    ratio = med([r[0] for r in by["ebb"]]) / med([r[0] for r in by[peer]])
    print(f"\nwall-time ratio ebb / {peer}: {ratio:.2f} (goal <= 1.2)")
EOF

# kill -9 of ebb's engine mid-upload, then resume: the bytes sent twice, from the server's log.
kill "$ebb_server"; wait "$ebb_server" 2>/dev/null || true
rm -rf "$work/ebb-root"/* "$work/data"
EBB_SERVER_LOG=ebb_server=debug "$BIN/ebb-server" --root "$work/ebb-root" \
    --listen "127.0.0.1:$ebb_port" 2> "$work/kill.log" > /dev/null &
pids+=("$!")
wait_port "$ebb_port"
export EBB_DATA_DIR=$work/data EBB_SECRET_STORE=file EBB_SECRET_KEY=$work/secret.key
"$BIN/ebb" --embedded transfer --upload --name killed "http://127.0.0.1:$ebb_port/k.bin" "$src" \
    >/dev/null 2>&1 &
client=$!
sleep "${KILL_AFTER:-0.6}"
kill -9 "$client"; wait "$client" 2>/dev/null || true
"$BIN/ebb" --embedded resume killed --wait >/dev/null 2>&1
cmp -s "$src" "$work/ebb-root/k.bin" || { echo "after kill -9: upload differs" >&2; exit 1; }
python3 - "$work/kill.log" "$SIZE_MIB" >> "$RES/report.md" <<'EOF'
import re, sys
frags = [(int(a), int(b)) for a, b in re.findall(r"first=(\d+) last=(\d+)", open(sys.argv[1]).read())]
total = int(sys.argv[2]) * 1024 * 1024
sent = sum(b - a + 1 for a, b in frags)
print(f"\nafter kill -9 of the engine mid-upload: {sent - total} bytes re-sent "
      f"(largest fragment {max(b - a + 1 for a, b in frags)}; {len(frags)} fragments)")
EOF
cat "$RES/report.md"
echo "report: $RES/report.md" >&2
