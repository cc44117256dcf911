#!/usr/bin/env python3
"""How exactly a downloader holds a rate cap: average over 10 s and the worst 100 ms window.

    cap.py TOOL URL WORKDIR RATE_BYTES     (TOOL: ebb, curl, aria2c)

Samples the size of the download every 10 ms. Prints one JSON object: the average rate and the
worst 100 ms window, both as multiples of the cap.
"""
import glob, json, os, signal, subprocess, sys, time

tool, url, work, rate = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
SECS, STEP = 10.0, 0.01
ebb = os.environ.get("EBB", "ebb")
os.makedirs(work, exist_ok=True)
for f in glob.glob(os.path.join(work, "*")) + glob.glob(os.path.join(work, ".ebb-*")):
    if os.path.isfile(f):
        os.unlink(f)
out = os.path.join(work, "out.bin")
env = dict(os.environ, EBB_DATA_DIR=os.path.join(work, "data"), EBB_EMBEDDED="1")
pattern = out
if tool == "ebb":
    subprocess.run([ebb, "bandwidth", "set", "--idle", "off", "--max-rate", str(rate)],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    cmd = [ebb, "transfer", url, out]
    pattern = os.path.join(work, ".ebb-*.tmp")
elif tool == "curl":
    cmd = ["curl", "-s", "--limit-rate", str(rate), "-o", out, url]
elif tool == "aria2c":
    # --disk-cache=0: else aria2c writes whole 1 MiB pieces, and the sampled size moves in steps
    cmd = ["aria2c", "-q", "-x1", "--file-allocation=none", "--disk-cache=0",
           f"--max-download-limit={rate}", "-d", work, "-o", "out.bin", url]
else:
    sys.exit(f"unknown tool {tool}")
p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
t0 = time.monotonic()
samples = []
while time.monotonic() - t0 < SECS + 1.0:
    size = sum(os.path.getsize(f) for f in glob.glob(pattern) if os.path.isfile(f))
    samples.append((time.monotonic() - t0, size))
    time.sleep(STEP)
p.send_signal(signal.SIGINT)
try:
    p.wait(10)
except subprocess.TimeoutExpired:
    p.kill()
# Skip the first second (connection setup), then 10 s.
s = [x for x in samples if x[0] >= 1.0]
avg = (s[-1][1] - s[0][1]) / (s[-1][0] - s[0][0])
worst = 0
j = 0
for i in range(len(s)):
    while j < len(s) and s[j][0] - s[i][0] <= 0.1:
        j += 1
    worst = max(worst, s[j - 1][1] - s[i][1])
print(json.dumps({"tool": tool, "cap": rate, "avg_x": round(avg / rate, 3),
                  "worst_100ms_x": round(worst / (rate * 0.1), 2)}))
