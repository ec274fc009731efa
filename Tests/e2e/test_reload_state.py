"""A reload keeps what each event loop has learned: the API-key cache survives SIGHUP, so a
reload during a Redis outage does not turn working keys into 503s, and a reload under load
does not send a burst of lookups to Redis."""

import signal

import requests

from conftest import bearer, create_key, redis_keys_tail, wait_until

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
