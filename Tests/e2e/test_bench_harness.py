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
  single round by round, and says how many Redis processes ran and where;
- issue 15's additions: the targets' verdicts, the history (appended, read back, the
  previous figure per target, `--report` of a saved run), the parsers of the per-request
  counts (strace -c, callgrind, perf report) on captured outputs, and the idle-connections
  client and measurement against a stub server.
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

from conftest import free_port, gateway_binary, scaled, wait_until

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


# --------------------------------------------------------------------------------------
# Issue 15's additions: the targets table, the history, the per-request counts and the
# idle-connections client (stubs only: no proxy, no wrk).


def ratio_scenario(bench, sid, peer, rounds, peer_valid=True):
    """A timed scenario of two rounds at c=50: gateway and `peer` with the given
    (gateway req/s, gateway CPU, gateway p99) per round; the peer at 10,000 req/s, 10 µs,
    1,000 µs p99, so the ratios are gateway / 10,000 and so on."""
    runs = []
    for rep, (rps, cpu, p99) in enumerate(rounds, start=1):
        runs += [run("gateway", rep, rps, cpu, p99, None), run(peer, rep, 10000, 10.0, 1000, None, valid=peer_valid)]
    sc = {"id": sid, "title": sid, "status": "ok" if peer_valid else "invalid", "preflight": [], "runs": runs,
          "targets": "", "notes": "", "cache_metric": "credential"}
    sc["summary"] = bench.summarize(sc, [50])
    return sc


def a_report(bench, scenarios, previous=None):
    return {"settings": {"mode": "full", "repetitions": 2, "duration_s": 10, "warmup_s": 2, "concurrency": [50],
                         "quiet_wait_s": 30, "retries": 2},
            "environment": {"cpu_model": "cpu", "kernel": "6", "pinned": True, "proxy_cpu": 1, "load_cpu": 0,
                            "gateway_commit": "abc1234", "gateway_binary_relative": "gw", "gateway_binary_mtime": "t",
                            "nginx": "nginx", "haproxy": "haproxy", "wrk": "wrk", "redis": "redis 7"},
            "started_at": "2026-12-05T00:00:00+00:00", "scenarios": scenarios, "previous": previous or {}}


def idle_scenario(rss_mib, valid=True):
    return {"id": "idle-connections", "title": "(8) idle", "status": "ok" if valid else "invalid", "preflight": [],
            "runs": [], "targets": "", "notes": "",
            "idle": [{"proxy": "gateway", "connections": 10000, "opened": 10000, "failed": 0, "rss_before_kib": 30720,
                      "rss_kib": rss_mib * 1024, "rss_mib": rss_mib, "established_before": 10000 if valid else 12,
                      "established_after": 10000, "established_client_side": 10000, "kib_per_connection": 3.0,
                      "open_s": 5.0, "valid": valid, "problems": [] if valid else ["only 12 of 10000 ESTABLISHED"]}]}


def verdicts(bench, report):
    return {(r["key"], r["concurrency"]): (r["verdict"], r["value"], r["why"]) for r in bench.evaluate_targets(report)}


