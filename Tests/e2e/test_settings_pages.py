"""Issue 13: Settings > API Keys in the browser. A real Chromium (Debian's chromium and
chromium-driver through selenium, headless) signs in, creates a key with two scopes, reads it
from the show-once page, the key works on its scopes and not on others, the browser revokes
it and it is refused (acceptance 1); screenshots of the list, the form and the show-once page
at desktop and 390 px width (2); the key is absent from the list, the browser history, the
access log and a second GET of the result page (3); CSRF, cross-user, scope and header checks
with crafted requests, an HTML key name shown inert (4); the demo's settings URL and
credentials work (5). Real redis-server, gateway binary and upstream on loopback."""

import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from conftest import (HTMLForms, USER_ROUTES, add_user, bearer, free_port, gateway_binary, jwt_session_tail, scaled,
                      set_user_disabled, wait_until, write_pepper)

PASSWORD = "password-at-least-12"
PREFIX = "/settings"
NOTES = Path("/work/notes")


class Settings:
    """A gateway that is an issuer (so the settings pages are on by default) on a real Redis,
    with USER_ROUTES and three users: ada (read:databases, read:logs, write:alerts), bob
    (read:databases) and root (admin)."""

    def __init__(self, tmp_path, make_gateway, upstream_url, redis_port, jwt_settings="login_attempts_per_address = 1000",
                 ui="", users=True):
        from jwks_server import SigningKey
        pepper = write_pepper(tmp_path / "settings-pepper")
        key_file = tmp_path / "settings-signing-key.pem"
        key_file.write_bytes(SigningKey("RS256", kid="gw-rs256").private_pem())
        self.tail = jwt_session_tail(redis_port, pepper, key_file, "RS256", jwt_settings) + ui
        self.gateway = make_gateway(upstream_url, routes=USER_ROUTES, tail=self.tail)
        self.url = self.gateway.url
        if not users:
            return
        self.ada = add_user(self.gateway, "ada@example.test", ["read:databases", "read:logs", "write:alerts"], PASSWORD)
        self.bob = add_user(self.gateway, "bob@example.test", ["read:databases"], PASSWORD)
        self.root = add_user(self.gateway, "root@example.test", ["admin"], PASSWORD)

    def page(self, path: str) -> str:
        return self.url + PREFIX + path


@pytest.fixture
def settings(tmp_path, make_gateway, upstream, redis_server) -> Settings:
    return Settings(tmp_path, make_gateway, upstream.url, redis_server.port)


class Visitor:
    """A browser without JavaScript, as requests: signs in through the settings login form
    and posts the pages' forms with their hidden fields. Never follows redirects by itself."""

    def __init__(self, settings: Settings, email: str | None = None):
        self.settings = settings
        self.http = requests.Session()
        if email:
            self.sign_in(email)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.settings.page(path), allow_redirects=False, timeout=10, **kwargs)

    def post(self, path: str, data: dict) -> requests.Response:
        return self.http.post(self.settings.page(path), data=data, allow_redirects=False, timeout=10)

    def sign_in(self, email: str, password: str = PASSWORD) -> requests.Response:
        page = self.get("/login")
        assert page.status_code == 200, page.text
        form = HTMLForms(page.text).with_field("password")
        r = self.http.post(urljoin(page.url, form["action"]), allow_redirects=False, timeout=10,
                           data=HTMLForms.hidden(form) | {"email": email, "password": password})
        assert r.status_code == 303, r.text
        return r

    def csrf(self) -> str:
        page = self.get("/api-keys/new")
        assert page.status_code == 200, page.text
        return HTMLForms.hidden(HTMLForms(page.text).with_field("name"))["csrf_token"]

    def create(self, name: str, scopes, environment="live", expires="90", csrf: str | None = None, extra=None) -> requests.Response:
        data = {"csrf_token": self.csrf() if csrf is None else csrf, "name": name, "environment": environment, "expires": expires}
        data |= {f"scope_{scope}": "on" for scope in scopes}
        data |= extra or {}
        if csrf == "":
            data.pop("csrf_token")
        return self.post("/api-keys", data)

    def create_key(self, name: str, scopes) -> str:
        """Creates a key through the form and returns it, read from the show-once page."""
        r = self.create(name, scopes)
        assert r.status_code == 303 and r.headers["Location"] == PREFIX + "/api-keys/created", (r.status_code, r.text)
        shown = self.get("/api-keys/created")
        assert shown.status_code == 200, shown.text
        # It tells how the key is sent, and only ways the gateway accepts.
        assert "Authorization: Bearer" in shown.text and "X-API-Key" not in shown.text
        import re
        return re.search(r'id="api-key" value="([A-Za-z0-9_]+)"', shown.text).group(1)

    def key_ids(self) -> list:
        page = self.get("/api-keys")
        assert page.status_code == 200, page.text
        import re
        return re.findall(r'<code class="key-id">(key_[0-9a-f]{16})</code>', page.text)


