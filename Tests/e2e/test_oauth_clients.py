"""Issue 12, OAuth clients: registration with the CLI (secret shown once, kept only as its
peppered hash), listing, secret rotation and removal as seen by the token endpoint, and
check-config's validation of [oauth] and [[oauth.clients]] (`file:line: key: message`)."""

import json
import subprocess

import pytest
import requests

from conftest import gateway_binary, wait_until, scaled
from test_oauth_token import PREFIX, OAuth, pkce_pair


def clients(oauth, *args, stdin=None):
    return subprocess.run([gateway_binary(), "clients", *args, "--config", str(oauth.gateway.config_path)],
                          capture_output=True, text=True, timeout=30, input=stdin)


@pytest.fixture
def oauth(tmp_path, make_gateway, upstream, redis_server):
    return OAuth(tmp_path, make_gateway, upstream, redis_server)


def cc(oauth, client_id, secret):
    return oauth.token({"grant_type": "client_credentials"}, auth=(client_id, secret))


def test_a_registered_client_works_until_its_secret_is_rotated_or_it_is_removed(oauth):
    r = clients(oauth, "add", "--name", "CI export", "--grant-types", "client_credentials", "--scopes", "read:logs", "--json")
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    client_id, secret = created["client_id"], created["client_secret"]
    assert client_id.startswith("cid_") and len(client_id) == 26
    assert secret.startswith("dbaudit_cs_") and len(secret) == 54
    assert created["source"] == "store" and created["public"] is False and created["grant_types"] == ["client_credentials"]
    # Only the peppered hash is stored.
    stored = oauth.redis.command("GET", f"{PREFIX}oauth-client:{client_id}")
    assert secret.encode() not in stored and b"secret_hash" in stored
    assert cc(oauth, client_id, secret).status_code == 200

    listing = clients(oauth, "list", "--json")
    assert listing.returncode == 0, listing.stderr
    entries = {entry["client_id"]: entry for entry in json.loads(listing.stdout)}
    assert entries[client_id]["source"] == "store" and entries["app"]["source"] == "config"
    assert all("client_secret" not in entry and "secret_hash" not in entry for entry in entries.values())

    rotated = clients(oauth, "rotate-secret", client_id, "--json")
    assert rotated.returncode == 0, rotated.stderr
    new_secret = json.loads(rotated.stdout)["client_secret"]
    assert new_secret != secret
    assert cc(oauth, client_id, secret).status_code == 401
    assert cc(oauth, client_id, new_secret).status_code == 200

    assert clients(oauth, "remove", client_id).returncode == 0
    assert cc(oauth, client_id, new_secret).status_code == 401
    gone = clients(oauth, "remove", client_id)
    assert gone.returncode == 1 and "no registered client" in gone.stderr


def test_declared_clients_are_managed_in_the_file_only(oauth):
    for args in (["remove", "app"], ["rotate-secret", "app"]):
        r = clients(oauth, *args)
        assert r.returncode == 1 and "declared in the configuration file" in r.stderr


@pytest.mark.parametrize("args,message", [
    (["--redirect-uri", "http://app.example.test/cb"], "loopback"),
    (["--redirect-uri", "https://app.example.test/cb#frag"], "fragment"),
    (["--redirect-uri", "https://*.example.test/cb"], "wildcard"),
    (["--redirect-uri", "https://user@app.example.test/cb"], "userinfo"),
    (["--redirect-uri", "https://app.example.test/a/../cb"], ". or .."),
    ([], "redirect URI"),
    (["--redirect-uri", "https://app.example.test/cb", "--grant-types", "password"], "password"),
    (["--redirect-uri", "https://app.example.test/cb", "--public", "--grant-types", "authorization_code,client_credentials"], "confidential"),
    (["--redirect-uri", "https://app.example.test/cb", "--token-format", "paseto"], "jwt or opaque"),
])
def test_clients_add_refuses_bad_registrations(oauth, args, message):
    r = clients(oauth, "add", "--name", "x", "--scopes", "read:logs", *args)
    assert r.returncode == 1 and message in r.stderr, r.stderr


