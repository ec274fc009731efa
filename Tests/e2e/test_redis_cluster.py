"""Redis Cluster (issue 17): three primaries on loopback (one replica each with
GATEWAY_CLUSTER_LONG=1, `make test-cluster-long`), two gateway instances with
`cluster_nodes`. Figures are printed (pytest -s).

Asserted: 10,000 API keys answer correctly (403 on an admin route the gateway answers
itself: found, with their scopes, where an unknown key gets 401; a sample also gets 200
through the upstream, whose Python server would otherwise set the pace); their records
(`dbgw:apikey:{<hash>}`) are spread over the three primaries, each holding about a third,
while the id pointers and indexes sit in the slot of the stores' hash tag, and their token
buckets spread over every primary too; slots holding records are migrated during load
(SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE), never-seen keys of each slot looked up
before, during (ASK) and after (MOVED) its move, with 0 failed requests and the
redirections counted in /metrics; a rate limit stays exact for one key across the two
instances; a revoked key is refused on both within 1 s; /readyz names the three primaries.
A second test runs the rest of the stores on the cluster: an OAuth authorization-code flow
with refresh and revocation, API keys created, listed and revoked on the settings pages,
`users add`/`users list` and `keys list`. The gateways run as the ACL user docs/redis.md
documents, created on every node, and no node's ACL LOG records a refusal. Revocations go over
sharded pub/sub (SSUBSCRIBE on the primary serving the channel's slot, SPUBLISH, no plain
pub/sub) and follow the slot when it is migrated; on nodes without sharded pub/sub (SPUBLISH
and SSUBSCRIBE renamed away, as before Redis 7) they fall back to plain pub/sub. The long
version then kills (SIGKILL) the primary
serving the stores' tag: only 503s while the cluster promotes its replica (never a 401 for
a valid key), lookups work again once it has, and a revocation after the switch is refused
on both instances within 1 s."""

import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import (OAuthSetup, RedisServer, admin_port, bearer, create_key, free_port, gateway_binary, scaled,
                      seconds_until_refused, wait_until, write_pepper)
from test_api_keys import key_record, make_api_key
from test_oauth_bcp import EMAIL as OAUTH_EMAIL
from test_oauth_bcp import code_for, redeem, refresh
from test_redis_tls import documented_acl_rule
from test_settings_pages import Settings, Visitor
from test_systemd import NotifySocket, has, notify_dir  # noqa: F401 (notify_dir: a fixture)

LONG = os.environ.get("GATEWAY_CLUSTER_LONG") == "1"
KEYS = 10_000
MIGRATION_KEYS = 8_000
MIGRATED_SLOTS = 40
SAMPLE = 300
STORE_PREFIX = "dbgw:{gw}:"
RECORD_PREFIX = "dbgw:apikey:"
CHANNEL = STORE_PREFIX + "events"
ACL_PASSWORD = "cluster-acl-password-1234"
EXACT_BURST = 10

ROUTES = f"""
[[routes]]
method = "GET"
path = "/v1/admin"
scopes = ["admin"]
rate_limit = "per-key"

[[routes]]
method = "GET"
path = "/v1/databases"
scopes = ["read:databases"]
rate_limit = "per-key"

[[routes]]
method = "GET"
path = "/v1/exact"
scopes = ["read:databases"]
rate_limit = "exact"

[[rate_limits]]
name = "per-key"
rate = 100000
per = "second"
burst = 100000

[[rate_limits]]
name = "exact"
rate = 1
per = "hour"
burst = {EXACT_BURST}
"""