def test_targets_are_judged_on_the_median_ratio_in_the_right_direction(bench):
    # plain: req/s 0.90x and 0.96x (median 0.93: >= 0.9 met); CPU 1.2x both (> 1.15: missed);
    # p99 1.0x and 0.8x (median 0.9: <= 1.0 met).
    plain = ratio_scenario(bench, "plain", "nginx", [(9000, 12.0, 1000), (9600, 12.0, 800)])
    # jwt-rs256 against HAProxy: exactly 2x in both rounds is met (the bound is inclusive).
    jwt = ratio_scenario(bench, "jwt-rs256", "haproxy-jwt", [(20000, 5.0, 500), (20000, 5.0, 500)])
    # api-key-miss: its peer had an invalid run: never judged.
    miss = ratio_scenario(bench, "api-key-miss", "nginx-auth-redis", [(20000, 5.0, 500), (20000, 5.0, 500)],
                          peer_valid=False)
    skipped = {"id": "tls", "title": "(5) tls", "status": "skipped", "reason": "feature", "targets": ""}
    report = a_report(bench, [plain, jwt, miss, skipped, idle_scenario(70.0)])
    v = verdicts(bench, report)
    assert v[("plain|nginx|req_per_s", 50)][:2] == ("MET", pytest.approx(0.93))
    assert v[("plain|nginx|cpu_us_per_req", 50)][:2] == ("MISSED", pytest.approx(1.2))
    assert v[("plain|nginx|latency_p99", 50)][:2] == ("MET", pytest.approx(0.9))
    assert v[("jwt-rs256|haproxy-jwt|req_per_s", 50)][:2] == ("MET", pytest.approx(2.0))
    assert v[("jwt-rs256|nginx|req_per_s", 50)] == ("NOT MEASURED", None, "no gateway ÷ nginx figure")
    assert v[("api-key-miss|nginx-auth-redis|req_per_s", 50)] == ("NOT MEASURED", None, "invalid runs")
    assert v[("tls|nginx-tls|req_per_s", 50)] == ("NOT MEASURED", None, "skipped")
    assert v[("api-key-redis|nginx|req_per_s", 50)] == ("NOT MEASURED", None, "not run")
    assert v[("idle-connections|-|rss_mib", None)][:2] == ("MISSED", 70.0)
    # One row per target and concurrency, the idle target once.
    assert len(v) == len(bench.TARGETS)
    assert verdicts(bench, a_report(bench, [idle_scenario(63.9)]))[("idle-connections|-|rss_mib", None)][0] == "MET"
    unsure = verdicts(bench, a_report(bench, [idle_scenario(10.0, valid=False)]))
    assert unsure[("idle-connections|-|rss_mib", None)] == ("NOT MEASURED", None, "invalid")

    lines = bench.markdown(report).splitlines()
    assert "| `plain` | 50 | req/s 0.93x (0.90–0.96) nginx | req/s ≥ 0.9x nginx | **MET** | – |" in lines
    assert "| `plain` | 50 | CPU µs/req 1.20x (1.20–1.20) nginx | CPU µs/req ≤ 1.15x nginx | **MISSED** | – |" in lines
    assert ("| `idle-connections` | idle | 70.0 MiB (10,000 idle connections) | RSS ≤ 64 MiB with the idle connections "
            "open | **MISSED** | – |") in lines
    assert "| `tls` | 50 | – | req/s ≥ 0.9x nginx TLS | NOT MEASURED (skipped) | – |" in lines
    assert "3 met, 2 missed, 6 not measured." in lines
    assert "| gateway | 10,000 of 10,000 | 10,000 / 10,000 | 30.0 | 70.0 | 3.0 | 5.0 | yes |" in lines


