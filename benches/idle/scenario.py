#!/usr/bin/env python3
"""One idle-capacity scenario, run inside the client namespace of a shaped bed.

    scenario.py TOOL URL_BG URL_FG WORKDIR [--link-mbit 50]

TOOL is the background downloader: ebb, aria2c or curl (`none` measures the foreground flow
alone). Timeline: the background download starts at 0 s; a foreground curl starts at FG_START
and runs FG_SECS; the background runs on until FG_START + FG_SECS + AFTER. Every 100 ms the sizes
of both downloads are sampled. Prints one JSON object:

  bg_alone_mbit   background goodput over [3 s, FG_START] (ebb alone on the link)
  fg_mbit         foreground goodput from 2 s after it starts to its end
  bg_during_mbit  background goodput over the same interval
  recover_s       seconds from the foreground's end until the background's 500 ms goodput is
                  >= 85 % of the link again (null if never)
"""
import glob, json, os, signal, subprocess, sys, time

FG_START, FG_SECS, AFTER, TICK = 8.0, 12.0, 8.0, 0.1

tool, url_bg, url_fg, work = sys.argv[1:5]
link_mbit = float(sys.argv[sys.argv.index("--link-mbit") + 1]) if "--link-mbit" in sys.argv else 50.0
ebb = os.environ.get("EBB", "ebb")
os.makedirs(work, exist_ok=True)
for f in glob.glob(os.path.join(work, "*")) + glob.glob(os.path.join(work, ".ebb-*")):
    if os.path.isfile(f):
        os.unlink(f)
bg_out, fg_out = os.path.join(work, "bg.bin"), os.path.join(work, "fg.bin")
log = open(os.path.join(work, f"{tool}.log"), "w")

def size(pattern):
    return sum(os.path.getsize(p) for p in glob.glob(pattern) if os.path.isfile(p))

bg_pattern = bg_out
if tool == "ebb":
    env = dict(os.environ, EBB_DATA_DIR=os.path.join(work, "data"))
    env.setdefault("EBB_LOG", "ebb_core::bandwidth=debug")
    cmd = [ebb, "--embedded", "transfer", url_bg, bg_out]
    bg_pattern = os.path.join(work, ".ebb-*.tmp")
elif tool == "aria2c":
    env = None
    cmd = ["aria2c", "-q", "-x1", "--file-allocation=none", "--allow-overwrite=true",
           "-d", work, "-o", "bg.bin", url_bg]
elif tool == "curl":
    env = None
    cmd = ["curl", "-s", "-o", bg_out, url_bg]
elif tool == "none":
    cmd = None
else:
    sys.exit(f"unknown tool {tool}")

t0 = time.monotonic()
bg = subprocess.Popen(cmd, env=env, stdout=log, stderr=log) if cmd else None
fg = None
samples = []  # (t, bg bytes, fg bytes)
end = FG_START + FG_SECS + (AFTER if bg else 0)
fg_started = fg_ended = None
while True:
    t = time.monotonic() - t0
    if fg is None and t >= (FG_START if bg else 0):
        fg = subprocess.Popen(["curl", "-s", "-o", fg_out, "--max-time", str(FG_SECS), url_fg])
        fg_started = t
    if fg is not None and fg_ended is None and fg.poll() is not None:
        fg_ended = t
    samples.append((t, size(bg_pattern) if bg else 0, size(fg_out)))
    if t >= end and (fg_ended is not None):
        break
    time.sleep(TICK - ((time.monotonic() - t0) % TICK))
if bg:
    bg.send_signal(signal.SIGINT)
    try:
        bg.wait(10)
    except subprocess.TimeoutExpired:
        bg.kill()
        bg.wait()

def rate(col, a, b):
    """Mbit/s of column col between times a and b (nearest samples)."""
    sa = min(samples, key=lambda s: abs(s[0] - a)); sb = min(samples, key=lambda s: abs(s[0] - b))
    return (sb[col] - sa[col]) * 8 / 1e6 / max(sb[0] - sa[0], 1e-9)

res = {"tool": tool}
if bg:
    res["bg_alone_mbit"] = round(rate(1, 3.0, fg_started), 2)
    res["bg_during_mbit"] = round(rate(1, fg_started + 2, fg_ended), 2)
    recover = None
    for s in samples:
        if s[0] >= fg_ended and s[0] + 0.5 <= samples[-1][0]:
            if rate(1, s[0], s[0] + 0.5) >= 0.85 * link_mbit:
                recover = round(s[0] + 0.5 - fg_ended, 2)
                break
    res["recover_s"] = recover
res["fg_mbit"] = round(rate(2, fg_started + 2, fg_ended), 2)
res["series"] = [(round(s[0], 2), s[1], s[2]) for s in samples[::5]]
print(json.dumps(res))
