#!/usr/bin/env python3
"""One idle-capacity scenario, run inside the client namespace of a shaped bed.

    scenario.py TOOL URL_BG URL_FG WORKDIR [--link-mbit 50] [--kind bulk|web] [--log FILE]
                [--bw-log FILE]

TOOL is the background downloader: ebb, aria2c or curl, or onoff.py (`none`: no background,
the idle baseline). The background download starts at 0 s and runs alone until ALONE (8 s);
then comes the foreground phase (PHASE, 12 s), then AFTER (8 s) more of the background alone.
Every 100 ms the size of the background's output is sampled (for ebb the data lands in
`.ebb-*.tmp` in WORKDIR).

--kind bulk (the default): the foreground is one bulk `curl URL_FG --max-time 12`. While the
background runs alone, from 3 s to 8 s, `ping -i 0.1` the server.
--kind web: the foreground is web-like: a fresh `curl URL_FG` (a new connection each time; URL_FG
is a small object, e.g. 100 KiB) started on a 200 ms grid, one at a time: at each grid point a
fetch starts unless the previous one still runs. No fetch starts after the 12 s.

With TOOL none the alone phase is 0.5 s (bulk: 5.5 s, so that the idle ping gets its 5 s) and
there is no AFTER. Prints one JSON object:

  bg_alone_mbit   background goodput over [3 s, ALONE]
  recover_s       seconds from the foreground's end until the background's 500 ms goodput is
                  >= 85 % of the nominal link again (null if never)
  bg_exit         {t, rc} if the background exited before the end (it should not)
 bulk:
  fg_mbit         foreground goodput from 2 s after it starts to its end
  bg_during_mbit  background goodput over the same interval
  ping_p50_ms, ping_p90_ms, ping_n   RTTs of the pings (bg alone, or the idle link for `none`)
 web:
  web_n, web_fail         fetches in the phase, and how many failed
  web_p50_ms, web_p90_ms  curl's time_total of the phase's fetches (all of them)
  web_mbit        goodput of the fetches that started from 2 s after the phase's start
  bg_web_mbit     background goodput from 2 s after the phase's start to its end
  web_left_mbit   LINK_GOODPUT x link - web_mbit: what the web traffic leaves of the link
  bg_web_share    bg_web_mbit / web_left_mbit
  fetches         [start s, time_total ms, ok] of each fetch

For ebb, EBB_LOG (default ebb_core::bandwidth=debug) goes to the log file, and every 500 ms
`ebb bandwidth show --json` is captured to --bw-log when it can reach the engine (an embedded
engine has no socket: then the first attempt fails and the capture stops, silently).
Every child process is stopped by its PID at the end, also on errors and signals.
"""
import argparse, glob, json, os, re, shutil, signal, subprocess, sys, time

ALONE, PHASE, AFTER, TICK = 8.0, 12.0, 8.0, 0.1
PING_FROM = 3.0            # ping while the background is alone: [PING_FROM, ALONE]
WEB_GRID = 0.2             # a web fetch may start every 200 ms
SETTLE = 2.0               # goodputs are measured from 2 s after a phase starts
LINK_GOODPUT = 0.955       # one curl alone gets 0.955 x the nominal rate on this bed
RECOVER_FRAC, RECOVER_WIN = 0.85, 0.5
BW_EVERY = 0.5

ap = argparse.ArgumentParser()
ap.add_argument("tool", choices=["ebb", "aria2c", "curl", "onoff", "none"])
ap.add_argument("url_bg")
ap.add_argument("url_fg")
ap.add_argument("work")
ap.add_argument("--link-mbit", type=float, default=50.0)
ap.add_argument("--kind", choices=["bulk", "web"], default="bulk")
ap.add_argument("--log", help="the background's stdout/stderr (default WORKDIR/TOOL.log)")
ap.add_argument("--bw-log", help="ebb bandwidth show --json captures, one JSON a line")
ap.add_argument("--server", default="10.77.1.1", help="host to ping")
a = ap.parse_args()
tool, work, link_mbit = a.tool, a.work, a.link_mbit
ebb = os.environ.get("EBB", "ebb")


def clean_work():
    """Remove what earlier runs left in WORKDIR: downloads, temp files, ebb's queue."""
    os.makedirs(work, exist_ok=True)
    for f in glob.glob(os.path.join(work, "*")) + glob.glob(os.path.join(work, ".ebb-*")):
        if os.path.isfile(f) or os.path.islink(f):
            os.unlink(f)
    shutil.rmtree(os.path.join(work, "data"), ignore_errors=True)


clean_work()
bg_out, fg_out = os.path.join(work, "bg.bin"), os.path.join(work, "fg.bin")
log = open(a.log or os.path.join(work, f"{tool}.log"), "w")


def written(path):
    """Bytes written into a file: its allocated blocks, not its length (a download split over
    ranged connections writes each split at its place in a sparse file), at most its length."""
    try:
        st = os.stat(path)
    except OSError:
        return 0
    return min(st.st_size, st.st_blocks * 512)


