"""Issue 14, the Node SDK (sdks/node): its unit tests (`node --test`), its types (`tsc --noEmit`),
`npm pack` and an offline install of the tarball (`import` and `require`), then the README's
snippets -- the documentation's, verbatim -- and 401/403/429/503, API-key paging and a user
session, all through the real gateway binary with Redis in front of the recording upstream."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, add_user, create_key, header, jwt_session_tail, redis_keys_tail, scaled, write_pepper
from jwks_server import SigningKey

SDK = ROOT / "sdks" / "node"
README = SDK / "README.md"
PLACEHOLDER = "dbaudit_live_xxxxxxxx"

# The Node.js block of the API documentation's "SDK Authentication" section, as published.
DOCUMENTED_NODE_BLOCK = """\
import { DBaudit } from '@dbaudit/sdk';
// Initialize with API key
const client = new DBaudit({
apiKey: 'dbaudit_live_xxxxxxxx',
});
// Or use environment variable (recommended)
// DBAUDIT_API_KEY="dbaudit_live_xxxxxxxx"
const client = new DBaudit();
// Make authenticated requests
const databases = await client.databases.list();
"""

ROUTES = """
[[rate_limits]]
name = "one-per-second"
rate = 1
per = "second"
burst = 1

[[routes]]
method = "GET"
path = "/v1/databases/**"
scopes = ["read:databases"]

[[routes]]
method = "*"
path = "/v1/policies/**"
scopes = ["write:policies"]

[[routes]]
method = "GET"
path = "/v1/logs/**"
scopes = ["read:logs"]
rate_limit = "one-per-second"
"""


def node_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (make test installs it with scripts/install-deps.sh)")
    return path


def run(args, cwd, env=None, timeout=60.0):
    environment = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run(args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=scaled(timeout))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`npm pack` of sdks/node, installed offline into a fresh project: the directory to run
    node scripts in (so `@dbaudit/sdk` resolves to the packed copy, not the source tree)."""
    npm = node_tool("npm")
    work = tmp_path_factory.mktemp("sdk-node")
    cache = work / "npm-cache"
    packed = run([npm, "pack", "--offline", "--json", "--cache", str(cache), "--pack-destination", str(work)], SDK)
    assert packed.returncode == 0, packed.stderr
    tarball = work / json.loads(packed.stdout)[0]["filename"]
    assert tarball.exists()
    project = work / "project"
    project.mkdir()
    (project / "package.json").write_text('{"name": "sdk-e2e", "private": true}\n')
    result = run([npm, "install", "--offline", "--no-audit", "--no-fund", "--cache", str(cache), str(tarball)], project)
    assert result.returncode == 0, result.stderr
    return project


def run_node(project: Path, name: str, source: str, env=None, timeout=30.0):
    script = project / name
    script.write_text(source)
    return run([node_tool("node"), str(script)], project, env=env, timeout=timeout)


def node_json(project: Path, name: str, source: str, env=None, timeout=30.0):
    result = run_node(project, name, source, env=env, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def readme_snippets() -> dict:
    text = README.read_text()
    return {m.group(1): m.group(2) for m in re.finditer(r"<!-- snippet: ([a-z-]+) -->\n```js\n(.*?)```", text, re.S)}


def test_unit_tests_pass():
    result = run([node_tool("node"), "--test", *sorted(str(p) for p in (SDK / "test").glob("*.test.mjs"))], SDK)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"^# fail 0$", result.stdout, re.M) and re.search(r"^# pass [1-9]", result.stdout, re.M)


def test_types_check_with_tsc():
    result = run([node_tool("tsc"), "--noEmit", "-p", str(SDK / "test" / "types" / "tsconfig.json")], SDK)
    assert result.returncode == 0, result.stdout + result.stderr


