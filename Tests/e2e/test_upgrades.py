"""Restarts and upgrades without failed requests (docs/operations.md, "Upgrading").

Under continuous load on 127.0.0.1 (keep-alive connections and a new connection per
request, at least 500 requests/s for 20 s), the running gateway is replaced by a new
process:

- through socket activation: this test plays systemd. It holds the listening socket and
  passes it to each gateway the way systemd does (the descriptor as fd 3, LISTEN_FDS=1,
  LISTEN_PID = the gateway's own pid through `bash -c 'LISTEN_PID=$$ exec ...'`). As in
  `systemctl restart`, the old process gets SIGTERM first; as soon as it has closed its
  copy of the socket (and while it still drains) the new one is started on the same socket.
  Meanwhile new connections wait in the socket's queue. (Two processes accepting from one
  shared socket at the same time is not a supported state: NIO's debug build asserts that
  a readable listener always yields a connection, which another process may have taken.);
- through the SO_REUSEPORT procedure: the new process binds the same address beside the old
  one, sends READY=1, the old one gets SIGTERM.

Each must fail 0 requests; the longest request latency during the switch is printed. The
load generator behaves as a well-behaved client and nothing more: it retries an idempotent
request once, on a new connection, when a reused keep-alive connection is closed or reset
before any byte of the response (RFC 9112 §9.3.1). Anything else is a failure: a refused
or reset new connection, a timeout, a status other than 200, a short body.

net.ipv4.tcp_migrate_req is neither set nor changed by these tests: they run in the
host's network namespace with its value (printed; 0 on a default Linux), so the
SO_REUSEPORT case shows that the gateway's steering of new connections to the newest
listener is enough on its own.

The `systemd-run --user` variant runs only where a user service manager answers; it is
skipped with the reason otherwise (containers and CI runners usually have none).
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import free_port, gateway_binary, scaled, wait_until
from test_systemd import NotifySocket
from test_tls import pki, tls_section  # noqa: F401 - pki is a fixture

LOAD_SECONDS = 20.0
MIN_RATE = 500.0
KEEPALIVE_CLIENTS = 12
NEW_CONNECTION_CLIENTS = 12
# Per client; the total (24 x 40/s) leaves room above 500 req/s on a loaded machine.
CLIENT_RATE = 40.0
REQUEST_TIMEOUT = 10.0


class NoResponseByte(Exception):
    """The connection was closed or reset before any byte of the response arrived."""


class Client:
    """One HTTP/1.1 client connection to 127.0.0.1:port, reading Content-Length responses."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.exchanges = 0
        self.reusable = True

    def get(self, path: str, keep_alive: bool) -> None:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if not keep_alive:
            request += "Connection: close\r\n"
        try:
            self.sock.sendall((request + "\r\n").encode())
        except (BrokenPipeError, ConnectionResetError) as error:
            raise NoResponseByte(repr(error)) from error
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError as error:
                if not buffer:
                    raise NoResponseByte(repr(error)) from error
                raise
            if not chunk:
                if not buffer:
                    raise NoResponseByte("closed")
                raise AssertionError(f"connection closed inside the response head: {buffer[:200]!r}")
            buffer += chunk
        head, _, body = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers["content-length"])
        while len(body) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"response body cut at {len(body)} of {length} bytes")
            body += chunk
        if status != 200:
            raise AssertionError(f"status {status}: {body[:200]!r}")
        self.exchanges += 1
        if headers.get("connection", "").lower() == "close" or not keep_alive:
            self.reusable = False

    def close(self) -> None:
        self.sock.close()


