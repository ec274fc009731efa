"""Issue 6 acceptance (lines 2-5): token-bucket rate limits end to end, with the gateway
binary, a real redis-server, the CLI, and the recording upstream.

  2. exactness across two instances sharing one Redis (burst, sustained 10 s overload)
  3. Retry-After is honest
  4. Redis kill -9 and CLIENT PAUSE with on_store_unavailable = "local" / "deny"
  5. the login endpoint is limited per address and per account (trusted proxies)
plus: RateLimit headers on every response of a limited route (none on others), and a
refused request never reaches the upstream."""

import json
import math
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import (admin_port, bearer, create_key, free_port, gateway_binary, parse_response, read_until_closed,
                      redis_keys_tail, scaled, wait_until)
from test_admin import metrics, sample

# --- configuration ---------------------------------------------------------------------------


def policy(name, rate, per, burst, on_store_unavailable="local"):
    return f"""
[[rate_limits]]
name = "{name}"
rate = {rate}
per = "{per}"
burst = {burst}
on_store_unavailable = "{on_store_unavailable}"
"""


def route(path, method="GET", scopes=None, rate_limit=None):
    lines = ["[[routes]]", f'method = "{method}"', f'path = "{path}"']
    if scopes is None:
        lines.append("public = true")
    else:
        lines.append("scopes = [" + ", ".join(f'"{s}"' for s in scopes) + "]")
    if rate_limit:
        lines.append(f'rate_limit = "{rate_limit}"')
    return "\n" + "\n".join(lines) + "\n"


def redis_tail(redis_port, pepper, command_timeout="300ms", connect_timeout="300ms"):
    return redis_keys_tail(redis_port, pepper, command_timeout, connect_timeout,
                           cache={"positive_ttl": "60s", "negative_ttl": "5s", "stale_grace": "120s"})


# --- the RateLimit header fields -------------------------------------------------------------


def sf_members(value):
    """`"a";q=1;w=2, "b";r=0;t=3` -> [("a", {"q": 1, "w": 2}), ("b", {...})] (RFC 9651 list
    of sf-string items with integer parameters, as the gateway writes them)."""
    members = []
    for member in value.split(","):
        member = member.strip()
        name, *params = member.split(";")
        assert name.startswith('"') and name.endswith('"') and len(name) >= 2, value
        parsed = {}
        for param in params:
            key, _, number = param.partition("=")
            assert number.isdigit(), value
            parsed[key] = int(number)
        members.append((name[1:-1], parsed))
    return members


def limits_of(headers):
    """{policy: {q, w, r, t}} from RateLimit-Policy + RateLimit (both must be there)."""
    assert "RateLimit-Policy" in headers, dict(headers)
    assert "RateLimit" in headers, dict(headers)
    policy_members = sf_members(headers["RateLimit-Policy"])
    limit_members = sf_members(headers["RateLimit"])
    assert [n for n, _ in policy_members] == [n for n, _ in limit_members], dict(headers)
    out = {}
    for (name, p), (_, l) in zip(policy_members, limit_members):
        assert set(p) == {"q", "w"} and set(l) == {"r", "t"}, dict(headers)
        out[name] = {**p, **l}
    return out


def window(rate, per_seconds, burst):
    """`w` of RateLimit-Policy: seconds to refill from empty (burst x period / rate, up)."""
    return math.ceil(burst * per_seconds / rate)


def assert_no_limit_headers(headers):
    for name in ("RateLimit-Policy", "RateLimit", "Retry-After"):
        assert name not in headers, (name, dict(headers))