def test_packed_tarball_works_with_import_and_require(installed):
    package = installed / "node_modules" / "@dbaudit" / "sdk"
    assert (package / "types" / "index.d.cts").exists() and not (package / "test").exists()
    assert json.loads((package / "package.json").read_text()).get("dependencies") is None
    names = "Object.keys(sdk).sort().join(',')"
    esm = node_json(installed, "check.mjs", f"""
import * as sdk from '@dbaudit/sdk';
import {{ createRequire }} from 'node:module';
const cjs = createRequire(import.meta.url)('@dbaudit/sdk');
console.log(JSON.stringify({{ names: {names}, same: sdk.DBaudit === cjs.DBaudit, version: sdk.VERSION }}));
""")
    cjs = node_json(installed, "check.cjs", f"""
const sdk = require('@dbaudit/sdk');
const client = new sdk.DBaudit({{ apiKey: 'k' }});
console.log(JSON.stringify({{ names: {names}, client: typeof client.databases.list }}));
""")
    assert esm["same"] is True and esm["names"] == cjs["names"] and "DBaudit" in esm["names"].split(",")
    assert esm["version"] == json.loads((SDK / "package.json").read_text())["version"]
    assert cjs["client"] == "function"


def test_every_js_block_of_the_readme_is_a_snippet_run_here():
    text = README.read_text()
    blocks = re.findall(r"(<!-- snippet: ([a-z-]+) -->\n)?```js\n", text)
    assert blocks and all(marker for marker, _ in blocks), "a js block without a snippet marker"
    source = Path(__file__).read_text()
    for _, name in blocks:
        assert re.search(rf'snippets(\(\))?\["{name}"\]', source), f"snippet {name} is not run by this file"


def test_readme_snippets_are_the_documentations():
    snippets = readme_snippets()
    documented = [line.strip() for line in DOCUMENTED_NODE_BLOCK.splitlines()]
    used = set()
    for name in ("explicit-key", "environment"):
        code = snippets[name]
        lines = [line.strip() for line in code.splitlines() if line.strip()]
        positions = [documented.index(line) for line in lines]
        assert positions == sorted(positions), f"{name}: lines out of the documentation's order"
        used.update(positions)
    assert used == set(range(len(documented))), "every line of the documentation's block is in a snippet"


@pytest.fixture
def sdk_gateway(make_gateway, upstream, redis_server, pepper):
    return make_gateway(upstream.url, routes=ROUTES, tail=redis_keys_tail(redis_server.port, pepper))


def test_readme_snippets_run_verbatim_against_the_gateway(installed, sdk_gateway, upstream):
    snippets = readme_snippets()
    explicit = create_key(sdk_gateway, ["read:databases"], name="explicit")
    from_env = create_key(sdk_gateway, ["read:databases"], name="environment")
    version = json.loads((SDK / "package.json").read_text())["version"]

    # With an explicit key: the documented placeholder replaced by a real key, nothing else.
    code = snippets["explicit-key"]
    assert code.count(PLACEHOLDER) == 1
    result = run_node(installed, "explicit.mjs", code.replace(PLACEHOLDER, explicit["key"]),
                      env={"DBAUDIT_BASE_URL": sdk_gateway.url, "DBAUDIT_API_KEY": None})
    assert result.returncode == 0, result.stderr
    # With DBAUDIT_API_KEY: the snippet exactly as written.
    result = run_node(installed, "environment.mjs", snippets["environment"],
                      env={"DBAUDIT_BASE_URL": sdk_gateway.url, "DBAUDIT_API_KEY": from_env["key"]})
    assert result.returncode == 0, result.stderr

    calls = [r for r in upstream.requests() if r["path"] == "/v1/databases"]
    assert [header(r, "X-DBAudit-Key-Id") for r in calls] == [[explicit["id"]], [from_env["id"]]]
    assert all(header(r, "User-Agent") == [f"dbaudit-node/{version}"] for r in calls)
    assert all(r["method"] == "GET" for r in calls)

    # The environment snippet without the variable fails, naming it.
    result = run_node(installed, "environment.mjs", snippets["environment"],
                      env={"DBAUDIT_BASE_URL": sdk_gateway.url, "DBAUDIT_API_KEY": None})
    assert result.returncode != 0 and "DBAUDIT_API_KEY" in result.stderr
    assert explicit["key"] not in result.stderr and from_env["key"] not in result.stderr


