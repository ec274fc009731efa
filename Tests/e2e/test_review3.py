"""Review 3 of issue 22 (SSO relying party): each test shows one finding and asserts the
behaviour the gateway should have; they fail against the reviewed binary."""

import signal

import requests

from conftest import wait_until
from test_sso import SSOSetup, provider, refused, sso, start_sso  # noqa: F401 (fixtures)


def test_kelvin_sign_domain_does_not_pass_the_allowed_domains_check(sso, provider):
    # allowed_domains = ["bank.com"]; the provider asserts a verified address whose domain
    # is "ban\u212a.com" (KELVIN SIGN, an IDN domain the organisation does not own).
    # Unicode lower-casing turns it into "bank.com" before the domain check.
    sso.gateway.tail = sso.gateway.tail.replace('allowed_domains = ["example.com"]', 'allowed_domains = ["bank.com"]')
    sso.gateway.write_config(sso.upstream_url)
    before = sso.reloads()
    sso.gateway.signal(signal.SIGHUP)
    assert wait_until(lambda: sso.reloads() > before, 10), "the reload was not applied"
    provider.users["alice"]["email"] = "alice@ban\u212a.com"
    session = requests.Session()
    r = session.get(start_sso(sso, session), allow_redirects=False, timeout=10)
    assert r.status_code == 403, (r.status_code, r.headers.get("Location"), r.text[:300])
    assert sso.users() == []


def test_missing_iss_is_refused_when_the_provider_advertises_it(sso, provider):
    # RFC 9207 §2.4: a client MUST reject an authorization response without `iss` from a
    # server whose metadata says authorization_response_iss_parameter_supported. With one
    # shared /sso/callback, `iss` is the only mix-up defence between providers.
    plain = provider.discovery
    provider.discovery = lambda: plain() | {"authorization_response_iss_parameter_supported": True}
    session = requests.Session()
    callback = start_sso(sso, session)
    head, query = callback.split("?", 1)
    stripped = head + "?" + "&".join(p for p in query.split("&") if not p.startswith("iss="))
    assert "iss=" not in stripped
    refused(sso, session, stripped, 502, "sso_token_invalid")
    assert sso.users() == []


def test_a_state_presented_from_another_browser_is_not_spent(sso):
    # The callback deletes the state before checking the browser binding, so anyone who
    # sees a state (provider URL, Referer, proxy log) can cancel the owner's sign-in.
    owner = requests.Session()
    callback = start_sso(sso, owner)
    refused(sso, requests.Session(), callback, 400, "sso_state_invalid")
    r = owner.get(callback, allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.text[:300]


def test_sso_sign_in_does_not_adopt_a_password_user_holding_its_login_name(sso, provider, redis_server):
    # The just-in-time upsert turned a password user holding the login name of a provider's
    # user (its id, keys, consents) into that provider's user. `users add` now refuses the
    # reserved domain, so the record is written as an older gateway could have written it.
    import hashlib
    import json as jsonlib
    import subprocess

    from conftest import gateway_binary
    key = hashlib.sha256(b"alice").hexdigest()[:32] + "@corp.sso.invalid"
    refused = subprocess.run(
        [gateway_binary(), "users", "add", "--config", str(sso.gateway.config_path), "--email", key, "--scopes", "read:databases"],
        input="password-at-least-12\n", capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "sso.invalid" in refused.stderr
    record = {"id": "usr_planted", "email": key, "scopes": ["read:databases"],
              "password_hash": "scrypt$ln=12,r=8,p=1$c2FsdA$aGFzaA", "disabled": False, "created_at": 1}
    redis_server.command("SET", f"dbgw:user:{key}", jsonlib.dumps(record))
    redis_server.command("SET", "dbgw:user-id:usr_planted", key)
    session = requests.Session()
    r = session.get(start_sso(sso, session), allow_redirects=False, timeout=10)
    users = {u["email"]: u for u in sso.users()}
    assert users[key]["id"] == "usr_planted", users  # the planted record is the one read
    adopted = r.status_code == 303 and users[key].get("provider") == "corp"
    assert not adopted, (r.status_code, users)
    assert r.status_code == 403 and "account_conflict" in r.text, (r.status_code, r.text[:300])