def test_history_is_appended_and_the_previous_figures_shown(bench, tmp_path, capsys):
    history = tmp_path / "results" / "history.jsonl"
    assert bench.read_history(history) == []
    first = a_report(bench, [ratio_scenario(bench, "plain", "nginx", [(5000, 20.0, 2000), (5000, 20.0, 2000)]),
                             idle_scenario(80.0)])
    first["scenarios"][0]["counts"] = [
        {"proxy": "gateway", "syscalls": {"syscalls_per_req": 6.5, "valid": True, "top": []},
         "instructions": {"instructions_per_req": 90000.0, "valid": True, "top_functions": []}},
        {"proxy": "nginx", "syscalls": {"syscalls_per_req": 6.0, "valid": True, "top": []}}]
    bench.append_history(history, bench.history_entry(first))
    with open(history, "a") as f:
        f.write("not json\n")  # a damaged line is skipped, not fatal
    second = a_report(bench, [ratio_scenario(bench, "plain", "nginx", [(8000, 12.0, 900), (8000, 12.0, 900)])])
    second["environment"]["gateway_commit"] = "def5678"
    second["settings"]["mode"] = "quick"
    bench.append_history(history, bench.history_entry(second))

    runs = bench.read_history(history)
    assert [r["commit"] for r in runs] == ["abc1234", "def5678"]
    entry = runs[0]
    assert entry["scenarios"]["plain"]["proxies"]["50"]["gateway"] == {
        "req_per_s": 5000.0, "cpu_us_per_req": 20.0, "latency_p99_us": 2000.0, "valid": True}
    assert entry["scenarios"]["plain"]["ratios"]["50"]["nginx"] == {
        "req_per_s": 0.5, "cpu_us_per_req": 2.0, "latency_p99": 2.0, "valid": True}
    assert entry["scenarios"]["plain"]["counts"] == {
        "gateway": {"instructions_per_req": 90000.0, "syscalls_per_req": 6.5}, "nginx": {"syscalls_per_req": 6.0}}
    assert entry["scenarios"]["idle-connections"]["idle"]["gateway"]["rss_mib"] == 80.0
    assert {"key": "plain|nginx|req_per_s", "concurrency": 50, "value": 0.5, "verdict": "MISSED"} in entry["targets"]

    # The latest run that measured a figure is its previous one: plain from the second run,
    # the idle RSS and the counts from the first (the second did not measure them).
    previous = bench.previous_figures(runs)
    assert previous["targets"]["plain|nginx|req_per_s@50"]["value"] == 0.8
    assert previous["targets"]["plain|nginx|req_per_s@50"]["commit"] == "def5678"
    assert previous["targets"]["idle-connections|-|rss_mib@None"]["commit"] == "abc1234"
    assert previous["counts"]["plain|gateway|instructions_per_req"]["value"] == 90000.0

    third = a_report(bench, [ratio_scenario(bench, "plain", "nginx", [(9500, 10.0, 900), (9500, 10.0, 900)]),
                             idle_scenario(60.0)], previous=previous)
    third["scenarios"][0]["counts"] = [
        {"proxy": "gateway", "syscalls": {"syscalls_per_req": 5.0, "valid": True,
                                          "top": [{"syscall": "read", "per_req": 2.0}]},
         "instructions": {"instructions_per_req": 60000.0, "valid": True,
                          "top_functions": [{"function": "swift_retain", "percent": 9.5, "ir": 1}]}},
        {"proxy": "nginx", "syscalls": {"syscalls_per_req": 4.0, "valid": True, "top": []},
         "instructions": {"instructions_per_req": 30000.0, "valid": True, "top_functions": []}}]
    third["scenarios"][0]["counts"][0]["profile"] = {
        "valid": True, "problems": [], "concurrency": 50, "requests": 30000, "kernel_percent": 40.0,
        "dso_percent": {"[kernel]": 40.0, "libswiftCore.so": 30.0},
        "top_symbols": [{"symbol": "swift_retain", "dso": "libswiftCore.so", "percent": 9.0}]}
    saved = tmp_path / "latest.json"
    saved.write_text(json.dumps(third))
    assert bench.main(["--report", str(saved)]) == 0  # --report prints the saved run again, previous figures too
    lines = capsys.readouterr().out.splitlines()
    assert ("| `plain` | 50 | req/s 0.95x (0.95–0.95) nginx | req/s ≥ 0.9x nginx | **MET** | 0.80x MISSED "
            "(def5678, quick, 2026-12-05) |") in lines
    assert ("| `idle-connections` | idle | 60.0 MiB (10,000 idle connections) | RSS ≤ 64 MiB with the idle connections "
            "open | **MET** | 80.0 MiB MISSED (abc1234, full, 2026-12-05) |") in lines
    assert "| gateway | 60,000 | 5.00 | read 2.00 | 1 (reference) | 90,000 / 6.50 |" in lines
    assert "| nginx | 30,000 | 4.00 | – | 2.00x / 1.25x | – / 6.00 |" in lines
    assert "Where the gateway's instructions went (callgrind, self cost, top 1): `swift_retain` 9.5%." in lines
    assert ("Where the gateway's CPU time went (perf record -e cpu-clock, c=50, 30,000 requests; % of samples): "
            "kernel 40%; by object: [kernel] 40%, libswiftCore.so 30%; top symbols: `swift_retain` (libswiftCore.so) "
            "9.0%.") in lines


STRACE_C = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 44.22    0.026082          28       925           sendto
 34.79    0.020517          21       935           recvfrom
 10.81    0.006378          21       298           clock_gettime
  7.55    0.004456          30       148           epoll_wait
  0.81    0.000478          43        11           close
  0.63    0.000369          28        13         2 accept4
  0.34    0.000201          18        11           setsockopt
  0.31    0.000181          18        10           epoll_ctl
  0.28    0.000163          16        10        10 getsockopt
  0.27    0.000157          15        10           getsockname