class Resp:
    """A small RESP2 client on one connection (arrays included), for the cluster's own
    administration: the gateway is what is under test, not this."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def call(self, *args):
        payload = b"*%d\r\n" % len(args)
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
        self.sock.sendall(payload)
        return self._reply()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(1 << 16)
            assert chunk, "redis closed the connection"
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self.buffer) < size + 2:
                chunk = self.sock.recv(1 << 16)
                assert chunk, "redis closed the connection"
                self.buffer += chunk
            data, self.buffer = self.buffer[:size], self.buffer[size + 2:]
            return data
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise AssertionError(f"not RESP: {line[:80]!r}")

    def close(self):
        self.sock.close()


class Cluster:
    """Three primaries (and with `replicas` one replica each) made a cluster by
    `redis-cli --cluster create`; each node's cluster bus on a port of its own."""

    def __init__(self, tmp_path, replicas: int, extra_args=()):
        self.nodes = [RedisServer(tmp_path, extra_args=[
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
            "--cluster-port", str(free_port()), *extra_args]) for _ in range(3 * (1 + replicas))]
        result = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
             "--cluster-replicas", str(replicas), "--cluster-yes"],
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert wait_until(self.settled, 30, interval=0.1), "the cluster did not settle"

    def settled(self) -> bool:
        for node in self.nodes:
            info = node.command("CLUSTER", "INFO").decode()
            if "cluster_state:ok" not in info or "cluster_known_nodes:%d" % len(self.nodes) not in info:
                return False
        return len(self.primaries()) == 3

    def topology(self):
        """(node id, port, is primary, slot ranges) per node, from CLUSTER NODES."""
        live = next(n for n in self.nodes if n.proc.poll() is None)
        client = Resp(live.port)
        try:
            text = client.call("CLUSTER", "NODES").decode()
        finally:
            client.close()
        rows = []
        for line in text.strip().splitlines():
            fields = line.split()
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            rows.append((fields[0], port, "master" in fields[2], fields[8:]))
        return rows

    def primaries(self):
        return [(node_id, port) for node_id, port, primary, _ in self.topology() if primary]

    def owner(self, slot: int):
        for node_id, port, primary, ranges in self.topology():
            for piece in ranges:
                if piece.startswith("["):
                    continue
                low, _, high = piece.partition("-")
                if int(low) <= slot <= int(high or low):
                    return node_id, port
        raise AssertionError(f"slot {slot} has no owner")

    def seeds(self) -> str:
        return ", ".join(f'"127.0.0.1:{n.port}"' for n in self.nodes[:3])

    def call(self, port: int, *args):
        client = Resp(port)
        try:
            return client.call(*args)
        finally:
            client.close()

    def pubsub(self):
        """Per primary's port: (sharded subscribers of CHANNEL, plain channels with subscribers)."""
        return {port: (self.call(port, "PUBSUB", "SHARDNUMSUB", CHANNEL)[1], self.call(port, "PUBSUB", "CHANNELS"))
                for _, port in self.primaries()}

    def plain_subscribers(self) -> int:
        return sum(self.call(port, "PUBSUB", "NUMSUB", CHANNEL)[1] for _, port in self.primaries())

    def create_acl_user(self) -> str:
        """The documented rule, on every node (ACL users are per node); returns the password."""
        rule = documented_acl_rule().replace(">PASSWORD", ">" + ACL_PASSWORD)
        for node in self.nodes:
            assert node.command(*rule.split()) == b"+OK\r\n"
        return ACL_PASSWORD

    def acl_log(self):
        """Per node's port: the ACL LOG entries (empty when nothing was refused)."""
        return {n.port: self.call(n.port, "ACL", "LOG") for n in self.nodes if n.proc.poll() is None}

    def stop(self):
        for node in self.nodes:
            node.stop()


@pytest.fixture
def cluster(tmp_path):
    nodes = Cluster(tmp_path, replicas=1 if LONG else 0)
    yield nodes
    nodes.stop()


def _crc16_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


CRC16 = _crc16_table()


def key_slot(key: str) -> int:
    """Redis Cluster's slot of `key`: CRC16 (XMODEM) of its hash tag, or of the whole key
    without one, modulo 16384."""
    data = key.encode()
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1:end]
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ CRC16[(crc >> 8) ^ byte]
    return crc % 16384


def slot_owners(cluster) -> list:
    """The port of the primary serving each slot."""
    owners = [None] * 16384
    for _, port, primary, ranges in cluster.topology():
        for piece in ranges if primary else []:
            if piece.startswith("["):
                continue
            low, _, high = piece.partition("-")
            owners[int(low):int(high or low) + 1] = [port] * (int(high or low) + 1 - int(low))
    assert None not in owners
    return owners