def assert_429(r, policy_name=None):
    assert r.status_code == 429, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["error"] == "rate_limited" and body["error_description"] and body["request_id"], body
    retry_after = r.headers["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1, retry_after
    limits = limits_of(r.headers)
    if policy_name is not None:
        assert limits[policy_name]["r"] == 0, limits
    return int(retry_after)


def upstream_paths(upstream):
    return [rec["path"] for rec in upstream.requests()]


# --- headers on limited routes, and a 429 never reaches the upstream --------------------------

HEADER_ROUTES = (
    route("/v1/databases", scopes=["read:databases"], rate_limit="default")
    + route("/v1/policies", method="POST", scopes=["read:databases"], rate_limit="default")
    + route("/chunked", scopes=["read:databases"], rate_limit="default")
    + route("/v1/unlimited", scopes=["read:databases"])
    + route("/v1/anon", rate_limit="anon")
    + route("/health")
)


def test_headers_on_every_response_of_a_limited_route_and_429_never_reaches_upstream(
        make_gateway, upstream, redis_server, pepper):
    tail = redis_tail(redis_server.port, pepper) + policy("default", 1, "minute", 5) + policy("anon", 1, "minute", 2)
    gateway = make_gateway(upstream.url, routes=HEADER_ROUTES, tail=tail)
    key = create_key(gateway, ["read:databases"])
    url = gateway.url
    with requests.Session() as s:
        h = bearer(key["key"])
        # 5 tokens, 1 per minute: remaining counts down exactly; t is the time to full.
        paths = ["/v1/databases", "/chunked?parts=4", "/v1/databases", "/v1/databases?x=1", "/chunked"]
        for i, path in enumerate(paths):
            r = s.get(url + path, headers=h, timeout=5)
            assert r.status_code == 200, (path, r.text)
            limits = limits_of(r.headers)
            assert list(limits) == ["default"]
            d = limits["default"]
            assert (d["q"], d["w"]) == (5, window(1, 60, 5)), d
            assert d["r"] == 4 - i, (i, d)
            assert 60 * (i + 1) - 1 <= d["t"] <= 60 * (i + 1), (i, d)
            assert "Retry-After" not in r.headers
        assert r.text == "part0;part1;part2;"  # the chunked body passed through intact
        # The unlimited route of the same principal: no headers at all.
        r = s.get(url + "/v1/unlimited", headers=h, timeout=5)
        assert r.status_code == 200
        assert_no_limit_headers(r.headers)
        r = s.get(url + "/health", timeout=5)
        assert r.status_code == 200
        assert_no_limit_headers(r.headers)
        forwarded = upstream_paths(upstream)
        # Exhausted: 429s, on GET and on a POST with a body, none forwarded.
        for path in ("/v1/databases", "/chunked"):
            retry_after = assert_429(s.get(url + path, headers=h, timeout=5), "default")
            assert 59 <= retry_after <= 60, retry_after
        r = s.post(url + "/v1/policies", headers=h, data=b"x" * 10000, timeout=5)
        assert_429(r, "default")
        # The connection (or a new one) still serves the unlimited route afterwards.
        r = s.get(url + "/v1/unlimited", headers=h, timeout=5)
        assert r.status_code == 200
        assert upstream_paths(upstream) == forwarded + ["/v1/unlimited"]
    # A public route with a policy: bucket per client address, headers on every response.
    for i in range(2):
        r = requests.get(url + "/v1/anon", timeout=5)
        assert r.status_code == 200
        assert limits_of(r.headers)["anon"]["r"] == 1 - i
    before = len(upstream.requests())
    assert_429(requests.get(url + "/v1/anon", timeout=5), "anon")
    # No trusted_proxies: X-Forwarded-For does not buy a fresh bucket.
    assert_429(requests.get(url + "/v1/anon", headers={"X-Forwarded-For": "198.51.100.1"}, timeout=5), "anon")
    assert len(upstream.requests()) == before


def test_key_tier_and_route_policy_both_apply(make_gateway, upstream, redis_server, pepper):
    tail = (redis_tail(redis_server.port, pepper) + policy("default", 1, "minute", 5)
            + policy("bronze", 1, "minute", 2) + policy("gold", 1, "minute", 50))
    routes = route("/v1/databases", scopes=["read:databases"], rate_limit="default") + route(
        "/v1/unlimited", scopes=["read:databases"])
    gateway = make_gateway(upstream.url, routes=routes, tail=tail)
    bronze = create_key(gateway, ["read:databases"], name="bronze", rate_limit="bronze")
    gold = create_key(gateway, ["read:databases"], name="gold", rate_limit="gold")
    url = gateway.url + "/v1/databases"
    # Bronze: the tier (2) is the tighter of the two; both are listed, route first.
    for i in range(2):
        r = requests.get(url, headers=bearer(bronze["key"]), timeout=5)
        assert r.status_code == 200
        limits = limits_of(r.headers)
        assert list(limits) == ["default", "bronze"], r.headers["RateLimit-Policy"]
        assert limits["default"]["r"] == 4 - i and limits["bronze"]["r"] == 1 - i
    r = requests.get(url, headers=bearer(bronze["key"]), timeout=5)
    assert_429(r, "bronze")
    # The tier applies on routes without a policy of their own too.
    r = requests.get(gateway.url + "/v1/unlimited", headers=bearer(bronze["key"]), timeout=5)
    assert_429(r, "bronze")
    # Gold: the tier is generous, the route's 5 still holds.
    for i in range(5):
        r = requests.get(url, headers=bearer(gold["key"]), timeout=5)
        assert r.status_code == 200
        assert limits_of(r.headers)["gold"]["r"] == 49 - i
    assert_429(requests.get(url, headers=bearer(gold["key"]), timeout=5), "default")
    assert sum(1 for p in upstream_paths(upstream) if p == "/v1/databases") == 7
    assert "/v1/unlimited" not in upstream_paths(upstream)


# --- 2. exactness across instances ------------------------------------------------------------

BURST_RATE, BURST = 20, 20
EXACT_ROUTES = (route("/v1/databases", scopes=["read:databases"], rate_limit="sustained")
                + route("/v1/reports", scopes=["read:databases"], rate_limit="exact"))


@pytest.fixture
def two_instances(make_gateway, upstream, redis_server, pepper):
    tail = (redis_tail(redis_server.port, pepper) + policy("sustained", BURST_RATE, "second", BURST)
            + policy("exact", 1, "hour", BURST))
    a = make_gateway(upstream.url, routes=EXACT_ROUTES, tail=tail)
    b = make_gateway(upstream.url, routes=EXACT_ROUTES, tail=tail)
    return a, b


def simultaneous_gets(ports, path, headers):
    """One request per port entry, on its own connection: every connection is opened first,
    then all requests are written back to back, then the answers are read."""
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for port in ports]
    try:
        time.sleep(0.3)  # every connection accepted and registered on its loop
        head = f"GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        payload = head.encode()
        for s in sockets:
            s.sendall(payload)
        answers = []
        for s in sockets:
            answers.append(parse_response(read_until_closed(s)))
        return answers
    finally:
        for s in sockets:
            s.close()