def wait_for(driver, element_id: str):
    return WebDriverWait(driver, scaled(15)).until(expected_conditions.element_to_be_clickable((By.ID, element_id)))


def csp_violations(driver) -> list:
    return [entry["message"] for entry in driver.get_log("browser") if "Content Security Policy" in entry["message"]]


def api(settings: Settings, method: str, path: str, key: str) -> int:
    return requests.request(method, settings.url + path, headers=bearer(key), timeout=10).status_code


def screenshots(driver, tmp_path: Path, name: str) -> None:
    """The page at desktop width and at 390 px (a phone), saved under the test's directory
    and copied to /work/notes/settings-*.png for the closing note. At 390 px the page must
    not scroll sideways."""
    for label, width in (("desktop", 1280), ("phone", 390)):
        driver.set_window_size(width, 900)
        WebDriverWait(driver, scaled(5)).until(lambda d: d.execute_script("return window.innerWidth") <= width)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(max(height + 120, 600), 2400))
        path = tmp_path / f"settings-{name}-{label}.png"
        assert driver.save_screenshot(str(path)) and path.stat().st_size > 0
        if width == 390:
            overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} scrolls sideways at 390 px by {overflow}px"
        if NOTES.is_dir():
            shutil.copy(path, NOTES / path.name)
        artifacts = os.environ.get("GATEWAY_TEST_ARTIFACTS")
        if artifacts:
            Path(artifacts).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(artifacts) / path.name)
    driver.set_window_size(1280, 900)


def history_urls(profile: Path) -> list:
    """Every URL in the Chromium profile's history database (read from a copy: the browser
    holds the file open)."""
    source = profile / "Default" / "History"
    if not source.exists():
        return []
    copy = profile.parent / "History-copy"
    shutil.copy(source, copy)
    for suffix in ("-wal", "-journal"):
        if Path(str(source) + suffix).exists():
            shutil.copy(Path(str(source) + suffix), Path(str(copy) + suffix))
    try:
        with sqlite3.connect(copy) as db:
            return [row[0] for row in db.execute("SELECT url FROM urls")]
    except sqlite3.DatabaseError:
        return []


# --- acceptance 1, 2, 3: the browser ----------------------------------------------------------

