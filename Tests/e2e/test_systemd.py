"""The systemd integration: the unit file (systemd-analyze verify and security), the sd_notify
protocol spoken by the real binary (this test plays systemd on a notify socket), the sandbox
against what the binary really does (system calls, /proc, address families, W^X memory), and
`make install`'s layout."""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from conftest import ROOT, free_port, gateway_binary, redis_keys_tail, scaled, wait_for_port, wait_until, write_pepper

UNIT = ROOT / "systemd" / "dbaudit-gateway.service"
SOCKET_UNIT = ROOT / "systemd" / "dbaudit-gateway.socket"
SYSCTL_SNIPPET = ROOT / "systemd" / "dbaudit-gateway.sysctl.conf"
# `systemd-analyze security` of the unit as shipped: the sandbox may only get tighter.
MAX_EXPOSURE = 1.4
INSTALLED_BINARY = "/usr/local/bin/dbaudit-gateway"


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is not installed: scripts/install-deps.sh installs Debian's `systemd` package "
                    "(make test runs it); these checks cannot run without it")
    return path


def unit_for_this_build(directory: Path) -> Path:
    """A copy of the unit whose binary paths point at the built binary.

    `systemd-analyze verify` checks that every Exec*= command exists and is executable; the
    unit names the installed path (/usr/local/bin/dbaudit-gateway), which a build machine does
    not have. Rewriting only that path keeps everything else exactly as shipped (/bin/sh and
    /bin/kill exist on any Debian). The copy keeps the unit's file name, which verify needs
    to know the unit's type and name."""
    binary = str(Path(gateway_binary()).resolve())
    text = UNIT.read_text()
    assert INSTALLED_BINARY in text
    copy = directory / UNIT.name
    copy.write_text(text.replace(INSTALLED_BINARY, binary))
    return copy


# ---------------------------------------------------------------------------------------
# The unit file