def test_concurrent_burst_across_two_instances_admits_exactly_burst(two_instances, upstream, redis_server):
    a, b = two_instances
    key = create_key(a, ["read:databases"])
    answers = simultaneous_gets([a.port, b.port] * (2 * BURST), "/v1/reports", bearer(key["key"]))
    statuses = [status for status, _, _ in answers]
    assert len(statuses) == 4 * BURST
    assert statuses.count(200) == BURST, sorted(statuses)
    assert statuses.count(429) == 3 * BURST, sorted(statuses)
    # Every admitted request saw a distinct remaining count: one atomic decision each.
    remaining = sorted(sf_members(h["ratelimit"])[0][1]["r"] for status, h, _ in answers if status == 200)
    assert remaining == list(range(BURST)), remaining
    for status, headers, body in answers:
        if status == 429:
            assert json.loads(body)["error"] == "rate_limited"
            assert headers["retry-after"].isdigit() and int(headers["retry-after"]) >= 1
            assert sf_members(headers["ratelimit"])[0][1]["r"] == 0
    # Both instances took part in admitting, and only the admitted reached the upstream.
    assert upstream_paths(upstream).count("/v1/reports") == BURST
    # The bucket lives in Redis (shared), not in either process, and expires when it would
    # be full again: 20 tokens at 1 per hour.
    pttl = int(redis_server.command("PTTL", f"dbgw:rl:exact:k:key:{key['id']}")[1:].strip())
    assert 20 * 3600_000 - 60_000 < pttl <= 20 * 3600_000 + 2, pttl


def test_concurrent_requests_on_one_gateway_share_script_calls_and_admit_exactly_burst(
        make_gateway, upstream, redis_server, pepper):
    # The decisions waiting in one event-loop tick go to Redis in one script call: many
    # requests at once cost fewer EVALSHAs than requests, and the bucket stays exact.
    tail = (redis_tail(redis_server.port, pepper) + policy("exact", 1, "hour", BURST)
            + '\n[admin]\nlisten = "127.0.0.1:0"\n')
    gateway = make_gateway(upstream.url, routes=route("/v1/reports", scopes=["read:databases"], rate_limit="exact"),
                           tail=tail)
    key = create_key(gateway, ["read:databases"])
    requests_sent = 4 * BURST
    before = metrics(admin_port(gateway))
    evalshas_before = redis_server.command_calls("evalsha")
    answers = simultaneous_gets([gateway.port] * requests_sent, "/v1/reports", bearer(key["key"]))
    evalshas = redis_server.command_calls("evalsha") - evalshas_before
    after = metrics(admin_port(gateway))

    statuses = [status for status, _, _ in answers]
    assert statuses.count(200) == BURST and statuses.count(429) == 3 * BURST, sorted(statuses)
    remaining = sorted(sf_members(h["ratelimit"])[0][1]["r"] for status, h, _ in answers if status == 200)
    assert remaining == list(range(BURST)), remaining
    assert upstream_paths(upstream).count("/v1/reports") == BURST

    def delta(name, **labels):
        family = "dbgw_rate_limit_redis_call_decisions"
        if name == "dbgw_rate_limit_decisions_total":
            family = "dbgw_rate_limit_decisions"
        return sample(after, family, name, **labels) - sample(before, family, name, **labels)

    decisions = delta("dbgw_rate_limit_decisions_total", store="redis")
    calls = delta("dbgw_rate_limit_redis_call_decisions_count")
    print(f"\n{requests_sent} concurrent requests: {decisions:.0f} decisions in {calls:.0f} script calls "
          f"({evalshas} EVALSHA)")
    assert decisions == requests_sent
    assert delta("dbgw_rate_limit_redis_call_decisions_sum") == requests_sent
    # Every rate-limit call is one EVALSHA (nothing else ran a script meanwhile), and fewer
    # than one per request.
    assert calls == evalshas
    assert evalshas < requests_sent


def test_local_mode_concurrent_burst_is_exact_across_event_loops(make_gateway, upstream):
    # No [redis]: in-process buckets, one limit per client across both event loops.
    gateway = make_gateway(upstream.url, routes=route("/v1/anon", rate_limit="exact"),
                           tail=policy("exact", 1, "hour", BURST))
    answers = simultaneous_gets([gateway.port] * (4 * BURST), "/v1/anon", {})
    statuses = [status for status, _, _ in answers]
    assert statuses.count(200) == BURST and statuses.count(429) == 3 * BURST, sorted(statuses)
    remaining = sorted(sf_members(h["ratelimit"])[0][1]["r"] for status, h, _ in answers if status == 200)
    assert remaining == list(range(BURST)), remaining
    assert upstream_paths(upstream).count("/v1/anon") == BURST


class Hammer:
    """Client threads sending GETs as fast as they can, each on its own keep-alive
    connection, recording (sent, answered, status) per request."""

    def __init__(self, targets, headers, timeout=5.0):
        self.targets = targets  # one URL per thread
        self.headers = headers
        self.timeout = timeout
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.records = []
        self.errors = []
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in targets]

    def _run(self, target):
        with requests.Session() as session:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    r = session.get(target, headers=self.headers, timeout=self.timeout)
                    record = (sent, time.monotonic(), r.status_code, target, r.headers, r.content)
                except Exception as error:  # noqa: BLE001 - a dropped connection is a finding
                    self.errors.append(repr(error))
                    record = (sent, time.monotonic(), None, target, {}, b"")
                with self.lock:
                    self.records.append(record)

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=self.timeout + 5)
        assert not any(t.is_alive() for t in self.threads), "a client thread hung"
        self.records.sort(key=lambda rec: rec[0])
        return self.records


