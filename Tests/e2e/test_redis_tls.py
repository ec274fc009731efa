"""TLS and ACL users to Redis (issue 17): a redis-server that speaks only TLS (`--tls-port`,
`--port 0`) with a test CA made by openssl at test time and client certificates required;
a wrong CA or a wrong host name is refused with a clear log line; a wrong ACL password is
logged with Redis's own WRONGPASS text; and the gateway runs as exactly the ACL user
docs/redis.md tells operators to create, with Redis's ACL LOG staying empty."""

import re
import subprocess
import time

import pytest
import requests

from conftest import (ROOT, RedisServer, add_user, admin_port, bearer, create_key, gateway_binary, jwt_session_tail,
                      login, redis_keys_tail, scaled, wait_until, write_pepper)
from test_tls import PKI

ROUTES = """
[[routes]]
method = "GET"
path = "/v1/databases"
scopes = ["read:databases"]

[[routes]]
method = "GET"
path = "/v1/limited"
scopes = ["read:databases"]
rate_limit = "shared"

[[rate_limits]]
name = "shared"
rate = 5
per = "minute"
burst = 3
on_store_unavailable = "deny"
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("redis-pki"))


@pytest.fixture
def tls_redis(tmp_path, pki):
    server = RedisServer(tmp_path, extra_args=[
        "--port", "0", "--tls-port", "{port}", "--tls-cert-file", pki.path("server.pem"),
        "--tls-key-file", pki.path("server.key"), "--tls-ca-cert-file", pki.path("ca.pem"),
        "--tls-auth-clients", "yes"])
    yield server
    server.stop()


def tls_tail(port, pepper, pki, ca="ca.pem", server_name=None, client=True) -> str:
    tail = redis_keys_tail(port, pepper).replace(f'url = "redis://127.0.0.1:{port}"',
                                                f'url = "rediss://127.0.0.1:{port}"\nca_file = "{pki.path(ca)}"')
    if client:
        tail = tail.replace("[auth.api_keys]", f'client_certificate_file = "{pki.path("client.pem")}"\n'
                                               f'client_key_file = "{pki.path("client.key")}"\n\n[auth.api_keys]')
    if server_name:
        tail = tail.replace("[auth.api_keys]", f'tls_server_name = "{server_name}"\n\n[auth.api_keys]')
    return tail


def refusal(gateway, text, timeout=5.0):
    return gateway.wait_for_log(lambda l: l.get("msg", "").startswith("Redis connection refused") and
                                text in l.get("msg", ""), timeout)


def test_tls_to_redis_with_a_test_ca(make_gateway, upstream, tls_redis, pki, tmp_path):
    pepper = write_pepper(tmp_path / "pepper")
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=tls_tail(tls_redis.port, pepper, pki))
    # The CLI and the gateway both reach a Redis that accepts nothing but TLS with a client certificate.
    key = create_key(gateway, ["read:databases"])
    r = requests.get(gateway.url + "/v1/databases", headers=bearer(key["key"]), timeout=5)
    assert r.status_code == 200, r.text
    # Revocation travels over the TLS pub/sub connection.
    subprocess.run([gateway_binary(), "keys", "revoke", "--config", str(gateway.config_path), key["id"]],
                   check=True, capture_output=True, timeout=30)
    assert wait_until(lambda: requests.get(gateway.url + "/v1/databases", headers=bearer(key["key"]),
                                           timeout=5).status_code == 401, 1.0)
    assert not [l for l in gateway.log_lines() if l.get("msg", "").startswith("Redis connection refused")]


@pytest.mark.parametrize("case", ["wrong CA", "wrong host name", "no client certificate"])
def test_tls_to_redis_refused_with_a_clear_log_line(make_gateway, upstream, tls_redis, pki, tmp_path, case):
    pepper = write_pepper(tmp_path / "pepper")
    good = make_gateway(upstream.url, routes=ROUTES, tail=tls_tail(tls_redis.port, pepper, pki))
    key = create_key(good, ["read:databases"])["key"]
    expected = "certificate verify failed"
    if case == "wrong CA":
        tail = tls_tail(tls_redis.port, pepper, pki, ca="other-ca.pem")
    elif case == "wrong host name":
        tail = tls_tail(tls_redis.port, pepper, pki, server_name="redis.example.test")
    else:
        # Redis requires a client certificate (tls-auth-clients yes); TLS 1.3 sends its alert
        # after the handshake, on the first read.
        tail = tls_tail(tls_redis.port, pepper, pki, client=False)
        expected = "certificate required"
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=tail)
    r = requests.get(gateway.url + "/v1/databases", headers=bearer(key), timeout=5)
    assert r.status_code == 503, r.text
    line = refusal(gateway, expected)
    assert "TLS handshake failed" in line["msg"] and f"127.0.0.1:{tls_redis.port}" in line["msg"], line
    if case == "wrong host name":
        assert "hostname mismatch" in line["msg"].lower(), line
    print(f"\n{case}: {line['msg']}")
    # Once per reason, not once per retry.
    for _ in range(5):
        requests.get(gateway.url + "/v1/databases", headers=bearer(key), timeout=5)
    time.sleep(0.3)
    refusals = [l for l in gateway.log_lines() if l.get("msg", "").startswith("Redis connection refused")]
    assert len(refusals) == 1, refusals


def documented_acl_rule() -> str:
    text = (ROOT / "docs" / "redis.md").read_text()
    rules = re.findall(r"^ACL SETUSER dbgw .*$", text, re.MULTILINE)
    assert len(rules) == 1, rules
    return rules[0]


@pytest.fixture
def acl_redis(tmp_path):
    server = RedisServer(tmp_path)
    password = "acl-test-password-1234"
    rule = documented_acl_rule().replace(">PASSWORD", ">" + password)
    reply = server.command(*rule.split())
    assert reply == b"+OK\r\n", reply
    yield server, password
    server.stop()


def test_wrong_acl_password_is_logged_with_redis_words(make_gateway, upstream, acl_redis, tmp_path):
    server, _ = acl_redis
    pepper = write_pepper(tmp_path / "pepper")
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    tail = redis_keys_tail(server.port, pepper).replace("[auth.api_keys]",
                                                        f'username = "dbgw"\npassword_file = "{wrong}"\n\n[auth.api_keys]')
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=tail)
    r = requests.get(gateway.url + "/v1/databases", headers=bearer("dbaudit_live_" + "A" * 40), timeout=5)
    assert r.status_code in (401, 503), r.text
    r = requests.get(gateway.url + "/v1/limited", headers=bearer("dbaudit_live_" + "A" * 40), timeout=5)
    line = refusal(gateway, "WRONGPASS")
    assert "WRONGPASS invalid username-password pair" in line["msg"], line
    assert "not-the-password" not in gateway.log_path.read_text()
    print(f"\n{line['msg']}")


def test_the_documented_acl_rule_is_enough(make_gateway, upstream, acl_redis, tmp_path, pki):
    server, password = acl_redis
    pepper = write_pepper(tmp_path / "pepper")
    secret = tmp_path / "redis-password"
    secret.write_text(password + "\n")
    signing_key = tmp_path / "signing.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                    str(signing_key)], check=True, capture_output=True, timeout=60)
    tail = jwt_session_tail(server.port, pepper, signing_key, algorithm="ES256").replace(
        "[auth.api_keys]", f'username = "dbgw"\npassword_file = "{secret}"\n\n[auth.api_keys]')
    tail += '\n[admin]\nlisten = "127.0.0.1:0"\n'
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=tail)
    # Keys: create (script), check (MGET), list (SCAN), rate-limited route (EVALSHA), revoke (PUBLISH + pub/sub).
    key = create_key(gateway, ["read:databases"])
    assert requests.get(gateway.url + "/v1/databases", headers=bearer(key["key"]), timeout=5).status_code == 200
    statuses = [requests.get(gateway.url + "/v1/limited", headers=bearer(key["key"]), timeout=5).status_code
                for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429], statuses
    listed = subprocess.run([gateway_binary(), "keys", "list", "--config", str(gateway.config_path), "--json"],
                            capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0 and key["id"] in listed.stdout, listed.stderr
    # Users, login (sessions), a JWT, logout.
    add_user(gateway, "acl@example.test", ["read:databases"])
    r = login(gateway, "acl@example.test")
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert requests.get(gateway.url + "/v1/databases", headers=bearer(tokens["access_token"]),
                        timeout=5).status_code == 200
    r = requests.post(gateway.url + "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}, timeout=5)
    assert r.status_code == 200, r.text
    r = requests.post(gateway.url + "/v1/auth/logout", headers=bearer(r.json()["access_token"]),
                      json={"refresh_token": r.json()["refresh_token"]}, timeout=5)
    assert r.status_code in (200, 204), r.text
    subprocess.run([gateway_binary(), "keys", "revoke", "--config", str(gateway.config_path), key["id"]],
                   check=True, capture_output=True, timeout=30)
    assert wait_until(lambda: requests.get(gateway.url + "/v1/databases", headers=bearer(key["key"]),
                                           timeout=5).status_code == 401, 1.0)
    # /readyz (PING, ROLE) as that user.
    ready = requests.get(f"http://127.0.0.1:{admin_port(gateway)}/readyz", timeout=5).json()
    assert ready["checks"]["redis"] == "ok" and ready["checks"]["redis_role"] == "primary", ready
    # Redis refused nothing.
    assert server.command("ACL", "LOG") == b"*0\r\n", server.command("ACL", "LOG")
    assert not [l for l in gateway.log_lines() if "NOPERM" in l.get("msg", "") + str(l.get("error", ""))]


def test_readme_lists_the_same_acl_rule():
    readme = re.findall(r"^\s*ACL SETUSER dbgw .*$", (ROOT / "README.md").read_text(), re.MULTILINE)
    assert [line.strip() for line in readme] == [documented_acl_rule()]