def test_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = systemd_analyze()
    unit = unit_for_this_build(tmp_path)
    # The socket unit is verified together with the service it activates (same directory,
    # so verify finds dbaudit-gateway.service as the socket's service).
    socket_unit = tmp_path / SOCKET_UNIT.name
    shutil.copy(SOCKET_UNIT, socket_unit)
    # On the unit as shipped, verify fails with "Command /usr/local/bin/dbaudit-gateway is not
    # executable" on a machine where nothing is installed; hence the copy. --man=no: verify
    # would run man(1) for man: Documentation= entries (ours is a file: URL; man-db may be absent).
    result = subprocess.run([analyze, "verify", "--man=no", str(unit), str(socket_unit)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"systemd-analyze verify failed:\n{result.stdout}\n{result.stderr}"
    # verify prints problems on stderr even in cases where it exits 0: none about our unit.
    problems = [line for line in result.stderr.splitlines() if "dbaudit-gateway" in line]
    assert not problems, "\n".join(problems)


def test_unit_declares_notify_watchdog_and_sandbox():
    text = UNIT.read_text()
    settings = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    assert settings["Type"] == ["notify"]
    assert settings["NotifyAccess"] == ["main"]
    assert settings["WatchdogSec"] == ["30"]
    assert settings["ExecStart"] == [f"{INSTALLED_BINARY} run --config /etc/dbaudit-gateway/gateway.conf"]
    # --quiet: the journal gets one line per start or reload, not the whole configuration.
    check = f"{INSTALLED_BINARY} check-config --quiet --config /etc/dbaudit-gateway/gateway.conf"
    assert settings["ExecStartPre"] == [check]
    assert settings["ExecReload"] == [check, "/bin/kill -HUP $MAINPID"]
    assert settings["User"] == settings["Group"] == ["dbaudit-gateway"]
    # TimeoutStopSec must leave the drain (gateway.conf.example: drain_timeout = "30s") room.
    drain = re.search(r'^drain_timeout = "(\d+)s"', (ROOT / "gateway.conf.example").read_text(), re.M)
    assert int(settings["TimeoutStopSec"][0]) > int(drain.group(1))
    for key in ["NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
                "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock",
                "ProtectHostname", "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID",
                "LockPersonality", "MemoryDenyWriteExecute"]:
        assert settings.get(key) == ["yes"], key
    assert settings["ProtectSystem"] == ["strict"]
    assert settings["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    assert settings["CapabilityBoundingSet"] == settings["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]


def test_unit_security_exposure_is_ok_or_better(tmp_path):
    analyze = systemd_analyze()
    unit = unit_for_this_build(tmp_path)
    result = subprocess.run([analyze, "security", "--offline=true", "--no-pager", str(unit)],
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for dbaudit-gateway\.service: (\d+\.\d+) (\w+)", output)
    assert match, f"no overall exposure line in:\n{output}"
    exposure, rating = float(match.group(1)), match.group(2)
    print(f"systemd-analyze security: exposure {exposure} {rating}")
    # systemd's words: PERFECT 0.0, SAFE < 1.0, OK < 5.0, MEDIUM < 7.5, EXPOSED, UNSAFE, DANGEROUS.
    assert rating in ("OK", "SAFE", "PERFECT"), output
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} is above {MAX_EXPOSURE}:\n{output}"


def unit_file_settings(path: Path) -> dict:
    settings = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_socket_unit_listens_where_the_default_listen_does_and_leaves_the_service_optional():
    socket_settings = unit_file_settings(SOCKET_UNIT)
    example = (ROOT / "gateway.conf.example").read_text()
    default_listen = re.search(r'^listen = \["([^"]+)"\]', example, re.M).group(1)
    assert socket_settings["ListenStream"] == [default_listen]
    assert socket_settings["Accept"] == ["no"]
    assert socket_settings["WantedBy"] == ["sockets.target"]
    assert "[server] listen" in SOCKET_UNIT.read_text()
    # The service runs without the socket unit (it binds listen itself then): it neither
    # requires nor binds to it, and never stops it (a restart keeps the socket open).
    service = unit_file_settings(UNIT)
    for key in ("Requires", "BindsTo", "Sockets"):
        assert not any("dbaudit-gateway.socket" in value for value in service.get(key, [])), key
    assert not any("PartOf" in line for line in SOCKET_UNIT.read_text().splitlines() if not line.startswith("#"))
    assert SYSCTL_SNIPPET.read_text().count("net.ipv4.tcp_migrate_req = 1") == 1


# ---------------------------------------------------------------------------------------
# sd_notify: this test is systemd


@dataclass
class Notification:
    at: float  # time.monotonic() on arrival
    pid: int  # sender, from SCM_CREDENTIALS
    fields: dict
    raw: bytes
    port_open: bool | None = None  # for READY=1: did the gateway's port accept a connection then?


@dataclass
class NotifySocket:
    """An AF_UNIX datagram socket like systemd's notify socket, read by a thread.

    `address` is a path or an abstract name starting with '@'. When a READY=1 arrives, the
    thread at once tries one TCP connection to `probe_port` and records whether it opened."""

    address: str
    probe_port: int | None = None
    messages: list = field(default_factory=list)

    def __post_init__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.address[1:] if self.address.startswith("@") else self.address)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.1)
        self.condition = threading.Condition()
        self.port_known = threading.Event()
        self.stopped = False
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def set_probe_port(self, port: int) -> None:
        self.probe_port = port
        self.port_known.set()

    def _receive(self) -> None:
        while not self.stopped:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(12))
            except socket.timeout:
                continue
            except OSError:
                return
            at = time.monotonic()
            pid = -1
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", payload[:12])[0]
            fields = {}
            for line in data.decode().split("\n"):
                if line:
                    key, _, value = line.partition("=")
                    fields[key] = value
            message = Notification(at, pid, fields, data)
            if fields.get("READY") == "1" and self.port_known.wait(5):
                try:
                    with socket.create_connection(("127.0.0.1", self.probe_port), timeout=1):
                        message.port_open = True
                except OSError:
                    message.port_open = False
            with self.condition:
                self.messages.append(message)
                self.condition.notify_all()

    def wait_for(self, predicate, after: int = 0, timeout: float = 10.0) -> tuple:
        """(index, message) of the first message at or after index `after` matching predicate."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while True:
                for index in range(after, len(self.messages)):
                    if predicate(self.messages[index].fields):
                        return index, self.messages[index]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = "\n".join(repr(m.raw) for m in self.messages[after:])
                    raise AssertionError(f"no matching notification within {timeout}s; received:\n{seen}")
                self.condition.wait(remaining)

    def snapshot(self) -> list:
        with self.condition:
            return list(self.messages)

    def close(self) -> None:
        self.stopped = True
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def notify_dir():
    # sun_path holds 108 bytes: pytest's tmp_path can be longer than that.
    directory = tempfile.mkdtemp(prefix="dbgw-notify-", dir="/tmp")
    yield Path(directory)
    shutil.rmtree(directory, ignore_errors=True)


def has(key, value=None):
    return lambda fields: key in fields and (value is None or fields[key] == value)


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def test_gateway_speaks_sd_notify_as_systemd_expects(make_gateway, upstream, notify_dir):
    notify = NotifySocket(str(notify_dir / "notify"))
    try:
        gateway = make_gateway(
            upstream.url,
            env={"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "400000", "WATCHDOG_PID": None},
            wait=False,
        )
        notify.set_probe_port(gateway.port)

        # READY=1 only once the listener accepts connections, with a readable STATUS.
        ready_index, ready = notify.wait_for(has("READY", "1"), timeout=20)
        assert ready.port_open is True, "READY=1 arrived before the port accepted connections"
        assert ready.fields["STATUS"] == f"serving on 127.0.0.1:{gateway.port}"
        before = notify.snapshot()[:ready_index]
        assert any(m.fields.get("STATUS", "").startswith("starting: binding 127.0.0.1:") for m in before), before
        assert requests.get(gateway.url + "/x", timeout=5).status_code == 200

        # Watchdog: WATCHDOG_USEC=400000 -> a ping every 200 ms.
        pings, index = [], len(notify.snapshot())
        while len(pings) < 5:
            index, ping = notify.wait_for(has("WATCHDOG", "1"), after=index, timeout=scaled(3))
            pings.append(ping)
            index += 1
        gaps = [b.at - a.at for a, b in zip(pings, pings[1:])]
        print(f"watchdog ping gaps: {[round(gap, 3) for gap in gaps]}")
        # Every half of WATCHDOG_USEC (0.2 s): never faster than 0.1 s, never near the 0.4 s
        # deadline unless the machine is slowed down (then scaled).
        assert all(0.1 < gap < 0.2 + scaled(0.15) for gap in gaps), gaps

        # SIGHUP with a good file: RELOADING=1 + MONOTONIC_USEC, then READY=1 and a STATUS.
        gateway.write_config(upstream.url, extra="access_log = false")
        mark = len(notify.snapshot())
        sent_at = monotonic_usec()
        gateway.signal(signal.SIGHUP)
        reloading_index, reloading = notify.wait_for(has("RELOADING", "1"), after=mark)
        usec = int(reloading.fields["MONOTONIC_USEC"])
        assert sent_at <= usec <= monotonic_usec(), (sent_at, usec)
        _, reloaded = notify.wait_for(has("READY", "1"), after=reloading_index + 1)
        assert "configuration reloaded from" in reloaded.fields["STATUS"], reloaded.fields
        assert reloaded.fields["STATUS"].startswith(f"serving on 127.0.0.1:{gateway.port}")

        # SIGHUP with a bad file: still RELOADING=1 ... READY=1, the STATUS says it was refused.
        gateway.config_path.write_text('[upstream]\nurl = "http://127.0.0.1:9000"\n[server]\nmax_connections = "many"\n')
        mark = len(notify.snapshot())
        gateway.signal(signal.SIGHUP)
        reloading_index, reloading = notify.wait_for(has("RELOADING", "1"), after=mark)
        assert int(reloading.fields["MONOTONIC_USEC"]) > usec
        _, refused = notify.wait_for(has("READY", "1"), after=reloading_index + 1)
        assert "reload refused" in refused.fields["STATUS"], refused.fields
        assert "previous configuration" in refused.fields["STATUS"]
        assert requests.get(gateway.url + "/x", timeout=5).status_code == 200

        # SIGTERM: STOPPING=1 with a STATUS, then exit 0.
        mark = len(notify.snapshot())
        gateway.signal(signal.SIGTERM)
        _, stopping = notify.wait_for(has("STOPPING", "1"), after=mark)
        assert stopping.fields["STATUS"].startswith("stopping: no new connections; draining"), stopping.fields
        assert gateway.proc.wait(timeout=15) == 0

        # NotifyAccess=main: every message came from the gateway process itself, and no
        # message ever carried more than one line per key.
        messages = notify.snapshot()
        assert {m.pid for m in messages} == {gateway.proc.pid}
        assert all(m.raw.count(b"\n") + 1 == len(m.fields) for m in messages)
    finally:
        notify.close()


def test_abstract_notify_socket_and_watchdog_meant_for_another_process(make_gateway, upstream):
    name = f"@dbaudit-gateway-test-{os.getpid()}-{free_port()}"
    notify = NotifySocket(name)
    try:
        # WATCHDOG_PID names another process (as when the variable leaked from a parent):
        # this gateway must not ping.
        gateway = make_gateway(
            upstream.url, env={"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}, wait=False
        )
        notify.set_probe_port(gateway.port)
        _, ready = notify.wait_for(has("READY", "1"), timeout=20)
        assert ready.port_open is True
        time.sleep(0.5)
        assert not [m for m in notify.snapshot() if "WATCHDOG" in m.fields]
        gateway.signal(signal.SIGTERM)
        notify.wait_for(has("STOPPING", "1"))
        assert gateway.proc.wait(timeout=15) == 0
    finally:
        notify.close()


def redis_tail(redis_port: int, pepper_path: Path, connect_timeout: str = "1s") -> str:
    return redis_keys_tail(redis_port, pepper_path, command_timeout=None, connect_timeout=connect_timeout)


def sandboxed_run_config(tmp_path: Path, upstream, redis_server, pepper_file: Path):
    """(port, path) of a config the sandbox tests run the gateway with: Redis, an open route."""
    port = free_port()
    config = tmp_path / "gateway.conf"
    config.write_text(f"""