def pipelined(port: int, commands) -> None:
    """Sends `commands` on one connection and waits for every reply (each a one-line reply:
    status or integer); fails on an error reply."""
    payload = bytearray()
    for args in commands:
        payload += b"*%d\r\n" % len(args)
        for arg in args:
            data = str(arg).encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(bytes(payload))
        received = b""
        while received.count(b"\r\n") < len(commands):
            chunk = s.recv(1 << 20)
            assert chunk, "redis closed the seeding connection"
            received += chunk
    assert b"\r\n-" not in b"\r\n" + received, received[:200]


def seed_cluster_keys(cluster, pepper_path, records) -> list:
    """Writes `(key, record)` pairs straight into the cluster in the gateway's cluster
    layout (seeding thousands through the API would be slow): each record under its own
    hash tag (`dbgw:apikey:{<hash>}`) on the primary serving that slot; the id pointer, the
    two indexes and the indexed marker in the slot of the stores' tag, all pipelined per
    node. Returns each key's hash."""
    pepper_text = pepper_path.read_text().strip().encode()
    owners = slot_owners(cluster)
    tag_port = owners[key_slot(STORE_PREFIX)]
    by_node = defaultdict(list)
    digests = []
    for key, record in records:
        digest = hmac.new(pepper_text, key.encode(), hashlib.sha256).hexdigest()
        digests.append(digest)
        name = f"{RECORD_PREFIX}{{{digest}}}"
        by_node[owners[key_slot(name)]].append(("SET", name, json.dumps(record)))
        by_node[tag_port] += [("SET", f"{STORE_PREFIX}apikey-id:{record['id']}", digest),
                              ("SADD", f"{STORE_PREFIX}apikeys", record["id"]),
                              ("INCR", f"{STORE_PREFIX}apikeys-indexed"),
                              ("ZADD", f"{STORE_PREFIX}apikeys-by-created", record["created_at"], record["id"]),
                              ("ZADD", f"{STORE_PREFIX}apikeys-owner:{record['owner']}", record["created_at"],
                               record["id"])]
    for port, commands in by_node.items():
        pipelined(port, commands)
    return digests


def count_keys(port: int, pattern: str) -> int:
    """How many keys matching `pattern` the node at `port` holds (SCAN)."""
    client = Resp(port)
    try:
        cursor, count = b"0", 0
        while True:
            cursor, names = client.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            count += len(names)
            if cursor == b"0":
                return count
    finally:
        client.close()


def metric(port: int, line_start: str) -> float:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[1])
    raise AssertionError(f"{line_start} not in /metrics")


def run_requests(gateway, tokens, threads=8, path="/v1/databases"):
    """One GET per token, spread over `threads` keep-alive sessions; the statuses in order."""
    local = threading.local()

    def one(token):
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session.get(gateway.url + path, headers=bearer(token), timeout=10).status_code

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, tokens))