------ ----------- ----------- --------- --------- ----------------
100.00    0.058982          24      2371        12 total
"""

# The callgrind format as valgrind 3.19 writes it with --dump-instr=no: names compressed
# ("(id) name" the first time, in fn= or cfn=, then "(id)"), the cost line right after
# calls= being the inclusive cost of that call.
CALLGRIND_OUT = """\
# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4242
cmd:  nginx -p /tmp/x -c /tmp/x/nginx.conf
part: 1

positions: line
events: Ir
summary: 1000

ob=(1) /usr/sbin/nginx
fl=(1) ???
fn=(1) main
0 200
cfn=(2) ngx_process_events
calls=5 0
0 800

fn=(2)
0 300
+2 0
cob=(2) /usr/lib/x86_64-linux-gnu/libc.so.6
cfi=(2) ./string/memcpy.S
cfn=(3) __memcpy_avx_unaligned
calls=2 0
0 500

ob=(2)
fl=(2)
fn=(3)
0 480
* 20

totals: 1000
"""


def test_count_outputs_are_parsed(bench):
    s = bench.parse_strace_summary(STRACE_C)
    assert s["total"] == 2371 and s["errors"] == 12
    assert s["syscalls"]["sendto"] == 925 and s["syscalls"]["accept4"] == 13 and s["syscalls"]["getsockopt"] == 10
    assert sum(s["syscalls"].values()) == 2371
    with pytest.raises(ValueError, match="no total line"):
        bench.parse_strace_summary(STRACE_C.rsplit("\n", 2)[0])

    assert bench.parse_callgrind_total(CALLGRIND_OUT) == 1000
    assert bench.parse_callgrind_total(CALLGRIND_OUT.replace("totals: 1000\n", "")) == 1000  # summary:
    with pytest.raises(ValueError):
        bench.parse_callgrind_total("events: Ir\n")
    functions = bench.parse_callgrind_functions(CALLGRIND_OUT)
    # Self cost: main 200 (its call's 800 is ngx_process_events' inclusive cost), the callee
    # named in cfn= then referred to by id, memcpy 480 + 20.
    assert [(f["function"], f["ir"]) for f in functions] == [
        ("__memcpy_avx_unaligned", 500), ("ngx_process_events", 300), ("main", 200)]
    assert [round(f["percent"]) for f in functions] == [50, 30, 20]
    assert len(bench.parse_callgrind_functions(CALLGRIND_OUT, top=1)) == 1


# perf 6.x `perf report --no-children --sort dso,symbol --stdio` of a cpu-clock recording
# (no hardware counters: the IPC columns are "-").
PERF_REPORT = """\
# Samples: 698  of event 'cpu-clock'
# Event count (approx.): 174500000
#
# Overhead  Shared Object         Symbol                                    IPC   [IPC Coverage]
# ........  ....................  ........................................  ....................
#
    20.60%  [kernel.kallsyms]     [k] _raw_spin_unlock_irqrestore           -      -            
     7.50%  libswiftCore.so       [.] swift_release                         -      -            
     7.20%  libswiftCore.so       [.] swift_retain                          -      -            
     2.60%  libswiftCore.so       [.] bool swift::RefCounts<swift::RefCountBitsT<(swift::RefCountInlinedness)1> >::doDecrementSlow<(swift::PerformDeinit)1>(swift::RefCountBitsT<(swift::RefCountInlinedness)1>, bool)  -      -            
     1.90%  [kernel.kallsyms]     [k] tcp_sendmsg_locked                    -      -            
     1.00%  dbaudit-gateway       [.] c_nio_llhttp__internal__run           -      -            


#
# (Tip: For a higher level overview, try: perf report --sort comm,dso)
#
"""


PERF_REPORT_DSO = """\
# Samples: 698  of event 'cpu-clock'
#
# Overhead  Shared Object
# ........  ....................
#
    34.10%  [kernel.kallsyms]   
    25.20%  libswiftCore.so     
     7.00%  dbaudit-gateway     
     2.10%  libc.so.6           