def test_sustained_overload_across_two_instances_admits_burst_plus_rate_times_elapsed(
        two_instances, upstream, redis_server):
    a, b = two_instances
    key = create_key(a, ["read:databases"], name="hammered")
    other = create_key(a, ["read:databases"], name="bystander")
    url_a, url_b = a.url + "/v1/databases", b.url + "/v1/databases"
    hammer = Hammer([url_a, url_b] * 3, bearer(key["key"])).start()
    try:
        # The 10 s run is timed from the first request sent, not from the threads' start.
        assert wait_until(hammer.snapshot, 5), "the hammer sent nothing"
        started = min(rec[0] for rec in hammer.snapshot())
        time.sleep(max(0.0, started + 5 - time.monotonic()))
        # A different key is unaffected by the overload, on either instance (one bucket).
        bystander = [requests.get(u, headers=bearer(other["key"]), timeout=5) for u in (url_a, url_b)]
        time.sleep(max(0.0, started + 10.1 - time.monotonic()))
    finally:
        records = hammer.finish()
    assert hammer.errors == [], hammer.errors[:5]
    for r in bystander:
        assert r.status_code == 200, r.text
    assert limits_of(bystander[0].headers)["sustained"]["r"] == BURST - 1
    assert limits_of(bystander[1].headers)["sustained"]["r"] in (BURST - 2, BURST - 1)
    statuses = [rec[2] for rec in records]
    admitted = statuses.count(200)
    refused = statuses.count(429)
    assert admitted + refused == len(records), set(statuses)
    first_sent = records[0][0]
    last_sent = max(rec[0] for rec in records)
    last_answered = max(rec[1] for rec in records)
    first_answered = min(rec[1] for rec in records)
    elapsed = last_sent - first_sent
    expected = BURST + BURST_RATE * elapsed
    deviation = (admitted - expected) / expected * 100
    per_instance = {u: sum(1 for rec in records if rec[3] == u and rec[2] == 200) for u in (url_a, url_b)}
    print(f"\nsustained overload: {len(records)} requests in {elapsed:.3f} s (first to last sent; "
          f"{last_answered - first_sent:.3f} s to the last answer), {len(records) / elapsed:.0f} req/s, "
          f"admitted {admitted} (A {per_instance[url_a]}, B {per_instance[url_b]}), "
          f"expected burst + rate x elapsed = {BURST} + {BURST_RATE} x {elapsed:.3f} = {expected:.1f}, "
          f"deviation {deviation:+.2f}%, refused {refused}; "
          f"bounds [{BURST + BURST_RATE * (last_sent - first_answered):.1f}, "
          f"{BURST + BURST_RATE * (last_answered - first_sent):.1f}]")
    assert elapsed >= 9.9, elapsed
    assert refused > 3 * admitted, "not an overload"
    assert per_instance[url_a] > 0 and per_instance[url_b] > 0
    # Every decision lies between its request's sending and its answer, so the admitted
    # count is bounded by the rate over those instants whatever the load; and within 1 %
    # (scaled) of burst + rate x elapsed.
    lower = BURST + BURST_RATE * (last_sent - first_answered)
    upper = BURST + BURST_RATE * (last_answered - first_sent)
    assert math.floor(lower) - 1 <= admitted <= math.ceil(upper) + 1, (admitted, lower, upper)
    assert abs(admitted - expected) <= scaled(0.01) * expected, (admitted, expected)
    assert upstream_paths(upstream).count("/v1/databases") == admitted + len(bystander)
    for rec in records:
        headers = rec[4]
        limits = limits_of(headers)["sustained"]
        assert (limits["q"], limits["w"]) == (BURST, window(BURST_RATE, 1, BURST))
        if rec[2] == 429:
            assert headers["Retry-After"] == "1", headers
    # No decision fell back to the local buckets (that would admit up to a burst per process).
    for gateway in (a, b):
        assert not any("rate-limit store unavailable" in str(line.get("msg", "")) for line in gateway.log_lines())
    # Idle, the bucket refills within burst / rate = 1 s, and its key expires then.
    bucket = f"dbgw:rl:sustained:k:key:{key['id']}"
    assert wait_until(lambda: redis_server.command("EXISTS", bucket) == b":0\r\n", 1.5), "bucket key still there"


# --- 3. Retry-After is honest -----------------------------------------------------------------

HONEST_POLICIES = (policy("one_per_second", 1, "second", 1) + policy("five_per_second", 5, "second", 5)
                   + policy("two_per_minute", 2, "minute", 1) + policy("forty_per_minute", 40, "minute", 2))
HONEST_ROUTES = (route("/v1/one", rate_limit="one_per_second") + route("/v1/five", rate_limit="five_per_second")
                 + route("/v1/two-per-minute", rate_limit="two_per_minute")
                 + route("/v1/forty-per-minute", rate_limit="forty_per_minute"))


@pytest.fixture(params=["redis", "local"])
def honest_gateway(request, make_gateway, upstream, pepper):
    if request.param == "redis":
        redis = request.getfixturevalue("redis_server")
        tail = redis_tail(redis.port, pepper) + HONEST_POLICIES
    else:
        tail = HONEST_POLICIES  # no [redis]: in-process buckets
    return make_gateway(upstream.url, routes=HONEST_ROUTES, tail=tail)