def size(patterns):
    return sum(written(p) for pat in patterns for p in glob.glob(pat) if os.path.isfile(p))


bg_patterns, env, cmd = [bg_out], None, None
if tool == "ebb":
    env = dict(os.environ, EBB_DATA_DIR=os.path.join(work, "data"))
    env.setdefault("EBB_LOG", "ebb_core::bandwidth=debug")
    cmd = [ebb, "--embedded", "transfer", a.url_bg, bg_out]
    bg_patterns = [os.path.join(work, ".ebb-*.tmp"), bg_out]
elif tool == "aria2c":
    # --disk-cache=0: else aria2c writes whole 1 MiB pieces, and the sampled size moves in steps
    cmd = ["aria2c", "-q", "-x1", "--file-allocation=none", "--allow-overwrite=true",
           "--disk-cache=0", "-d", work, "-o", "bg.bin", a.url_bg]
elif tool == "curl":
    cmd = ["curl", "-s", "-o", bg_out, a.url_bg]
elif tool == "onoff":
    cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "onoff.py"),
           a.url_bg, bg_out]

# Every process this scenario starts, so that all of them are stopped by PID at the end.
children = []


def spawn(argv, **kw):
    p = subprocess.Popen(argv, **kw)
    children.append(p)
    return p


def stop(p, sig=signal.SIGTERM, grace=5.0):
    if p is None or p.poll() is not None:
        return
    try:
        p.send_signal(sig)
        p.wait(grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    except ProcessLookupError:
        pass


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGHUP, on_signal)

if cmd:
    alone = ALONE
else:
    alone = 5.5 if a.kind == "bulk" else 0.5  # bulk: the idle ping from 0.5 s to 5.5 s
ping_from = PING_FROM if cmd else 0.5
phase_end_nominal = alone + PHASE

samples = []               # (t, bg bytes, fg bytes)
fg = ping = web = None     # the running foreground curl, ping, web fetch
fg_started = fg_ended = None
ping_out = None
fetches = []               # (start, time_total s or None, ok, bytes)
web_started_at = None
next_grid = None
bw_ok = tool == "ebb" and bool(a.bw_log)
bw_proc, bw_started, bw_next, bw_n = None, 0.0, 0.0, 0
bw_file = None
bg_exit = None
res = {"tool": tool, "kind": a.kind, "link_mbit": link_mbit}


def finish_web(t):
    global web
    out, _ = web.communicate()
    parts = out.decode(errors="replace").split()
    ok = web.returncode == 0 and len(parts) == 3 and parts[2] == "200"
    total = float(parts[0]) if parts else None
    nbytes = int(float(parts[1])) if len(parts) > 1 else 0
    fetches.append((web_started_at, total, ok, nbytes, t))
    web = None


def bw_env():
    e = dict(os.environ, EBB_DATA_DIR=os.path.join(work, "data"), EBB_NO_AUTOSTART="1",
             EBB_SOCKET=os.path.join(work, "ebbd.sock"))
    e.pop("EBB_EMBEDDED", None)
    return e


