"""Adversarial review of the Settings > API Keys pages (issue 13) and of the OAuth fixes
(issue 12): one test per defect found, each asserting the behaviour the gateway should have
(so each fails against the binary it was written against). Helpers come from
test_settings_pages.py, test_oauth_pages.py and conftest.py."""

import subprocess
import time

import requests

from conftest import USER_ROUTES, bearer, gateway_binary, set_user_disabled
from test_oauth_pages import WEB_REDIRECT, authorize, decide, hidden, post_login, redirect_query
from test_oauth_pages import pages_gateway, pages_tail, secrets  # noqa: F401  (fixtures)
from test_settings_pages import PREFIX, Settings, Visitor
from test_settings_pages import settings  # noqa: F401  (fixture)


def test_gateway_browser_cookies_are_not_forwarded_to_the_upstream(settings, upstream):
    # The browser session cookie is a gateway credential (it creates API keys); the proxy
    # strips the other gateway credential (Authorization) yet forwards `Cookie` verbatim, so
    # every upstream request of a signed-in browser hands dbgw_session (and dbgw_browser,
    # dbgw_reveal) to the upstream, its logs and anything on it.
    ada = Visitor(settings, "ada@example.test")
    key = ada.create_key("cookie leak", ["read:logs"])
    ada.create("second", ["read:logs"])  # leaves a live reveal cookie in the jar
    gateway_cookies = {name: value for name, value in ada.http.cookies.items() if name.startswith("dbgw_")}
    assert {"dbgw_session", "dbgw_browser", "dbgw_reveal"} <= set(gateway_cookies), gateway_cookies
    upstream.reset()
    r = ada.http.get(settings.url + "/v1/logs", headers=bearer(key), timeout=10)
    assert r.status_code == 200, r.text
    seen = " ".join(value for k, value in upstream.wait_for_path("/v1/logs")["headers"] if k.lower() == "cookie")
    for name, value in gateway_cookies.items():
        assert value not in seen, f"the upstream received the gateway's {name} cookie: {seen}"


def test_check_config_refuses_a_route_the_settings_pages_would_shadow(settings, tmp_path):
    # The pages are on by default for every issuer and are matched before [[routes]]: an
    # existing upstream route under /settings silently stops reaching the upstream (answered
    # by the gateway's 404 page) and check-config says nothing.
    gateway = settings.gateway
    shadowed = USER_ROUTES + '\n[[routes]]\nmethod = "GET"\npath = "/settings/profile"\npublic = true\n'
    path = tmp_path / "shadowed.conf"
    gateway.routes = shadowed
    path.write_text(gateway.config_text(f"http://127.0.0.1:{gateway.port + 1}"))
    r = subprocess.run([gateway_binary(), "check-config", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "path_prefix" in r.stdout + r.stderr, (r.returncode, r.stdout + r.stderr)


def test_a_pending_refusal_flow_never_yields_a_code(pages_gateway):
    # A request that must end in an error redirect (here invalid_scope: web-app is not
    # registered for read:databases) from a signed-out browser is kept as a flow until the
    # user signs in (RFC 9700 4.11.2). The consent POST does not look at the flow's refusal:
    # posting decision=allow on that flow issues a code for the client's scopes instead.
    session = requests.Session()
    r = authorize(pages_gateway, session, {"response_type": "code", "client_id": "web-app", "redirect_uri": WEB_REDIRECT,
                                          "state": "st-pending", "scope": "read:databases"})
    assert r.status_code == 200 and 'id="login"' in r.text, r.text
    flow, csrf = hidden(r.text, "flow"), hidden(r.text, "csrf_token")
    assert post_login(pages_gateway, session, flow, csrf).status_code == 303
    query = redirect_query(decide(pages_gateway, session, flow, csrf, "allow"))
    assert "code" not in query and query.get("error") == "invalid_scope", query


def test_users_disable_ends_a_session_older_than_its_index(tmp_path, make_gateway, upstream, redis_server):
    # `users disable` finds a user's browser sessions through the index set
    # browser-sessions:<user>. Its TTL was the idle limit, set once at sign-in: a session
    # kept alive by use outlived its index, `users disable` deleted nothing, and `users
    # enable` brought the old browser session back. The index must outlive any session.
    slow = Settings(tmp_path, make_gateway, upstream.url, redis_server.port, ui='\n[ui]\nsession_idle_timeout = "60s"\n')
    ada = Visitor(slow, "ada@example.test")
    listed = redis_server.command("KEYS", "*browser-sessions:*").split(b"\r\n")
    index = next(line for line in listed if b"browser-sessions:" in line and not line.startswith(b"*"))
    ttl = int(redis_server.command("TTL", index).strip()[1:])
    assert ttl >= 12 * 3600, ttl  # at least the session lifetime (12 h by default), never the idle limit
    assert ada.get("/api-keys").status_code == 200
    set_user_disabled(slow.gateway, "ada@example.test", True)
    set_user_disabled(slow.gateway, "ada@example.test", False)
    r = ada.get("/api-keys")
    assert r.status_code == 303 and r.headers["Location"].startswith(PREFIX + "/login"), (r.status_code, r.headers)


def test_a_head_request_does_not_use_up_the_show_once_page(settings):
    # HEAD is answered as GET, so a HEAD of the show-once page (a link checker, `curl -I`, a
    # prefetching extension) deletes the sealed key and clears the cookie with no body: the
    # user never sees the key. HEAD must not consume it.
    ada = Visitor(settings, "ada@example.test")
    assert ada.create("head", ["read:logs"]).status_code == 303
    ada.http.head(settings.page("/api-keys/created"), allow_redirects=False, timeout=10)
    shown = ada.get("/api-keys/created")
    assert shown.status_code == 200 and 'id="api-key"' in shown.text, shown.status_code
