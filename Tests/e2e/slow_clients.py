"""Slow clients for the end-to-end tests: slowloris connections and slow readers against
one port on loopback, run as a separate process so their work does not share the test's
interpreter (and GIL) with the client whose latency is measured.

  slowloris  open, send a request head one byte every `--trickle` seconds, never finish
             it; when the gateway closes one (408 or EOF), note when and open another, as
             an attack tool would (at most `--reconnect-rate` per second, 0: at once).
  readers    send `GET <path>` once with a 4 KiB receive buffer, then read at most
             `--read-rate` bytes per second: the gateway must stop reading from the
             upstream instead of buffering the response.

Everything is bounded: it stops after `--seconds`, or as soon as its stdin closes or says
"stop". It prints JSON lines on stdout: {"event": "ready", ...} once every connection is
open and every reader has its response head, then {"event": "summary", ...} when it stops.
Usage: slow_clients.py PORT [--slowloris N] [--readers N] [--path P] [--trickle S]
       [--read-rate B] [--seconds S]
"""

import argparse
import json
import selectors
import socket
import statistics
import sys
import time

# A head that never ends: a request line, then header lines forever.
HEAD_START = b"GET /v1/slowloris HTTP/1.1\r\nHost: gw\r\n"
HEAD_LINE = b"X-Loris: aaaaaaaa\r\n"


def head_byte(index: int) -> bytes:
    if index < len(HEAD_START):
        return HEAD_START[index:index + 1]
    offset = (index - len(HEAD_START)) % len(HEAD_LINE)
    return HEAD_LINE[offset:offset + 1]


class Loris:
    def __init__(self, port: int, now: float):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setblocking(False)
        self.opened = now
        self.sent = 0
        self.answer = b""
        self.send_byte(now)

    def send_byte(self, now: float) -> None:
        try:
            self.sock.send(head_byte(self.sent))
            self.sent += 1
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            pass  # closed by the gateway: the read side notices
        self.last_send = now


class Reader:
    def __init__(self, port: int, path: str):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A small receive window: the gateway's data waits in its own buffers, not in ours.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: gw\r\n\r\n".encode())
        sock.setblocking(False)
        self.sock = sock
        self.head = b""
        self.status = None
        self.body_bytes = 0
        self.closed = False

    def read(self, budget: int) -> None:
        if self.closed:
            return
        try:
            data = self.sock.recv(budget)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.closed = True
            self.sock.close()
            return
        if self.status is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end >= 0:
                self.status = int(self.head.split(b" ", 2)[1])
                self.body_bytes = len(self.head) - end - 4
                self.head = b""
        else:
            self.body_bytes += len(data)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--slowloris", type=int, default=1000)
    parser.add_argument("--readers", type=int, default=100)
    parser.add_argument("--path", default="/download?bytes=10485760")
    parser.add_argument("--trickle", type=float, default=2.0)
    parser.add_argument("--read-rate", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--reconnect-rate", type=float, default=0.0)
    args = parser.parse_args()

    started = time.monotonic()
    deadline = started + args.seconds
    selector = selectors.DefaultSelector()
    selector.register(sys.stdin, selectors.EVENT_READ, "stdin")
    lorises = {}
    opened = 0
    refused = 0
    closes = []  # seconds from a loris's first byte to its close
    answered_408 = 0
    reopen_due = []  # when each pending reopen may happen (--reconnect-rate)
    last_reopen = [0.0]

    def open_loris(now: float) -> None:
        nonlocal opened, refused
        try:
            loris = Loris(args.port, now)
        except OSError:
            refused += 1
            return
        opened += 1
        lorises[loris.sock.fileno()] = loris
        selector.register(loris.sock, selectors.EVENT_READ, "loris")

    now = time.monotonic()
    for _ in range(args.slowloris):
        open_loris(now)
    readers = [Reader(args.port, args.path) for _ in range(args.readers)]
    for reader in readers:
        reader.sock.setblocking(True)
        reader.sock.settimeout(10)
        while reader.status is None and not reader.closed:
            try:
                data = reader.sock.recv(1024)
            except OSError:
                data = b""
            if not data:
                reader.closed = True
                break
            reader.head += data
            if b"\r\n\r\n" in reader.head:
                end = reader.head.find(b"\r\n\r\n")
                reader.status = int(reader.head.split(b" ", 2)[1])
                reader.body_bytes = len(reader.head) - end - 4
        reader.sock.setblocking(False)
    ready_at = time.monotonic() - started
    print(json.dumps({
        "event": "ready",
        "slowloris_open": len(lorises),
        "slowloris_refused": refused,
        "readers_with_head": sum(1 for r in readers if r.status is not None),
        "reader_statuses": sorted({r.status for r in readers if r.status is not None}),
        "seconds": round(ready_at, 3),
    }), flush=True)

    next_read = time.monotonic() + 1.0
    stop = False
    while not stop and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.05):
            if key.data == "stdin":
                line = sys.stdin.readline()
                if not line or line.strip() == "stop":
                    stop = True
                continue
            loris = lorises.get(key.fd)
            if loris is None:
                continue
            try:
                data = loris.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data:
                loris.answer += data[:64]
                continue
            now = time.monotonic()
            closes.append(now - loris.opened)
            if loris.answer.startswith(b"HTTP/1.1 408"):
                answered_408 += 1
            selector.unregister(loris.sock)
            del lorises[key.fd]
            loris.sock.close()
            if args.reconnect_rate > 0:
                last_reopen[0] = max(now, last_reopen[0] + 1.0 / args.reconnect_rate)
                reopen_due.append(last_reopen[0])
            else:
                open_loris(now)
        now = time.monotonic()
        while reopen_due and reopen_due[0] <= now:
            reopen_due.pop(0)
            open_loris(now)
        for loris in list(lorises.values()):
            if now - loris.last_send >= args.trickle:
                loris.send_byte(now)
        if now >= next_read:
            next_read += 1.0
            for reader in readers:
                reader.read(args.read_rate)

    summary = {
        "event": "summary",
        "seconds": round(time.monotonic() - started, 3),
        "slowloris_opened": opened,
        "slowloris_refused": refused,
        "slowloris_open_at_end": len(lorises),
        "slowloris_closed_by_gateway": len(closes),
        "slowloris_answered_408": answered_408,
        "slowloris_close_seconds": {
            "min": round(min(closes), 3), "median": round(statistics.median(closes), 3),
            "max": round(max(closes), 3),
        } if closes else None,
        "readers": len(readers),
        "readers_open_at_end": sum(1 for r in readers if not r.closed),
        "reader_body_bytes_max": max((r.body_bytes for r in readers), default=0),
        "reader_body_bytes_total": sum(r.body_bytes for r in readers),
    }
    print(json.dumps(summary), flush=True)
    for loris in lorises.values():
        loris.sock.close()
    for reader in readers:
        if not reader.closed:
            reader.sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