def test_a_public_client_gets_no_secret(oauth):
    r = clients(oauth, "add", "--name", "CLI app", "--public", "--redirect-uri", "http://127.0.0.1/callback",
                "--scopes", "read:databases", "--json")
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    assert created["public"] is True and "client_secret" not in created
    assert clients(oauth, "rotate-secret", created["client_id"]).returncode == 1


def test_a_client_without_the_refresh_grant_gets_no_refresh_token(oauth):
    r = clients(oauth, "add", "--name", "One-shot", "--public", "--redirect-uri", "http://127.0.0.1/cb",
                "--grant-types", "authorization_code", "--scopes", "read:logs", "--json")
    assert r.returncode == 0, r.stderr
    client_id = json.loads(r.stdout)["client_id"]
    verifier, challenge = pkce_pair()
    code = oauth.code(client_id, "http://127.0.0.1/cb", challenge, scopes=["read:logs"])
    answer = oauth.exchange(code, verifier, client=(client_id, None), redirect_uri="http://127.0.0.1/cb")
    assert answer.status_code == 200, answer.text
    assert "refresh_token" not in answer.json() and answer.json()["scope"] == "read:logs"


# --- check-config -----------------------------------------------------------------------------

BASE = """
[upstream]
url = "http://127.0.0.1:9000"
"""


def check(tmp_path, text):
    path = tmp_path / "oauth.conf"
    path.write_text(text)
    return subprocess.run([gateway_binary(), "check-config", "--config", str(path)], capture_output=True, text=True, timeout=30)


def test_check_config_requires_an_issuer_and_redis_for_oauth(tmp_path):
    r = check(tmp_path, BASE + "\n[oauth]\n")
    assert r.returncode == 1
    out = r.stdout + r.stderr
    assert "oauth.conf:5: oauth: the authorization server signs with the gateway's issuer" in out
    assert "oauth: clients, codes and consents are kept in Redis" in out


def test_check_config_reports_bad_clients_with_file_line_and_key(tmp_path):
    (tmp_path / "short.secret").write_text("tooshort\n")
    text = BASE + f"""
[oauth]
code_ttl = "5m"

[[oauth.clients]]
id = "bad id!"
redirect_uris = ["http://example.test/cb"]
scopes = ["read:logs"]
secret_file = "{tmp_path / 'short.secret'}"

[[oauth.clients]]
id = "spa"
public = true
grant_types = ["client_credentials", "implicit"]
scopes = []
secret_env = "NOPE"
"""
    r = check(tmp_path, text)
    assert r.returncode == 1
    out = r.stdout + r.stderr
    assert "oauth.conf:6: oauth.code_ttl: must be between 1s and 60s" in out
    assert "oauth.conf:9: oauth.clients[0].id: must be 1-64 characters" in out
    assert "oauth.conf:10: oauth.clients[0].redirect_uris:" in out and "loopback" in out
    assert "oauth.clients[0].secret_file: the secret must be 32-256 characters" in out
    assert "tooshort" not in out
    assert "oauth.conf:17: oauth.clients[1].grant_types: unknown grant type \"implicit\"" in out
    assert "oauth.clients[1].scopes: must list at least one scope" in out
    assert "oauth.clients[1].secret_file: a public client has no secret" in out


def test_check_config_wants_an_https_issuer_for_oauth(tmp_path, redis_server):
    (tmp_path / "pepper").write_text("p" * 40 + "\n")
    key = tmp_path / "k.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", str(key)], check=True, capture_output=True)
    text = BASE + f"""
[redis]
url = "redis://127.0.0.1:{redis_server.port}"

[auth.api_keys]
pepper_file = "{tmp_path / 'pepper'}"

[auth.jwt]
issuer = "http://gateway.example.test"

[[auth.jwt.signing_keys]]
kid = "k"
algorithm = "EdDSA"
private_key_file = "{key}"
active = true

[oauth]
"""
    r = check(tmp_path, text)
    assert r.returncode == 1 and "oauth: [auth.jwt] issuer must be an https:// URL" in r.stdout + r.stderr
    r = check(tmp_path, text.replace("http://gateway.example.test", "http://127.0.0.1:8080"))
    assert r.returncode == 0, r.stdout + r.stderr