"""


def test_perf_report_is_parsed(bench):
    p = bench.parse_perf_report(PERF_REPORT, PERF_REPORT_DSO, top=4)
    assert p["kernel_percent"] == pytest.approx(34.1)
    assert p["dso_percent"] == pytest.approx({"[kernel]": 34.1, "libswiftCore.so": 25.2, "dbaudit-gateway": 7.0,
                                              "libc.so.6": 2.1})
    assert list(p["dso_percent"]) == ["[kernel]", "libswiftCore.so", "dbaudit-gateway", "libc.so.6"]
    assert [(e["symbol"], e["dso"], e["percent"]) for e in p["top_symbols"]] == [
        ("_raw_spin_unlock_irqrestore", "[kernel]", 20.6), ("swift_release", "libswiftCore.so", 7.5),
        ("swift_retain", "libswiftCore.so", 7.2),
        ("bool swift::RefCounts<swift::RefCountBitsT<(swift::RefCountInlinedness)1> >::doDecrementSlow<"
         "(swift::PerformDeinit)1>(swift::RefCountBitsT<(swift::RefCountInlinedness)1>, bool)", "libswiftCore.so", 2.6)]
    assert bench.parse_perf_report("# nothing sampled\n", "") == {"kernel_percent": 0.0, "dso_percent": {},
                                                                   "top_symbols": []}


STUB_SERVER = """\
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else None  # an idle connection is closed after this

    def do_GET(self):
        body = b'{"databases":[]}'
        self.send_response(200 if self.headers.get("X-Bench") == "idle" else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 512
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def stub_target(bench, tmp_path, name, *server_args):
    script = tmp_path / "stub-server.py"
    script.write_text(STUB_SERVER)
    port = free_port()
    m = bench.REGISTRY.start(name, [sys.executable, str(script), str(port), *server_args], tmp_path / f"{name}.log", None)
    bench.wait_for_port(port, m)
    return bench.Target(name, "stub", port, 0, m, {"X-Bench": "idle"})


def test_idle_clients_hold_their_connections_open_and_close_them(bench, tmp_path):
    settings = bench.parse_args(["--quick", "--no-pin"])
    ctx = bench.Context(settings=settings, tmp=tmp_path, load_cpu=None, proxy_cpu=None)
    target = stub_target(bench, tmp_path, "stub")
    try:
        clients = bench.IdleClients(target.port, 200, target.request_headers, None)
        try:
            assert clients.opened() == (200, 0, "")
            server_side, client_side = bench.established(target.port)
            assert server_side == 200 and client_side == 200
        finally:
            assert clients.close() == "CLOSED 200"
        wait_until(lambda: bench.established(target.port) == (0, 0), scaled(10))

        # A response other than 200 is a failed connection, not an idle one.
        refused = bench.IdleClients(target.port, 5, {}, None)
        try:
            ok, failed, first = refused.opened()
            assert (ok, failed) == (0, 5) and "status line 'HTTP/1.1 401" in first
        finally:
            refused.close()

        # The scenario's measurement: every connection ESTABLISHED when the RSS is read.
        r = bench.idle_run(ctx, target, 200)
        assert r["valid"], r["problems"]
        assert (r["opened"], r["failed"], r["established_before"], r["established_after"]) == (200, 0, 200, 200)
        assert r["rss_kib"] > 0 and r["closed"] == "CLOSED 200"
    finally:
        bench.REGISTRY.stop_all()

    # A server that drops idle connections after 0.3 s: they were answered but are not open
    # when the RSS is read, so the figure is not valid.
    dropping = stub_target(bench, tmp_path, "stub-dropping", "0.3")
    try:
        r = bench.idle_run(ctx, dropping, 50)
        assert not r["valid"]
        assert r["opened"] == 50 and r["established_before"] < 50
        assert any("ESTABLISHED on the proxy's side" in p for p in r["problems"]), r["problems"]
    finally:
        bench.REGISTRY.stop_all()


def test_count_and_history_options(bench, tmp_path):
    full = bench.parse_args([])
    assert full.counts == {"syscalls", "instructions", "profile"} and full.record
    assert full.history == bench.DEFAULT_HISTORY and full.idle_connections == 10000
    quick = bench.parse_args(["--quick", "--no-history", "--history", str(tmp_path / "h.jsonl")])
    assert quick.counts == {"syscalls", "profile"}
    assert not quick.record and quick.history == tmp_path / "h.jsonl"  # still read for the previous figures
    assert bench.parse_args(["--counts", "none"]).counts == frozenset()
    assert bench.parse_args(["--counts", "instructions,syscalls"]).counts == {"instructions", "syscalls"}
    for wrong in (["--counts", "cycles"], ["--counts", ""], ["--idle-connections", "0"], ["--count-seconds", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(wrong)
