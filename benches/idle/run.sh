#!/usr/bin/env bash
# Idle-capacity benchmark: does a background download use the link when it is quiet, leave a
# foreground flow (bulk or web-like) its goodput and latency, and take the link back when it ends?
# Runs as root on a shaped three-namespace bed (the shared netbed, or any bed.sh with the same
# verbs: up/down/run/files, server 10.77.1.1:8080), over a matrix of links.
#
#   sudo benches/idle/run.sh                 # the default matrix, cubic and bbr, ebb aria2c curl
#   NO_BUILD=1 MATRIX="10mbit/50ms/100ms/0" CCS=cubic TOOLS="ebb curl" benches/idle/run.sh
#   RATE=50mbit DELAY=20ms QLAT=100ms benches/idle/run.sh   # the old one-link form (+ cap table)
#
# Environment:
#   MATRIX   links, space-separated RATE/DELAY/QLAT/LOSS (DELAY = added RTT, QLAT = bottleneck
#            queue as time, LOSS e.g. 0 or 1%). Default:
#            2mbit/100ms/300ms/0 10mbit/50ms/100ms/0 50mbit/20ms/100ms/0 200mbit/5ms/25ms/0
#            50mbit/20ms/100ms/1%
#            Unset MATRIX with RATE set: the one link RATE/DELAY(20ms)/QLAT(100ms)/LOSS(0).
#   CCS      server congestion controls (default "cubic bbr"); TOOLS background downloaders
#            (default "ebb aria2c curl"; also `onoff`, onoff.py, set by its ONOFF_* variables);
#            REPEAT runs of each (default 1; more: medians, and [min-max] in ebb's cells)
#   CAPS     rate caps in bytes/s for the cap table (default: none with a MATRIX; "500000
#            2000000" in the old RATE form). The cap table runs only when CAPS is set, on the
#            first link of the matrix with the kernel's default congestion control.
#   NO_BUILD=1  skip `cargo build` (EBB= picks the binary; default target/release/ebb)
#   BED (the bed script), NETBED_PREFIX / NETBED_DIR (passed to it), OUT (default
#   target/idle-bench), FILE_SIZE (server files, default 1G: no download ends within a scenario
#   even at 200 mbit), DETAIL=1 (also a table of absolute Mbit/s per link)
#
# Per link, per CC, per repeat: the idle baseline (tool `none`), then for each tool two
# scenarios of scenario.py, each ~30 s, run in the client namespace:
#   bulk  the background alone 8 s (ping the server from 3 s to 8 s), a foreground bulk curl for
#         12 s, then 8 s more
#   web   the background alone 8 s, 12 s of web-like fetches (a fresh curl of 100 KiB on a 200 ms
#         grid, one at a time), then 8 s more
# Prints at the start an estimate of the duration, on stderr one line per run, and per link a
# markdown table (cells `cubic / bbr`): background alone as % of the link; the foreground curl's
# goodput as % of its goodput alone; web fetch p50 latency (and the idle one); the background's
# goodput during the web phase as % of what the web leaves (0.955 x rate - web goodput); seconds
# until the background is back above 85 % of the link after the foreground / web phase ends; ping
# p50 while the background runs alone (and idle). The goal column says whether ebb met each goal,
# per CC (ok / MISS). Then the cap table if CAPS is set: the 10 s average and the worst 100 ms
# window as multiples of the cap.
# Files: $OUT/<link>/<cc>-<tool>-<bulk|web>-<rep>.json (raw, one per run), .log beside it (the
# background's output; ebb's with EBB_LOG=ebb_core::bandwidth=debug), $OUT/<link>/link.json, and
# $OUT/summary.json (every metric per link, cc and tool: median, min, max, runs; ebb's goals).
# ebb's `bandwidth show --json` every 500 ms goes to <run>-bw.jsonl only if it can reach the
# engine (the scenario runs `ebb --embedded transfer`, which has no socket: then no file).
# A run that fails is kept as {"error": ...} (stderr in <run>.err), counted under its link's
# table, and the matrix goes on.
# Exit 2: not root, no bed script, a missing tool, a bad MATRIX entry or CC.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/benches/idle
BED=${BED:-$ROOT/../shared/netbed/bed.sh}
DEFAULT_MATRIX="2mbit/100ms/300ms/0 10mbit/50ms/100ms/0 50mbit/20ms/100ms/0 200mbit/5ms/25ms/0 50mbit/20ms/100ms/1%"
if [[ -n ${MATRIX:-} ]]; then
    CAPS=${CAPS:-}
elif [[ -n ${RATE:-} ]]; then
    MATRIX="$RATE/${DELAY:-20ms}/${QLAT:-100ms}/${LOSS:-0}"
    CAPS=${CAPS-500000 2000000}
else
    MATRIX=$DEFAULT_MATRIX
    CAPS=${CAPS:-}
fi
CCS=${CCS-cubic bbr}
TOOLS=${TOOLS-ebb aria2c curl}
REPEAT=${REPEAT:-1}
OUT=${OUT:-$ROOT/target/idle-bench}
FILE_SIZE=${FILE_SIZE:-1G}
export NETBED_DIR=${NETBED_DIR:-/tmp/netbed}
export EBB=${EBB:-$ROOT/target/release/ebb}
URL=http://10.77.1.1:8080

