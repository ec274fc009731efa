#!/usr/bin/env python3
"""Peer auth service for scenario api-key-miss: what nginx `auth_request` asks.

The common way to put API-key auth in front of an API with nginx: an `auth_request`
subrequest per client request to a small service that looks the key up in the shared
store. This one does the gateway's cache-miss work and nothing less: the key's format
and CRC32 checksum, HMAC-SHA256(pepper, key), one Redis GET of `<prefix>apikey:<hash>`,
the JSON record (revoked, expired), the route's scope; then 204 with X-DBAudit-Subject,
-Scopes, -Credential and -Key-Id (nginx passes them upstream with auth_request_set), 401
or 403. It keeps no cache: every request asks Redis.

Python 3 standard library only, asyncio protocols (no streams, no coroutine per request),
HTTP/1.1 keep-alive towards nginx, one persistent Redis connection on which concurrent
lookups are pipelined (RESP spoken here). Single-threaded: pinned with the nginx it
serves, it is probably the bottleneck of that peer; bench/run.py counts its CPU as the
peer's.

    auth-service.py --port P --redis-port R --pepper-file F [--key-prefix dbgw:] [--scope S]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hmac
import json
import re
import sys
import time
import zlib

BASE62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_SHAPE = re.compile(rb"dbaudit_(?:live|test)_[0-9A-Za-z]{38}")
AUTH_HEADER = re.compile(rb"\r\nauthorization:[ \t]*([^\r\n]*)", re.I)
CLOSE_HEADER = re.compile(rb"\r\nconnection:[ \t]*close", re.I)

R401 = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
R403 = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
R503 = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"


def checksum(body: bytes) -> bytes:
    value = zlib.crc32(body)
    out = bytearray(6)
    for i in range(5, -1, -1):
        out[i] = BASE62[value % 62]
        value //= 62
    return bytes(out)


class Redis(asyncio.Protocol):
    """One connection; replies arrive in command order, so a FIFO of futures pairs them."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiting: collections.deque[asyncio.Future] = collections.deque()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        print(f"auth-service: Redis connection lost: {exc}", file=sys.stderr, flush=True)
        while self.waiting:
            self.waiting.popleft().set_exception(ConnectionError("redis gone"))
        asyncio.get_running_loop().stop()

    def get(self, key: bytes) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        self.transport.write(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key))
        return fut

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        n = len(buf)
        while pos < n:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            kind = buf[pos]
            if kind == 0x24:  # $ bulk string
                length = int(buf[pos + 1:eol])
                if length < 0:
                    value, pos = None, eol + 2
                else:
                    end = eol + 2 + length
                    if end + 2 > n:
                        break
                    value, pos = bytes(buf[eol + 2:end]), end + 2
            elif kind == 0x2D:  # - error
                value, pos = RuntimeError(buf[pos + 1:eol].decode(errors="replace")), eol + 2
            else:  # + simple string, : integer (not expected from GET)
                value, pos = bytes(buf[pos + 1:eol]), eol + 2
            fut = self.waiting.popleft()
            if not fut.done():
                if isinstance(value, Exception):
                    fut.set_exception(value)
                else:
                    fut.set_result(value)
        del buf[:pos]


class AuthHTTP(asyncio.Protocol):
    """HTTP/1.1 keep-alive; answers in request order (nginx does not pipeline, but a
    client that does still gets its answers in order)."""

    def __init__(self, service: "Service") -> None:
        self.service = service
        self.transport = None
        self.buf = bytearray()
        self.slots: collections.deque[list] = collections.deque()  # [response bytes | None, close]

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 16384:
                    self.transport.close()
                return
            head = bytes(self.buf[:end + 2])  # no bodies: nginx sends none (proxy_pass_request_body off)
            del self.buf[:end + 4]
            slot = [None, CLOSE_HEADER.search(head) is not None]
            self.slots.append(slot)
            m = AUTH_HEADER.search(head)
            answer = self.service.decide(m.group(1).strip() if m else b"")
            if isinstance(answer, bytes):
                slot[0] = answer
            else:
                answer.add_done_callback(lambda fut, slot=slot: self._finish(slot, fut))
            self._flush()

    def _finish(self, slot: list, fut: asyncio.Future) -> None:
        try:
            slot[0] = self.service.answer(fut.result())
        except Exception:
            slot[0] = R503
        self._flush()

    def _flush(self) -> None:
        while self.slots and self.slots[0][0] is not None:
            response, close = self.slots.popleft()
            if self.transport is None:
                return
            self.transport.write(response)
            if close:
                self.transport.close()
                self.transport = None
                return


class Service:
    def __init__(self, pepper: bytes, prefix: bytes, scope: str, redis: Redis) -> None:
        self.pepper = pepper
        self.prefix = prefix + b"apikey:"
        self.scope = scope
        self.redis = redis

    def decide(self, header: bytes):
        """401 at once for a malformed credential (as the gateway: before any store round
        trip), else the future of the Redis GET."""
        if header[:7].lower() != b"bearer ":
            return R401
        token = header[7:].strip()
        if KEY_SHAPE.fullmatch(token) is None or checksum(token[:45]) != token[45:]:
            return R401
        digest = hmac.digest(self.pepper, token, "sha256").hex().encode()
        return self.redis.get(self.prefix + digest)

    def answer(self, record: bytes | None) -> bytes:
        if record is None:
            return R401
        r = json.loads(record)
        if r.get("revoked") or (r.get("expires_at") is not None and time.time() >= r["expires_at"]):
            return R401
        scopes = r.get("scopes") or []
        if self.scope not in scopes and "admin" not in scopes:
            return R403
        return ("HTTP/1.1 204 No Content\r\nX-DBAudit-Subject: %s\r\nX-DBAudit-Scopes: %s\r\n"
                "X-DBAudit-Credential: api_key\r\nX-DBAudit-Key-Id: %s\r\n\r\n"
                % (r["owner"], " ".join(scopes), r["id"])).encode()


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    with open(args.pepper_file, "rb") as f:
        pepper = f.read().rstrip(b"\r\n")
    _, redis = await loop.create_connection(Redis, "127.0.0.1", args.redis_port)
    service = Service(pepper, args.key_prefix.encode(), args.scope, redis)
    server = await loop.create_server(lambda: AuthHTTP(service), "127.0.0.1", args.port, backlog=4096)
    print(f"auth-service: listening on 127.0.0.1:{args.port}, Redis 127.0.0.1:{args.redis_port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("--pepper-file", required=True)
    p.add_argument("--key-prefix", default="dbgw:")
    p.add_argument("--scope", default="read:databases")
    try:
        asyncio.run(main(p.parse_args()))
    except KeyboardInterrupt:
        pass
