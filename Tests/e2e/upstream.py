"""A recording HTTP/1.1 upstream for the end-to-end tests: a real process on loopback.

It answers like the protected API would, records every request it receives (method,
path, headers, body size, connection id) and exposes them on /__records for the test to
inspect. Special paths:
  /slow?ms=N         answer after N milliseconds
  /silent            never answer (the gateway's response timeout must fire)
  /download?bytes=N  stream N bytes of body (Content-Length framed)
  /chunked?parts=N   a chunked response of N parts
  /close             answer with "Connection: close"
  /__records         JSON of all recorded requests (not recorded itself)
  /__reset           forget recorded requests
Usage: upstream.py PORT NAME [CERT KEY]   (with CERT and KEY it speaks HTTPS)
"""

import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
RECORDS = []
CONNECTIONS = [0]
NAME = "upstream"
# One shared block for every /download: a hundred concurrent downloads stay cheap here.
BLOCK = bytes(1 << 20)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Head and body are two writes: with Nagle, the body would wait for the gateway's
    # delayed ACK (40 ms on Linux), which is the upstream's latency, not the gateway's.
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        with LOCK:
            CONNECTIONS[0] += 1
            self.connection_id = CONNECTIONS[0]

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def _read_body(self):
        length = self.headers.get("Content-Length")
        total = 0
        self.trailer_lines = []
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        line = self.rfile.readline(1024)
                        if line in (b"\r\n", b"\n", b""):
                            break
                        self.trailer_lines.append(line.decode("latin-1").rstrip("\r\n"))
                    break
                remaining = size
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        raise ConnectionError("truncated chunk")
                    remaining -= len(chunk)
                total += size
                self.rfile.readline(16)
        elif length is not None:
            remaining = int(length)
            while remaining:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    raise ConnectionError("truncated body")
                remaining -= len(chunk)
                total += len(chunk)
        return total

    def _send_json(self, status, obj, extra_headers=()):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/__records":
            with LOCK:
                self._send_json(200, {"connections": CONNECTIONS[0], "requests": list(RECORDS)})
            return
        if url.path == "/__reset":
            with LOCK:
                RECORDS.clear()
                CONNECTIONS[0] = 0
            self._send_json(200, {"reset": True})
            return
        body_bytes = self._read_body()
        record = {
            "upstream": NAME,
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_bytes": body_bytes,
            "trailers": list(self.trailer_lines),
            "connection": self.connection_id,
        }
        with LOCK:
            RECORDS.append(record)
        if url.path == "/slow":
            time.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
        if url.path == "/silent":
            time.sleep(3600)
            return
        if url.path == "/download":
            size = int(query["bytes"][0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            remaining = size
            while remaining:
                n = min(remaining, len(BLOCK))
                self.wfile.write(BLOCK[:n] if n < len(BLOCK) else BLOCK)
                remaining -= n
            return
        if url.path == "/chunked":
            parts = int(query.get("parts", ["3"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(parts):
                data = f"part{i};".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.write(b"0\r\n\r\n")
            return
        extra = [("Connection", "close")] if url.path == "/close" else []
        extra.append(("X-Upstream-Name", NAME))
        # Hop-by-hop headers the gateway must strip from responses.
        extra.append(("Keep-Alive", "timeout=5"))
        extra.append(("X-Hop", "secret"))
        if url.path != "/close":
            extra.append(("Connection", "X-Hop"))
        self._send_json(200, record, extra)
        if url.path == "/close":
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512


def main():
    global NAME
    port = int(sys.argv[1])
    NAME = sys.argv[2] if len(sys.argv) > 2 else "upstream"
    server = Server(("127.0.0.1", port), Handler)
    if len(sys.argv) > 4:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[3], sys.argv[4])
        # The handshake runs in the handler's thread, so a failing client does not block accept.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
