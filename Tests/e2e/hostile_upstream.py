"""A scriptable raw-socket upstream for hostile-upstream tests.

The server listens on 127.0.0.1 and plays one script per accepted connection: the i-th
connection runs `scripts[i]`, connections past the list run `default`. A script is a list
of `Step`s; each step optionally waits for one complete request from the gateway, sleeps
`delay` seconds, then sends `send` verbatim (any bytes: torn heads, junk, floods).
After the last step the connection stays open (as a keep-alive upstream would) unless
the step says `close`.

Everything is bounded: at most `max_connections` connections, `max_record` bytes
recorded per connection, and the whole server stops by itself after `lifetime` seconds
(or at `stop()`). It records, per connection, the requests it received and when the
gateway closed the connection, so a test can assert that a poisoned connection was
dropped and never reused.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Step:
    """Wait for a request (if `wait`), sleep `delay`, send `send`, then close if `close`."""

    send: bytes = b""
    wait: bool = True
    delay: float = 0.0
    close: bool = False
    #: Send `send` this many times, `interval` seconds apart (floods).
    repeat: int = 1
    interval: float = 0.0


def respond(body: bytes = b"genuine", status: str = "200 OK", headers: str = "") -> Step:
    """A well-formed keep-alive response to the next request."""
    head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode()
    return Step(send=head + body)


# What every connection past the scripted ones does: answer each request honestly.
GENUINE = [respond() for _ in range(8)]


@dataclass
class ConnectionRecord:
    index: int
    requests: list = field(default_factory=list)
    received: int = 0
    #: Monotonic time the gateway closed its side (EOF seen), or None.
    closed_by_peer_at: float | None = None
    steps_done: int = 0


class HostileUpstream:
    def __init__(self, scripts: list, default: list | None = None, lifetime: float = 30.0,
                 max_connections: int = 16, max_record: int = 65536):
        self.scripts = scripts
        self.default = default if default is not None else GENUINE
        self.lifetime = lifetime
        self.max_connections = max_connections
        self.max_record = max_record
        self.connections: list[ConnectionRecord] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.started = time.monotonic()
        self.sockets: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _expired(self) -> bool:
        return self.stopping.is_set() or time.monotonic() - self.started > self.lifetime

    def _accept_loop(self) -> None:
        while not self._expired():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                index = len(self.connections)
                if index >= self.max_connections:
                    conn.close()
                    continue
                record = ConnectionRecord(index)
                self.connections.append(record)
                self.sockets.append(conn)
            script = self.scripts[index] if index < len(self.scripts) else self.default
            threading.Thread(target=self._serve, args=(conn, record, script), daemon=True).start()
        self.listener.close()

    def _read_request(self, conn: socket.socket, buffer: bytearray, record: ConnectionRecord) -> bool:
        """Reads one request (head plus a Content-Length or chunked body) into the record."""
        while b"\r\n\r\n" not in buffer:
            if not self._recv(conn, buffer, record):
                return False
        head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        del buffer[: len(head) + 4]
        lower = head.lower()
        if b"transfer-encoding: chunked" in lower:
            while b"0\r\n\r\n" not in buffer:
                if not self._recv(conn, buffer, record):
                    return False
            end = buffer.index(b"0\r\n\r\n") + 5
            del buffer[:end]
        else:
            length = 0
            for line in lower.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            while len(buffer) < length:
                if not self._recv(conn, buffer, record):
                    return False
            del buffer[:length]
        with self.lock:
            record.requests.append(head.decode("latin-1"))
        return True

    def _recv(self, conn: socket.socket, buffer: bytearray, record: ConnectionRecord) -> bool:
        while not self._expired():
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                with self.lock:
                    if record.closed_by_peer_at is None:
                        record.closed_by_peer_at = time.monotonic()
                return False
            record.received += len(chunk)
            if record.received > self.max_record:
                return False
            buffer += chunk
            return True
        return False

    def _serve(self, conn: socket.socket, record: ConnectionRecord, script: list) -> None:
        conn.settimeout(0.2)
        buffer = bytearray()
        try:
            for step in script:
                if step.wait and not self._read_request(conn, buffer, record):
                    return
                if step.delay:
                    time.sleep(step.delay)
                for i in range(step.repeat):
                    if self._expired():
                        return
                    if i and step.interval:
                        time.sleep(step.interval)
                    conn.sendall(step.send)
                with self.lock:
                    record.steps_done += 1
                if step.close:
                    return
            # Script done: hold the connection (keep-alive) and notice when the gateway closes it.
            while self._recv(conn, buffer, record):
                pass
        except OSError:
            with self.lock:
                if record.closed_by_peer_at is None:
                    record.closed_by_peer_at = time.monotonic()
        finally:
            conn.close()

    def connection_count(self) -> int:
        with self.lock:
            return len(self.connections)

    def wait_for(self, predicate, timeout: float) -> bool:
        """Polls `predicate(self)` until it holds or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(self):
                    return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        with self.lock:
            for conn in self.sockets:
                try:
                    conn.close()
                except OSError:
                    pass