def test_retry_after_is_honest(honest_gateway, upstream):
    url = honest_gateway.url
    with requests.Session() as s:
        # rate 1/s, burst 1: the fractional case, Retry-After rounds up to exactly 1.
        r = s.get(url + "/v1/one", timeout=5)
        assert r.status_code == 200
        assert limits_of(r.headers)["one_per_second"] == {"q": 1, "w": 1, "r": 0, "t": 1}
        for _ in range(3):
            r = s.get(url + "/v1/one", timeout=5)
            assert assert_429(r, "one_per_second") == 1
            time.sleep(1)
            r = s.get(url + "/v1/one", timeout=5)
            assert r.status_code == 200, r.text
        # rate 5/s, burst 5: exhaust the burst (a slow client sees some refill on the way),
        # wait what Retry-After says, admitted.
        statuses = []
        while len(statuses) < 20 and 429 not in statuses:
            r = s.get(url + "/v1/five", timeout=5)
            statuses.append(r.status_code)
        assert statuses[:5] == [200] * 5 and statuses[-1] == 429, statuses
        retry_after = assert_429(r, "five_per_second")
        assert retry_after == 1
        time.sleep(retry_after)
        assert s.get(url + "/v1/five", timeout=5).status_code == 200
        # rate 2/minute, burst 1: one token every 30 s, so Retry-After is 30 (not 60, not 1).
        r = s.get(url + "/v1/two-per-minute", timeout=5)
        assert r.status_code == 200
        assert limits_of(r.headers)["two_per_minute"] == {"q": 1, "w": 30, "r": 0, "t": 30}
        r = s.get(url + "/v1/two-per-minute", timeout=5)
        assert assert_429(r, "two_per_minute") == 30
        assert 29 <= limits_of(r.headers)["two_per_minute"]["t"] <= 30
        # rate 40/minute, burst 2: one token every 1.5 s. Retry-After 2; after 1 s it is not
        # there yet (the header did not overstate), after Retry-After it is.
        for _ in range(2):
            assert s.get(url + "/v1/forty-per-minute", timeout=5).status_code == 200
        refused_sent = time.monotonic()
        r = s.get(url + "/v1/forty-per-minute", timeout=5)
        refused_answered = time.monotonic()
        retry_after = assert_429(r, "forty_per_minute")
        assert retry_after == 2
        # Poll until admitted. Whatever the load: the token cannot have come back sooner than
        # Retry-After - 1 s after the refusal (the header did not overstate), and every poll
        # refused was decided before Retry-After had passed (it did not understate).
        last_refused_sent = refused_sent
        while True:
            sent = time.monotonic()
            r = s.get(url + "/v1/forty-per-minute", timeout=5)
            if r.status_code == 200:
                admitted_answered = time.monotonic()
                break
            assert assert_429(r, "forty_per_minute") in (1, 2)
            last_refused_sent = sent
            assert sent - refused_answered < scaled(retry_after + 1), "no token long after Retry-After"
            time.sleep(0.05)
        assert admitted_answered - refused_sent > retry_after - 1, admitted_answered - refused_sent
        assert last_refused_sent < refused_answered + retry_after, last_refused_sent - refused_answered
    # 200s reached the upstream, 429s did not.
    paths = [p.split("?")[0] for p in upstream_paths(upstream)]
    assert {p: paths.count(p) for p in set(paths)} == {
        "/v1/one": 4, "/v1/five": statuses.count(200) + 1, "/v1/two-per-minute": 1, "/v1/forty-per-minute": 3}


# --- 4. Redis kill -9 and CLIENT PAUSE during load ---------------------------------------------

COMMAND_TIMEOUT = 0.2
# Client-side slack over the command timeout: Python, two gateways' loops and Redis share
# two CPUs here.
MARGIN = scaled(0.25)
FALLBACK_BURST = 5
OUTAGE_ROUTES = (route("/v1/limited", rate_limit="fallback") + route("/v1/strict", rate_limit="strict")
                 + route("/v1/databases", scopes=["read:databases"], rate_limit="strict"))
OUTAGE_POLICIES = (policy("fallback", 1, "minute", FALLBACK_BURST, "local")
                   + policy("strict", 1, "minute", 20, "deny"))


@pytest.fixture
def outage_gateway(make_gateway, upstream, redis_server, pepper):
    tail = redis_tail(redis_server.port, pepper, command_timeout="200ms", connect_timeout="200ms") + OUTAGE_POLICIES
    return make_gateway(upstream.url, server='trusted_proxies = ["127.0.0.1"]', routes=OUTAGE_ROUTES, tail=tail)


def from_client(address, extra=None):
    return {"X-Forwarded-For": address, **(extra or {})}


def bucket_key(policy_name, key):
    return f"dbgw:rl:{policy_name}:k:{key}"


def assert_bounded(records, what):
    slowest = max(rec[1] - rec[0] for rec in records)
    assert slowest < COMMAND_TIMEOUT + MARGIN, f"{what}: a request took {slowest * 1000:.0f} ms"
    return slowest