t0 = time.monotonic()
bg = None
try:
    bg = spawn(cmd, env=env, stdout=log, stderr=log) if cmd else None
    end = phase_end_nominal + (AFTER if bg else 0)
    while True:
        t = time.monotonic() - t0
        if bg is not None and bg_exit is None and bg.poll() is not None:
            bg_exit = {"t": round(t, 2), "rc": bg.returncode}
        # ping while the background is alone (bulk only)
        if a.kind == "bulk" and ping is None and t >= ping_from:
            ping_out = open(os.path.join(work, "ping.txt"), "w")
            ping = spawn(["ping", "-n", "-i", "0.1", "-w", str(int(alone - ping_from) + 2),
                          a.server], stdout=ping_out, stderr=subprocess.DEVNULL)
        if ping is not None and t >= alone:
            stop(ping, signal.SIGINT)
        # the foreground
        if a.kind == "bulk":
            if fg is None and t >= alone:
                fg = spawn(["curl", "-s", "-o", fg_out, "--max-time", str(PHASE), a.url_fg])
                fg_started = t
            if fg is not None and fg_ended is None and fg.poll() is not None:
                fg_ended = t
        else:
            if next_grid is None and t >= alone - 1e-6:
                next_grid = fg_started = alone
            if web is not None and web.poll() is not None:
                finish_web(t)
            if next_grid is not None and t >= next_grid - 1e-6:
                while next_grid <= t + 1e-6:
                    next_grid += WEB_GRID
                if web is None and t < phase_end_nominal - 1e-6:
                    web_started_at = t
                    web = spawn(["curl", "-s", "-o", os.devnull, "--max-time", "30", "-w",
                                 "%{time_total} %{size_download} %{http_code}", a.url_fg],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            if fg_ended is None and t >= phase_end_nominal - 1e-6 and web is None:
                fg_ended = t
        # ebb bandwidth show, every 500 ms, while it works
        if bw_ok:
            if bw_proc is not None and bw_proc.poll() is not None:
                out, _ = bw_proc.communicate()
                try:
                    doc = json.loads(out) if bw_proc.returncode == 0 else None
                except ValueError:
                    doc = None
                if doc is None:
                    bw_ok = False
                else:
                    bw_file = bw_file or open(a.bw_log, "w")
                    bw_file.write(json.dumps({"t": round(bw_started, 2), "show": doc}) + "\n")
                    bw_n += 1
                bw_proc = None
            elif bw_proc is not None and t - bw_started > 2.0:
                stop(bw_proc)
                bw_proc, bw_ok = None, False
            if bw_ok and bw_proc is None and t >= bw_next:
                bw_started, bw_next = t, t + BW_EVERY
                bw_proc = spawn([ebb, "--no-autostart", "bandwidth", "show", "--json"],
                                env=bw_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        samples.append((t, size(bg_patterns) if bg else 0, size([fg_out])))
        if t >= end and fg_ended is not None:
            break
        time.sleep(TICK - ((time.monotonic() - t0) % TICK))
finally:
    # ebb: SIGINT is its Ctrl-C (it checkpoints and exits); the others: SIGTERM. Then KILL.
    for p in reversed(children):
        stop(p, signal.SIGINT if p is bg and tool == "ebb" else signal.SIGTERM,
             10.0 if p is bg else 3.0)
    if ping_out:
        ping_out.close()
    if bw_file:
        bw_file.close()
    log.close()


def rate(col, t_a, t_b):
    """Mbit/s of column col between times t_a and t_b (nearest samples)."""
    sa = min(samples, key=lambda s: abs(s[0] - t_a))
    sb = min(samples, key=lambda s: abs(s[0] - t_b))
    return (sb[col] - sa[col]) * 8 / 1e6 / max(sb[0] - sa[0], 1e-9)


def recover(after):
    for s in samples:
        if s[0] >= after and s[0] + RECOVER_WIN <= samples[-1][0]:
            if rate(1, s[0], s[0] + RECOVER_WIN) >= RECOVER_FRAC * link_mbit:
                return round(s[0] + RECOVER_WIN - after, 2)
    return None


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * q
    i = int(k)
    return xs[i] + (xs[min(i + 1, len(xs) - 1)] - xs[i]) * (k - i)


def r2(x):
    return None if x is None else round(x, 2)


if bg:
    res["bg_alone_mbit"] = r2(rate(1, 3.0, alone))
    res["recover_s"] = recover(fg_ended)
    if bg_exit:
        res["bg_exit"] = bg_exit
if a.kind == "bulk":
    res["fg_mbit"] = r2(rate(2, fg_started + SETTLE, fg_ended))
    if bg:
        res["bg_during_mbit"] = r2(rate(1, fg_started + SETTLE, fg_ended))
    rtts = []
    if ping_out:
        with open(ping_out.name) as f:
            rtts = [float(m.group(1)) for m in re.finditer(r"time=([\d.]+) ms", f.read())]
    res["ping_p50_ms"], res["ping_p90_ms"], res["ping_n"] = r2(pct(rtts, .5)), r2(pct(rtts, .9)), len(rtts)
else:
    times = [f[1] * 1000 for f in fetches if f[2]]
    res["web_n"], res["web_fail"] = len(fetches), sum(1 for f in fetches if not f[2])
    res["web_p50_ms"], res["web_p90_ms"] = r2(pct(times, .5)), r2(pct(times, .9))
    win_a = fg_started + SETTLE
    web_bytes = sum(f[3] for f in fetches if f[2] and f[0] >= win_a)
    res["web_mbit"] = r2(web_bytes * 8 / 1e6 / max(fg_ended - win_a, 1e-9))
    if bg:
        res["bg_web_mbit"] = r2(rate(1, win_a, fg_ended))
        res["web_left_mbit"] = r2(LINK_GOODPUT * link_mbit - res["web_mbit"])
        res["bg_web_share"] = (round(res["bg_web_mbit"] / res["web_left_mbit"], 3)
                               if res["web_left_mbit"] > 0 else None)
    res["fetches"] = [(round(f[0], 2), None if f[1] is None else round(f[1] * 1000, 1), f[2])
                      for f in fetches]
res["phase"] = [round(fg_started, 2), round(fg_ended, 2)]
if tool == "ebb" and a.bw_log:
    res["bw_show_n"] = bw_n
res["series"] = [(round(s[0], 2), s[1], s[2]) for s in samples[::5]]
# the downloads are big (up to ~1 GB at 200 mbit): keep only the logs
for f in (bg_out, fg_out, os.path.join(work, "ping.txt")) + tuple(glob.glob(os.path.join(work, ".ebb-*"))):
    if os.path.isfile(f):
        os.unlink(f)
shutil.rmtree(os.path.join(work, "data"), ignore_errors=True)
print(json.dumps(res))