@pytest.mark.parametrize("chromium", [True, False], ids=["javascript", "no-javascript"], indirect=True)
def test_browser_signs_in_creates_uses_and_revokes_a_key(settings, chromium, tmp_path, request):
    javascript = request.node.callspec.id == "javascript"
    driver = chromium
    driver.get(settings.page("/api-keys"))
    # Not signed in: the sign-in page, which returns to the list.
    wait_for(driver, "email").send_keys("ada@example.test")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login").click()
    wait_for(driver, "create-key")
    assert driver.current_url == settings.page("/api-keys")
    assert driver.find_element(By.ID, "empty-state").is_displayed()
    assert "ada@example.test" in driver.find_element(By.ID, "signed-in-as").text
    if javascript:
        screenshots(driver, tmp_path, "empty-list")

    driver.find_element(By.ID, "create-key").click()
    name = wait_for(driver, "name")
    # Only the scopes ada holds are offered, each with its description.
    offered = sorted(e.get_attribute("name") for e in driver.find_elements(By.CSS_SELECTOR, "#scopes input[type=checkbox]"))
    assert offered == ["scope_read:databases", "scope_read:logs", "scope_write:alerts"], offered
    assert "Access audit logs and activity history" in driver.find_element(By.ID, "scopes").text
    name.send_keys("CI export")
    # Keyboard only: space ticks a focused checkbox.
    driver.find_element(By.ID, "scope_read:databases").send_keys(" ")
    driver.find_element(By.ID, "scope_read:logs").send_keys(" ")
    driver.find_element(By.ID, "environment-test").click()
    driver.find_element(By.CSS_SELECTOR, "#expires option[value='30']").click()
    if javascript:
        screenshots(driver, tmp_path, "create-form")
    driver.find_element(By.ID, "create").click()

    field = wait_for(driver, "api-key")
    key = field.get_attribute("value")
    assert key.startswith("dbaudit_test_") and len(key) == 51, key
    assert "will not be shown again" in driver.find_element(By.ID, "once-warning").text
    copy = driver.find_element(By.ID, "copy-key")
    if javascript:
        # The external script (allowed by this page's CSP) shows the button and copies.
        assert copy.is_displayed()
        copy.click()
        WebDriverWait(driver, scaled(5)).until(lambda d: d.find_element(By.ID, "copy-key").text == "Copied")
        screenshots(driver, tmp_path, "show-once")
    else:
        assert not copy.is_displayed()  # no script: the key is in a selectable field instead
    assert csp_violations(driver) == []
    created_url = driver.current_url
    assert created_url == settings.page("/api-keys/created")

    # The key works on its scopes and nowhere else.
    assert api(settings, "GET", "/v1/databases", key) == 200
    assert api(settings, "GET", "/v1/logs", key) == 200
    assert api(settings, "POST", "/v1/policies", key) == 403

    # Acceptance 3: a second GET (reload) and Back never show it again.
    driver.refresh()
    WebDriverWait(driver, scaled(10)).until(lambda d: "Key no longer shown" in d.title)
    assert key not in driver.page_source and not driver.find_elements(By.ID, "api-key")
    driver.get(settings.page("/api-keys"))
    wait_for(driver, "create-key")
    assert key not in driver.page_source
    assert "CI export" in driver.page_source and key[-4:] in driver.page_source
    if javascript:
        screenshots(driver, tmp_path, "list")
    driver.back()
    WebDriverWait(driver, scaled(10)).until(lambda d: d.current_url == created_url)
    assert key not in driver.page_source
    # No URL the browser visited holds it; the history database records the visits.
    profile = tmp_path / "chromium-profile"
    urls = wait_until(lambda: (u := history_urls(profile)) and any(x.endswith("/api-keys/created") for x in u) and u, 30)
    assert urls, "the browser history never recorded the visits"
    assert not [u for u in urls if key in u], urls
    assert key not in settings.gateway.log_path.read_text()

    # The browser revokes it, with a confirmation step.
    driver.get(settings.page("/api-keys"))
    key_id = driver.find_element(By.CSS_SELECTOR, ".key-id").text
    driver.find_element(By.ID, f"revoke-{key_id}").click()
    wait_for(driver, "confirm-revoke")
    assert "CI export" in driver.find_element(By.ID, "revoke-name").text
    driver.find_element(By.ID, "confirm-revoke").click()
    wait_for(driver, "notice")
    assert driver.find_elements(By.ID, "empty-state")
    assert wait_until(lambda: api(settings, "GET", "/v1/databases", key) == 401, 2), "the revoked key still works"
    assert csp_violations(driver) == []
    assert key not in settings.gateway.log_path.read_text()

    # Sign out: the session is over.
    driver.find_element(By.ID, "logout").click()
    wait_for(driver, "login-notice")
    driver.get(settings.page("/api-keys"))
    wait_for(driver, "email")