def test_redis_kill9_with_local_fallback_keeps_limiting_then_recovers(outage_gateway, redis_server, upstream):
    url = outage_gateway.url + "/v1/limited"
    client = "10.1.0.1"
    hammer = Hammer([url] * 2, from_client(client)).start()
    try:
        # Redis decides: exactly the burst, then 429s.
        assert wait_until(lambda: any(rec[2] == 429 for rec in hammer.snapshot()), 5)
        time.sleep(0.3)
        assert redis_server.command("EXISTS", bucket_key("fallback", "addr:" + client)) == b":1\r\n"
        killing_at = time.monotonic()
        redis_server.kill9()
        killed_at = time.monotonic()
        time.sleep(1.5)
    finally:
        records = hammer.finish()
    assert hammer.errors == [], hammer.errors[:5]
    before = [rec for rec in records if rec[1] < killing_at]
    after = [rec for rec in records if rec[0] > killed_at]
    print(f"\nkill -9: {len(before)} requests before, {len(after)} after; slowest after "
          f"{max(rec[1] - rec[0] for rec in after) * 1000:.0f} ms")
    assert [rec[2] for rec in before].count(200) == FALLBACK_BURST
    after_statuses = [rec[2] for rec in after]
    # Local buckets take over: a fresh local burst at most, then 429 again.
    assert len(after) > 2 * FALLBACK_BURST, len(after)
    assert 1 <= after_statuses.count(200) <= FALLBACK_BURST, after_statuses
    assert after_statuses[-FALLBACK_BURST:] == [429] * FALLBACK_BURST, after_statuses
    assert_bounded(after, "kill -9 with local fallback")
    for rec in records:
        limits = limits_of(rec[4])["fallback"]
        assert (limits["q"], limits["w"]) == (FALLBACK_BURST, 60 * FALLBACK_BURST)
        if rec[2] == 429:
            assert json.loads(rec[5])["error"] == "rate_limited" and rec[4]["Retry-After"].isdigit()
    # In all: the Redis burst, then one local burst (also counting requests in flight at the kill).
    assert [rec[2] for rec in records].count(200) == 2 * FALLBACK_BURST
    assert upstream_paths(upstream).count("/v1/limited") == 2 * FALLBACK_BURST
    outage_gateway.wait_for_log(lambda line: "rate-limit store unavailable" in str(line.get("msg", "")))
    # Redis returns (its AOF still has the exhausted bucket): drop that bucket, and a 200
    # proves Redis decides again (the local bucket of this client is empty).
    redis_server.start()
    redis_server.command("DEL", bucket_key("fallback", "addr:" + client))

    def admitted():
        r = requests.get(url, headers=from_client(client), timeout=5)
        return r if r.status_code == 200 else None

    r = wait_until(admitted, 5)
    assert r is not None, "no 200 within 5 s after Redis came back"
    assert limits_of(r.headers)["fallback"]["r"] == FALLBACK_BURST - 1
    assert redis_server.command("EXISTS", bucket_key("fallback", "addr:" + client)) == b":1\r\n"
    assert outage_gateway.proc.poll() is None


def test_redis_client_pause_with_local_fallback_keeps_limiting_within_the_timeout(outage_gateway, redis_server, upstream):
    url = outage_gateway.url + "/v1/limited"
    client = "10.2.0.1"
    with requests.Session() as s:
        for i in range(FALLBACK_BURST):
            assert s.get(url, headers=from_client(client), timeout=5).status_code == 200
        assert_429(s.get(url, headers=from_client(client), timeout=5), "fallback")
    forwarded = upstream_paths(upstream).count("/v1/limited")
    hammer = Hammer([url] * 2, from_client(client)).start()
    try:
        assert wait_until(hammer.snapshot, 5), "the hammer sent nothing"
        assert redis_server.command("CLIENT", "PAUSE", "2000", "ALL") == b"+OK\r\n"
        paused_at = time.monotonic()
        time.sleep(2.4)
    finally:
        records = hammer.finish()
    assert hammer.errors == [], hammer.errors[:5]
    during = [rec for rec in records if paused_at + 0.02 < rec[0] and rec[1] < paused_at + 1.95]
    print(f"\nCLIENT PAUSE: {len(records)} requests, {len(during)} within the pause; slowest "
          f"{max(rec[1] - rec[0] for rec in records) * 1000:.0f} ms; in the pause (status, ms) "
          f"{[(rec[2], round((rec[1] - rec[0]) * 1000)) for rec in during]}")
    assert_bounded(records, "CLIENT PAUSE with local fallback")
    # Within the pause, decisions waited out the command timeout, then went local.
    assert len(during) > FALLBACK_BURST + 2, len(during)
    statuses = [rec[2] for rec in records]
    # The client's Redis bucket was empty: only the fresh local bucket admitted, at most its burst.
    assert 1 <= statuses.count(200) <= FALLBACK_BURST, statuses
    assert [rec[2] for rec in during][-2:] == [429, 429], [rec[2] for rec in during]
    for rec in records:
        limits_of(rec[4])
    assert upstream_paths(upstream).count("/v1/limited") == forwarded + statuses.count(200)
    # After the pause: Redis decides again, promptly, for a new client.
    time.sleep(max(0.0, paused_at + 2.1 - time.monotonic()))

    def decided_by_redis():
        started = time.monotonic()
        r = requests.get(url, headers=from_client("10.2.0.2"), timeout=5)
        return (r, time.monotonic() - started) if r.status_code == 200 else None

    answer = wait_until(decided_by_redis, 3)
    assert answer is not None, "no 200 within 3 s after the pause"
    r, took = answer
    assert took < COMMAND_TIMEOUT, took
    assert limits_of(r.headers)["fallback"]["r"] == FALLBACK_BURST - 1
    assert redis_server.command("EXISTS", bucket_key("fallback", "addr:10.2.0.2")) == b":1\r\n"


def assert_503_unavailable(r):
    assert r.status_code == 503, (r.status_code, r.text)
    assert r.json()["error"] == "rate_limit_unavailable", r.text
    assert r.headers["Retry-After"].isdigit()