# A node program that makes calls and prints, as JSON, what each returned or threw, the
# attempts it sent (method and path) and the waits between them.
PROBE = """
import { DBaudit } from '@dbaudit/sdk';
const attempts = [];
const delays = [];
const realWait = process.env.PROBE_REAL_WAIT === '1';
const client = new DBaudit({
  fetch: (url, init) => { attempts.push(`${init.method} ${new URL(url).pathname}`); return fetch(url, init); },
  sleep: (ms) => { delays.push(ms); return realWait ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve(); },
  timeout: 10000,
});
const outcome = async (call) => {
  const before = attempts.length;
  const firstDelay = delays.length;
  try {
    const result = await call();
    return { ok: true, requestId: result.requestId, attempts: attempts.slice(before), delays: delays.slice(firstDelay) };
  } catch (e) {
    return { ok: false, name: e.name, status: e.status, error: e.error, errorDescription: e.errorDescription,
             requestId: e.requestId, scope: e.scope ?? null, retryAfter: e.retryAfter ?? null, message: e.message,
             attempts: attempts.slice(before), delays: delays.slice(firstDelay) };
  }
};
const calls = {
  list: () => client.databases.list(),
  create: () => client.policies.create({ name: 'sdk-policy' }),
  logs: () => client.logs.list(),
  logsOnce: () => client.logs.list({}, { maxRetries: 0 }),
};
const results = [];
for (const name of process.argv.slice(2)) results.push(await outcome(calls[name]));
console.log(JSON.stringify(results));
"""


def probe(project: Path, gateway, key: str, *calls: str, real_wait: bool = False):
    script = project / "probe.mjs"
    script.write_text(PROBE)
    env = {"DBAUDIT_BASE_URL": gateway.url, "DBAUDIT_API_KEY": key, "PROBE_REAL_WAIT": "1" if real_wait else "0"}
    result = run([node_tool("node"), str(script), *calls], project, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_401_and_403_through_the_gateway(installed, sdk_gateway, upstream):
    unknown = "dbaudit_live_" + "A" * 38
    [refused] = probe(installed, sdk_gateway, unknown, "list")
    assert refused["name"] == "AuthenticationError" and refused["status"] == 401
    assert refused["error"] == "invalid_token" and refused["errorDescription"]
    assert refused["requestId"] and refused["attempts"] == ["GET /v1/databases"]
    assert unknown not in refused["message"]

    reader = create_key(sdk_gateway, ["read:databases"], name="reader")
    [denied] = probe(installed, sdk_gateway, reader["key"], "create")
    assert denied["name"] == "PermissionDeniedError" and denied["status"] == 403
    assert denied["error"] == "insufficient_scope" and denied["scope"] == "write:policies"
    assert denied["requestId"] and denied["attempts"] == ["POST /v1/policies"]
    assert not [r for r in upstream.requests() if r["path"].startswith("/v1/policies")]

    # The README's error-handling snippet, verbatim.
    result = run_node(installed, "errors.mjs", readme_snippets()["errors"],
                      env={"DBAUDIT_BASE_URL": sdk_gateway.url, "DBAUDIT_API_KEY": reader["key"]})
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"missing scope write:policies \(request [0-9A-Za-z._:@+=-]+\)\n", result.stdout), result.stdout


def test_429_retry_after_is_honoured_through_the_gateway(installed, sdk_gateway, upstream):
    key = create_key(sdk_gateway, ["read:logs"], name="logs")
    # One token per second: the first call takes it, the second is refused with Retry-After,
    # waits as told (really: the bucket must refill), and then goes through.
    first, second, third = probe(installed, sdk_gateway, key["key"], "logs", "logs", "logsOnce", real_wait=True)
    assert first["ok"] and first["attempts"] == ["GET /v1/logs"]
    assert second["ok"], second
    assert len(second["attempts"]) >= 2 and second["delays"][0] == 1000, second
    assert all(delay == 1000 for delay in second["delays"])
    assert third["name"] == "RateLimitError" and third["status"] == 429 and third["retryAfter"] == 1
    assert third["error"] == "rate_limited" and third["requestId"] and len(third["attempts"]) == 1
    logs = [r for r in upstream.requests() if r["path"] == "/v1/logs"]
    assert len(logs) == 2
    # A result's requestId is the gateway's X-Request-Id, the one the upstream saw.
    assert [first["requestId"], second["requestId"]] == [header(r, "X-Request-Id")[0] for r in logs]


