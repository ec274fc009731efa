"""Admin listener: /healthz, /readyz (Redis and upstream reachability), /metrics in the
Prometheus text format, optional bearer token."""

import signal
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import admin_port, bearer, create_key, free_port, scaled, wait_until, write_pepper
from test_api_keys import ROUTES, auth_tail


@pytest.fixture
def admin_gateway(make_gateway, upstream, redis_server, tmp_path):
    pepper = write_pepper(tmp_path / "pepper")
    tail = auth_tail(redis_server.port, pepper) + '\n[admin]\nlisten = "127.0.0.1:0"\n'
    return make_gateway(upstream.url, routes=ROUTES, tail=tail)


def metrics(port):
    r = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    return families


def sample(families, family, name, **labels):
    for s in families[family].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0.0


def test_healthz_and_readyz(admin_gateway, redis_server):
    port = admin_port(admin_gateway)
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json() == {"status": "ok"}
    r = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"config": "ok", "redis": "ok", "redis_node": f"redis://127.0.0.1:{redis_server.port}",
                                  "redis_role": "primary", "upstream": "ok"}
    redis_server.kill9()
    killed = time.monotonic()
    flipped = None
    while time.monotonic() - killed < scaled(5):
        r = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        if r.status_code == 503:
            flipped = time.monotonic() - killed
            break
        time.sleep(0.05)
    print(f"\n/readyz flipped to 503 {flipped * 1000 if flipped else -1:.0f} ms after Redis was killed")
    assert flipped is not None and flipped < scaled(2.0)
    assert r.json()["checks"]["redis"] == "unreachable"
    assert r.json()["status"] == "not_ready"
    redis_server.start()
    recovered = wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200, 5)
    assert recovered, "/readyz did not recover after Redis came back"
    assert requests.get(f"http://127.0.0.1:{port}/nope", timeout=5).status_code == 404


def test_readyz_reports_unreachable_upstream(make_gateway):
    gateway = make_gateway(f"http://127.0.0.1:{free_port()}", tail='[admin]\nlisten = "127.0.0.1:0"\n')
    port = admin_port(gateway)
    r = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    assert r.status_code == 503
    assert r.json()["checks"]["upstream"] == "unreachable"


def test_metrics_parse_and_move(admin_gateway):
    port = admin_port(admin_gateway)
    before = metrics(port)
    key = create_key(admin_gateway, ["read:databases"])["key"]
    url = f"{admin_gateway.url}/v1/databases"
    for _ in range(5):
        assert requests.get(url, headers=bearer(key), timeout=5).status_code == 200
    assert requests.get(url, timeout=5).status_code == 401
    after = metrics(port)
    forwarded = lambda f: sample(f, "dbgw_requests", "dbgw_requests_total", route="GET /v1/databases",
                                 outcome="forwarded", status="200", credential="api_key")
    rejected = lambda f: sample(f, "dbgw_requests", "dbgw_requests_total", route="GET /v1/databases",
                                outcome="rejected", status="401", credential="none")
    assert forwarded(after) - forwarded(before) == 5
    assert rejected(after) - rejected(before) == 1
    assert sample(after, "dbgw_request_duration_seconds", "dbgw_request_duration_seconds_count") >= 6
    assert sample(after, "dbgw_upstream_duration_seconds", "dbgw_upstream_duration_seconds_count") >= 5
    assert sample(after, "dbgw_auth_duration_seconds", "dbgw_auth_duration_seconds_count") >= 5
    hits = sample(after, "dbgw_credential_cache_hits", "dbgw_credential_cache_hits_total")
    misses = sample(after, "dbgw_credential_cache_misses", "dbgw_credential_cache_misses_total")
    assert hits + misses >= 5 and misses >= 1
    assert sample(after, "dbgw_upstream_connections", "dbgw_upstream_connections", state="open") >= 1
    # Unmatched paths are one bounded series, whatever the path.
    for path in ("/a", "/b", "/c/d"):
        assert requests.get(f"{admin_gateway.url}{path}", timeout=5).status_code == 404
    final = metrics(port)
    assert sample(final, "dbgw_requests", "dbgw_requests_total", route="unmatched", outcome="rejected", status="404") == 3


def test_admin_token(make_gateway, upstream, tmp_path):
    token = tmp_path / "admin-token"
    token.write_text("admin-token-0123456789abcdef\n")
    gateway = make_gateway(upstream.url, tail=f'[admin]\nlisten = "127.0.0.1:0"\ntoken_file = "{token}"\n')
    port = admin_port(gateway)
    r = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert r.status_code == 401
    r = requests.get(f"http://127.0.0.1:{port}/healthz", headers={"Authorization": "Bearer wrong-token-0123456789"}, timeout=5)
    assert r.status_code == 401
    r = requests.get(f"http://127.0.0.1:{port}/healthz", headers={"Authorization": "Bearer admin-token-0123456789abcdef"}, timeout=5)
    assert r.status_code == 200


