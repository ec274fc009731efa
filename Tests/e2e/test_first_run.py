"""The README's "First real run", executed as written: every ```sh block after a
`<!-- first-run: NAME -->` marker is taken from README.md at test time, so the walk-through
and this test cannot drift apart. The blocks run one after another in one root shell inside
a ScratchSystem (private /etc, /usr, /var and loopback), and each step's output is checked
for what the README says it shows.

The one deviation: `sudo make install` installs the build under test (SKIP_BUILD=1 and
BINARY= in the environment, which make passes to scripts/install.sh) instead of building a
release. The systemd block needs systemd as the service manager (PID 1), which a build
machine or container does not have: test_first_run_under_systemd boots one inside the
scratch system (ScratchSystem.boot_systemd) and runs the whole walk-through under it, with
the units exactly as shipped."""

import re

import pytest

from conftest import ROOT, ScratchSystem, gateway_binary, wait_until

README = ROOT / "README.md"
MARKER = re.compile(r"<!-- first-run: ([a-z-]+) -->\n```sh\n(.*?)```", re.S)
# The steps in the order the README gives them; a renamed, dropped or reordered step fails here.
EXPECTED_STEPS = ["install", "redis", "pepper", "upstream", "key", "run", "request", "stop", "systemd"]


def readme_steps() -> list:
    return [(name, script) for name, script in MARKER.findall(README.read_text())]


def test_the_readme_walk_through_has_every_step_in_order():
    assert [name for name, _ in readme_steps()] == EXPECTED_STEPS


def status_lines(output: str) -> list:
    return re.findall(r"^HTTP/1\.1 (\d{3})", output, re.M)


@pytest.fixture
def scratch(tmp_path):
    system = ScratchSystem(tmp_path, env={"SKIP_BUILD": "1", "BINARY": gateway_binary()})
    yield system
    system.close()


def run_by_hand(system: ScratchSystem) -> dict:
    """Every step before the systemd block, each checked; returns their outputs by name."""
    steps = dict(readme_steps())
    outputs = {}
    for name in EXPECTED_STEPS[:-1]:
        outputs[name] = system.run(steps[name], timeout=180 if name == "install" else 60, name=f"README step {name!r}")
        if name == "run":
            # It runs as the service user, not root.
            assert system.run("ps -o user:32= -C dbaudit-gateway") == "dbaudit-gateway"

    install = outputs["install"]
    assert "install: /usr/local/bin/dbaudit-gateway" in install, install
    assert "/etc/dbaudit-gateway/gateway.conf (from gateway.conf.example" in install, install
    # The installed configuration is the shipped example, byte for byte.
    assert system.run("cat /etc/dbaudit-gateway/gateway.conf") + "\n" == (ROOT / "gateway.conf.example").read_text()
    assert outputs["redis"].splitlines()[-1] == "PONG", outputs["redis"]
    assert outputs["pepper"].splitlines()[-1] == "configuration OK", outputs["pepper"]
    # The pepper as the README makes it: 64 hex characters, root:dbaudit-gateway 0640.
    assert system.run("stat -c '%U:%G %a %s' /etc/dbaudit-gateway/api-key-pepper") == "root:dbaudit-gateway 640 65"
    assert "first-key" in outputs["key"] and "read:databases" in outputs["key"], outputs["key"]
    key = system.run('echo "$KEY"')
    assert re.fullmatch(r"dbaudit_live_[A-Za-z0-9]{38}", key), key
    assert status_lines(outputs["request"]) == ["200", "401"], outputs["request"]
    assert '{"databases": []}' in outputs["request"]
    assert key not in outputs["request"].split("\n", 1)[1]  # the key is not echoed back anywhere
    outputs["key_value"] = key
    return outputs


