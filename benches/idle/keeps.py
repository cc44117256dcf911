#!/usr/bin/env python3
"""What a background costs one foreground bulk flow, in long paired runs on a shaped bed.

    sudo benches/idle/keeps.py [BACKGROUND...]

A loss-limited flow's goodput varies by several per cent from one 12 s phase to the next, so
the matrix's "foreground keeps" says little on a lossy link. Here each run is one foreground
curl of SECS seconds, alone and then beside each BACKGROUND in turn, REPEAT times, with the
server-side view of every connection sampled every 100 ms (`ss` in the server namespace: the
foreground's loss rate and RTT, the background's rate) and the bottleneck's queue (`tc`).
BACKGROUND is as in keeps_client.py: `ebb`, `paced:NxR` (N curls paced by the server at R
bytes/s each, never reacting to anyone), `cpu:N` (N busy loops, no traffic). Default:
`ebb paced:8x500000 paced:2x400000 cpu:2`.

Environment: LINK (RATE/DELAY/QLAT/LOSS, default 50mbit/20ms/100ms/1%), CC (the server's
congestion control, default cubic), REPEAT (default 3), SECS (default 60), EBB (the binary,
default target/release/ebb), BED, NETBED_PREFIX, NETBED_DIR (as for run.sh), OUT (default
target/idle-keeps).

Prints a markdown table: per background, its wire rate, the foreground's goodput (median
[min-max] of curl's own figure), the mean as % of the mean alone, and the foreground's loss rate,
mean smoothed RTT and the mean queue at the bottleneck. Raw samples: $OUT/<background>-<n>.jsonl;
ebb's per-tick log (EBB_LOG, default ebb_core::bandwidth=debug): $OUT/ebb-<n>.log.
"""
import json, os, re, statistics, subprocess, sys, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "benches", "idle")
BED = os.environ.get("BED", os.path.join(ROOT, "..", "shared", "netbed", "bed.sh"))
PREFIX = os.environ.get("NETBED_PREFIX", "ebb")
LINK = os.environ.get("LINK", "50mbit/20ms/100ms/1%")
CC = os.environ.get("CC", "cubic")
REPEAT, SECS = int(os.environ.get("REPEAT", "3")), int(os.environ.get("SECS", "60"))
OUT = os.environ.get("OUT", os.path.join(ROOT, "target", "idle-keeps"))
URL = "http://10.77.1.1:8080"
FG_PORTS = range(45000, 45100)  # keeps_client.py's FG_PORTS
SKIP = 2.0                      # the foreground's first seconds (its slow start) are not counted


def bed(*args, env=None, **kw):
    return subprocess.run(["bash", BED, *args], env=dict(os.environ, **(env or {})), **kw)


def netns(ns, *cmd):
    return subprocess.run(["ip", "netns", "exec", PREFIX + ns, *cmd], capture_output=True,
                          text=True).stdout


def field(text, pattern):
    m = re.search(pattern, text)
    return float(m.group(1)) if m else 0.0


def sample():
    """Each :8080 connection's counters (by client port), and the bottleneck's backlog."""
    conns, port = {}, None
    for line in netns("srv", "ss", "-tinH", "state", "established", "( sport = :8080 )").splitlines():
        m = re.search(r":8080\s+\S+:(\d+)", line)
        if m:
            port = int(m.group(1))
            conns[port] = ""
        elif port is not None:
            conns[port] += line
    res = {port: {"rtt": field(text, r"(?<![a-z_])rtt:([\d.]+)"),
                  "acked": field(text, r"bytes_acked:(\d+)"),
                  "segs": field(text, r"data_segs_out:(\d+)"),
                  "retrans": field(text, r"retrans:\d+/(\d+)")} for port, text in conns.items()}
    m = re.search(r"backlog (\d+)b", netns("rtr", "tc", "-s", "qdisc", "show", "dev", "rcli"))
    return {"conns": res, "queue": int(m.group(1)) if m else 0}


def sampler(path, stop):
    t0 = time.monotonic()
    with open(path, "w") as f:
        while not stop.is_set():
            s = sample()
            s["t"] = round(time.monotonic() - t0, 2)
            f.write(json.dumps(s) + "\n")
            stop.wait(0.1)