def test_503_with_redis_stopped_is_retried_then_surfaced(installed, sdk_gateway, upstream, redis_server):
    reader = create_key(sdk_gateway, ["read:databases"], name="never used")
    writer = create_key(sdk_gateway, ["write:policies"], name="never used either")
    redis_server.kill9()
    [listed] = probe(installed, sdk_gateway, reader["key"], "list")
    [created] = probe(installed, sdk_gateway, writer["key"], "create")
    for outcome, attempt in ((listed, "GET /v1/databases"), (created, "POST /v1/policies")):
        assert outcome["name"] == "ServiceUnavailableError" and outcome["status"] == 503, outcome
        assert outcome["error"] == "auth_unavailable" and outcome["retryAfter"] == 1 and outcome["requestId"]
        # Two retries, each after the gateway's Retry-After: 1 -- also for the POST, because
        # the gateway's own 503 proves the upstream never saw it.
        assert outcome["attempts"] == [attempt] * 3 and outcome["delays"] == [1000, 1000]
    assert not [r for r in upstream.requests() if r["path"] in ("/v1/databases", "/v1/policies")]


def test_api_keys_paging_through_the_gateway(installed, sdk_gateway):
    admin = create_key(sdk_gateway, ["admin"], name="admin")
    result = node_json(installed, "keys.mjs", """
import { DBaudit } from '@dbaudit/sdk';
const client = new DBaudit();
const created = [];
for (let i = 0; i < 5; i++) created.push(await client.apiKeys.create({ name: `sdk-${i}`, scopes: ['read:logs'] }));
const pages = [];
const listed = [];
for await (const page of client.apiKeys.list({ limit: 2 }).pages()) pages.push(page.api_keys.length);
for await (const key of client.apiKeys.list({ limit: 2 })) listed.push(key.id);
const revoked = await client.apiKeys.revoke(created[0].id);
console.log(JSON.stringify({ created: created.map((k) => k.id), keysShown: created.every((k) => k.key.startsWith('dbaudit_')),
                             pages, listed, revoked: revoked.revoked, requestId: revoked.requestId }));
""", env={"DBAUDIT_BASE_URL": sdk_gateway.url, "DBAUDIT_API_KEY": admin["key"]})
    assert result["keysShown"] and result["revoked"] is True and result["requestId"]
    assert result["pages"] == [2, 2, 2]
    assert set(result["listed"]) == set(result["created"]) | {admin["id"]} and len(result["listed"]) == 6

    # The README's paging snippet, verbatim: every key (an admin also sees revoked ones).
    printed = run_node(installed, "api-keys.mjs", readme_snippets()["api-keys"],
                       env={"DBAUDIT_BASE_URL": sdk_gateway.url, "DBAUDIT_API_KEY": admin["key"]})
    assert printed.returncode == 0, printed.stderr
    assert {line.split(" ")[0] for line in printed.stdout.splitlines()} == set(result["listed"])