[server]
listen = ["127.0.0.1:{port}"]
event_loops = 2
drain_timeout = "2s"
[upstream]
url = "{upstream.url}"
{redis_tail(redis_server.port, pepper_file)}
[[routes]]
path = "/**"
public = true
""")
    return port, config


@pytest.fixture
def pepper_file(tmp_path):
    return write_pepper(tmp_path / "pepper")


def test_ready_waits_for_redis_to_answer_ping(make_gateway, upstream, redis_server, pepper_file, notify_dir):
    notify = NotifySocket(str(notify_dir / "notify"))
    try:
        pings_before = redis_server.command_calls("ping")
        gateway = make_gateway(upstream.url, tail=redis_tail(redis_server.port, pepper_file),
                               env={"NOTIFY_SOCKET": notify.address}, wait=False)
        notify.set_probe_port(gateway.port)
        _, ready = notify.wait_for(has("READY", "1"), timeout=20)
        assert ready.port_open is True
        assert ready.fields["STATUS"] == (
            f"serving on 127.0.0.1:{gateway.port}; Redis redis://127.0.0.1:{redis_server.port} answered PING"
        )
        assert redis_server.command_calls("ping") > pings_before
    finally:
        notify.close()


def test_ready_after_redis_connect_timeout_when_redis_is_down(make_gateway, upstream, pepper_file, notify_dir):
    notify = NotifySocket(str(notify_dir / "notify"))
    try:
        dead_port = free_port()  # nothing listens there: every connection is refused
        gateway = make_gateway(upstream.url, tail=redis_tail(dead_port, pepper_file, connect_timeout="1s"),
                               env={"NOTIFY_SOCKET": notify.address}, wait=False)
        notify.set_probe_port(gateway.port)
        waiting_index, waiting = notify.wait_for(lambda f: f.get("STATUS", "").startswith("listening; waiting for Redis"),
                                                 timeout=20)
        _, ready = notify.wait_for(has("READY", "1"), after=waiting_index, timeout=10)
        waited = ready.at - waiting.at
        print(f"READY {waited:.2f}s after the listeners were bound")
        # connect_timeout is 1 s, counted from the bind.
        assert 0.9 <= waited <= 1.0 + scaled(0.5), waited
        assert ready.port_open is True
        assert f"Redis redis://127.0.0.1:{dead_port} did not answer within 1s" in ready.fields["STATUS"], ready.fields
    finally:
        notify.close()


# ---------------------------------------------------------------------------------------
# The sandbox against what the binary really does


def unit_settings(key: str) -> list:
    return [line.split("=", 1)[1].strip() for line in UNIT.read_text().splitlines() if line.startswith(key + "=")]


def expand_syscall_groups(analyze: str, names: list) -> set:
    """The system calls of `names` (groups like @system-service and single calls), as
    systemd-analyze syscall-filter lists them, nested groups expanded."""
    result, pending, seen = set(), list(names), set()
    while pending:
        name = pending.pop()
        if not name.startswith("@"):
            result.add(name)
            continue
        if name in seen:
            continue
        seen.add(name)
        listing = subprocess.run([analyze, "syscall-filter", name], capture_output=True, text=True, timeout=30,
                                 check=True).stdout
        for line in listing.splitlines()[1:]:
            entry = line.strip()
            if entry and not entry.startswith("#"):
                pending.append(entry)
    return result


def test_gateway_stays_inside_the_units_syscall_filter_proc_subset_and_address_families(
        upstream, redis_server, pepper_file, tmp_path):
    """SystemCallFilter=, ProcSubset=pid and RestrictAddressFamilies= only show their effect
    under systemd; here the real binary runs under strace through start-up, Redis, a
    proxied request, a reload and a drain, and everything it did is checked against the
    unit's own settings."""
    analyze = systemd_analyze()
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is not installed: scripts/install-deps.sh installs it (make test runs it)")
    filters = unit_settings("SystemCallFilter")
    allowed = expand_syscall_groups(analyze, [n for f in filters if not f.startswith("~") for n in f.split()])
    denied = expand_syscall_groups(analyze, [n for f in filters if f.startswith("~") for n in f[1:].split()])
    permitted = allowed - denied
    assert unit_settings("SystemCallErrorNumber") == ["EPERM"]
    # Refused with EPERM under the unit, and harmless: libdispatch sets each worker thread's
    # nice value and ignores failure (as it must for any unprivileged user).
    tolerated = {"setpriority"}

    port, config = sandboxed_run_config(tmp_path, upstream, redis_server, pepper_file)
    trace = tmp_path / "trace"
    log = open(tmp_path / "gateway.log", "wb")
    proc = subprocess.Popen([strace, "-f", "-qq", "-o", str(trace), gateway_binary(), "run", "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=30, proc=proc)
        # strace's child is the gateway; signals go to it, not to strace.
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1, children
        gateway_pid = int(children[0])
        assert requests.get(f"http://127.0.0.1:{port}/x", timeout=10).status_code == 200
        os.kill(gateway_pid, signal.SIGHUP)
        log.flush()
        assert wait_until(lambda: b"configuration reloaded" in (tmp_path / "gateway.log").read_bytes(), 15), \
            (tmp_path / "gateway.log").read_text(errors="replace")[-2000:]
        assert requests.get(f"http://127.0.0.1:{port}/x", timeout=10).status_code == 200
        os.kill(gateway_pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        log.close()

    text = trace.read_text()
    used = set(re.findall(r"^\d+\s+([a-z0-9_]+)\(", text, re.M))
    used |= set(re.findall(r"^\d+\s+<\.\.\. ([a-z0-9_]+) resumed>", text, re.M))
    print(f"{len(used)} distinct system calls")
    assert not (used - permitted - tolerated), f"refused under the unit's SystemCallFilter: {sorted(used - permitted)}"

    # ProcSubset=pid / ProtectProc=invisible: only the process's own /proc entries.
    proc_paths = set(re.findall(r'"(/proc/[^"]*)"', text))
    foreign = {p for p in proc_paths if not re.match(r"/proc/(self|thread-self|\d+)(/|$)", p)}
    assert not foreign, foreign

    # RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX. The one exception: glibc's
    # getaddrinfo (AI_ADDRCONFIG) asks the kernel for the host's addresses over AF_NETLINK and,
    # when that socket is refused, assumes both IPv4 and IPv6 are configured
    # (test_gateway_runs_under_the_units_seccomp_filter... runs it refused).
    families = set(re.findall(r"\bsocket\((AF_[A-Z0-9]+)", text)) - {"AF_NETLINK"}
    assert families <= {"AF_INET", "AF_INET6", "AF_UNIX"}, families
    assert "AF_INET" in families


SANDBOX_WRAPPER = r"""
# Applies, to itself, what the unit's settings make systemd apply, then execs the gateway:
#   NoNewPrivileges=yes          prctl(PR_SET_NO_NEW_PRIVS)
#   MemoryDenyWriteExecute=yes   prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN) (Linux 6.3+; the
#                                kernel's own form of the rule systemd enforces with seccomp;
#                                kept across execve)
#   SystemCallArchitectures=native, SystemCallFilter=, SystemCallErrorNumber=EPERM,
#   RestrictAddressFamilies=     one seccomp filter: other architectures are killed, socket()
#                                of another family fails with EAFNOSUPPORT, a system call
#                                outside the allowed set fails with EPERM.
# argv: "mdwe" or "no-mdwe" (whether to apply MemoryDenyWriteExecute, which older kernels
# lack, so the system-call filter is checked everywhere), allowed syscall numbers (comma
# separated), allowed families (comma separated), then the command.
import ctypes, os, struct, sys

libc = ctypes.CDLL(None, use_errno=True)
with_mdwe = sys.argv[1] == "mdwe"
allowed = [int(n) for n in sys.argv[2].split(",")]
families = [int(n) for n in sys.argv[3].split(",")]
command = sys.argv[4:]

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
if with_mdwe:
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        sys.stderr.write("mdwe-unsupported errno=%d\n" % ctypes.get_errno())
        sys.exit(97)
    assert libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) == PR_MDWE_REFUSE_EXEC_GAIN

LD_ABS, JEQ, RET = 0x20, 0x15, 0x06
ALLOW, KILL_PROCESS, ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
AUDIT_ARCH_X86_64, NR_SOCKET, EPERM, EAFNOSUPPORT = 0xC000003E, 41, 1, 97
program = [
    (LD_ABS, 0, 0, 4), (JEQ, 1, 0, AUDIT_ARCH_X86_64), (RET, 0, 0, KILL_PROCESS),
    (LD_ABS, 0, 0, 0), (JEQ, 0, len(families) + 3, NR_SOCKET),
    (LD_ABS, 0, 0, 16),
]
for index, family in enumerate(families):
    program.append((JEQ, len(families) - index, 0, family))
program += [(RET, 0, 0, ERRNO | EAFNOSUPPORT), (RET, 0, 0, ALLOW)]
for number in allowed:
    program += [(JEQ, 0, 1, number), (RET, 0, 0, ALLOW)]
program.append((RET, 0, 0, ERRNO | EPERM))
filters = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
buffer = ctypes.create_string_buffer(filters)
fprog = struct.pack("HxxxxxxQ", len(program), ctypes.addressof(buffer))
fprog_buffer = ctypes.create_string_buffer(fprog)
assert libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fprog_buffer, 0, 0) != 0:
    sys.stderr.write("seccomp failed errno=%d\n" % ctypes.get_errno())
    sys.exit(98)
os.execv(command[0], command)
"""


def syscall_numbers_x86_64() -> dict:
    header = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
    if not header.exists():
        pytest.fail(f"{header} is missing (Debian's linux-libc-dev, installed with the Swift toolchain's libc6-dev)")
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^#define __NR_(\w+) (\d+)$", header.read_text(), re.M)}


@pytest.mark.parametrize("write_xor_execute", [False, True], ids=["seccomp", "seccomp+mdwe"])
def test_gateway_runs_under_the_units_seccomp_filter_and_write_xor_execute(
        write_xor_execute, upstream, redis_server, pepper_file, tmp_path, notify_dir):
    """systemd is not PID 1 on a build machine, so the sandbox cannot be tested by starting
    the unit. Instead the parts that could break the binary are enforced by the kernel on
    the real binary (see SANDBOX_WRAPPER), and it must go through start-up with Redis and a
    notify socket, requests, a reload and a drain to exit 0. The system-call filter runs on
    any kernel; only the W^X case needs PR_SET_MDWE (Linux 6.3+) and says so when skipped."""
    if os.uname().machine != "x86_64":
        pytest.skip("the seccomp filter here is written for x86_64 only")
    analyze = systemd_analyze()
    filters = unit_settings("SystemCallFilter")
    allowed = expand_syscall_groups(analyze, [n for f in filters if not f.startswith("~") for n in f.split()])
    denied = expand_syscall_groups(analyze, [n for f in filters if f.startswith("~") for n in f[1:].split()])
    numbers = syscall_numbers_x86_64()
    permitted = sorted(numbers[name] for name in allowed - denied if name in numbers)
    assert numbers["setpriority"] not in permitted and numbers["socket"] in permitted
    family_numbers = {"AF_UNIX": socket.AF_UNIX, "AF_INET": socket.AF_INET, "AF_INET6": socket.AF_INET6}
    families = [int(family_numbers[name]) for name in unit_settings("RestrictAddressFamilies")[0].split()]

    wrapper = tmp_path / "sandbox.py"
    wrapper.write_text(SANDBOX_WRAPPER)
    sandbox_args = [sys.executable, str(wrapper), "mdwe" if write_xor_execute else "no-mdwe",
                    ",".join(map(str, permitted)), ",".join(map(str, families))]

    # The wrapper is not vacuous: under it, a call outside the filter fails with EPERM and a
    # socket of another family with EAFNOSUPPORT, while TCP sockets still work.
    probe = subprocess.run(sandbox_args + [sys.executable, "-c", """
import errno, os, socket
try:
    os.setpriority(os.PRIO_PROCESS, 0, 0)
    print("setpriority allowed")
except PermissionError:
    print("setpriority EPERM")
try:
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    print("netlink allowed")
except OSError as error:
    print("netlink", errno.errorcode[error.errno])
socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
print("inet ok")
"""], capture_output=True, text=True, timeout=30)
    if probe.returncode == 97:
        pytest.skip(f"this kernel has no PR_SET_MDWE (Linux 6.3+): {probe.stderr.strip()}")
    assert probe.stdout.split("\n")[:3] == ["setpriority EPERM", "netlink EAFNOSUPPORT", "inet ok"], probe

    port, config = sandboxed_run_config(tmp_path, upstream, redis_server, pepper_file)
    notify = NotifySocket(str(notify_dir / "notify"), probe_port=port)
    notify.port_known.set()
    log_path = tmp_path / "gateway.log"
    log = open(log_path, "wb")
    env = {**os.environ, "NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen(sandbox_args + [gateway_binary(), "run", "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        try:
            _, ready = notify.wait_for(has("READY", "1"), timeout=30)
        except AssertionError:
            proc.poll()
            output = log_path.read_text(errors="replace")
            if proc.returncode == 97:
                pytest.skip(f"this kernel has no PR_SET_MDWE (Linux 6.3+): {output.strip()}")
            raise AssertionError(f"no READY=1 under the sandbox (exit {proc.returncode}):\n{output[-4000:]}")
        assert ready.port_open is True
        assert "answered PING" in ready.fields["STATUS"], ready.fields
        assert ready.pid == proc.pid  # the wrapper exec'd the gateway: same process
        for _ in range(3):
            assert requests.get(f"http://127.0.0.1:{port}/x", timeout=10).status_code == 200
        mark = len(notify.snapshot())
        proc.send_signal(signal.SIGHUP)
        index, _ = notify.wait_for(has("RELOADING", "1"), after=mark)
        notify.wait_for(has("READY", "1"), after=index + 1)
        assert requests.get(f"http://127.0.0.1:{port}/x", timeout=10).status_code == 200
        assert sum(1 for m in notify.snapshot() if m.fields.get("WATCHDOG") == "1") >= 2
        proc.send_signal(signal.SIGTERM)
        notify.wait_for(has("STOPPING", "1"))
        assert proc.wait(timeout=15) == 0, log_path.read_text(errors="replace")[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
        notify.close()


# ---------------------------------------------------------------------------------------
# make install


def make_install(destdir: Path, prefix: str = "/usr/local") -> subprocess.CompletedProcess:
    binary = Path(gateway_binary()).resolve()
    result = subprocess.run(
        ["make", "--no-print-directory", "install", f"DESTDIR={destdir}", f"PREFIX={prefix}", "SKIP_BUILD=1",
         f"BINARY={binary}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"make install failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_make_install_lays_out_files_and_keeps_the_operators_config(tmp_path):
    destdir = tmp_path / "root"
    make_install(destdir)

    def mode(path: Path) -> int:
        return path.stat().st_mode & 0o7777

    binary = destdir / "usr/local/bin/dbaudit-gateway"
    unit = destdir / "usr/local/lib/systemd/system/dbaudit-gateway.service"
    socket_unit = destdir / "usr/local/lib/systemd/system/dbaudit-gateway.socket"
    sysctl = destdir / "usr/lib/sysctl.d/60-dbaudit-gateway.conf"
    sysusers = destdir / "usr/lib/sysusers.d/dbaudit-gateway.conf"
    tmpfiles = destdir / "usr/lib/tmpfiles.d/dbaudit-gateway.conf"
    config = destdir / "etc/dbaudit-gateway/gateway.conf"
    readme = destdir / "usr/local/share/doc/dbaudit-gateway/README.md"
    example = destdir / "usr/local/share/doc/dbaudit-gateway/gateway.conf.example"
    for path, expected in [(binary, 0o755), (unit, 0o644), (sysusers, 0o644), (tmpfiles, 0o644), (config, 0o640),
                           (readme, 0o644), (example, 0o644), (socket_unit, 0o644), (sysctl, 0o644)]:
        assert path.is_file(), path
        assert mode(path) == expected, (path, oct(mode(path)))
    assert mode(config.parent) == 0o750
    assert binary.read_bytes() == Path(gateway_binary()).read_bytes()
    assert unit.read_text() == UNIT.read_text()  # PREFIX=/usr/local: the unit as shipped
    assert socket_unit.read_text() == SOCKET_UNIT.read_text()
    assert sysctl.read_text() == SYSCTL_SNIPPET.read_text()
    assert config.read_text() == (ROOT / "gateway.conf.example").read_text()
    assert sysusers.read_text() == (ROOT / "systemd/dbaudit-gateway.sysusers.conf").read_text()

    # Every Exec* binary of the installed unit exists under DESTDIR.
    for line in unit.read_text().splitlines():
        if line.startswith(("ExecStart=", "ExecStartPre=")):
            executable = line.split("=", 1)[1].split()[0]
            assert executable == "/usr/local/bin/dbaudit-gateway"
            assert (destdir / executable.lstrip("/")).is_file()
    assert subprocess.run([str(binary), "check-config", "--help"], capture_output=True, timeout=30).returncode == 0

    # An operator's edit survives a second install; everything else is refreshed.
    edited = config.read_text().replace('url = "http://127.0.0.1:9000"', 'url = "http://10.1.2.3:9000"', 1)
    assert edited != config.read_text()
    config.write_text(edited)
    config.chmod(0o600)
    readme.write_text("stale")
    result = make_install(destdir)
    assert "exists; kept as it is" in result.stdout
    assert config.read_text() == edited
    assert mode(config) == 0o600
    assert readme.read_text() == (ROOT / "README.md").read_text()


def test_make_install_snippets_create_the_user_and_give_it_the_config(tmp_path):
    """The sysusers and tmpfiles snippets, applied to the staged tree as packaging would
    (`--root`), create the user and give its group read access to gateway.conf."""
    for tool in ("systemd-sysusers", "systemd-tmpfiles"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: scripts/install-deps.sh installs Debian's `systemd` package")
    destdir = tmp_path / "root"
    make_install(destdir)
    subprocess.run(["systemd-sysusers", f"--root={destdir}", str(destdir / "usr/lib/sysusers.d/dbaudit-gateway.conf")],
                   check=True, capture_output=True, timeout=30)
    passwd = (destdir / "etc/passwd").read_text()
    entry = [line for line in passwd.splitlines() if line.startswith("dbaudit-gateway:")]
    assert len(entry) == 1 and entry[0].endswith(":/nonexistent:/usr/sbin/nologin"), passwd
    gid = int([line for line in (destdir / "etc/group").read_text().splitlines()
               if line.startswith("dbaudit-gateway:")][0].split(":")[2])
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles --create changes ownership, which needs root (CI and make test run as root)")
    subprocess.run(["systemd-tmpfiles", f"--root={destdir}", "--create",
                    str(destdir / "usr/lib/tmpfiles.d/dbaudit-gateway.conf")], check=True, capture_output=True, timeout=30)
    config = destdir / "etc/dbaudit-gateway/gateway.conf"
    assert (config.stat().st_uid, config.stat().st_gid, config.stat().st_mode & 0o777) == (0, gid, 0o640)
    assert (config.parent.stat().st_gid, config.parent.stat().st_mode & 0o777) == (gid, 0o750)


def test_make_install_with_another_prefix_rewrites_the_unit(tmp_path):
    destdir = tmp_path / "root"
    make_install(destdir, prefix="/usr")
    unit = (destdir / "usr/lib/systemd/system/dbaudit-gateway.service").read_text()
    assert "ExecStart=/usr/bin/dbaudit-gateway run --config /etc/dbaudit-gateway/gateway.conf" in unit
    assert "Documentation=file:///usr/share/doc/dbaudit-gateway/README.md" in unit
    assert "/usr/local" not in "\n".join(line for line in unit.splitlines() if not line.startswith("#"))
    socket_unit = (destdir / "usr/lib/systemd/system/dbaudit-gateway.socket").read_text()
    assert "Documentation=file:///usr/share/doc/dbaudit-gateway/README.md" in socket_unit
    assert "/usr/local" not in "\n".join(line for line in socket_unit.splitlines() if not line.startswith("#"))
    assert (destdir / "usr/bin/dbaudit-gateway").is_file()
