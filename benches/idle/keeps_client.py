#!/usr/bin/env python3
"""One run of keeps.py, inside the client namespace of a shaped bed.

    keeps_client.py BACKGROUND WORKDIR SECS URL_BG URL_FG

Starts BACKGROUND, waits SETTLE seconds, then runs one bulk `curl URL_FG` for SECS seconds
from a client port in FG_PORTS (so that the sampler can tell it from the background's
connections) and prints its goodput in Mbit/s. BACKGROUND is one of:

  none        the foreground alone
  ebb         `ebb --embedded transfer URL_BG` (EBB: the binary), with idle control on
  paced:NxR   N curls of URL_BG, each paced by the server at R bytes/s (nginx limit_rate,
              `?rate=R`): a background that never reacts to the foreground
  cpu:N       N busy loops and no traffic: what the load of the machine alone costs

Every process it starts is stopped by PID (or its own process group) at the end.
"""
import os, shutil, signal, subprocess, sys, time

SETTLE = 8.0
FG_PORTS = "45000-45099"

if len(sys.argv) != 6:
    sys.exit("usage: keeps_client.py BACKGROUND WORKDIR SECS URL_BG URL_FG")
background, work, secs, url_bg, url_fg = sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:6]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)


def start(kind):
    """The background's process (a group leader where it has children), or None."""
    if kind == "none":
        return None
    if kind == "ebb":
        env = dict(os.environ, EBB_DATA_DIR=os.path.join(work, "data"),
                   EBB_LOG=os.environ.get("EBB_LOG", "ebb_core::bandwidth=debug"))
        log = open(os.path.join(work, "ebb.log"), "w")
        return subprocess.Popen([os.environ.get("EBB", "ebb"), "--embedded", "transfer", url_bg,
                                 os.path.join(work, "bg.bin")], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    name, _, arg = kind.partition(":")
    # Each child ends by itself a little after the run, should the group be missed.
    until = int(SETTLE) + secs + 5
    if name == "paced":
        n, rate = arg.split("x")
        one = f"curl -s --max-time {until} -o /dev/null '{url_bg}?rate={int(rate)}'"
    elif name == "cpu":
        n, one = arg, f"timeout {until} sh -c 'while :; do :; done'"
    else:
        sys.exit(f"unknown background {kind!r}")
    return subprocess.Popen(["sh", "-c", f"for i in $(seq {int(n)}); do {one} & done; wait"],
                            start_new_session=True)


def stop(p):
    if p is None or p.poll() is not None:
        return
    try:
        if p.pid == os.getpgid(p.pid):
            os.killpg(p.pid, signal.SIGTERM)
        else:
            p.terminate()
        p.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        p.kill()
        p.wait()


bg = start(background)
try:
    if bg is not None:
        time.sleep(SETTLE)
    out = subprocess.run(["curl", "-s", "--local-port", FG_PORTS, "-o", "/dev/null",
                          "--max-time", str(secs), "-w", "%{size_download}", url_fg],
                         capture_output=True, text=True).stdout
    print(f"{float(out or 0) * 8 / secs / 1e6:.3f}")
finally:
    stop(bg)