def test_user_session_through_the_gateway(installed, make_gateway, upstream, redis_server, tmp_path):
    """A client with e-mail and password: one login; ten concurrent calls after the SDK's
    clock passed the token's expiry make one refresh; a 401 (the gateway refusing the access
    token) makes one refresh and the call is repeated once; a session ended elsewhere (a logout
    with its access token ends the whole session, refresh token included) makes the refresh
    fail and the client log in again with its password, once; auth.logout ends the session."""
    signing_key_file = tmp_path / "signing-key.pem"
    signing_key_file.write_bytes(SigningKey("RS256", kid="gw-rs256").private_pem())
    tail = jwt_session_tail(redis_server.port, write_pepper(tmp_path / "session-pepper"), signing_key_file)
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=tail)
    password = "password-at-least-12"
    add_user(gateway, "ana@example.com", ["read:databases"], password=password)
    result = node_json(installed, "session.mjs", """
import { DBaudit } from '@dbaudit/sdk';
let now = Date.now();
const attempts = [];
let lastBearer = null;
let tamperNext = false;
const client = new DBaudit({
  email: 'ana@example.com', password: process.env.SDK_PASSWORD, clock: () => now,
  fetch: async (url, init) => {
    if (init.headers.authorization?.startsWith('Bearer ')) {
      lastBearer = init.headers.authorization;
      if (tamperNext && new URL(url).pathname === '/v1/databases') {
        // The gateway must refuse this one request's token (its signature no longer matches).
        tamperNext = false;
        const swapped = lastBearer.at(-10) === 'A' ? 'B' : 'A';
        const tampered = lastBearer.slice(0, -10) + swapped + lastBearer.slice(-9);
        init = { ...init, headers: { ...init.headers, authorization: tampered } };
      }
    }
    const response = await fetch(url, init);
    attempts.push(`${response.status} ${new URL(url).pathname}`);
    return response;
  },
});
const first = await client.databases.list();
now += 2 * 3600 * 1000;
const ten = await Promise.all(Array.from({ length: 10 }, () => client.databases.list()));
const count = (path) => attempts.filter((a) => a.endsWith(' ' + path)).length;
const counts = { logins: count('/v1/auth/login'), refreshes: count('/v1/auth/refresh'), calls: count('/v1/databases') };

// The gateway refuses the access token of one call: that call refreshes once and is repeated once.
tamperNext = true;
let before = attempts.length;
await client.databases.list();
const afterRefused = attempts.slice(before);

// The session ended elsewhere (a logout with its access token ends the session, its refresh
// token included); call until the gateway refuses the token: the refresh is refused too, so
// the client logs in again with its password, once, and repeats the call once.
const logout = await fetch(`${client.baseURL}/v1/auth/logout`, { method: 'POST', headers: { authorization: lastBearer } });
if (logout.status !== 200) throw new Error(`logout: ${logout.status}`);
let afterRevoke = null;
const deadline = Date.now() + 5000 * Number(process.env.SCALE);
while (afterRevoke === null && Date.now() < deadline) {
  before = attempts.length;
  await client.databases.list();
  const seen = attempts.slice(before);
  if (seen.some((a) => a.startsWith('401'))) afterRevoke = seen;
  else await new Promise((resolve) => setTimeout(resolve, 20));
}
// The SDK's own logout ends the session; built with a password, the client logs in again.
const loggedOut = await client.auth.logout();
const afterLogout = attempts.length;
await client.databases.list();
console.log(JSON.stringify({ ...counts, ok: ten.every((r) => r.method === 'GET') && first.method === 'GET', afterRefused, afterRevoke,
                             loggedOut: loggedOut.logged_out, afterLogout: attempts.slice(afterLogout) }));
""", env={"DBAUDIT_BASE_URL": gateway.url, "SDK_PASSWORD": password, "DBAUDIT_API_KEY": None, "SCALE": str(scaled(1))})
    assert result == {"logins": 1, "refreshes": 1, "calls": 11, "ok": True,
                      "afterRefused": ["401 /v1/databases", "200 /v1/auth/refresh", "200 /v1/databases"],
                      "afterRevoke": ["401 /v1/databases", "401 /v1/auth/refresh", "200 /v1/auth/login",
                                      "200 /v1/databases"],
                      "loggedOut": True, "afterLogout": ["200 /v1/auth/login", "200 /v1/databases"]}, result
    kinds = {tuple(header(r, "X-DBAudit-Credential")) for r in upstream.requests() if r["path"] == "/v1/databases"}
    assert kinds == {("jwt",)}

    # The README's session snippet, verbatim, for the user it names.
    add_user(gateway, "user@example.com", ["read:databases"], password="password-at-least-12")
    before = len(upstream.requests())
    result = run_node(installed, "session-snippet.mjs", readme_snippets()["session"],
                      env={"DBAUDIT_BASE_URL": gateway.url, "DBAUDIT_API_KEY": None})
    assert result.returncode == 0, result.stderr
    [call] = [r for r in upstream.requests()[before:] if r["path"] == "/v1/databases"]
    assert header(call, "X-DBAudit-Credential") == ["jwt"]