def test_first_run_by_hand(scratch):
    outputs = run_by_hand(scratch)
    # `stop` waited for the gateway's exit status (0 after the drain) and nothing listens on 8080.
    assert scratch.run("ps -o pid= -C dbaudit-gateway || echo none") == "none"
    assert scratch.run("curl -s -o /dev/null http://127.0.0.1:8080/ && echo listening || echo closed") == "closed"
    assert outputs["key_value"]


def test_first_run_under_systemd(scratch):
    """The whole walk-through on a machine that runs systemd: a service manager boots inside
    the scratch system first (ScratchSystem.boot_systemd: systemd as PID 1 of nested
    namespaces), every step runs in its namespaces (`make install` finds systemd running), and the
    README's systemd block then runs as written against the units `make install` put in place."""
    scratch.boot_systemd()
    run_by_hand(scratch)
    try:
        output = scratch.run(dict(readme_steps())["systemd"], timeout=120, name="README step 'systemd'")
    except AssertionError as failure:
        journal = scratch.systemd_journal()[-8000:]
        raise AssertionError(f"{failure}\nthe service manager's journal:\n{journal}") from None

    # `enable --now` returned once the gateway said READY=1 (Type=notify): active at once.
    assert "active" in output.splitlines(), output
    assert status_lines(output) == ["200"], output
    assert '{"databases": []}' in output, output
    show = "systemctl show dbaudit-gateway --value -p"
    main_pid = scratch.run(f"{show} MainPID")
    # Enabled for boot, run by the unit as the service user, check-config ran before it.
    assert scratch.run("systemctl is-enabled dbaudit-gateway") == "enabled"
    assert scratch.run("ps -o user:32= -C dbaudit-gateway") == "dbaudit-gateway"
    # The shipped sandbox is in force, not skipped by the nested manager: no new privileges, a
    # seccomp filter, and of all capabilities only CAP_NET_BIND_SERVICE (bit 10).
    sandbox = scratch.run(f"grep -E '^(NoNewPrivs|Seccomp|CapEff|CapBnd):' /proc/{main_pid}/status")
    assert sandbox.split() == ["CapEff:", "0000000000000400", "CapBnd:", "0000000000000400",
                               "NoNewPrivs:", "1", "Seccomp:", "2"], sandbox
    started = scratch.run(f"{show} ExecStartPre")
    assert "check-config" in started and "code=exited ; status=0" in started, started
    # The reload was applied: the gateway's READY=1 after RELOADING=1 carries this status.
    assert wait_until(lambda: "configuration reloaded from /etc/dbaudit-gateway/gateway.conf (reload 1)"
                      in scratch.run(f"{show} StatusText"), timeout=15), scratch.run(f"{show} StatusText")
    assert scratch.run(f"{show} ActiveState") == "active"
    # A file that fails check-config makes `systemctl reload` itself fail; the gateway keeps serving.
    scratch.run("cp /etc/dbaudit-gateway/gateway.conf /root/gateway.conf.good && "
                "echo 'no_such_key = 1' >> /etc/dbaudit-gateway/gateway.conf")
    reload = scratch.run("sudo systemctl reload dbaudit-gateway 2>&1 && echo reloaded || echo refused")
    assert reload.endswith("refused"), reload
    # Refused before the signal: still the first reload, the same process, serving.
    assert "(reload 1)" in scratch.run(f"{show} StatusText")
    assert scratch.run(f"{show} MainPID") == main_pid
    scratch.run("install -m 0640 -o root -g dbaudit-gateway /root/gateway.conf.good /etc/dbaudit-gateway/gateway.conf")
    request = 'curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1:8080/v1/databases -H "Authorization: Bearer $KEY"'
    assert scratch.run(request) == "200"
    # Stop: SIGTERM, the drain, exit 0, which systemd records as a clean stop.
    scratch.run("sudo systemctl stop dbaudit-gateway")
    assert scratch.run(f"{show} Result") == "success"
    assert scratch.run(f"{show} ExecMainStatus") == "0"
    assert scratch.run("systemctl is-active dbaudit-gateway || true") == "inactive"