class Load:
    """Keep-alive and new-connection clients sending GET requests at a steady rate."""

    def __init__(self, port: int):
        self.port = port
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.results = []  # (started, finished, retried)
        self.failures = []
        self.threads = [threading.Thread(target=self._run, args=(f"k{i}", True), daemon=True)
                        for i in range(KEEPALIVE_CLIENTS)]
        self.threads += [threading.Thread(target=self._run, args=(f"n{i}", False), daemon=True)
                         for i in range(NEW_CONNECTION_CLIENTS)]

    def start(self) -> None:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=REQUEST_TIMEOUT * 2 + 5)
        self.stopped = time.monotonic()

    def _run(self, name: str, keep_alive: bool) -> None:
        client = None
        interval = 1.0 / CLIENT_RATE
        next_at = time.monotonic()
        sequence = 0
        while not self.stop_event.is_set():
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
            next_at = max(next_at + interval, time.monotonic() - 1.0)
            sequence += 1
            path = f"/load/{name}/{sequence}"
            started = time.monotonic()
            retried = False
            try:
                if client is None or not client.reusable:
                    if client is not None:
                        client.close()
                    client = Client(self.port)
                try:
                    client.get(path, keep_alive)
                except NoResponseByte as error:
                    if client.exchanges == 0:
                        raise AssertionError(f"new connection closed before any response byte: {error}")
                    # RFC 9112 §9.3.1: a reused connection closed before any response
                    # byte; GET is idempotent, retried once on a new connection.
                    retried = True
                    client.close()
                    client = Client(self.port)
                    client.get(path, keep_alive)
                finished = time.monotonic()
                with self.lock:
                    self.results.append((started, finished, retried))
            except Exception as error:  # noqa: BLE001 - every other outcome is a failure
                with self.lock:
                    self.failures.append((started, time.monotonic(), path, repr(error)))
                if client is not None:
                    client.close()
                client = None
        if client is not None:
            client.close()

    def report(self, label: str, switch_from: float, switch_to: float) -> dict:
        with self.lock:
            results = list(self.results)
            failures = list(self.failures)
        elapsed = self.stopped - self.started
        during = [finished - started for started, finished, _ in results if finished >= switch_from and started <= switch_to]
        summary = {
            "requests": len(results),
            "failed": len(failures),
            "retried": sum(1 for _, _, retried in results if retried),
            "rate": len(results) / elapsed,
            "seconds": elapsed,
            "switch_seconds": switch_to - switch_from,
            "max_latency_switch_ms": 1000 * max(during, default=0.0),
            "max_latency_ms": 1000 * max((f - s for s, f, _ in results), default=0.0),
            "mean_latency_ms": 1000 * sum(f - s for s, f, _ in results) / max(1, len(results)),
        }
        print(
            f"\n{label}: {summary['requests']} requests in {elapsed:.1f}s ({summary['rate']:.0f}/s), "
            f"{summary['failed']} failed, {summary['retried']} retried on a reused connection; "
            f"switch took {summary['switch_seconds']:.2f}s; longest latency during the switch "
            f"{summary['max_latency_switch_ms']:.1f} ms (whole run {summary['max_latency_ms']:.1f} ms, mean {summary['mean_latency_ms']:.1f} ms)"
        )
        for failure in failures[:10]:
            print("  failure:", failure)
        return summary


def config_text(upstream_url: str, listen: str | None) -> str:
    listen_line = f'listen = ["{listen}"]' if listen else "# listen: the sockets passed by LISTEN_FDS"
    return f"""
[server]
{listen_line}
event_loops = 2
drain_timeout = "10s"

[upstream]
url = "{upstream_url}"

[logging]
level = "notice"
format = "json"

[[routes]]
path = "/**"
public = true
"""


class Process:
    """One gateway process; its output goes to a log file."""

    def __init__(self, tmp_path: Path, name: str, argv: list, env: dict, pass_fds=()):
        self.log_path = tmp_path / f"{name}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env, pass_fds=pass_fds)

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


def gateway_env(notify: NotifySocket, **extra) -> dict:
    env = dict(os.environ)
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(name, None)
    env["NOTIFY_SOCKET"] = notify.address
    env.update(extra)
    return env


def activated_argv(config: Path, descriptor: int) -> list:
    """The gateway started as systemd starts it: the socket as fd 3, LISTEN_FDS=1 and
    LISTEN_PID set to the gateway's own pid (exec keeps the shell's pid)."""
    script = f'exec 3<&{descriptor} {descriptor}<&-; LISTEN_PID=$$ exec "$0" run --config "$1"'
    if descriptor == 3:
        script = 'LISTEN_PID=$$ exec "$0" run --config "$1"'
    return ["bash", "-c", script, gateway_binary(), str(config)]