die2() { echo "idle bench: $*" >&2; exit 2; }
[[ $(id -u) == 0 ]] || die2 "run as root (network namespaces)"
[[ -f $BED ]] || die2 "no bed script at $BED (set BED=)"
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die2 "REPEAT must be a positive integer"
need() { command -v "$1" >/dev/null || die2 "missing $1 ($2)"; }
need python3 "runs the scenarios"
need curl "the foreground and web fetches"
need ping "the ping while the background is alone"
need numfmt "coreutils"
for tool in $TOOLS; do
    case $tool in
        ebb) if [[ -n ${NO_BUILD:-} && ${NO_BUILD} != 0 && ! -x $EBB ]]; then
                 die2 "missing ebb: $EBB is not an executable (NO_BUILD is set; set EBB=)"
             fi ;;
        aria2c|curl) need "$tool" "in TOOLS" ;;
        onoff) ;;
        *) die2 "unknown tool '$tool' in TOOLS (ebb, aria2c, curl, onoff)" ;;
    esac
done
for cc in $CCS; do
    grep -qw "$cc" /proc/sys/net/ipv4/tcp_available_congestion_control ||
        die2 "congestion control '$cc' is not available in this kernel ($(cat /proc/sys/net/ipv4/tcp_available_congestion_control))"
done
[[ -n $CCS ]] || [[ -n $CAPS ]] || die2 "nothing to do: CCS and CAPS are both empty"

# link entry -> fields, a directory name, Mbit/s
declare -a LINKS=()
for entry in $MATRIX; do
    IFS=/ read -r l_rate l_delay l_qlat l_loss l_extra <<<"$entry"
    [[ -n $l_loss && -z $l_extra ]] || die2 "bad MATRIX entry '$entry' (RATE/DELAY/QLAT/LOSS, e.g. 10mbit/50ms/100ms/0)"
    [[ ${l_rate,,} =~ ^[0-9.]+(k|m|g)?bit$ ]] || die2 "bad rate in '$entry' (e.g. 10mbit)"
    [[ ${l_delay,,} =~ ^[0-9.]+(ms|s|us)?$ && ${l_qlat,,} =~ ^[0-9.]+(ms|s|us)?$ ]] || die2 "bad DELAY or QLAT in '$entry' (e.g. 50ms)"
    [[ $l_loss =~ ^[0-9.]+%?$ ]] || die2 "bad LOSS in '$entry' (e.g. 0 or 1%)"
    LINKS+=("$entry")