# --- acceptance 4: security with crafted requests -----------------------------------------------

def test_form_posts_without_or_with_another_sessions_csrf_token_are_refused(settings):
    ada, other = Visitor(settings, "ada@example.test"), Visitor(settings, "ada@example.test")
    for csrf in ("", "x" * 43, other.csrf()):
        r = ada.create("should not exist", ["read:logs"], csrf=csrf)
        assert r.status_code == 403 and "csrf_failed" in r.text and "text/html" in r.headers["Content-Type"], r.text
    assert ada.key_ids() == [] and other.key_ids() == []
    key = ada.create_key("real", ["read:logs"])
    key_id = ada.key_ids()[0]
    for csrf in ("", other.csrf() + "x", "A" * 43):
        r = ada.post("/api-keys/revoke", {"csrf_token": csrf, "id": key_id} if csrf else {"id": key_id})
        assert r.status_code == 403, r.text
    assert api(settings, "GET", "/v1/logs", key) == 200
    # Sign-out is CSRF-checked too.
    assert ada.post("/logout", {"csrf_token": "nope"}).status_code == 403
    assert ada.get("/api-keys").status_code == 200


def test_a_user_cannot_see_create_for_or_revoke_another_users_keys(settings):
    ada, bob, root = (Visitor(settings, f"{n}@example.test") for n in ("ada", "bob", "root"))
    key = ada.create_key("ada's key", ["read:logs"])
    ada_id = ada.key_ids()[0]
    # See: not in bob's list, and the confirmation page of ada's key is "no such key".
    assert ada_id not in bob.get("/api-keys").text and bob.key_ids() == []
    r = bob.get(f"/api-keys/revoke?id={ada_id}")
    assert r.status_code == 404 and "ada&#39;s key" not in r.text and "ada's key" not in r.text
    # Revoke: a crafted POST with bob's own valid CSRF token.
    r = bob.post("/api-keys/revoke", {"csrf_token": bob.csrf(), "id": ada_id})
    assert r.status_code == 404, r.text
    assert api(settings, "GET", "/v1/logs", key) == 200
    # Create for ada: an owner field is refused whole, nothing created for anyone.
    r = bob.create("for ada", ["read:databases"], extra={"owner": settings.ada["id"]})
    assert r.status_code == 400, r.text
    assert bob.key_ids() == [] and ada.key_ids() == [ada_id]
    # The show-once page of ada's key is not bob's to see, even with her reveal cookie gone.
    assert bob.get("/api-keys/created").status_code == 404
    # An admin sees every user's keys and revokes them.
    listing = root.get("/api-keys").text
    assert ada_id in listing and settings.ada["id"] in listing
    r = root.get(f"/api-keys/revoke?id={ada_id}")
    assert r.status_code == 200
    r = root.post("/api-keys/revoke", {"csrf_token": HTMLForms.hidden(HTMLForms(r.text).with_field("id"))["csrf_token"], "id": ada_id})
    assert r.status_code == 303 and r.headers["Location"] == PREFIX + "/api-keys?notice=revoked"
    assert wait_until(lambda: api(settings, "GET", "/v1/logs", key) == 401, 2)
    assert ada.key_ids() == []


def test_a_key_revoked_in_the_browser_is_refused_by_every_instance(settings, make_gateway, upstream):
    """Revocation goes through the key service: a second gateway on the same Redis, which has
    the key in its cache, refuses it within the revocation bound (one second here)."""
    other = make_gateway(upstream.url, routes=USER_ROUTES, tail=settings.tail)
    ada = Visitor(settings, "ada@example.test")
    key = ada.create_key("two instances", ["read:logs"])
    for url in (settings.url, other.url):
        assert requests.get(url + "/v1/logs", headers=bearer(key), timeout=10).status_code == 200
    r = ada.post("/api-keys/revoke", {"csrf_token": ada.csrf(), "id": ada.key_ids()[0]})
    assert r.status_code == 303
    refused = wait_until(lambda: requests.get(other.url + "/v1/logs", headers=bearer(key), timeout=10).status_code == 401, 1.0)
    assert refused, "the second instance still accepts the revoked key after 1 s"


