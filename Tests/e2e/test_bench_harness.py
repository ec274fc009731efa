"""The benchmark harness (bench/run.py) itself, for what `make bench` cannot show cheaply:

- the Redis deployments of the Redis mode variants (issue 17: the request path with a
  Sentinel-discovered primary and a 3-primary cluster beside the single-Redis figure) start
  for real on loopback (one redis-server; a primary, a replica and three sentinels; three
  cluster primaries), without persistence, render gateway configs `check-config` accepts,
  and are all stopped by the harness's registry;
- the pre-flight check of a Redis mode refuses a gateway whose /readyz names another node
  or whose buckets are not in the deployment (a fake admin listener stands in for the
  gateway);
- the report puts the variants beside the single-Redis gateway, with ratios variant ÷
  single round by round, and says how many Redis processes ran and where.
"""

import importlib.util
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import gateway_binary

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    module.REGISTRY.stop_all()
    del sys.modules["bench_run"]


class FakeAdmin:
    """An admin listener answering /readyz with whatever `checks` holds (the gateway's JSON
    shape), and any other GET with 200 (the timed route, for the same fake gateway)."""

    def __init__(self):
        self.checks: dict = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({"status": "ready", "checks": owner.checks}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_redis_deployments_run_check_and_stop(bench, tmp_path):
    settings = bench.parse_args(["--quick", "--no-pin", "--gateway-bin", gateway_binary()])
    ctx = bench.Context(settings=settings, tmp=tmp_path, load_cpu=None, proxy_cpu=None)
    admin = FakeAdmin()
    try:
        bench.start_redis(ctx)
        sentinel = bench.start_redis_sentinel(ctx)
        cluster = bench.start_redis_cluster(ctx)
        assert set(ctx.redis_deployments) == {"single", "sentinel", "cluster"}
        processes = ctx.redis_processes
        assert len(processes) == 1 + 5 + 3 and all(m.alive() for m in processes)

        # No persistence on any data node; everything on loopback.
        for d in ctx.redis_deployments.values():
            for port in d.data_ports:
                assert bench.redis_call(port, "CONFIG", "GET", "appendonly") == [b"appendonly", b"no"]
                assert bench.redis_call(port, "CONFIG", "GET", "save") == [b"save", b""]
                assert bench.redis_call(port, "CONFIG", "GET", "bind")[1] == b"127.0.0.1"
        primary, replica = sentinel.data_ports
        assert {bench.sentinel_primary(p) for p in sentinel.sentinel_ports} == {f"127.0.0.1:{primary}"}
        assert bench.redis_info(replica, "replication")["role"] == "slave"
        owners = bench.cluster_slot_owners(cluster.data_ports[0])
        assert {port for _, _, port in owners} == set(cluster.data_ports)
        assert sum(last - first + 1 for first, last, _ in owners) == bench.CLUSTER_SLOTS

        # The bucket scenario's gateway template, rendered for each mode, passes check-config.
        for mode, d in ctx.redis_deployments.items():
            conf = tmp_path / f"gateway-{mode}.conf"
            pepper = tmp_path / "pepper"
            pepper.write_text("ab" * 32 + "\n")
            os.chmod(pepper, 0o600)
            conf.write_text(bench.render(bench.GATEWAY_DIR / "api-key-redis-bucket.conf", {
                "port": 1, "event_loops": 1, "upstream_port": 2, "upstream_keepalive": 256, "admin_port": 3,
                "redis_target": d.gateway_redis(), "pepper_file": pepper,
                "route_rate_limit": 'rate_limit = "bench"'}))
            text = conf.read_text()
            assert {"single": "url = ", "sentinel": "sentinels = ", "cluster": "cluster_nodes = "}[mode] in text
            result = subprocess.run([gateway_binary(), "check-config", "--config", str(conf)], capture_output=True,
                                    text=True, timeout=60)
            assert result.returncode == 0, f"{mode}: {result.stdout}{result.stderr}"

        def target(mode):
            # The fake answers the gateway's requests too (the check sends some before looking for buckets).
            return bench.Target("gateway-x", "gateway", admin.port, 2, processes[0], {}, admin_port=admin.port,
                                redis=ctx.redis_deployments[mode], credentials={"spread": [{}, {}]})

        # Sentinel: /readyz must name the primary the sentinels name, and the buckets must be on it.
        admin.checks = {"redis": "ok", "redis_node": f"127.0.0.1:{replica}", "redis_role": "replica"}
        with pytest.raises(bench.CheckFailed, match="Sentinel-named primary"):
            bench.check_redis_mode(target("sentinel"))
        admin.checks = {"redis": "ok", "redis_node": f"127.0.0.1:{primary}", "redis_role": "primary"}
        with pytest.raises(bench.CheckFailed, match="no token bucket"):
            bench.check_redis_mode(target("sentinel"))
        for policy in ("bench", "bench-low"):
            bench.redis_call(primary, "SET", f"dbgw:rl:{policy}:k:key_1", "1")
        assert bench.check_redis_mode(target("sentinel")) == (
            f"the 3 sentinels and /readyz name 127.0.0.1:{primary} (role primary; replica port {replica}); "
            "the buckets are on the primary")
        # Single: the harness's redis-server, not the Sentinel primary.
        with pytest.raises(bench.CheckFailed, match="single redis-server"):
            bench.check_redis_mode(target("single"))
        # The gateway names the node as a URL.
        admin.checks = {"redis": "ok", "redis_node": f"redis://127.0.0.1:{ctx.redis_port}", "redis_role": "primary"}
        assert bench.check_redis_mode(target("single")) == f"/readyz redis_node 127.0.0.1:{ctx.redis_port} (role primary)"

        # Cluster: /readyz must list the three primaries, and the buckets be on cluster nodes.
        nodes = [f"127.0.0.1:{p}" for p in cluster.data_ports]
        admin.checks = {"redis": "ok", "redis_cluster_nodes": ",".join(nodes[:2])}
        with pytest.raises(bench.CheckFailed, match="redis_cluster_nodes"):
            bench.check_redis_mode(target("cluster"))
        admin.checks = {"redis": "ok", "redis_cluster_nodes": ",".join(nodes)}
        with pytest.raises(bench.CheckFailed, match="no token bucket"):
            bench.check_redis_mode(target("cluster"))

        def set_in_cluster(*keys):
            for key in keys:
                done = subprocess.run(["redis-cli", "-c", "-p", str(cluster.data_ports[0]), "SET", key, "1"],
                                      capture_output=True, text=True, timeout=10)
                assert done.stdout.strip() == "OK", done.stdout + done.stderr

        # Buckets of one key only: on one primary, not spread.
        set_in_cluster("dbgw:rl:bench:k:key_1", "dbgw:rl:bench-low:k:key_1", "dbgw:{gw}:apikey:00")
        with pytest.raises(bench.CheckFailed, match="all on one primary"):
            bench.check_redis_mode(target("cluster"))
        set_in_cluster(*(f"dbgw:rl:bench-low:k:key_{n}" for n in range(2, 12)))
        holders = [p for p in cluster.data_ports if bench.redis_scan(p, "dbgw:rl:bench-low:*")]
        assert len(holders) >= 2, holders
        seen = bench.check_redis_mode(target("cluster"))
        assert seen.startswith("/readyz redis_cluster_nodes lists the 3 primaries (ports "), seen
        assert "buckets: bench (the timed key) on port " in seen and "bench-low of 3 keys on ports " in seen, seen
        assert "; API key records on port " in seen, seen
    finally:
        admin.close()
        started = list(bench.REGISTRY.items)
        bench.REGISTRY.stop_all()
    assert len(started) == 9
    assert all(m.popen.poll() is not None for m in started), "a Redis process of the harness is still running"
    for m in started:
        with pytest.raises(ProcessLookupError):
            os.killpg(m.pid, 0)


def run(proxy, rep, req_per_s, cpu, p99, redis_cpu, valid=True):
    return {"proxy": proxy, "concurrency": 50, "repetition": rep, "valid": valid, "problems": [],
            "req_per_s": req_per_s, "cpu_us_per_req": cpu, "cpu_user_us_per_req": cpu * 0.6,
            "cpu_sys_us_per_req": cpu * 0.4, "latency_p50_us": p99 / 3, "latency_p90_us": p99 / 2,
            "latency_p99_us": p99, "peak_rss_kib": 20480, "proxy_cpu_percent": 100.0, "load_core_cpu_percent": 80.0,
            "other_cpu_percent": 1.0, "steal_percent": 0.0, "errors": 0, "non_2xx": 0,
            "redis_cpu_us_per_req": redis_cpu}


def test_report_puts_redis_modes_beside_the_single_redis_figure(bench):
    runs = []
    for rep, (single, sentinel, cluster) in enumerate([(20000, 18000, 16000), (22000, 17600, 17600)], start=1):
        runs += [run("gateway", rep, single, 50.0, 4000, 17.0),
                 run("nginx", rep, 60000, 15.0, 2000, None),
                 run("gateway-sentinel", rep, sentinel, 55.0, 5000, 20.0),
                 run("gateway-cluster", rep, cluster, 60.0, 6000, 25.5, valid=rep == 1)]
    scenario = {
        "id": "api-key-redis-bucket", "title": "(7) bucket", "status": "ok", "preflight": [], "runs": runs,
        "targets": "", "notes": "", "cache_metric": "credential",
        "redis_modes": {"gateway": "single", "gateway-sentinel": "sentinel", "gateway-cluster": "cluster"},
        "redis_deployments": {
            "single": {"mode": "single", "label": "one redis-server", "processes": 1, "roles": {"redis-server": 1},
                       "cpu": 0, "ports": [1]},
            "sentinel": {"mode": "sentinel", "label": "", "processes": 5,
                         "roles": {"primary": 1, "replica": 1, "sentinel": 3}, "cpu": 0, "ports": [2, 3, 4, 5, 6]},
            "cluster": {"mode": "cluster", "label": "", "processes": 3, "roles": {"primary": 3}, "cpu": 0,
                        "ports": [7, 8, 9]}},
    }
    scenario["preflight"] = [
        {"proxy": "gateway", "check": "Redis single: /readyz ...", "ok": True, "detail": "/readyz redis_node a:1"},
        {"proxy": "gateway", "check": "200 with the upstream's body", "ok": True},
        {"proxy": "gateway-cluster", "check": "Redis cluster: /readyz ...", "ok": True, "detail": "lists 3"}]
    scenario["summary"] = bench.summarize(scenario, [50])
    modes = {e["proxy"]: e for e in scenario["summary"]["redis_modes"]}
    assert set(modes) == {"gateway", "gateway-sentinel", "gateway-cluster"}
    assert modes["gateway"]["versus_single"] is None
    assert modes["gateway-sentinel"]["versus_single"]["req_per_s"]["values"] == [0.9, 0.8]
    assert not modes["gateway-cluster"]["valid"]

    report = {"settings": {"mode": "quick", "repetitions": 2, "duration_s": 3, "warmup_s": 1, "concurrency": [50],
                           "quiet_wait_s": 10, "retries": 1},
              "environment": {"cpu_model": "cpu", "kernel": "6", "pinned": True, "proxy_cpu": 1, "load_cpu": 0,
                              "gateway_commit": "abc", "gateway_binary_relative": "gw", "gateway_binary_mtime": "t",
                              "nginx": "nginx", "haproxy": "haproxy", "wrk": "wrk", "redis": "redis 7"},
              "started_at": "now", "scenarios": [scenario]}
    text = bench.markdown(report)
    lines = text.splitlines()
    # gateway ÷ peer: nginx only; the variants are not peers the gateway is compared against.
    assert "| 50 | nginx | 0.35x (0.33–0.37) | 3.33x (3.33–3.33) | 2.00x (2.00–2.00) | yes |" in lines
    assert not any(line.startswith("| 50 | gateway-sentinel | 0.") for line in lines)
    assert ("| 50 | one redis-server | gateway | 21,000 (20,000–22,000) | 50.0 | 4,000 | 17.0 | 1 (reference) | "
            "1 (reference) | 1 (reference) | 1 (reference) | yes |") in lines
    assert ("| 50 | Sentinel-discovered primary | gateway-sentinel | 17,800 (17,600–18,000) | 55.0 | 5,000 | 20.0 | "
            "0.85x (0.80–0.90) | 1.10x (1.10–1.10) | 1.25x (1.25–1.25) | 1.18x (1.18–1.18) | yes |") in lines
    assert ("| 50 | 3-primary Redis Cluster | gateway-cluster | 16,800 (16,000–17,600) | 60.0 | 6,000 | 25.5 | "
            "0.80x (0.80–0.80) | 1.20x (1.20–1.20) | 1.50x (1.50–1.50) | 1.50x (1.50–1.50) | **INVALID** |") in lines
    assert ("Redis processes: one redis-server: 1 (1 redis-server); Sentinel-discovered primary: 5 (1 primary, "
            "1 replica, 3 sentinels); 3-primary Redis Cluster: 3 (3 primaries); all 9 pinned to CPU 0 (`taskset`) "
            'with wrk and the upstream; on 127.0.0.1 only, `--save "" --appendonly no`.') in lines
    assert ("Redis mode pre-flight (passed, before timing): gateway: /readyz redis_node a:1; "
            "gateway-cluster: lists 3.") in lines
