#!/usr/bin/env python3
"""Idle keep-alive clients for the benchmark's idle-connections scenario (bench/run.py).

Opens --connections client connections to 127.0.0.1:--port (at most --parallel connecting
at a time), sends one GET on each and reads its whole response (200, keep-alive), then
leaves every connection open and idle. Prints one line on stdout when all are done:

    OPEN <ok> FAILED <failed> [<first error>]

then holds the connections until a line or EOF arrives on stdin, or --max-seconds passed
(a harness that died never leaves them open for long), closes them all, prints
`CLOSED <n>` and exits. Loopback only; Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

HOST = "127.0.0.1"  # never anything else: this is a load generator
MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024


class ResponseError(Exception):
    pass


async def read_response(reader: asyncio.StreamReader) -> None:
    """Reads one response whole; raises unless it is a 200 the server keeps open."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEAD:
        raise ResponseError("response head too large")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[1] != "200":
        raise ResponseError(f"status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if "close" in headers.get("connection", "").lower():
        raise ResponseError("the server closes the connection after the response")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size > MAX_BODY:
                raise ResponseError("chunk too large")
            await reader.readexactly(size + 2)
            if size == 0:
                return
    length = int(headers.get("content-length", "0"))
    if not 0 <= length <= MAX_BODY:
        raise ResponseError(f"Content-Length {length}")
    await reader.readexactly(length)


async def open_all(port: int, count: int, parallel: int, request: bytes, timeout: float):
    gate = asyncio.Semaphore(parallel)
    kept: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    errors: list[str] = []

    async def one() -> None:
        async with gate:
            writer = None
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
                writer.write(request)
                await asyncio.wait_for(read_response(reader), timeout)
                kept.append((reader, writer))
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ResponseError, ValueError) as e:
                errors.append(f"{type(e).__name__}: {e}")
                if writer is not None:
                    writer.close()

    await asyncio.gather(*(one() for _ in range(count)))
    return kept, errors


async def main_async(a: argparse.Namespace) -> int:
    headers = "".join(f"{h}\r\n" for h in a.header)
    request = f"GET {a.path} HTTP/1.1\r\nHost: {HOST}:{a.port}\r\n{headers}\r\n".encode()
    kept, errors = await open_all(a.port, a.connections, a.parallel, request, a.timeout)
    print(f"OPEN {len(kept)} FAILED {len(errors)}" + (f" {errors[0]}" if errors else ""), flush=True)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), a.max_seconds)
    except asyncio.TimeoutError:
        pass
    for _, writer in kept:
        writer.close()
    for _, writer in kept:
        try:
            await asyncio.wait_for(writer.wait_closed(), 5)
        except (OSError, asyncio.TimeoutError):
            pass
    print(f"CLOSED {len(kept)}", flush=True)
    return 0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--parallel", type=int, default=200, help="connections being opened at the same time")
    p.add_argument("--path", default="/v1/databases")
    p.add_argument("--header", action="append", default=[], help="'Name: value' sent with the request")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds for one connect + response")
    p.add_argument("--max-seconds", type=float, default=300.0, help="hold the connections at most this long")
    a = p.parse_args(argv)
    if not 1 <= a.connections <= 100_000 or not 1 <= a.parallel <= 10_000 or a.max_seconds <= 0:
        p.error("--connections 1..100000, --parallel 1..10000, --max-seconds > 0")
    if any("\r" in h or "\n" in h for h in a.header):
        p.error("a header must be one line")
    return asyncio.run(main_async(a))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