done
link_dir() { local e=${1//\//_}; echo "${e//%/pct}"; }
rate_mbit() { python3 -c 'import re, sys
n, u = re.match(r"([\d.]+)([a-z]*)bit$", sys.argv[1].lower()).groups()
print(float(n) * {"": 1e-6, "k": 1e-3, "m": 1, "g": 1e3}[u])' "$1"; }

if [[ -n ${NO_BUILD:-} && ${NO_BUILD} != 0 ]]; then
    :
elif [[ $TOOLS == *ebb* ]]; then
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bins
    [[ -x $EBB ]] || die2 "missing ebb: $EBB is not an executable after the build"
fi

# Server files: big enough that no background or foreground download ends within a scenario
# (28 s at 200 mbit ~ 700 MB), and the web object.
WWW=$NETBED_DIR/www
want=$(numfmt --from=iec "$FILE_SIZE")
for f in big1 big2; do
    if (( $(stat -c %s "$WWW/$f.bin" 2>/dev/null || echo 0) < want )); then
        mkdir -p "$NETBED_DIR"
        avail=$(( $(df --output=avail -B1 "$NETBED_DIR" | tail -1) ))
        (( avail > 5 * want )) || die2 "not enough disk for 3 x $FILE_SIZE server files in $NETBED_DIR"
        echo "making the server files (3 x $FILE_SIZE) in $WWW" >&2
        bash "$BED" files "$FILE_SIZE" >/dev/null
        break
    fi
done
[[ $(stat -c %s "$WWW/web100k.bin" 2>/dev/null || echo 0) == 102400 ]] ||
    head -c 102400 /dev/urandom > "$WWW/web100k.bin"

mkdir -p "$OUT"
trap 'bash "$BED" down >/dev/null 2>&1 || true' EXIT
bed_up() { # RATE DELAY QLAT LOSS [CC]
    bash "$BED" down >/dev/null 2>&1 || true
    CC=${5:-} QLAT=$3 bash "$BED" up "$1" "$2" "$4" >/dev/null
}

# Duration (measured): per link, cc and repeat, the baseline ~31 s, ~58 s per tool (two ~28 s
# scenarios, starting and stopping), ~3 s for the bed; a cap run ~13 s.
nlinks=${#LINKS[@]} nccs=$(wc -w <<<"$CCS") ntools=$(wc -w <<<"$TOOLS") ncaps=$(wc -w <<<"$CAPS")
est=$(( nlinks * nccs * REPEAT * (31 + 58 * ntools + 3) + ncaps * ntools * 13 ))
nruns=$(( nlinks * nccs * REPEAT * 2 * (ntools + 1) ))
echo "idle bench: $nlinks link(s) x $nccs cc x $ntools tool(s) x $REPEAT repeat(s), $nruns runs: about $(( (est + 59) / 60 )) minutes" >&2

scenario() { # LINKDIR CC TOOL KIND REP MBIT
    local d=$1 cc=$2 tool=$3 kind=$4 rep=$5 mbit=$6 f rc=0 fg_url=$URL/big2.bin
    f=$OUT/$d/$cc-$tool-$kind-$rep
    [[ $kind == web ]] && fg_url=$URL/web100k.bin
    bash "$BED" run python3 "$HERE/scenario.py" "$tool" "$URL/big1.bin" "$fg_url" \
        "$OUT/work/$cc-$tool" --link-mbit "$mbit" --kind "$kind" --log "$f.log" \
        --bw-log "$f-bw.jsonl" > "$f.json.part" 2> "$f.err" || rc=$?
    if (( rc == 0 )) && [[ -s $f.json.part ]]; then
        mv "$f.json.part" "$f.json"
        [[ -s $f.err ]] || rm -f "$f.err"
    else
        rm -f "$f.json.part"
        python3 -c 'import json, sys; print(json.dumps({"tool": sys.argv[1], "kind": sys.argv[2], "error": "scenario.py exit %s, see %s" % (sys.argv[3], sys.argv[4])}))' \
            "$tool" "$kind" "$rc" "$f.err" > "$f.json"
    fi
    done_runs=$(( done_runs + 1 ))
    printf '[%d/%d %s] %s %s %s %s #%s: %s\n' "$done_runs" "$nruns" "$(date +%H:%M:%S)" \
        "${LINKS[$li]}" "$cc" "$tool" "$kind" "$rep" "$(python3 "$HERE/tables.py" --brief "$f.json")" >&2
}

t_start=$SECONDS done_runs=0
declare -a DIRS=()
for li in "${!LINKS[@]}"; do
    [[ -n $CCS ]] || break
    entry=${LINKS[$li]}
    IFS=/ read -r l_rate l_delay l_qlat l_loss <<<"$entry"
    d=$(link_dir "$entry") mbit=$(rate_mbit "$l_rate")
    DIRS+=("$d")
    mkdir -p "$OUT/$d"
    rm -f "$OUT/$d"/*.json "$OUT/$d"/*.log "$OUT/$d"/*.err "$OUT/$d"/*.jsonl "$OUT/$d"/*.part
    python3 -c 'import json, sys
e, rate, delay, qlat, loss, mbit, ccs, tools, rep = sys.argv[1:]
print(json.dumps({"entry": e, "rate": rate, "delay": delay, "qlat": qlat, "loss": loss,
                  "rate_mbit": float(mbit), "ccs": ccs.split(), "tools": tools.split(),
                  "repeat": int(rep)}))' \
        "$entry" "$l_rate" "$l_delay" "$l_qlat" "$l_loss" "$mbit" "$CCS" "$TOOLS" "$REPEAT" > "$OUT/$d/link.json"
    t_link=$SECONDS
    for cc in $CCS; do
        bed_up "$l_rate" "$l_delay" "$l_qlat" "$l_loss" "$cc"
        for rep in $(seq "$REPEAT"); do
            for tool in none $TOOLS; do
                for kind in bulk web; do
                    scenario "$d" "$cc" "$tool" "$kind" "$rep" "$mbit"
                done
            done
        done
    done
    bash "$BED" down >/dev/null 2>&1 || true
    echo "idle bench: $entry took $(( SECONDS - t_link )) s" >&2
    echo
    python3 "$HERE/tables.py" ${DETAIL:+--detail} "$OUT" "$d"
    python3 "$HERE/tables.py" --summary "$OUT" "${DIRS[@]}"
done
if (( ${#DIRS[@]} )); then
    echo "idle bench: matrix took $(( (SECONDS - t_start + 30) / 60 )) minutes; raw JSON in $OUT/<link>/, summary in $OUT/summary.json" >&2
fi

[[ -n $CAPS ]] || exit 0
IFS=/ read -r l_rate l_delay l_qlat l_loss <<<"${LINKS[0]}"
bed_up "$l_rate" "$l_delay" "$l_qlat" "$l_loss"
echo
echo "Rate caps on $l_rate / $l_delay RTT / $l_qlat queue / $l_loss loss:"
echo
echo "| tool | cap | 10 s average / cap | worst 100 ms window / cap |"
echo "|---|---|---|---|"
for tool in $TOOLS; do
    for cap in $CAPS; do
        bash "$BED" run python3 "$HERE/cap.py" "$tool" \
            "$URL/big1.bin" "$OUT/work/cap-$tool" "$cap" |
            python3 -c "import json, sys; r = json.load(sys.stdin); print('| %s | %s B/s | %.3f | %.2f |' % (r['tool'], r['cap'], r['avg_x'], r['worst_100ms_x']))"
    done
done
