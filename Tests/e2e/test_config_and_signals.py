"""Configuration validation, check-config, SIGHUP reload and SIGTERM drain, against the
real binary."""

import socket
import signal
import subprocess
import threading
import time

import pytest
import requests

from conftest import ROOT, ScratchSystem, Upstream, gateway_binary, scaled


def check_config(path, env=None):
    return subprocess.run([gateway_binary(), "check-config", "--config", str(path)], capture_output=True, text=True,
                          timeout=30, env=env)


def test_check_config_accepts_the_shipped_example(tmp_path):
    """gateway.conf.example, unmodified, passes check-config once the pepper exists where the
    example and the tmpfiles snippet put it (made as docs/operations.md says); without it,
    check-config names the file, not a secret."""
    system = ScratchSystem(tmp_path)
    try:
        system.run("install -d -m 0750 /etc/dbaudit-gateway\n"
                   "openssl rand -hex 32 | install -m 0640 /dev/stdin /etc/dbaudit-gateway/api-key-pepper")
        pepper = system.run("cat /etc/dbaudit-gateway/api-key-pepper").strip()
        assert len(pepper) == 64
        output = system.run(f"{gateway_binary()} check-config --config {ROOT / 'gateway.conf.example'}")
        assert "[upstream]" in output and "max_body_bytes" in output
        assert output.count("[[routes]]") == 16
        assert pepper not in output
        # --quiet (what the systemd unit runs before every start and reload): one line, no
        # configuration; the same refusal otherwise.
        path = ROOT / 'gateway.conf.example'
        quiet = system.run(f"{gateway_binary()} check-config --quiet --config {path} 2>/dev/null")
        assert quiet == f"{path}: configuration OK", quiet
        system.run("rm /etc/dbaudit-gateway/api-key-pepper")
        refused = system.run(f"{gateway_binary()} check-config --quiet --config {path} || echo \"exit $?\"")
        assert refused.endswith("exit 1") and "auth.api_keys.pepper_file" in refused, refused
        refused = system.run(f"{gateway_binary()} check-config --config {ROOT / 'gateway.conf.example'} "
                             "|| echo \"exit $?\"")
        assert refused.endswith("exit 1"), refused
        assert "auth.api_keys.pepper_file" in refused and "/etc/dbaudit-gateway/api-key-pepper" in refused
    finally:
        system.close()


def test_check_config_prints_effective_config_with_defaults(tmp_path):
    path = tmp_path / "g.conf"
    path.write_text('[upstream]\nurl = "http://127.0.0.1:9000"\n')
    result = check_config(path)
    assert result.returncode == 0, result.stderr
    assert 'url = "http://127.0.0.1:9000"' in result.stdout
    assert 'header_timeout = "10s"' in result.stdout
    assert 'listen = ["0.0.0.0:8080"]' in result.stdout


@pytest.mark.parametrize(
    "text, key, line",
    [
        ('[upstream]\nurl = "http://127.0.0.1:9000"\n[server]\nmax_connections = "many"\n', "server.max_connections", 4),
        ('[upstream]\nurl = "http://127.0.0.1:9000"\n[server]\nmax_connections = 0\n', "server.max_connections", 4),
        ('[upstream]\nurl = "http://127.0.0.1:9000"\n[server]\nheader_timeout = "10"\n', "server.header_timeout", 4),
        ('[upstream]\nurl = "http://127.0.0.1:9000"\n[server]\nmax_body_bytes = "10MB"\n', "server.max_body_bytes", 4),
        ('[upstream]\nurl = "http://127.0.0.1:9000"\n[server]\nlisten = ["nohost"]\n', "server.listen", 4),
        ('[upstream]\nurl = "ftp://127.0.0.1:9000"\n', "upstream.url", 2),
        ('[upstream]\nurl = "http://127.0.0.1:9000"\nretries = 3\n', "upstream.retries", 3),
        ('[upstream]\nurl = "http://127.0.0.1:9000"\n\n[logging]\nlevel = "loud"\n', "logging.level", 5),
        ('[upstream]\nurl = "http://127.0.0.1:9000"\n[bogus]\nx = 1\n', "bogus", 3),
    ],
)
def test_check_config_rejects_bad_values_naming_file_line_and_key(tmp_path, text, key, line):
    path = tmp_path / "bad.conf"
    path.write_text(text)
    result = check_config(path)
    assert result.returncode == 1
    assert f"{path}:{line}: {key}:" in result.stderr, result.stderr


def test_check_config_reports_syntax_error_line_and_missing_file(tmp_path):
    path = tmp_path / "syntax.conf"
    path.write_text('[upstream]\nurl = "http://127.0.0.1:9000"\n[server\n')
    result = check_config(path)
    assert result.returncode == 1
    assert f"{path}:3:" in result.stderr
    result = check_config(tmp_path / "missing.conf")
    assert result.returncode == 1
    assert "does not exist" in result.stderr