OAUTH_CLIENT_SECRET = "sdk-node-client-secret-0123456789abcdefXYZ"
NIGHTLY_EXPORT_SECRET = "nightly-export-secret-0123456789abcdefXYZ"


def test_oauth_client_credentials_through_the_gateway(installed, make_gateway, upstream, redis_server, tmp_path):
    """OAuth client credentials against the gateway's own token endpoint: ten concurrent
    calls fetch one token; ten more after the SDK's clock passed its expiry fetch one more.
    Skipped (saying so) while the binary under test has no [oauth]."""
    signing_key_file = tmp_path / "signing-key.pem"
    signing_key_file.write_bytes(SigningKey("RS256", kid="gw-rs256").private_pem())
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(OAUTH_CLIENT_SECRET + "\n")
    nightly_secret_file = tmp_path / "nightly-export-secret"
    nightly_secret_file.write_text(NIGHTLY_EXPORT_SECRET + "\n")
    tail = jwt_session_tail(redis_server.port, write_pepper(tmp_path / "oauth-pepper"), signing_key_file) + f"""
[oauth]

[[oauth.clients]]
id = "sdk-node"
grant_types = ["client_credentials"]
scopes = ["read:databases", "read:logs"]
secret_file = "{secret_file}"

[[oauth.clients]]
id = "nightly-export"
grant_types = ["client_credentials"]
scopes = ["read:logs"]
secret_file = "{nightly_secret_file}"
"""
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=tail)
    result = node_json(installed, "oauth.mjs", """
import { DBaudit } from '@dbaudit/sdk';
let now = Date.now();
const attempts = [];
const client = new DBaudit({
  clientId: 'sdk-node', clientSecret: process.env.SDK_CLIENT_SECRET, scope: 'read:databases', clock: () => now,
  fetch: async (url, init) => {
    const response = await fetch(url, init);
    attempts.push(`${response.status} ${new URL(url).pathname}`);
    return response;
  },
});
const many = () => Promise.all(Array.from({ length: 10 }, () => client.databases.list()));
const first = await many();
now += 2 * 3600 * 1000;
const second = await many();
const count = (entry) => attempts.filter((a) => a === entry).length;
console.log(JSON.stringify({ tokens: count('200 /oauth/token'), calls: count('200 /v1/databases'), other: attempts.filter((a) => !a.startsWith('200')),
                             subjects: [...new Set([...first, ...second].map((r) => r.headers.find(([k]) => k.toLowerCase() === 'x-dbaudit-subject')?.[1]))] }));
""", env={"DBAUDIT_BASE_URL": gateway.url, "SDK_CLIENT_SECRET": OAUTH_CLIENT_SECRET, "DBAUDIT_API_KEY": None})
    assert result == {"tokens": 2, "calls": 20, "other": [], "subjects": ["client:sdk-node"]}, result

    # The README's OAuth snippet, with the real secret in place of its placeholder.
    code = readme_snippets()["oauth"]
    assert code.count("YOUR_CLIENT_SECRET") == 1
    before = len(upstream.requests())
    ran = run_node(installed, "oauth-snippet.mjs", code.replace("YOUR_CLIENT_SECRET", NIGHTLY_EXPORT_SECRET),
                   env={"DBAUDIT_BASE_URL": gateway.url, "DBAUDIT_API_KEY": None})
    assert ran.returncode == 0, ran.stderr
    [call] = [r for r in upstream.requests()[before:] if r["path"] == "/v1/logs"]
    assert header(call, "X-DBAudit-Subject") == ["client:nightly-export"]
