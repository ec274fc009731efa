"""A reload keeps what each event loop has learned: the API-key cache survives SIGHUP, so a
reload during a Redis outage does not turn working keys into 503s, and a reload under load
does not send a burst of lookups to Redis. A request in flight keeps the configuration its
head arrived under, even when the reload lands while it waits on Redis."""

import signal
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import bearer, create_key, header, redis_keys_tail, scaled, wait_until
from test_oauth_requests import metric

ROUTES = """
[[routes]]
method = "GET"
path = "/v1/databases"
scopes = ["read:databases"]
"""


def reloads(gateway) -> int:
    return sum(1 for line in gateway.log_lines() if line.get("msg") == "configuration reloaded")


def reload_and_wait(gateway) -> None:
    before = reloads(gateway)
    gateway.signal(signal.SIGHUP)
    assert wait_until(lambda: reloads(gateway) > before, 10), "the reload was not applied"


def warm(gateway, keys) -> None:
    """Every key over several new connections, so both event loops have looked it up."""
    for key in keys:
        for _ in range(6):
            r = requests.get(gateway.url + "/v1/databases", headers=bearer(key), timeout=5)
            assert r.status_code == 200, r.text


def test_reload_during_a_redis_outage_keeps_cached_keys_working(make_gateway, upstream, redis_server, pepper):
    tail = redis_keys_tail(redis_server.port, pepper, cache={"positive_ttl": "1s", "stale_grace": "120s"})
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=tail)
    key = create_key(gateway, ["read:databases"])["key"]
    warm(gateway, [key])
    redis_server.kill9()

    reload_and_wait(gateway)

    # Past positive_ttl, within stale_grace: the stale entry covers the outage on every loop.
    statuses = [requests.get(gateway.url + "/v1/databases", headers=bearer(key), timeout=5).status_code
                for _ in range(12)]
    assert statuses == [200] * 12, statuses


def test_reload_under_load_sends_no_burst_of_lookups_to_redis(make_gateway, upstream, redis_server, pepper):
    tail = redis_keys_tail(redis_server.port, pepper, cache={"positive_ttl": "300s"})
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=tail)
    keys = [create_key(gateway, ["read:databases"], name=f"k{n}")["key"] for n in range(10)]
    warm(gateway, keys)
    lookups_before = redis_server.command_calls("get")

    reload_and_wait(gateway)
    warm(gateway, keys)

    assert redis_server.command_calls("get") == lookups_before


def test_reload_that_changes_cache_settings_keeps_entries_and_applies_new_ttls(make_gateway, upstream, redis_server, pepper):
    tail = redis_keys_tail(redis_server.port, pepper, cache={"positive_ttl": "300s"})
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=tail)
    key = create_key(gateway, ["read:databases"])["key"]
    warm(gateway, [key])
    lookups_before = redis_server.command_calls("get")

    gateway.tail = redis_keys_tail(redis_server.port, pepper, cache={"positive_ttl": "200s"})
    gateway.write_config(upstream.url)
    reload_and_wait(gateway)
    warm(gateway, [key])

    assert redis_server.command_calls("get") == lookups_before


def test_reload_while_a_request_waits_on_redis_does_not_mix_configurations(make_gateway, upstream, redis_server,
                                                                          pepper):
    """The lookup of an uncached key is held by a Redis pause; meanwhile a reload turns on
    `preserve_host` and `forward_authorization`. The held request is forwarded entirely
    under the old configuration, the next one entirely under the new."""
    tail = redis_keys_tail(redis_server.port, pepper, command_timeout="20s") + '\n[admin]\nlisten = "127.0.0.1:0"\n'
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=tail)
    key = create_key(gateway, ["read:databases"])["key"]
    misses = metric(gateway, "dbgw_credential_cache_misses_total")
    sent = {**bearer(key), "Host": "client.example"}

    assert redis_server.command("CLIENT", "PAUSE", str(int(scaled(4) * 1000)), "ALL") == b"+OK\r\n"
    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(requests.get, gateway.url + "/v1/databases", headers=sent, timeout=scaled(30))
        assert wait_until(lambda: metric(gateway, "dbgw_credential_cache_misses_total") > misses, 5), \
            "the request did not ask Redis"
        gateway.tail = tail.replace("[auth.api_keys]\n", "[auth.api_keys]\nforward_authorization = true\n")
        gateway.write_config(upstream.url, upstream="preserve_host = true")
        reload_and_wait(gateway)
        assert not held.done(), "the reload must land while the request waits on Redis"
        response = held.result()

    assert response.status_code == 200, response.text
    old = upstream.wait_for_path("/v1/databases")
    assert header(old, "Host") == [f"127.0.0.1:{upstream.port}"]
    assert header(old, "Authorization") == []

    upstream.reset()
    response = requests.get(gateway.url + "/v1/databases", headers=sent, timeout=5)
    assert response.status_code == 200, response.text
    new = upstream.wait_for_path("/v1/databases")
    assert header(new, "Host") == ["client.example"]
    assert header(new, "Authorization") == [f"Bearer {key}"]
