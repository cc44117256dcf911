#!/usr/bin/env bash
# Idle-capacity benchmark: does a background download leave a foreground flow its goodput, and
# take the link back when it ends? Runs as root on a shaped three-namespace bed (the shared
# netbed, or any bed.sh with the same verbs: up/down/run, server 10.77.1.1:8080).
#
#   sudo benches/idle/run.sh                 # 50 mbit, 20 ms, 100 ms queue; cubic and bbr
#   BED=/path/to/bed.sh CCS="cubic" TOOLS="ebb curl" benches/idle/run.sh
#
# For each server congestion control: the foreground curl alone (its baseline), then with ebb,
# aria2c and curl as the background downloader. Then how exactly each holds a rate cap (CAPS, in
# bytes/s): the 10 s average and the worst 100 ms window, as multiples of the cap. Prints markdown
# tables; raw JSON per run goes to $OUT (default target/idle-bench).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BED=${BED:-$ROOT/../shared/netbed/bed.sh}
RATE=${RATE:-50mbit} DELAY=${DELAY:-20ms} QLAT=${QLAT:-100ms}
CCS=${CCS:-cubic bbr}
TOOLS=${TOOLS:-ebb aria2c curl}
CAPS=${CAPS:-500000 2000000}
OUT=${OUT:-$ROOT/target/idle-bench}
export NETBED_DIR=${NETBED_DIR:-/tmp/netbed}
LINK_MBIT=${RATE%mbit}

[[ $(id -u) == 0 ]] || { echo "run as root (network namespaces)" >&2; exit 2; }
[[ -x $BED || -f $BED ]] || { echo "no bed script at $BED (set BED=)" >&2; exit 2; }
for tool in curl aria2c python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bins
export EBB=$ROOT/target/release/ebb
mkdir -p "$OUT"
[[ -s $NETBED_DIR/www/big2.bin ]] || bash "$BED" files 300M >/dev/null
trap 'bash "$BED" down >/dev/null 2>&1 || true' EXIT

scenario() { # TOOL CC -> JSON file
    local tool=$1 cc=$2 f=$OUT/$cc-$1.json
    bash "$BED" run python3 "$ROOT/benches/idle/scenario.py" "$tool" \
        http://10.77.1.1:8080/big1.bin http://10.77.1.1:8080/big2.bin \
        "$OUT/work-$cc-$tool" --link-mbit "$LINK_MBIT" > "$f"
    echo "$f"
}

echo "| server CC | background | alone Mbit/s (% of $RATE) | fg alone Mbit/s | fg with bg Mbit/s (% kept) | bg during fg Mbit/s | back above 85 % after fg ends |"
echo "|---|---|---|---|---|---|---|"
for cc in $CCS; do
    bash "$BED" down >/dev/null 2>&1 || true
    CC=$cc QLAT=$QLAT bash "$BED" up "$RATE" "$DELAY" >/dev/null
    base=$(scenario none "$cc")
    for tool in $TOOLS; do
        f=$(scenario "$tool" "$cc")
        python3 - "$base" "$f" "$cc" "$LINK_MBIT" <<'PY'
import json, sys
base, run, cc, link = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3], float(sys.argv[4])
fg0, fg = base["fg_mbit"], run["fg_mbit"]
rec = run["recover_s"]
print(f"| {cc} | {run['tool']} | {run['bg_alone_mbit']:.1f} ({100*run['bg_alone_mbit']/link:.0f} %) "
      f"| {fg0:.1f} | {fg:.1f} ({100*fg/fg0:.0f} %) | {run['bg_during_mbit']:.1f} "
      f"| {'never' if rec is None else f'{rec:.1f} s'} |")
PY
    done
done

[[ -n $CAPS ]] || exit 0
if [[ -z $CCS ]]; then # the cap table alone: a bed with the default congestion control
    bash "$BED" down >/dev/null 2>&1 || true
    QLAT=$QLAT bash "$BED" up "$RATE" "$DELAY" >/dev/null
fi
echo
echo "| tool | cap | 10 s average / cap | worst 100 ms window / cap |"
echo "|---|---|---|---|"
for tool in $TOOLS; do
    for cap in $CAPS; do
        bash "$BED" run python3 "$ROOT/benches/idle/cap.py" "$tool" \
            http://10.77.1.1:8080/big1.bin "$OUT/cap-$tool" "$cap" |
            python3 -c "import json, sys; r = json.load(sys.stdin); print('| %s | %s B/s | %.3f | %.2f |' % (r['tool'], r['cap'], r['avg_x'], r['worst_100ms_x']))"
    done
done