def migrate_slot(cluster, slot, before, during, after):
    """Moves `slot` to another primary: SETSLOT IMPORTING and MIGRATING, then `before()`
    (the keys still on the source), MIGRATE of the slot's keys, `during()` (the slot half
    migrated: the source answers ASK for them), SETSLOT NODE on every primary, `after()`
    (the gateways' maps still name the source: MOVED). Returns the keys moved."""
    source_id, source_port = cluster.owner(slot)
    target_id, target_port = next((i, p) for i, p in cluster.primaries() if i != source_id)
    source, target = Resp(source_port), Resp(target_port)
    moved = 0
    try:
        assert target.call("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id) == "OK"
        assert source.call("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id) == "OK"
        before()
        while True:
            keys = source.call("CLUSTER", "GETKEYSINSLOT", slot, 200)
            if not keys:
                break
            assert source.call("MIGRATE", "127.0.0.1", target_port, "", 0, 5000, "KEYS", *keys) == "OK"
            moved += len(keys)
        during()
        for _, port in cluster.primaries():
            node = Resp(port)
            try:
                assert node.call("CLUSTER", "SETSLOT", slot, "NODE", target_id) == "OK"
            finally:
                node.close()
        after()
    finally:
        source.close()
        target.close()
    return moved


def cluster_tail(cluster, pepper, credentials=""):
    return f"""
[redis]
cluster_nodes = [{cluster.seeds()}]
connect_timeout = "300ms"
command_timeout = "1s"
{credentials}
[auth.api_keys]
pepper_file = "{pepper}"

[cache]
positive_ttl = "60s"

[admin]
listen = "127.0.0.1:0"
"""


def revoke_and_time(gateways, key):
    """Revokes `key` with `keys revoke` after it is cached on every gateway; the seconds until
    each refuses it (None: not within 2 s)."""
    for g in gateways:
        assert run_requests(g, [key["key"]] * 12, threads=4) == [200] * 12
    revoked_at = time.monotonic()
    result = subprocess.run([gateway_binary(), "keys", "revoke", "--config", str(gateways[0].config_path),
                             key["id"]], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return [seconds_until_refused(g.url + "/v1/databases", key["key"], 2, since=revoked_at, probes=4)
            for g in gateways]


def test_cluster_routing_migration_exact_buckets_and_revocation(make_gateway, upstream, cluster, tmp_path):
    pepper = write_pepper(tmp_path / "pepper")
    # The gateways run as the documented ACL user, on every node.
    secret = tmp_path / "redis-password"
    secret.write_text(cluster.create_acl_user() + "\n")
    tail = cluster_tail(cluster, pepper, credentials=f'username = "dbgw"\npassword_file = "{secret}"\n')
    gateways = [make_gateway(upstream.url, routes=ROUTES, tail=tail) for _ in range(2)]
    admins = [admin_port(g) for g in gateways]

    # 10,000 keys (and more kept for the migration) written straight into the cluster, in
    # its layout.
    now = int(time.time())
    started = time.monotonic()
    records = [(make_api_key(), key_record(f"key_{n:016x}", "seeded", ["read:databases"], now))
               for n in range(KEYS + MIGRATION_KEYS)]
    digests = seed_cluster_keys(cluster, pepper, records)
    seeded = time.monotonic() - started
    tokens = [key for key, _ in records[:KEYS]]
    slot = key_slot(STORE_PREFIX)

    # The records are spread: each primary holds about a third of them; the pointers and
    # indexes are all in the tag's slot.
    shares = {port: count_keys(port, RECORD_PREFIX + "{*") for _, port in cluster.primaries()}
    print(f"\nrecords per primary: {shares}")
    assert sum(shares.values()) == len(records), shares
    assert all(share >= len(records) // 4 for share in shares.values()), shares
    tag_node = Resp(cluster.owner(slot)[1])
    try:
        # A pointer per key, the two indexes, the id set and the marker (and the records
        # whose hash happens to fall in that slot).
        records_in_slot = sum(1 for digest in digests if key_slot(digest) == slot)
        assert tag_node.call("CLUSTER", "COUNTKEYSINSLOT", slot) == len(records) + 4 + records_in_slot
        assert tag_node.call("CLUSTER", "KEYSLOT", f"{RECORD_PREFIX}{{{digests[0]}}}") == key_slot(digests[0])
    finally:
        tag_node.close()

    started = time.monotonic()
    statuses = (run_requests(gateways[0], tokens[: KEYS // 2], path="/v1/admin")
                + run_requests(gateways[1], tokens[KEYS // 2:], path="/v1/admin"))
    answered = time.monotonic() - started
    assert statuses == [403] * KEYS, {s: statuses.count(s) for s in set(statuses)}
    sample = run_requests(gateways[0], tokens[::KEYS // SAMPLE])
    assert sample == [200] * len(sample)
    unknown = run_requests(gateways[0], [make_api_key() for _ in range(50)], path="/v1/admin")
    assert unknown == [401] * 50
    # Every key has its own token bucket (a bucket this generous empties again at once):
    # the scripts ran on every primary.
    by_port = {n.port: n for n in cluster.nodes}
    buckets = {port: by_port[port].command_calls("evalsha") for _, port in cluster.primaries()}
    print(f"seeded {len(records)} keys in {seeded:.2f} s; {KEYS} keys answered in {answered:.2f} s "
          f"({KEYS / answered:.0f}/s); bucket scripts per primary {buckets}")
    assert all(count >= len(sample) // 10 for count in buckets.values()), buckets

    ready = requests.get(f"http://127.0.0.1:{admins[0]}/readyz", timeout=5).json()
    named = set(ready["checks"]["redis_cluster_nodes"].split(","))
    assert named == {f"redis://127.0.0.1:{port}" for _, port in cluster.primaries()}, ready

    # Slots holding records of never-seen keys move to other primaries while the other
    # never-seen keys are looked up; in each moved slot one key is looked up before the
    # move, one while the slot is half migrated (ASK), one after it (MOVED).
    spare = list(zip(records[KEYS:], digests[KEYS:]))
    by_slot = defaultdict(list)
    for (key, _), digest in spare:
        by_slot[key_slot(digest)].append(key)
    moving = sorted(s for s, keys in by_slot.items() if len(keys) >= 3 and s != slot)[:MIGRATED_SLOTS]
    assert len(moving) >= MIGRATED_SLOTS // 2, len(moving)
    in_moving = {key for s in moving for key in by_slot[s]}
    background = [key for (key, _), _ in spare if key not in in_moving]
    done = threading.Event()
    load_statuses = []
    probes = []

    def load():
        position = 0
        while not done.is_set() and position < len(background):
            batch = background[position:position + 50]
            position += len(batch)
            load_statuses.extend(run_requests(gateways[position // 50 % 2], batch, threads=4, path="/v1/admin"))

    def probe(gateway, key):
        return lambda: probes.extend(run_requests(gateway, [key], threads=1, path="/v1/admin"))

    loader = threading.Thread(target=load)
    loader.start()
    started = time.monotonic()
    moved_keys = 0
    try:
        for n, moving_slot in enumerate(moving):
            first, second, third = by_slot[moving_slot][:3]
            moved_keys += migrate_slot(cluster, moving_slot, probe(gateways[n % 2], first),
                                       probe(gateways[(n + 1) % 2], second), probe(gateways[n % 2], third))
    finally:
        done.set()
        loader.join(timeout=60)
    migration_seconds = time.monotonic() - started
    failed = [s for s in load_statuses + probes if s != 403]
    ask = sum(metric(p, 'dbgw_redis_cluster_redirects_total{kind="ask"}') for p in admins)
    moved = sum(metric(p, 'dbgw_redis_cluster_redirects_total{kind="moved"}') for p in admins)
    print(f"cluster: {len(cluster.nodes)} nodes; {len(moving)} slots holding records migrated ({moved_keys} "
          f"keys) in {migration_seconds:.2f} s; {len(probes)} lookups in those slots and {len(load_statuses)} "
          f"other never-seen keys during it; {len(failed)} failed; ASK {ask:.0f}, MOVED {moved:.0f}")
    assert moved_keys >= 3 * len(moving)
    assert len(probes) == 3 * len(moving)
    assert failed == [], {s: failed.count(s) for s in set(failed)}
    assert ask >= len(moving) and moved >= len(moving) // 2, (ask, moved)

    # One key's bucket, shared by both instances: exactly the burst gets through.
    limited = create_key(gateways[0], ["read:databases"], name="limited")
    exact = []
    for n in range(3 * EXACT_BURST):
        exact.append(requests.get(gateways[n % 2].url + "/v1/exact", headers=bearer(limited["key"]),
                                  timeout=5).status_code)
    print(f"shared bucket across two instances: {exact.count(200)} allowed, {exact.count(429)} limited")
    assert exact.count(200) == EXACT_BURST and exact.count(429) == 2 * EXACT_BURST, exact

    # Revocation on a cluster: refused on both instances within 1 s.
    delays = revoke_and_time(gateways, create_key(gateways[0], ["read:databases"], name="victim"))
    print(f"revocation refused on both instances after {[round(d, 3) if d else d for d in delays]} s")
    assert all(d is not None and d < 1.0 for d in delays), delays
    # Nothing the gateways (or `keys`) sent was refused by the documented rule.
    assert all(entries == [] for entries in cluster.acl_log().values()), cluster.acl_log()

    if not LONG:
        return
    # Failover of the primary serving the tag (the first seed node's subscription may be
    # on it too): its replica takes over.
    _, old_port = cluster.owner(slot)
    by_port[old_port].kill9()
    killed_at = time.monotonic()
    # Keys gateway 0 has not cached (gateway 1 looked them up), newest last.
    fresh = iter(tokens[KEYS // 2:][::-1])
    outage = []

    def lookups_work():
        status = run_requests(gateways[0], [next(fresh)], threads=1, path="/v1/admin")[0]
        outage.append(status)
        return status == 403

    def promoted():
        try:
            return cluster.owner(slot)[1] != old_port
        except (AssertionError, OSError, RuntimeError):
            return False

    promoted_after = None
    deadline = time.monotonic() + scaled(30)
    while time.monotonic() < deadline:
        if promoted_after is None and promoted():
            promoted_after = time.monotonic() - killed_at
        if lookups_work() and promoted_after is not None:
            break
        time.sleep(0.05)
    assert promoted_after is not None, "no replica was promoted"
    recovered_after = time.monotonic() - killed_at
    print(f"failover: replica promoted {promoted_after:.2f} s after the kill; never-seen keys answered again "
          f"{recovered_after:.2f} s after the kill; {len(outage)} lookups meanwhile: "
          f"{ {s: outage.count(s) for s in set(outage)} }")
    assert set(outage) <= {403, 503}, outage
    assert recovered_after - promoted_after < 2.0
    delays = revoke_and_time(gateways, create_key(gateways[0], ["read:databases"], name="after failover"))
    print(f"revocation after the failover refused after {[round(d, 3) if d else d for d in delays]} s")
    assert all(d is not None and d < 1.0 for d in delays), delays
    assert all(entries == [] for entries in cluster.acl_log().values()), cluster.acl_log()


def on_cluster(make_gateway, cluster):
    """A `make_gateway` whose configurations name the cluster's seed nodes instead of the
    one Redis URL the shared setups write, so those setups (and the CLI commands run with
    their configuration) work on the cluster."""
    def factory(upstream_url, **kwargs):
        tail, count = re.subn(r'^url = "redis://127\.0\.0\.1:\d+"$', f"cluster_nodes = [{cluster.seeds()}]",
                              kwargs.get("tail", ""), flags=re.M)
        assert count == 1, kwargs.get("tail")
        return make_gateway(upstream_url, **(kwargs | {"tail": tail}))
    return factory


def cli(gateway, *arguments):
    result = subprocess.run([gateway_binary(), *arguments, "--config", str(gateway.config_path), "--json"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_users_settings_pages_keys_and_oauth_on_a_cluster(make_gateway, upstream, cluster, tmp_path):
    factory = on_cluster(make_gateway, cluster)
    owners = slot_owners(cluster)
    tag_port = owners[key_slot(STORE_PREFIX)]

    # users add (three users, through the shared setup) and users list: the users sit in the
    # tag's slot, which `users list` scans on the node serving it.
    settings = Settings(tmp_path, factory, upstream.url, 0)
    users = cli(settings.gateway, "users", "list")
    assert [u["email"] for u in users] == ["ada@example.test", "bob@example.test", "root@example.test"], users
    assert [u["id"] for u in users] == [settings.ada["id"], settings.bob["id"], settings.root["id"]]
    by_port = {n.port: n for n in cluster.nodes}
    scans = {port: by_port[port].command_calls("scan") for _, port in cluster.primaries()}
    assert scans[tag_port] >= 1 and all(n == 0 for port, n in scans.items() if port != tag_port), scans
    assert {port: count_keys(port, STORE_PREFIX + "user:*") for _, port in cluster.primaries()}[tag_port] == 3

    # Settings > API Keys: created, listed, used, revoked; each record is under its own hash
    # tag on the primary serving that slot.
    ada = Visitor(settings, "ada@example.test")
    pepper = (tmp_path / "settings-pepper").read_text().strip().encode()
    keys = [ada.create_key(f"cluster key {n}", ["read:logs"]) for n in range(4)]
    listed_ids = ada.key_ids()
    assert len(listed_ids) == 4
    for key in keys:
        digest = hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()
        name = f"{RECORD_PREFIX}{{{digest}}}"
        node = Resp(owners[key_slot(name)])
        try:
            assert node.call("EXISTS", name) == 1, name
        finally:
            node.close()
        assert requests.get(settings.url + "/v1/logs", headers=bearer(key), timeout=10).status_code == 200
    ids = {r["last4"]: r["id"] for r in cli(settings.gateway, "keys", "list")}
    victim = ids[keys[0][-4:]]
    r = ada.post("/api-keys/revoke", {"csrf_token": ada.csrf(), "id": victim})
    assert r.status_code == 303, r.text
    assert wait_until(lambda: requests.get(settings.url + "/v1/logs", headers=bearer(keys[0]),
                                           timeout=10).status_code == 401, 2)
    assert ada.key_ids() == [i for i in listed_ids if i != victim]

    # keys list: every key, the revoked one marked, the last use read back from its own slot.
    records = {r["id"]: r for r in cli(settings.gateway, "keys", "list")}
    assert set(records) == set(listed_ids) and len(ids) == 4
    assert records[victim]["revoked"] is True
    assert all(records[i]["revoked"] is False and records[i]["last_used_at"] is not None
               for i in listed_ids if i != victim)

    # OAuth: a code through the login and consent pages, its exchange, a refresh, and the
    # revocation of the grant (its access tokens refused within 1 s).
    oauth = OAuthSetup(tmp_path, factory, upstream.url, 0)
    oauth.add_user(OAUTH_EMAIL)
    code, redirect_uri, verifier = code_for(oauth, oauth.public_client)
    r = redeem(oauth, oauth.public_client, code, redirect_uri, verifier)
    assert r.status_code == 200, r.text
    issued = r.json()
    assert requests.get(oauth.url + "/v1/databases", headers=bearer(issued["access_token"]),
                        timeout=10).status_code == 200
    r = refresh(oauth, oauth.public_client, issued["refresh_token"])
    assert r.status_code == 200, r.text
    refreshed = r.json()
    assert refreshed["refresh_token"] != issued["refresh_token"]
    assert requests.get(oauth.url + "/v1/databases", headers=bearer(refreshed["access_token"]),
                        timeout=10).status_code == 200
    revoked_at = time.monotonic()
    r = requests.post(oauth.endpoint("revoke"), data={"token": refreshed["refresh_token"],
                                                      "client_id": oauth.public_client}, timeout=10)
    assert r.status_code == 200, r.text
    delay = seconds_until_refused(oauth.url + "/v1/databases", refreshed["access_token"], 2, since=revoked_at)
    assert delay is not None and delay < 1.0, delay
    r = refresh(oauth, oauth.public_client, refreshed["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    # A code is redeemed once: presented again, it is refused and what it issued revoked.
    code, redirect_uri, verifier = code_for(oauth, oauth.public_client)
    first = redeem(oauth, oauth.public_client, code, redirect_uri, verifier)
    assert first.status_code == 200, first.text
    r = redeem(oauth, oauth.public_client, code, redirect_uri, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    assert seconds_until_refused(oauth.url + "/v1/databases", first.json()["access_token"], 2) is not None


def test_revocations_use_sharded_pubsub_and_follow_the_slot(make_gateway, upstream, cluster, tmp_path, notify_dir):
    pepper = write_pepper(tmp_path / "pepper")
    notify = NotifySocket(str(notify_dir / "notify"))
    try:
        first = make_gateway(upstream.url, routes=ROUTES, tail=cluster_tail(cluster, pepper),
                             env={"NOTIFY_SOCKET": notify.address}, wait=False)
        notify.set_probe_port(first.port)
        _, ready = notify.wait_for(has("READY", "1"), timeout=20)
    finally:
        notify.close()
    # The start-up status names the cluster's primaries (the first answered PING), not the seed.
    primaries = [f"redis://127.0.0.1:{port}" for _, port in cluster.primaries()]
    status = ready.fields["STATUS"]
    prefix = f"serving on 127.0.0.1:{first.port}; Redis "
    assert status.startswith(prefix) and status.endswith(" answered PING"), status
    answered, _, listed = status[len(prefix):-len(" answered PING")].partition(" (cluster primaries: ")
    assert listed.endswith(")") and sorted(listed[:-1].split(", ")) == sorted(primaries), status
    assert answered == listed[:-1].split(", ")[0], status
    gateways = [first, make_gateway(upstream.url, routes=ROUTES, tail=cluster_tail(cluster, pepper))]
    slot = cluster.call(cluster.nodes[0].port, "CLUSTER", "KEYSLOT", CHANNEL)
    _, owner = cluster.owner(slot)

    def subscribed_on(port):
        """Both gateways listen with SSUBSCRIBE on `port` only; nobody uses plain pub/sub."""
        state = cluster.pubsub()
        return (all(count == (2 if p == port else 0) for p, (count, _) in state.items())
                and all(channels == [] for _, channels in state.values()) and cluster.plain_subscribers() == 0)

    assert wait_until(lambda: subscribed_on(owner), 5), cluster.pubsub()
    assert cluster.call(owner, "PUBSUB", "SHARDCHANNELS") == [CHANNEL.encode()]
    publish_before = sum(n.command_calls("publish") for n in cluster.nodes)
    spublish_before = cluster.nodes[[n.port for n in cluster.nodes].index(owner)].command_calls("spublish")
    delays = revoke_and_time(gateways, create_key(gateways[0], ["read:databases"], name="first"))
    print(f"\nsharded: revocation refused on both instances after {delays} s")
    assert all(d is not None and d < 1.0 for d in delays), delays
    # Published with SPUBLISH on the owner, never with PUBLISH.
    by_port = {n.port: n for n in cluster.nodes}
    assert by_port[owner].command_calls("spublish") > spublish_before
    assert sum(n.command_calls("publish") for n in cluster.nodes) == publish_before

    # The channel's slot (the stores' tag) moves to another primary: the subscriptions follow it.
    moved_keys = migrate_slot(cluster, slot, lambda: None, lambda: None, lambda: None)
    _, new_owner = cluster.owner(slot)
    assert new_owner != owner
    followed_at = time.monotonic()
    assert wait_until(lambda: subscribed_on(new_owner), 5), cluster.pubsub()
    print(f"slot {slot} ({moved_keys} keys) moved from {owner} to {new_owner}; both subscriptions there after "
          f"{time.monotonic() - followed_at:.3f} s")
    for g in gateways:
        assert wait_until(lambda: any("Redis pub/sub subscription moves" in l.get("msg", "")
                                      for l in g.log_lines()), 5)
    delays = revoke_and_time(gateways, create_key(gateways[1], ["read:databases"], name="after the move"))
    print(f"revocation after the move refused on both instances after {delays} s")
    assert all(d is not None and d < 1.0 for d in delays), delays
    assert by_port[new_owner].command_calls("spublish") >= 1


@pytest.fixture
def cluster_without_sharded_pubsub(tmp_path):
    """As before Redis 7: the nodes answer `ERR unknown command` to SPUBLISH and SSUBSCRIBE."""
    nodes = Cluster(tmp_path, replicas=0,
                    extra_args=["--rename-command", "SPUBLISH", "", "--rename-command", "SSUBSCRIBE", ""])
    yield nodes
    nodes.stop()


def test_revocations_fall_back_to_plain_pubsub_without_sharded_pubsub(make_gateway, upstream,
                                                                     cluster_without_sharded_pubsub, tmp_path):
    cluster = cluster_without_sharded_pubsub
    pepper = write_pepper(tmp_path / "pepper")
    gateways = [make_gateway(upstream.url, routes=ROUTES, tail=cluster_tail(cluster, pepper)) for _ in range(2)]
    assert wait_until(lambda: cluster.plain_subscribers() == 2, 5), cluster.plain_subscribers()
    assert all(count == 0 for count, _ in cluster.pubsub().values()), cluster.pubsub()
    delays = revoke_and_time(gateways, create_key(gateways[0], ["read:databases"], name="plain"))
    print(f"\nplain pub/sub fallback: revocation refused on both instances after {delays} s")
    assert all(d is not None and d < 1.0 for d in delays), delays
    assert sum(n.command_calls("publish") for n in cluster.nodes) >= 1
    for g in gateways:
        notes = [l for l in g.log_lines() if "does not know sharded pub/sub" in l.get("msg", "")]
        assert len(notes) == 1, notes
