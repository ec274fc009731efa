"""The soak's recording upstream: answers every request with a small JSON body and appends
the request's X-Soak-Id to a file before answering, so the oracle knows exactly which
requests the gateway forwarded (a file survives the kill -9 of this process).

Usage: upstream.py PORT RECORD_FILE MODE_FILE. MODE_FILE holds the fault mode the harness
sets: "normal", "slow" (400 ms before each answer) or "reset" (the connection is reset
after the request is read, no answer)."""

import os
import socket
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    port, record_path, mode_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    record = os.open(record_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    mode = {"value": "normal", "checked": 0.0}

    def current_mode() -> str:
        now = time.monotonic()
        if now - mode["checked"] > 0.05:
            mode["checked"] = now
            try:
                with open(mode_path) as f:
                    mode["value"] = f.read().strip() or "normal"
            except OSError:
                mode["value"] = "normal"
        return mode["value"]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            soak_id = self.headers.get("X-Soak-Id", "-")
            os.write(record, f"{soak_id}\n".encode())
            fault = current_mode()
            if fault == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            if fault == "slow":
                time.sleep(0.4)
            body = b'{"ok":true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _handle

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 256

    Server(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