def test_scopes_the_user_lacks_are_refused_server_side(settings):
    bob = Visitor(settings, "bob@example.test")
    form = bob.get("/api-keys/new").text
    assert 'name="scope_read:databases"' in form and "scope_admin" not in form and "scope_read:logs" not in form
    for scopes in (["read:logs"], ["admin"], ["read:databases", "write:policies"], ["no:such"]):
        r = bob.create("sneaky", scopes)
        assert r.status_code == 303 and r.headers["Location"].startswith(PREFIX + "/api-keys/new?retry=1"), r.text
        again = bob.get(r.headers["Location"][len(PREFIX):])
        assert 'id="scopes-error"' in again.text and 'id="form-error"' in again.text, again.text
    assert bob.key_ids() == []
    # The other fields' errors sit next to them too, and the form keeps what was typed.
    r = bob.create("", ["read:databases"], environment="prod", expires="7")
    page = bob.get(r.headers["Location"][len(PREFIX):]).text
    for field in ("name", "environment", "expires"):
        assert f'id="{field}-error"' in page, page
    r = bob.create("x" * 101, ["read:databases"])
    assert 'id="name-error"' in bob.get(r.headers["Location"][len(PREFIX):]).text
    assert bob.key_ids() == []


def test_pages_carry_the_security_headers_and_cookies(settings):
    visitor = Visitor(settings)
    login = visitor.get("/login")
    cookie = login.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    signed_in = visitor.sign_in("ada@example.test")
    session_cookie = [c for c in signed_in.raw.headers.getlist("Set-Cookie") if c.startswith("dbgw_session=")][0]
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie and "Max-Age=43200" in session_cookie
    pages = [login, visitor.get("/api-keys"), visitor.get("/api-keys/new"), visitor.get("/nowhere")]
    created = visitor.create("headers", ["read:logs"])
    reveal_cookie = created.headers["Set-Cookie"]
    assert reveal_cookie.startswith("dbgw_reveal=") and "HttpOnly" in reveal_cookie and "Max-Age=60" in reveal_cookie
    shown = visitor.get("/api-keys/created")
    for r in pages + [created, shown]:
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "form-action 'self'" in csp, csp
        assert r.headers["Cache-Control"] == "no-store" and r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Referrer-Policy"] == "no-referrer"
        assert "text/html" in r.headers["Content-Type"]
    # Script only on the show-once page, and only our own file.
    assert "script-src 'self'" in shown.headers["Content-Security-Policy"]
    assert all("script-src" not in r.headers["Content-Security-Policy"] for r in pages + [created])
    assert '<script src="/settings/static/copy.js" defer></script>' in shown.text
    assert all("<script" not in r.text for r in pages)
    script = visitor.get("/static/copy.js")
    assert script.status_code == 200 and "text/javascript" in script.headers["Content-Type"]
    css = visitor.get("/static/settings.css")
    assert css.status_code == 200 and "text/css" in css.headers["Content-Type"] and "@import" not in css.text
    # Nothing external: no font, CDN or other origin referenced by any page.
    for r in pages + [shown]:
        assert "http://" not in r.text and "https://" not in r.text and "//" not in r.text.replace("://", ""), r.url
    # Every form POST answers 303; the errors are pages.
    assert created.status_code == 303
    assert pages[-1].status_code == 404 and "<!doctype html>" in pages[-1].text


def test_an_html_key_name_is_shown_inert(settings):
    ada = Visitor(settings, "ada@example.test")
    ada.create_key("<script>alert(1)</script>", ["read:logs"])
    listing = ada.get("/api-keys").text
    assert "<script>alert(1)</script>" not in listing
    assert "&lt;script&gt;alert(1)&lt;&#x2F;script&gt;" in listing or "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
    key_id = ada.key_ids()[0]
    confirm = ada.get(f"/api-keys/revoke?id={key_id}").text
    assert "<script>alert(1)</script>" not in confirm