def test_deny_policy_answers_503_during_kill9_and_pause_then_recovers(outage_gateway, redis_server, upstream):
    key = create_key(outage_gateway, ["read:databases"])
    databases = outage_gateway.url + "/v1/databases"
    strict = outage_gateway.url + "/v1/strict"
    # Warm the credential cache on both event loops (a new connection each time).
    for _ in range(4):
        r = requests.get(databases, headers=bearer(key["key"]), timeout=5)
        assert r.status_code == 200 and "strict" in limits_of(r.headers)
    forwarded = len(upstream.requests())
    redis_server.kill9()
    hammer = Hammer([strict, databases], {**bearer(key["key"]), "X-Forwarded-For": "10.3.0.1"}).start()
    try:
        time.sleep(1.0)
    finally:
        records = hammer.finish()
    assert hammer.errors == [], hammer.errors[:5]
    print(f"\ndeny, Redis killed: {len(records)} requests, slowest {max(rec[1] - rec[0] for rec in records) * 1000:.0f} ms")
    assert len(records) > 10
    for rec in records:
        assert rec[2] == 503, (rec[3], rec[2], rec[5][:200])
        assert json.loads(rec[5])["error"] == "rate_limit_unavailable", rec[5]
        assert rec[4]["Retry-After"].isdigit()
    assert {rec[3] for rec in records} == {strict, databases}
    assert_bounded(records, "deny with Redis killed")
    assert len(upstream.requests()) == forwarded
    # Redis back: 200 again, with the headers.
    redis_server.start()

    def admitted():
        r = requests.get(strict, timeout=5)
        return r if r.status_code == 200 else None

    admitted_after_restart = []

    def admitted_on_every_loop():
        # Each event loop reconnects its own Redis connection (back-off capped at 1 s), and
        # a new connection per request lands on each loop in turn: all of them must be back.
        answers = [requests.get(strict, timeout=5) for _ in range(2)]
        answers += [requests.get(databases, headers=bearer(key["key"]), timeout=5) for _ in range(2)]
        admitted_after_restart.extend(r for r in answers if r.status_code == 200)
        return answers if all(r.status_code == 200 for r in answers) else None

    answers = wait_until(admitted_on_every_loop, 5)
    assert answers is not None, "not every event loop admits again within 5 s after Redis came back"
    assert all("strict" in limits_of(r.headers) for r in answers)
    # CLIENT PAUSE: 503 after the command timeout, not later; 200 once the pause ends.
    pause = scaled(1.5)
    assert redis_server.command("CLIENT", "PAUSE", str(int(pause * 1000)), "ALL") == b"+OK\r\n"
    paused_at = time.monotonic()
    took = []
    for url, headers in ((strict, {}), (databases, bearer(key["key"])), (strict, {})):
        started = time.monotonic()
        r = requests.get(url, headers=headers, timeout=5)
        took.append(time.monotonic() - started)
        assert_503_unavailable(r)
    assert time.monotonic() < paused_at + pause, "the pause ended before the checks"
    assert all(t < COMMAND_TIMEOUT + MARGIN for t in took), took
    r = wait_until(admitted, pause + 3)
    assert r is not None and "strict" in limits_of(r.headers)
    # Forwarded since the outage: exactly the 200s after the restart and the one after the
    # pause; no refusal reached the upstream.
    assert len(upstream.requests()) == forwarded + len(admitted_after_restart) + 1
    assert outage_gateway.proc.poll() is None


def test_gateway_errors_after_admission_carry_the_headers(make_gateway, upstream):
    # Admitted (a token is spent), then the gateway itself answers 504 / 502: the client is
    # still told where its quota stands (issue 6: headers on every response of a limited route).
    tail = policy("p", 1, "hour", 50)
    timing_out = make_gateway(upstream.url, routes=route("/**", rate_limit="p"), tail=tail,
                              upstream='response_timeout = "500ms"')
    r = requests.get(timing_out.url + "/silent", timeout=5)
    assert r.status_code == 504, r.text
    down = make_gateway(f"http://127.0.0.1:{free_port()}", routes=route("/**", rate_limit="p"), tail=tail)
    r2 = requests.get(down.url + "/anything", timeout=5)
    assert r2.status_code == 502, r2.text
    assert limits_of(r.headers)["p"]["r"] == 49
    assert limits_of(r2.headers)["p"]["r"] == 49


# --- 5. the login endpoint, per address and per account ----------------------------------------

PASSWORD = "correct horse battery"
PER_ADDRESS, PER_ACCOUNT = 6, 3


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory):
    path = tmp_path_factory.mktemp("jwt") / "signing-key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path)],
                   check=True, capture_output=True, timeout=60)
    return path


def login_tail(redis_port, pepper, signing_key, window="1m"):
    return redis_tail(redis_port, pepper) + policy("per_user", 1, "minute", 3) + f"""
[auth.jwt]
issuer = "https://gateway.test"
audience = "dbaudit-api"
password_hash_cost = 10
login_attempts_per_address = {PER_ADDRESS}
login_attempts_per_account = {PER_ACCOUNT}
login_window = "{window}"

[[auth.jwt.signing_keys]]
kid = "rl-test"
algorithm = "RS256"
private_key_file = "{signing_key}"
active = true
"""


