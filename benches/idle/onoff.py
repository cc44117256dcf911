#!/usr/bin/env python3
"""An on/off background download: how much of what web-like fetches leave can any background
take, at what cost to their latency? (Not ebb: a yardstick for it, on a slow link.)

    onoff.py URL OUT

One HTTP/1.0 GET of URL, its body written to OUT. Every tick the interface's received bytes,
less this download's own (`TCP_INFO` bytes received, times the Ethernet/IP/TCP overhead), are
someone else's. The download's receive window is clamped (`TCP_WINDOW_CLAMP`) to WIN bytes while
no one else's bytes have been seen for HOLD ticks in a row, and shut to FLOOR bytes the tick they
appear. A window's data still arrive for a round trip after it shuts (the kernel never takes
back a window it offered).

Environment (all optional): ONOFF_WIN (bytes, default 25000: one round trip of 2 mbit / 100 ms),
ONOFF_FLOOR (2896: two segments), ONOFF_TICK (0.05 s), ONOFF_HOLD (2 ticks), ONOFF_THRESH (bytes
of someone else's in a tick that count, default 3000; 60 counts a bare SYN-ACK), ONOFF_IFACE
(cli0, the bed's client interface), ONOFF_LOG (a file: one line per tick, `t foreign open`).
Linux only. Runs until the body ends or SIGTERM/SIGINT.
"""
import os, select, signal, socket, struct, sys, time
from urllib.parse import urlsplit

TCP_WINDOW_CLAMP = 10          # linux/tcp.h
TCPI_BYTES_RECEIVED = 128      # offset of tcpi_bytes_received (u64) in struct tcp_info
OVERHEAD = 1514 / 1448         # wire bytes per payload byte of a full segment


def env(name, default, kind=int):
    try:
        return kind(os.environ.get(name, default))
    except ValueError:
        sys.exit(f"onoff: {name} must be a number, not {os.environ[name]!r}")


WIN, FLOOR = env("ONOFF_WIN", 25000), env("ONOFF_FLOOR", 2896)
TICK, HOLD = env("ONOFF_TICK", 0.05, float), env("ONOFF_HOLD", 2)
THRESH, IFACE = env("ONOFF_THRESH", 3000), os.environ.get("ONOFF_IFACE", "cli0")
if TICK <= 0 or min(WIN, FLOOR, HOLD, THRESH) < 1:
    sys.exit("onoff: ONOFF_TICK, _WIN, _FLOOR, _HOLD and _THRESH must be above 0")


def iface_rx():
    with open("/proc/net/dev") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == IFACE:
                return int(rest.split()[0])
    sys.exit(f"onoff: no interface {IFACE} in /proc/net/dev (set ONOFF_IFACE)")


def own_rx(sock):
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCPI_BYTES_RECEIVED + 8)
    return struct.unpack_from("Q", info, TCPI_BYTES_RECEIVED)[0]


def connect(url):
    u = urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        sys.exit(f"onoff: {url}: only http://HOST[:PORT]/PATH")
    try:
        sock = socket.create_connection((u.hostname, u.port or 80), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, TCP_WINDOW_CLAMP, WIN)
        sock.sendall(f"GET {u.path or '/'} HTTP/1.0\r\nHost: {u.hostname}\r\n\r\n".encode())
    except OSError as e:
        sys.exit(f"onoff: {url}: {e}")
    sock.setblocking(False)
    return sock


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    url, out = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sock = connect(url)
    log = open(os.environ["ONOFF_LOG"], "w", buffering=1) if os.environ.get("ONOFF_LOG") else None
    last_if, last_own = iface_rx(), own_rx(sock)
    silent, is_open, head = HOLD, True, b""
    t0 = time.monotonic()
    next_tick = t0 + TICK
    with open(out, "wb", buffering=0) as body:
        while True:
            ready, _, _ = select.select([sock], [], [], max(0.0, next_tick - time.monotonic()))
            if ready:
                try:
                    data = sock.recv(1 << 16)
                except BlockingIOError:
                    data = None
                except OSError as e:
                    sys.exit(f"onoff: {url}: {e}")
                if data == b"":
                    return
                if data and head is not None:  # the response header is not the body
                    head += data
                    end = head.find(b"\r\n\r\n")
                    data = b""
                    if end >= 0:
                        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
                        if status.split()[1:2] != ["200"]:
                            sys.exit(f"onoff: {url}: {status}")
                        data, head = head[end + 4:], None
                if data:
                    body.write(data)
            now = time.monotonic()
            if now < next_tick:
                continue
            while next_tick <= now:  # a late tick counts once, not as ticks of silence
                next_tick += TICK
            cur_if, cur_own = iface_rx(), own_rx(sock)
            foreign = (cur_if - last_if) - OVERHEAD * (cur_own - last_own)
            last_if, last_own = cur_if, cur_own
            silent = silent + 1 if foreign < THRESH else 0
            if (silent >= HOLD) != is_open:
                is_open = not is_open
                sock.setsockopt(socket.IPPROTO_TCP, TCP_WINDOW_CLAMP, WIN if is_open else FLOOR)
            if log:
                log.write(f"{now - t0:.3f} {foreign:.0f} {int(is_open)}\n")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