@pytest.mark.parametrize("chromium", [True], ids=["javascript"], indirect=True)
def test_an_html_key_name_runs_no_script_in_the_browser(settings, chromium):
    Visitor(settings, "ada@example.test").create_key("<img src=x onerror=alert(1)><script>alert(2)</script>", ["read:logs"])
    driver = chromium
    driver.get(settings.page("/login"))
    wait_for(driver, "email").send_keys("ada@example.test")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login").click()
    name = WebDriverWait(driver, scaled(15)).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".key-name")))
    assert name.text == "<img src=x onerror=alert(1)><script>alert(2)</script>"
    assert not driver.find_elements(By.CSS_SELECTOR, "main img, main script")
    assert expected_conditions.alert_is_present()(driver) is False


# --- sessions: sign-in, expiry, revocation by `users disable`, the redirect after sign-in -------

def test_sign_in_refusals_redirect_rule_and_session_revocation(settings):
    visitor = Visitor(settings)
    # Not signed in: every page goes to the sign-in page, which comes back to it.
    r = visitor.get("/api-keys/new")
    assert r.status_code == 303 and r.headers["Location"] == PREFIX + "/login?next=%2Fsettings%2Fapi-keys%2Fnew"
    assert visitor.get("").headers["Location"] == PREFIX + "/api-keys"
    # A wrong password: back to the form with the error; a forged login form: 403.
    page = visitor.get("/login?next=/settings/api-keys/new")
    form = HTMLForms(page.text).with_field("password")
    hidden = HTMLForms.hidden(form)
    assert hidden["next"] == "/settings/api-keys/new"
    r = visitor.post("/login", hidden | {"email": "ada@example.test", "password": "wrong-password-123"})
    assert r.status_code == 303 and "error=credentials" in r.headers["Location"]
    assert 'id="login-error"' in visitor.http.get(urljoin(settings.url, r.headers["Location"]), timeout=10).text
    r = requests.post(settings.page("/login"), data=hidden | {"email": "ada@example.test", "password": PASSWORD},
                      allow_redirects=False, timeout=10)
    assert r.status_code == 403  # no browser cookie: the token is not this browser's
    r = visitor.post("/login", hidden | {"email": "ada@example.test", "password": PASSWORD})
    assert r.status_code == 303 and r.headers["Location"] == "/settings/api-keys/new"
    # `next` never leaves the settings pages.
    for next_url in ("https://evil.test/", "//evil.test/x", "/settings/../oauth/authorize", "/v1/databases", "/settings/a?x=1"):
        other = Visitor(settings)
        page = other.get("/login", params={"next": next_url})
        form_fields = HTMLForms.hidden(HTMLForms(page.text).with_field("password"))
        assert form_fields["next"] == "/settings/api-keys", next_url
        r = other.post("/login", form_fields | {"next": next_url, "email": "bob@example.test", "password": PASSWORD})
        assert r.headers["Location"] == "/settings/api-keys", (next_url, r.headers["Location"])
    # `users disable` ends the browser session at once.
    assert visitor.get("/api-keys").status_code == 200
    set_user_disabled(settings.gateway, "ada@example.test", True)
    r = visitor.get("/api-keys")
    assert r.status_code == 303 and r.headers["Location"].startswith(PREFIX + "/login")


def test_idle_and_absolute_session_limits(settings, redis_server):
    """The session record's lastSeen / createdAt are moved back in Redis (what time would do):
    past the idle limit, or past the lifetime however recently used, the session is over."""
    import json
    for field, seconds in (("last_seen", 31 * 60), ("created_at", 12 * 3600 + 1)):
        visitor = Visitor(settings, "ada@example.test")
        assert visitor.get("/api-keys").status_code == 200
        keys = [k for k in redis_server.command("KEYS", "*browser-session:*").decode(errors="replace").split("\r\n")
                if "browser-session:" in k]
        assert keys, "no browser session in Redis"
        for key in keys:
            record = json.loads(redis_server.command("GET", key).split(b"\r\n")[1])
            record[field] -= seconds
            redis_server.command("SET", key, json.dumps(record), "KEEPTTL")
        r = visitor.get("/api-keys")
        assert r.status_code == 303 and r.headers["Location"].startswith(PREFIX + "/login"), field


