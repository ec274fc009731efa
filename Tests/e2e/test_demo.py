"""`dbaudit-gateway demo`: starts on embedded defaults and the curl command it prints works."""

import json
import re
import shlex
import signal
import subprocess
import time
from urllib.parse import parse_qs, urlsplit

import requests

from conftest import free_port, gateway_binary, oauth_authorize, scaled


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


def test_demo_on_any_free_port_names_that_port_as_its_issuer():
    proc = subprocess.Popen([gateway_binary(), "demo", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        text = printed_text(proc)
        port = int(re.search(r"gateway:  http://127\.0\.0\.1:(\d+)", text).group(1))
        assert port != 0
        metadata = requests.get(f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server", timeout=10).json()
        assert metadata["issuer"] == f"http://127.0.0.1:{port}"
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


def printed_text(proc) -> str:
    """Everything the demo prints up to its last line ("... Stop with Ctrl-C.")."""
    deadline = time.monotonic() + scaled(20)
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "Stop with Ctrl-C" in line:
            return "".join(seen)
    raise AssertionError("the demo did not print its walk-through:\n" + "".join(seen))


def start_demo():
    port = free_port()
    proc = subprocess.Popen([gateway_binary(), "demo", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    return port, proc


def curl_json(command: str) -> dict:
    result = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=15)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_demo_client_credentials_curl_works_verbatim():
    port, proc = start_demo()
    try:
        text = printed_text(proc)
        command = next(line.strip() for line in text.splitlines()
                       if line.strip().startswith("curl ") and "grant_type=client_credentials" in line)
        tokens = curl_json(command)
        assert tokens["token_type"] == "Bearer" and tokens["scope"] == "read:databases", tokens
        assert "refresh_token" not in tokens
        call = requests.get(f"http://127.0.0.1:{port}/v1/databases", headers={"Authorization": f"Bearer {tokens['access_token']}"},
                            timeout=10)
        assert call.status_code == 200, call.text
        seen = call.json()["headers"]
        assert seen["x-dbaudit-subject"] == "client:demo-service"
        assert seen["x-dbaudit-credential"] == "oauth" and seen["x-dbaudit-client-id"] == "demo-service"
        # The metadata names the demo's own listener: a client can discover the endpoints.
        metadata = curl_json(next(line.strip() for line in text.splitlines() if "oauth-authorization-server" in line))
        assert metadata["issuer"] == f"http://127.0.0.1:{port}"
        assert metadata["token_endpoint"] == f"http://127.0.0.1:{port}/oauth/token"
        assert "client_credentials" in metadata["grant_types_supported"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_demo_authorization_code_walk_through_works():
    port, proc = start_demo()
    try:
        text = printed_text(proc)
        lines = [line.strip() for line in text.splitlines()]
        authorize_url = next(line for line in lines if line.startswith(f"http://127.0.0.1:{port}/oauth/authorize?"))
        password = re.search(r'"password":"([^"]+)"', text).group(1)
        token_curl = next(line for line in lines if line.startswith("curl ") and "grant_type=authorization_code" in line)
        assert '"code=<code>"' in token_curl

        # The browser's part, with requests posting the printed user's login and consent forms.
        location = oauth_authorize(f"http://127.0.0.1:{port}", authorize_url, "demo@example.com", password=password)
        parts = urlsplit(location)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        request_query = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == request_query["redirect_uri"]
        assert query["state"] == request_query["state"] and query["code"], location
        assert query["iss"] == f"http://127.0.0.1:{port}", location

        # It lands on the echo upstream, which shows the code it was sent back with.
        landed = requests.get(location, timeout=10)
        assert landed.status_code == 200 and query["code"] in landed.json()["path"]

        # The printed token curl with the code filled in, as the walk-through says.
        tokens = curl_json(token_curl.replace("<code>", query["code"]))
        assert tokens["token_type"] == "Bearer" and tokens["refresh_token"], tokens
        assert tokens["scope"] == "read:databases read:logs"
        call = requests.get(f"http://127.0.0.1:{port}/v1/logs", headers={"Authorization": f"Bearer {tokens['access_token']}"},
                            timeout=10)
        assert call.status_code == 200, call.text
        seen = call.json()["headers"]
        assert seen["x-dbaudit-subject"].startswith("usr_") and seen["x-dbaudit-client-id"] == "demo-app"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