def wait_ready(notify: NotifySocket, process: Process, timeout: float = 30.0) -> None:
    """READY=1 sent by `process` itself (SCM_CREDENTIALS pid)."""
    deadline = time.monotonic() + scaled(timeout)
    after = 0
    while True:
        remaining = deadline - time.monotonic()
        if process.proc.poll() is not None:
            raise AssertionError(f"gateway exited with {process.proc.returncode}:\n{process.log_text()[-3000:]}")
        if remaining <= 0:
            raise AssertionError(f"no READY=1 from pid {process.proc.pid}:\n{process.log_text()[-3000:]}")
        try:
            index, message = notify.wait_for(lambda f: f.get("READY") == "1", after=after, timeout=min(remaining, 1.0))
        except AssertionError:
            continue
        if message.pid == process.proc.pid:
            return
        after = index + 1


def run_switch(tmp_path: Path, port: int, start_old, start_new, label: str, stop_old_first: bool) -> dict:
    """Load for LOAD_SECONDS; after a quarter of it, replace the old gateway by a new one.

    `stop_old_first` (socket activation, as `systemctl restart` does): SIGTERM the old one,
    and once it has closed its copy of the listening socket (its "draining" log line), start
    the new one on the same socket while the old one drains; connections wait in the
    socket's queue meanwhile. Otherwise (SO_REUSEPORT): start the new one beside the old one,
    wait for its READY=1, then SIGTERM the old one. Either way the old one must exit 0."""
    load = Load(port)
    old = start_old()
    new = None
    try:
        load.start()
        time.sleep(LOAD_SECONDS / 4)
        switch_from = time.monotonic()
        if stop_old_first:
            old.proc.send_signal(signal.SIGTERM)
            assert wait_until(lambda: '"draining"' in old.log_text() or old.proc.poll() is not None, 30), \
                old.log_text()[-3000:]
            new = start_new()
        else:
            new = start_new()
            old.proc.send_signal(signal.SIGTERM)
        assert old.proc.wait(timeout=scaled(30)) == 0, old.log_text()[-3000:]
        switch_to = time.monotonic()
        remaining = LOAD_SECONDS - (time.monotonic() - load.started)
        if remaining > 0:
            time.sleep(remaining)
        load.stop()
        summary = load.report(label, switch_from, switch_to)
        assert new.proc.poll() is None, new.log_text()[-3000:]
        # Requests were served before, during and after the switch.
        assert any(s < switch_from for s, _, _ in load.results) and any(s > switch_to for s, _, _ in load.results)
        return summary
    finally:
        load.stop_event.set()
        old.stop()
        if new is not None:
            new.stop()


def check(summary: dict) -> None:
    assert summary["failed"] == 0, f"{summary['failed']} failed requests"
    assert summary["rate"] >= MIN_RATE / scaled(1), f"load of {summary['rate']:.0f} req/s is below {MIN_RATE}"


@pytest.fixture
def notify():
    directory = tempfile.mkdtemp(prefix="dbgw-upg-", dir="/tmp")
    socket_ = NotifySocket(str(Path(directory) / "notify"))
    yield socket_
    socket_.close()
    shutil.rmtree(directory, ignore_errors=True)


def migrate_req() -> str:
    try:
        return Path("/proc/sys/net/ipv4/tcp_migrate_req").read_text().strip()
    except OSError:
        return "absent (Linux < 5.14)"


def test_restart_through_socket_activation_fails_no_request(tmp_path, upstream, notify):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    notify.set_probe_port(port)
    config = tmp_path / "gateway.conf"
    config.write_text(config_text(upstream.url, f"127.0.0.1:{port}"))
    env = gateway_env(notify, LISTEN_FDS="1")

    def start(name):
        process = Process(tmp_path, name, activated_argv(config, listener.fileno()), env, pass_fds=(listener.fileno(),))
        wait_ready(notify, process)
        assert "socket_activation_fd" in process.log_text(), process.log_text()[-2000:]
        return process

    try:
        summary = run_switch(tmp_path, port, lambda: start("old"), lambda: start("new"), "socket activation restart",
                             stop_old_first=True)
    finally:
        listener.close()
    check(summary)


def test_upgrade_through_so_reuseport_fails_no_request(tmp_path, upstream, notify):
    port = free_port()
    notify.set_probe_port(port)
    config = tmp_path / "gateway.conf"
    config.write_text(config_text(upstream.url, f"127.0.0.1:{port}"))
    env = gateway_env(notify)
    print(f"\nnet.ipv4.tcp_migrate_req = {migrate_req()} (not changed by this test)")

    def start(name):
        process = Process(tmp_path, name, [gateway_binary(), "run", "--config", str(config)], env)
        wait_ready(notify, process)
        assert "socket_activation_fd" not in process.log_text()
        return process

    check(run_switch(tmp_path, port, lambda: start("old"), lambda: start("new"), "SO_REUSEPORT upgrade",
                     stop_old_first=False))