def test_settings_posts_are_rate_limited_like_login(tmp_path, make_gateway, upstream, redis_server):
    settings = Settings(tmp_path, make_gateway, upstream.url, redis_server.port,
                        jwt_settings="login_attempts_per_address = 4\nlogin_window = \"1h\"")
    ada = Visitor(settings, "ada@example.test")
    statuses = [ada.create("k", ["read:logs"], csrf="wrong").status_code for _ in range(6)]
    assert 429 in statuses, statuses
    r = ada.create("k", ["read:logs"], csrf="wrong")
    assert r.status_code == 429 and "Retry-After" in r.headers and "text/html" in r.headers["Content-Type"]


# --- configuration -------------------------------------------------------------------------------

def test_path_prefix_and_enabled(tmp_path, make_gateway, upstream, redis_server):
    moved = Settings(tmp_path, make_gateway, upstream.url, redis_server.port,
                     ui='\n[ui]\npath_prefix = "/account/settings"\n')
    r = requests.get(moved.url + "/account/settings/api-keys", allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"].startswith("/account/settings/login")
    assert requests.get(moved.url + "/settings/api-keys", allow_redirects=False, timeout=10).status_code != 303
    off_dir = tmp_path / "off"
    off_dir.mkdir()
    off = Settings(off_dir, make_gateway, upstream.url, redis_server.port, ui="\n[ui]\nenabled = false\n", users=False)
    assert requests.get(off.url + "/settings/login", allow_redirects=False, timeout=10).status_code == 404


@pytest.mark.parametrize("ui,message", [
    ('path_prefix = "/oauth/x"', "ui.path_prefix: /oauth is answered by the gateway itself"),
    ('path_prefix = "settings"', "ui.path_prefix: must be a path"),
    ('path_prefix = "/Settings/"', "ui.path_prefix: must be a path"),
    ('path_prefix = "/a//b"', "ui.path_prefix: segments may hold only"),
    ("enabled = true", "ui.enabled: the settings pages sign users in as the gateway's issuer"),
])
def test_check_config_reports_bad_ui_settings(tmp_path, ui, message):
    path = tmp_path / "ui.conf"
    path.write_text(f'[upstream]\nurl = "http://127.0.0.1:9000"\n\n[ui]\n{ui}\n')
    r = subprocess.run([gateway_binary(), "check-config", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "ui.conf:" in r.stdout + r.stderr and message in r.stdout + r.stderr, r.stdout + r.stderr


# --- acceptance 5: the demo ---------------------------------------------------------------------

def test_demo_prints_the_settings_url_and_credentials_that_work():
    import re
    port = free_port()
    proc = subprocess.Popen([gateway_binary(), "demo", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        deadline = time.monotonic() + scaled(20)
        while time.monotonic() < deadline and not any("password:" in line for line in seen):
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
        text = "".join(seen)
        url = re.search(r"open (http://127\.0\.0\.1:\d+/settings/api-keys)", text)
        credentials = re.search(r"e-mail: (\S+)\s+password: (\S+)", text)
        assert url and credentials, text
        http = requests.Session()
        r = http.get(url.group(1), timeout=10)  # follows to the sign-in page
        assert r.status_code == 200 and "/settings/login" in r.url
        form = HTMLForms(r.text).with_field("password")
        r = http.post(urljoin(r.url, form["action"]), timeout=10,
                      data=HTMLForms.hidden(form) | {"email": credentials.group(1), "password": credentials.group(2)})
        assert r.status_code == 200 and r.url == url.group(1) and 'id="create-key"' in r.text, r.text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