@pytest.mark.parametrize(
    "text, line, message",
    [
        # The config fuzz target's input: toml++ asserted on it and check-config aborted.
        ('[upstream]\nurl = "http://127.0.0.1:9000"\n[server]\nlisten = [}\n', 4,
         "TOML syntax error: `}` cannot close the `[` opened on line 4"),
        ('[upstream]\nurl = "http://127.0.0.1:9000"\n[server]\nlisten = [\n  "0.0.0.0:8080",\n}\n', 6,
         "TOML syntax error: `}` cannot close the `[` opened on line 4"),
        ('[upstream]\nurl = "http://127.0.0.1:9000"\n[server]\nlisten = [\u2028]\n', 4,
         "TOML syntax error: U+2028 outside a string or comment"),
    ],
)
def test_check_config_refuses_what_the_toml_parser_would_abort_on(tmp_path, text, line, message):
    path = tmp_path / "abort.conf"
    path.write_text(text, encoding="utf-8")
    result = check_config(path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[0] == f"{path}:{line}: {message}", result.stderr


def test_run_refuses_an_invalid_config(tmp_path):
    path = tmp_path / "bad.conf"
    path.write_text('[upstream]\nurl = "http://127.0.0.1:9000"\nunknown = 1\n')
    result = subprocess.run([gateway_binary(), "run", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "upstream.unknown" in result.stderr


def slow_request(url, results):
    try:
        r = requests.get(url, timeout=15)
        results.append((r.status_code, r.json().get("upstream")))
    except Exception as error:  # recorded for the assertion
        results.append(("error", repr(error)))


def test_sighup_switches_upstream_without_dropping_in_flight(make_gateway, upstream):
    second = Upstream("secondary")
    try:
        gateway = make_gateway(upstream.url)
        assert requests.get(f"{gateway.url}/before", timeout=5).json()["upstream"] == "primary"
        results = []
        thread = threading.Thread(target=slow_request, args=(f"{gateway.url}/slow?ms=1500", results))
        thread.start()
        upstream.wait_for_path("/slow?ms=1500")
        gateway.write_config(second.url)
        gateway.signal(signal.SIGHUP)
        gateway.wait_for_log(lambda l: l.get("msg") == "configuration reloaded")
        assert requests.get(f"{gateway.url}/after", timeout=5).json()["upstream"] == "secondary"
        thread.join(timeout=15)
        assert results == [(200, "primary")]
        assert [r["path"] for r in second.requests()] == ["/after"]
    finally:
        second.stop()


@pytest.mark.parametrize("text", ["[server\nthis is not toml", "[server]\nlisten = [}\n"])
def test_sighup_with_bad_file_keeps_old_config(make_gateway, upstream, text):
    """A file toml++ cannot read, including one it used to abort on, leaves the running
    gateway serving with its previous configuration."""
    gateway = make_gateway(upstream.url)
    gateway.config_path.write_text(text)
    gateway.signal(signal.SIGHUP)
    line = gateway.wait_for_log(lambda l: l.get("msg") == "reload failed; keeping the previous configuration")
    assert str(gateway.config_path) in line["problems"]
    r = requests.get(f"{gateway.url}/still", timeout=5)
    assert r.status_code == 200 and r.json()["upstream"] == "primary"
    assert gateway.proc.poll() is None


def test_sighup_applies_new_limits(make_gateway, upstream):
    gateway = make_gateway(upstream.url)
    assert requests.post(f"{gateway.url}/v1", data=b"a" * 5000, timeout=5).status_code == 200
    gateway.write_config(upstream.url, server="max_body_bytes = 1000")
    gateway.signal(signal.SIGHUP)
    gateway.wait_for_log(lambda l: l.get("msg") == "configuration reloaded")
    assert requests.post(f"{gateway.url}/v1", data=b"a" * 5000, timeout=5).status_code == 413


def test_sigterm_drains_in_flight_request_then_exits_zero(make_gateway, upstream):
    gateway = make_gateway(upstream.url)
    results = []
    thread = threading.Thread(target=slow_request, args=(f"{gateway.url}/slow?ms=1500", results))
    thread.start()
    upstream.wait_for_path("/slow?ms=1500")
    gateway.signal(signal.SIGTERM)
    gateway.wait_for_log(lambda l: l.get("msg") == "draining")
    # No new connections once draining.
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{gateway.url}/new", timeout=2)
    thread.join(timeout=15)
    assert results == [(200, "primary")]
    assert gateway.proc.wait(timeout=10) == 0
    assert "/new" not in [r["path"] for r in upstream.requests()]


def test_sigterm_closes_idle_keep_alive_connections_promptly(make_gateway, upstream):
    gateway = make_gateway(upstream.url)
    session = requests.Session()
    assert session.get(f"{gateway.url}/a", timeout=5).status_code == 200
    started = time.monotonic()
    gateway.signal(signal.SIGTERM)
    assert gateway.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < scaled(3)
    session.close()


def test_drain_timeout_bounds_shutdown(make_gateway, upstream):
    gateway = make_gateway(upstream.url, server='drain_timeout = "1s"')
    results = []
    thread = threading.Thread(target=slow_request, args=(f"{gateway.url}/silent", results))
    thread.start()
    upstream.wait_for_path("/silent")
    started = time.monotonic()
    gateway.signal(signal.SIGTERM)
    assert gateway.proc.wait(timeout=10) == 0
    # drain_timeout is 1 s: the held request is cut then, not before.
    assert 1.0 <= time.monotonic() - started < 1.0 + scaled(1.5)
    thread.join(timeout=15)
    assert results and results[0][0] == "error"


def test_a_port_in_use_is_named_with_a_hint(tmp_path, upstream):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        demo = subprocess.run([gateway_binary(), "demo", "--port", str(port)], capture_output=True, text=True, timeout=30)
        assert demo.returncode == 1
        assert f"127.0.0.1:{port}: the address is already in use" in demo.stderr
        assert "--port" in demo.stderr and "bind(descriptor" not in demo.stderr

        config = tmp_path / "taken.conf"
        config.write_text(f'[server]\nlisten = ["127.0.0.1:{port}"]\n\n[upstream]\nurl = "{upstream.url}"\n')
        run = subprocess.run([gateway_binary(), "run", "--config", str(config)], capture_output=True, text=True, timeout=30)
        assert run.returncode == 1
        assert f"cannot open the listener on 127.0.0.1:{port}: the address is already in use" in run.stderr
    finally:
        holder.close()