@pytest.fixture
def login_gateway(make_gateway, upstream, redis_server, pepper, signing_key):
    def make(server="", window="1m"):
        gateway = make_gateway(upstream.url, server=server,
                               routes=route("/v1/databases", scopes=["read:databases"], rate_limit="per_user"),
                               tail=login_tail(redis_server.port, pepper, signing_key, window))
        result = subprocess.run(
            [gateway_binary(), "users", "add", "--config", str(gateway.config_path), "--email", "target@example.test",
             "--scopes", "read:databases"],
            input=PASSWORD + "\n", capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return gateway
    return make


def attempt(gateway, email, password="wrong password guess", forwarded_for=None):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return requests.post(f"{gateway.url}/v1/auth/login", json={"email": email, "password": password},
                         headers=headers, timeout=10)


def assert_refused_401(r):
    assert r.status_code == 401, (r.status_code, r.text)
    assert r.json()["error"] == "invalid_credentials", r.text


def assert_login_429(r, longest):
    assert r.status_code == 429, (r.status_code, r.text)
    assert r.json()["error"] == "too_many_attempts", r.text
    retry_after = r.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= longest, retry_after
    return int(retry_after)


def test_login_limited_per_account(login_gateway, upstream):
    gateway = login_gateway()
    for _ in range(PER_ACCOUNT):
        assert_refused_401(attempt(gateway, "target@example.test"))
    # One token of 3 per minute comes back every 20 s.
    assert 19 <= assert_login_429(attempt(gateway, "target@example.test"), 20)
    # The right password waits too, and the account is matched case-insensitively.
    assert_login_429(attempt(gateway, "Target@Example.test", PASSWORD), 20)
    # Another account from the same address is not locked by this one.
    assert attempt(gateway, "other@example.test").status_code == 401
    assert upstream.requests() == []


def test_login_limited_per_address_across_accounts(login_gateway):
    gateway = login_gateway()
    for i in range(PER_ADDRESS):
        assert_refused_401(attempt(gateway, f"nobody{i}@example.test"))
    # 6 per minute: one every 10 s.
    assert 9 <= assert_login_429(attempt(gateway, "nobody-else@example.test"), 10)
    assert_login_429(attempt(gateway, "target@example.test", PASSWORD), 10)


def test_login_per_address_follows_x_forwarded_for_from_trusted_proxies(login_gateway):
    gateway = login_gateway(server='trusted_proxies = ["127.0.0.1"]')
    for i in range(PER_ADDRESS):
        assert_refused_401(attempt(gateway, f"a{i}@example.test", forwarded_for="198.51.100.7"))
    assert_login_429(attempt(gateway, "a-last@example.test", forwarded_for="198.51.100.7"), 10)
    # The client is the rightmost untrusted hop: a forged left part does not help, a trusted
    # right hop is skipped.
    assert_login_429(attempt(gateway, "b@example.test", forwarded_for="203.0.113.99, 198.51.100.7"), 10)
    assert_login_429(attempt(gateway, "c@example.test", forwarded_for="198.51.100.7, 127.0.0.1"), 10)
    # Other forwarded clients, and the proxy's own address, have their own buckets.
    assert_refused_401(attempt(gateway, "d@example.test", forwarded_for="198.51.100.8"))
    assert_refused_401(attempt(gateway, "e@example.test", forwarded_for="198.51.100.7, 198.51.100.9"))
    assert_refused_401(attempt(gateway, "f@example.test"))
    # The account limit holds whatever address the attempts come from.
    for i in range(PER_ACCOUNT):
        assert_refused_401(attempt(gateway, "target@example.test", forwarded_for=f"192.0.2.{i + 1}"))
    assert_login_429(attempt(gateway, "target@example.test", PASSWORD, forwarded_for="192.0.2.200"), 20)


def test_login_ignores_x_forwarded_for_without_trusted_proxies(login_gateway):
    gateway = login_gateway()
    for i in range(PER_ADDRESS):
        assert_refused_401(attempt(gateway, f"x{i}@example.test", forwarded_for=f"198.51.100.{i + 1}"))
    # All of them counted against 127.0.0.1.
    assert_login_429(attempt(gateway, "x-last@example.test", forwarded_for="198.51.100.200"), 10)
    assert_login_429(attempt(gateway, "x-none@example.test"), 10)


def test_login_retry_after_is_honest(login_gateway):
    # A 3 s window: 3 attempts per account refill at one per second.
    gateway = login_gateway(window="3s")
    for _ in range(PER_ACCOUNT):
        assert_refused_401(attempt(gateway, "target@example.test"))
    retry_after = assert_login_429(attempt(gateway, "target@example.test"), 1)
    time.sleep(retry_after)
    r = attempt(gateway, "target@example.test", PASSWORD)
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "Bearer"


def test_login_429_carries_the_ratelimit_headers(login_gateway):
    # A 429 carries Retry-After and the RateLimit headers.
    gateway = login_gateway()
    for _ in range(PER_ACCOUNT):
        assert_refused_401(attempt(gateway, "target@example.test"))
    r = attempt(gateway, "target@example.test")
    assert_login_429(r, 20)
    limits = limits_of(r.headers)
    assert any(v["r"] == 0 for v in limits.values()), limits


def test_jwt_principal_bucket_is_keyed_by_subject_not_by_token(login_gateway, upstream):
    gateway = login_gateway()
    tokens = []
    for _ in range(2):
        r = attempt(gateway, "target@example.test", PASSWORD)
        assert r.status_code == 200, r.text
        tokens.append(r.json()["access_token"])
    url = gateway.url + "/v1/databases"
    # Two sessions of one user draw from one bucket (3 per minute).
    for i, token in enumerate([tokens[0], tokens[1], tokens[0]]):
        r = requests.get(url, headers=bearer(token), timeout=5)
        assert r.status_code == 200, r.text
        assert limits_of(r.headers)["per_user"]["r"] == 2 - i
    assert_429(requests.get(url, headers=bearer(tokens[1]), timeout=5), "per_user")
    # An API key is its own principal, with its own bucket.
    key = create_key(gateway, ["read:databases"])
    r = requests.get(url, headers=bearer(key["key"]), timeout=5)
    assert r.status_code == 200 and limits_of(r.headers)["per_user"]["r"] == 2
    assert upstream_paths(upstream).count("/v1/databases") == 4
