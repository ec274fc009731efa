"""Issue 12 acceptance 2: a real browser (Debian's chromium through chromium-driver and
selenium, headless, nothing downloaded) walks the authorization-code flow: the gateway's
login page, its consent page (screenshot saved), and the 303 to the client's loopback
callback with code, state and iss. Once with JavaScript on and once with it off (the pages
work without it). Real redis-server, gateway binary and a callback server on 127.0.0.1."""

import os
import secrets
import shutil
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from conftest import OAUTH_SCOPES, OWN_ISSUER, scaled

# The consent page shows each requested scope with this description (the design's table).
SCOPE_DESCRIPTIONS = {
    "read:databases": "View database connections and metadata",
    "read:logs": "Access audit logs and activity history",
}


def wait_for(driver, element_id: str):
    return WebDriverWait(driver, scaled(15)).until(expected_conditions.element_to_be_clickable((By.ID, element_id)))


def csp_violations(driver) -> list:
    return [entry["message"] for entry in driver.get_log("browser") if "Content Security Policy" in entry["message"]]


@pytest.mark.parametrize("chromium", [True, False], ids=["javascript", "no-javascript"], indirect=True)
def test_chromium_logs_in_consents_and_lands_on_the_callback(oauth_setup, chromium, callback_server, tmp_path, request):
    setup = oauth_setup
    setup.add_user("ada@example.test")
    verifier = secrets.token_urlsafe(48)
    state = secrets.token_urlsafe(16)
    query = {"response_type": "code", "client_id": setup.public_client, "redirect_uri": callback_server.url,
             "scope": " ".join(OAUTH_SCOPES), "state": state,
             "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"}
    driver = chromium
    driver.get(f"{setup.endpoint('authorize')}?{urlencode(query)}")

    wait_for(driver, "email").send_keys("ada@example.test")
    driver.find_element(By.ID, "password").send_keys("password-at-least-12")
    driver.find_element(By.ID, "login").click()

    allow = wait_for(driver, "allow")
    assert driver.find_element(By.ID, "deny").is_displayed()
    text = driver.find_element(By.TAG_NAME, "body").text
    assert "E2E native app" in text, text
    for scope, description in SCOPE_DESCRIPTIONS.items():
        assert scope in text and description in text, text
    screenshot = tmp_path / f"consent-{request.node.callspec.id}.png"
    assert driver.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 0
    artifacts = os.environ.get("GATEWAY_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(artifacts) / screenshot.name)
    print(f"consent page screenshot: {screenshot}")
    assert csp_violations(driver) == []

    allow.click()
    hit = callback_server.wait_for_hit(timeout=15)
    assert hit["path"] == "/callback"
    assert set(hit["query"]) == {"code", "state", "iss"}, hit
    assert hit["query"]["state"] == [state] and hit["query"]["iss"] == [OWN_ISSUER], hit
    WebDriverWait(driver, scaled(10)).until(lambda d: d.current_url.startswith(callback_server.url))
    assert driver.find_element(By.ID, "callback").text == "callback received"
    assert csp_violations(driver) == []

    # The code the browser carried is a real one: it redeems once with the verifier.
    r = requests.post(setup.endpoint("token"), data={
        "grant_type": "authorization_code", "code": hit["query"]["code"][0], "redirect_uri": callback_server.url,
        "client_id": setup.public_client, "code_verifier": verifier}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == " ".join(OAUTH_SCOPES)