def test_listen_is_optional_with_socket_activation_and_must_match_when_given(tmp_path, upstream, notify):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    notify.set_probe_port(port)
    env = gateway_env(notify, LISTEN_FDS="1")
    try:
        # No `listen`: the passed socket is served (the default 0.0.0.0:8080 is not bound).
        config = tmp_path / "implicit.conf"
        config.write_text(config_text(upstream.url, None))
        process = Process(tmp_path, "implicit", activated_argv(config, listener.fileno()), env,
                          pass_fds=(listener.fileno(),))
        try:
            wait_ready(notify, process)
            client = Client(port)
            client.get("/implicit", keep_alive=False)
            client.close()
            assert f"127.0.0.1:{port}" in process.log_text() and "socket_activation_fd" in process.log_text()
            statuses = [m.fields.get("STATUS", "") for m in notify.snapshot() if m.pid == process.proc.pid]
            assert "starting: taking the sockets passed in LISTEN_FDS" in statuses, statuses
            assert f"serving on 127.0.0.1:{port}" in statuses, statuses
        finally:
            process.proc.send_signal(signal.SIGTERM)
            assert process.proc.wait(timeout=scaled(15)) == 0
            process.stop()

        # An explicit `listen` naming another address: a startup error naming both sides.
        other = free_port()
        config = tmp_path / "mismatch.conf"
        config.write_text(config_text(upstream.url, f"127.0.0.1:{other}"))
        process = Process(tmp_path, "mismatch", activated_argv(config, listener.fileno()), env,
                          pass_fds=(listener.fileno(),))
        try:
            assert process.proc.wait(timeout=scaled(30)) != 0
            text = process.log_text()
            assert f"127.0.0.1:{other}" in text and f"fd 3 127.0.0.1:{port}" in text, text[-2000:]
            assert "does not match the sockets passed by the service manager" in text
        finally:
            process.stop()

        # LISTEN_PID naming another process: ignored, `listen` is bound as usual.
        own = free_port()
        config = tmp_path / "foreign.conf"
        config.write_text(config_text(upstream.url, f"127.0.0.1:{own}"))
        process = Process(tmp_path, "foreign", [gateway_binary(), "run", "--config", str(config)],
                          gateway_env(notify, LISTEN_FDS="1", LISTEN_PID="1"))
        try:
            wait_ready(notify, process)
            client = Client(own)
            client.get("/foreign", keep_alive=False)
            client.close()
            assert "LISTEN_PID=1 names another process" in process.log_text()
        finally:
            process.proc.send_signal(signal.SIGTERM)
            process.proc.wait(timeout=scaled(15))
            process.stop()
    finally:
        listener.close()