def figures(path, link_bytes):
    """The foreground's loss %, mean RTT ms; the background's MB/s; the mean queue ms."""
    rows = [json.loads(line) for line in open(path)]
    rows = [r | {"conns": {int(k): v for k, v in r["conns"].items()}} for r in rows]
    fg_rows = [(r, p) for r in rows for p in r["conns"] if p in FG_PORTS]
    if not fg_rows:
        return None
    first = fg_rows[0][0]["t"] + SKIP
    fg_rows = [(r, p) for r, p in fg_rows if r["t"] >= first]
    if len(fg_rows) < 2:
        return None
    (a, pa), (b, _) = fg_rows[0], fg_rows[-1]
    fa, fb = a["conns"][pa], b["conns"][pa]
    # The background's connections that lasted the whole interval.
    both = [p for p in a["conns"] if p not in FG_PORTS and p in b["conns"]]
    bg = lambda r: sum(r["conns"][p]["acked"] for p in both)
    dt = max(b["t"] - a["t"], 1e-3)
    return {"loss": 100 * (fb["retrans"] - fa["retrans"]) / max(fb["segs"] - fa["segs"], 1),
            "rtt": statistics.mean(r["conns"][pa]["rtt"] for r, _ in fg_rows),
            "bg": (bg(b) - bg(a)) / dt / 1e6,
            "queue": 1000 * statistics.mean(r["queue"] for r, _ in fg_rows) / link_bytes}


def run(background, n, link_bytes):
    path = os.path.join(OUT, f"{background.replace(':', '-')}-{n}.jsonl")
    stop = threading.Event()
    t = threading.Thread(target=sampler, args=(path, stop))
    t.start()
    try:
        out = bed("run", "python3", os.path.join(HERE, "keeps_client.py"), background,
                  os.path.join(OUT, "work"), str(SECS), f"{URL}/big1.bin", f"{URL}/big2.bin",
                  capture_output=True, text=True)
    finally:
        stop.set()
        t.join()
    if out.returncode != 0:
        sys.exit(f"keeps.py: {background} run {n} failed (rc {out.returncode}): {out.stderr.strip()}")
    log = os.path.join(OUT, "work", "ebb.log")
    if os.path.exists(log):
        os.replace(log, os.path.join(OUT, f"{background}-{n}.log"))
    fig = figures(path, link_bytes) or {}
    fig["fg"] = float(out.stdout.strip() or 0)
    print(f"{background} {n}: {fig}", file=sys.stderr, flush=True)
    return fig


def table(results):
    alone = statistics.mean(f["fg"] for f in results["none"])
    print(f"\n{LINK}, server {CC}, {REPEAT} x {SECS} s\n")
    print("| background | its rate, MB/s | foreground, Mbit/s | keeps | fg loss | fg RTT, ms | queue, ms |")
    print("|---|---|---|---|---|---|---|")
    for bg, runs in results.items():
        fg = [f["fg"] for f in runs]
        mean = lambda k: statistics.mean(f[k] for f in runs if k in f) if any(k in f for f in runs) else float("nan")
        print(f"| {bg} | {mean('bg'):.2f} | {statistics.median(fg):.2f} [{min(fg):.2f}-{max(fg):.2f}] "
              f"| {100 * statistics.mean(fg) / alone:.0f} % | {mean('loss'):.2f} % | {mean('rtt'):.1f} "
              f"| {mean('queue'):.2f} |")


def main():
    if os.geteuid() != 0:
        sys.exit("keeps.py: run as root (the bed needs network namespaces)")
    backgrounds = sys.argv[1:] or ["ebb", "paced:8x500000", "paced:2x400000", "cpu:2"]
    os.environ.setdefault("EBB", os.path.join(ROOT, "target", "release", "ebb"))
    rate, delay, qlat, loss = LINK.split("/")
    m = re.fullmatch(r"([\d.]+)([kmg])bit", rate)
    if not m:
        sys.exit(f"keeps.py: LINK's rate {rate!r} is not like 50mbit")
    link_bytes = float(m.group(1)) * {"k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)] / 8
    if "ebb" in backgrounds and not os.access(os.environ.get("EBB", ""), os.X_OK):
        sys.exit(f"keeps.py: no ebb binary at {os.environ.get('EBB')!r} (cargo build --release, or EBB=)")
    os.makedirs(OUT, exist_ok=True)
    www = os.path.join(os.environ.get("NETBED_DIR", "/tmp/netbed"), "www")
    if not all(os.path.exists(os.path.join(www, f)) for f in ("big1.bin", "big2.bin")):
        bed("files", "1G", check=True, capture_output=True)
    bed("down", capture_output=True)
    bed("up", rate, delay, loss, env={"CC": CC, "QLAT": qlat}, check=True, capture_output=True)
    try:
        results = {bg: [] for bg in ["none", *backgrounds]}
        for n in range(1, REPEAT + 1):
            for bg in results:
                results[bg].append(run(bg, n, link_bytes))
        table(results)
    finally:
        bed("down", capture_output=True)


if __name__ == "__main__":
    main()