def test_access_log_has_identity_decision_and_timings(make_gateway, upstream, redis_server, tmp_path):
    pepper = write_pepper(tmp_path / "pepper")
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=auth_tail(redis_server.port, pepper))
    created = create_key(gateway, ["read:databases"])
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(created["key"]), timeout=5)
    line = gateway.wait_for_log(lambda l: l.get("request_id") == r.headers["X-Request-Id"])
    assert line["decision"] == "forwarded" and line["credential"] == "api_key"
    assert line["subject"] == "operator" and line["key_id"] == created["id"]
    assert isinstance(line["auth_us"], int) and isinstance(line["redis_us"], int) and isinstance(line["upstream_us"], int)
    assert created["key"] not in gateway.log_path.read_text()
    r = requests.post(f"{gateway.url}/v1/policies", headers=bearer(created["key"]), timeout=5)
    line = gateway.wait_for_log(lambda l: l.get("request_id") == r.headers["X-Request-Id"])
    assert line["status"] == 403 and line["decision"] == "rejected" and line["reason"] == "insufficient_scope"


def test_access_log_sampling_keeps_every_refusal(make_gateway, upstream):
    gateway = make_gateway(upstream.url, extra="access_log_sample_rate = 0.0", routes='[[routes]]\npath = "/open/**"\npublic = true\n')
    ok = [requests.get(f"{gateway.url}/open/x", timeout=5).headers["X-Request-Id"] for _ in range(5)]
    refused = requests.get(f"{gateway.url}/closed", timeout=5)
    assert refused.status_code == 404
    gateway.wait_for_log(lambda l: l.get("request_id") == refused.headers["X-Request-Id"])
    logged = {l.get("request_id") for l in gateway.log_lines()}
    assert not (set(ok) & logged)


@pytest.mark.parametrize("admin, key", [
    ('listen = "0.0.0.0:0"\n', "admin.listen"),
    ('listen = "[::]:0"\n', "admin.listen"),
    ('listen = "0.0.0.0:0"\ntoken_file = "{token}"\n', "admin.listen"),
    ('listen = "0.0.0.0:0"\nallow_remote = true\n', "admin.allow_remote"),
])
def test_remote_admin_listener_needs_allow_remote_and_a_token(admin, key, make_gateway, upstream, tmp_path):
    """/readyz and /metrics describe the deployment: an admin listener beyond loopback is
    refused by check-config and by run unless `allow_remote = true` and a token guard it."""
    from test_config_and_signals import check_config

    token = tmp_path / "admin-token"
    token.write_text("admin-token-0123456789abcdef\n")
    section = "[admin]\n" + admin.replace("{token}", str(token))
    gateway = make_gateway(upstream.url, tail=section, wait=False)
    assert gateway.proc.wait(timeout=10) != 0
    result = check_config(gateway.config_path)
    assert result.returncode == 1, result.stdout
    assert f": {key}:" in result.stderr, result.stderr
    assert "admin-token-0123456789abcdef" not in result.stderr
    # Guarded as required, the same listener is accepted (checked without binding it).
    guarded = section.replace("allow_remote = true\n", "")
    guarded = guarded.replace(f'token_file = "{token}"\n', "")
    guarded += f'allow_remote = true\ntoken_file = "{token}"\n'
    gateway.config_path.write_text(gateway.config_path.read_text().replace(section, guarded))
    result = check_config(gateway.config_path)
    assert result.returncode == 0, result.stderr
    assert "allow_remote = true" in result.stdout
    assert "admin-token-0123456789abcdef" not in result.stdout


def test_reload_that_changes_admin_says_a_restart_is_needed_and_keeps_the_old_listener(make_gateway, upstream, tmp_path):
    token = tmp_path / "admin-token"
    token.write_text("first-admin-token-0123456789\n")
    gateway = make_gateway(upstream.url, tail=f'[admin]\nlisten = "127.0.0.1:0"\ntoken_file = "{token}"\n')
    port = admin_port(gateway)
    gateway.tail = '[admin]\nlisten = "127.0.0.1:0"\n'
    gateway.write_config(upstream.url)
    gateway.signal(signal.SIGHUP)
    gateway.wait_for_log(lambda l: l.get("msg") == "configuration reloaded")

    assert any(l.get("msg") == "reload: [admin] changed; restart the gateway to apply it" for l in gateway.log_lines())
    # The listener and its token are the ones the gateway started with.
    r = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert r.status_code == 401
    r = requests.get(f"http://127.0.0.1:{port}/healthz", headers=bearer("first-admin-token-0123456789"), timeout=5)
    assert r.status_code == 200
