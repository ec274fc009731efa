"""`dbaudit-gateway demo`: starts on embedded defaults and the curl command it prints works."""

import json
import re
import shlex
import signal
import subprocess
import time

from conftest import free_port, gateway_binary, scaled


def printed_command(proc, wanted) -> str:
    """The first `curl ...` line the demo prints for which `wanted(line)` holds."""
    deadline = time.monotonic() + scaled(20)
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.strip().startswith("curl ") and wanted(line):
            return line.strip()
    raise AssertionError("the demo printed no such curl command:\n" + "".join(seen))


def test_demo_prints_a_working_curl_command():
    port = free_port()
    proc = subprocess.Popen([gateway_binary(), "demo", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        command = printed_command(proc, lambda line: True)
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


def test_demo_user_logs_in_and_its_token_works():
    port = free_port()
    proc = subprocess.Popen([gateway_binary(), "demo", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        login = printed_command(proc, lambda line: "/v1/auth/login" in line)
        result = subprocess.run(shlex.split(login), capture_output=True, text=True, timeout=10)
        tokens = json.loads(result.stdout)
        assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600, result.stdout
        call = subprocess.run(
            ["curl", "-sS", f"http://127.0.0.1:{port}/v1/databases", "-H", f"Authorization: Bearer {tokens['access_token']}"],
            capture_output=True, text=True, timeout=10)
        body = json.loads(call.stdout)
        assert body["headers"]["x-dbaudit-credential"] == "jwt"
        assert body["headers"]["x-dbaudit-subject"].startswith("usr_")
        jwks = json.loads(subprocess.run(["curl", "-sS", f"http://127.0.0.1:{port}/.well-known/jwks.json"], capture_output=True, text=True, timeout=10).stdout)
        assert [key["kid"] for key in jwks["keys"]] == ["demo"] and jwks["keys"][0]["crv"] == "Ed25519"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
