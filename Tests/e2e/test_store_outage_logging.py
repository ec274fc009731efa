"""A Redis outage is logged once per event loop when it starts and once when Redis answers
again, never once per refused request (a flood of 503s must not become a flood of logs)."""

import requests

from conftest import bearer, create_key, redis_keys_tail, wait_until

ROUTES = """
[[routes]]
method = "GET"
path = "/v1/databases"
scopes = ["read:databases"]
"""

EVENT_LOOPS = 2  # the test gateway's event_loops


def messages(gateway, text):
    return [line for line in gateway.log_lines() if line.get("msg", "").startswith(text)]


def test_credential_store_outage_is_logged_once_per_loop_and_its_end_too(make_gateway, upstream, redis_server, pepper):
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=redis_keys_tail(redis_server.port, pepper))
    key = create_key(gateway, ["read:databases"])["key"]
    unseen = [create_key(gateway, ["read:databases"], name=f"unseen {n}")["key"] for n in range(5)]
    url = gateway.url + "/v1/databases"
    redis_server.kill9()

    # Keys never seen: each needs Redis, each is a 503.
    for n in range(30):
        r = requests.get(url, headers=bearer(unseen[n % 5]), timeout=5)
        assert r.status_code == 503
    down = messages(gateway, "credential store unavailable")
    assert 1 <= len(down) <= EVENT_LOOPS, [line.get("msg") for line in down]

    redis_server.start()
    assert wait_until(lambda: all(requests.get(url, headers=bearer(key), timeout=5).status_code == 200 for _ in range(6)), 10)
    assert wait_until(lambda: len(messages(gateway, "credential store answers again")) == len(down), 5)
    assert len(messages(gateway, "credential store unavailable")) == len(down)
