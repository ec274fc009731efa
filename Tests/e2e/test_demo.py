"""`dbaudit-gateway demo`: starts on embedded defaults and the curl command it prints works."""

import json
import re
import shlex
import signal
import subprocess
import time

from conftest import free_port, gateway_binary


def test_demo_prints_a_working_curl_command():
    port = free_port()
    proc = subprocess.Popen([gateway_binary(), "demo", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        command = None
        deadline = time.monotonic() + 20
        seen = []
        while time.monotonic() < deadline and command is None:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.strip().startswith("curl "):
                command = line.strip()
        assert command, "".join(seen)
        assert f"127.0.0.1:{port}" in command
        result = subprocess.run(shlex.split(command) + ["-sS", "-H", "X-DBAudit-Subject: forged"], capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, result.stderr
        status = re.search(r"^HTTP/1.1 (\d+)", result.stdout, re.M)
        assert status and status.group(1) == "200", result.stdout
        body = json.loads(result.stdout.split("\n\n", 1)[1])
        assert body["upstream"] == "dbaudit-gateway demo echo"
        assert body["headers"]["x-forwarded-for"] == "127.0.0.1"
        # The forged subject is replaced by the demo key's owner.
        assert body["headers"]["x-dbaudit-subject"] == "demo-user"
        assert body["headers"]["x-dbaudit-credential"] == "api_key"
        assert "authorization" not in body["headers"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