def user_manager_available() -> str | None:
    """None when `systemd-run --user` can start a unit here, else why not."""
    if shutil.which("systemd-run") is None:
        return "systemd-run is not installed"
    probe = subprocess.run(["systemctl", "--user", "show-environment"], capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        return f"no user service manager answers (systemctl --user: {probe.stderr.strip() or probe.returncode})"
    return None


def test_restart_through_systemd_run_user_socket_fails_no_request(tmp_path, upstream):
    """The same restart with systemd itself holding the socket: a transient socket unit and
    service under `systemd-run --user`, restarted under load."""
    reason = user_manager_available()
    if reason is not None:
        pytest.skip(reason)
    port = free_port()
    config = tmp_path / "gateway.conf"
    config.write_text(config_text(upstream.url, f"127.0.0.1:{port}"))
    unit = f"dbgw-test-{os.getpid()}-{port}"
    started = subprocess.run(
        ["systemd-run", "--user", f"--unit={unit}", f"--socket-property=ListenStream=127.0.0.1:{port}",
         "--socket-property=Backlog=4096", "--property=Type=notify", "--property=KillSignal=SIGTERM",
         gateway_binary(), "run", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )
    assert started.returncode == 0, started.stderr
    try:
        assert wait_until(lambda: socket_answers(port), 20)
        load = Load(port)
        load.start()
        time.sleep(LOAD_SECONDS / 4)
        switch_from = time.monotonic()
        restarted = subprocess.run(["systemctl", "--user", "restart", f"{unit}.service"],
                                   capture_output=True, text=True, timeout=scaled(60))
        switch_to = time.monotonic()
        assert restarted.returncode == 0, restarted.stderr
        time.sleep(max(0.0, LOAD_SECONDS - (time.monotonic() - load.started)))
        load.stop()
        check(load.report("systemd-run --user restart", switch_from, switch_to))
    finally:
        subprocess.run(["systemctl", "--user", "stop", f"{unit}.socket", f"{unit}.service"],
                       capture_output=True, timeout=60)


def socket_answers(port: int) -> bool:
    try:
        client = Client(port)
        client.get("/probe", keep_alive=False)
        client.close()
        return True
    except Exception:  # noqa: BLE001 - not up yet
        return False


def test_drain_serves_the_first_request_of_a_fresh_connection_and_closes_idle_reused_ones(tmp_path, upstream, notify):
    """SIGTERM closes an idle keep-alive connection that already served a request (its client
    may retry, RFC 9112 §9.3.1), but a connection accepted before the listener closed whose
    first request has not arrived yet is kept: that request is answered, with
    `Connection: close`, and only then is the connection closed."""
    port = free_port()
    notify.set_probe_port(port)
    admin = free_port()
    config = tmp_path / "gateway.conf"
    config.write_text(config_text(upstream.url, f"127.0.0.1:{port}") + f'\n[admin]\nlisten = "127.0.0.1:{admin}"\n')
    process = Process(tmp_path, "drain", [gateway_binary(), "run", "--config", str(config)], gateway_env(notify))
    try:
        wait_ready(notify, process)
        reused = Client(port)
        reused.get("/first", keep_alive=True)
        assert reused.reusable
        fresh = Client(port)
        # The fresh connection is accepted (and counted) before the drain begins.
        assert wait_until(lambda: open_connections(admin) == 2, 10), open_connections(admin)
        process.proc.send_signal(signal.SIGTERM)
        assert wait_until(lambda: '"draining"' in process.log_text(), 10), process.log_text()
        # The reused idle connection is closed by the drain, before any response byte.
        with pytest.raises(NoResponseByte):
            reused.sock.settimeout(scaled(5))
            if reused.sock.recv(1) == b"":
                raise NoResponseByte("closed")
        # The fresh one is still served, after the drain began, and told to close.
        time.sleep(0.2)
        assert process.proc.poll() is None, "the drain did not wait for the fresh connection's first request"
        fresh.get("/late-first-request", keep_alive=True)
        assert not fresh.reusable
        assert fresh.sock.recv(1) == b""
        assert process.proc.wait(timeout=scaled(15)) == 0
    finally:
        process.stop()


def open_connections(admin_port: int) -> int:
    metrics = requests.get(f"http://127.0.0.1:{admin_port}/metrics", timeout=5).text
    return int(next(line.split()[1] for line in metrics.splitlines() if line.startswith("dbgw_open_connections ")))


def test_tls_on_a_passed_socket_and_the_admin_listener_beside_it(tmp_path, upstream, notify, pki):
    """[server.tls] applies to a passed socket as to a bound one; the admin listener (not
    socket-activated) binds its own address meanwhile."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    admin = free_port()
    notify.set_probe_port(port)
    config = tmp_path / "tls.conf"
    config.write_text(config_text(upstream.url, None) + tls_section(pki) + f'\n[admin]\nlisten = "127.0.0.1:{admin}"\n')
    process = Process(tmp_path, "tls", activated_argv(config, listener.fileno()), gateway_env(notify, LISTEN_FDS="1"),
                      pass_fds=(listener.fileno(),))
    try:
        wait_ready(notify, process)
        response = requests.get(f"https://localhost:{port}/tls-on-passed-socket", verify=pki.path("ca.pem"), timeout=10)
        assert response.status_code == 200
        assert requests.get(f"http://127.0.0.1:{admin}/healthz", timeout=5).status_code == 200
        process.proc.send_signal(signal.SIGTERM)
        assert process.proc.wait(timeout=scaled(15)) == 0
    finally:
        process.stop()
        listener.close()
