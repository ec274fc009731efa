"""Adversarial review of the OAuth 2.0 authorization server (issue 12): one test per defect
found, each asserting the behaviour the RFCs (or the design) require. Helpers come from
test_oauth_bcp.py and conftest.py."""

import base64
import http.client
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from conftest import OAUTH_PASSWORD, OWN_ISSUER, HTMLForms, OAuthSetup, bearer, gateway_binary
from test_oauth_bcp import (EMAIL, authorize_url, code_for, confidential_auth, introspect, loopback, pkce,
                            public_tokens, query_of, redeem, refresh, token)
from test_oauth_bcp import setup  # noqa: F401  (fixture)


def test_revoking_a_refresh_token_also_kills_the_access_tokens_of_its_grant(setup):
    # RFC 7009 §2.1 / RFC 9700 §4.14.2: revoking the grant (its refresh family) must not
    # leave the access tokens minted from it usable at the proxy and active at introspection.
    issued = public_tokens(setup)
    r = requests.post(setup.endpoint("revoke"), data={"token": issued["refresh_token"], "client_id": setup.public_client},
                      timeout=10)
    assert r.status_code == 200, r.text
    assert refresh(setup, setup.public_client, issued["refresh_token"]).status_code == 400
    body = introspect(setup, issued["access_token"]).json()
    assert body == {"active": False}, body
    r = requests.get(setup.url + "/v1/databases", headers=bearer(issued["access_token"]), timeout=10)
    assert r.status_code == 401, r.status_code


def test_authorize_never_redirects_an_error_before_the_user_is_authenticated(setup):
    # RFC 9700 §4.11.2: the AS is not an open redirector; with no session a request with a bad
    # scope or response_type shows the sign-in page, and only after sign-in goes back to the client.
    _, challenge = pkce()
    for extra in ({"scope": "admin"}, {"response_type": "token"}):
        url = authorize_url(setup, setup.public_client, loopback(), challenge, extra=extra)
        r = requests.get(url, allow_redirects=False, timeout=10)
        assert "Location" not in r.headers, (extra, r.status_code, r.headers.get("Location"))
        assert r.status_code == 200, (extra, r.status_code)


def test_introspection_and_revocation_secret_checks_are_rate_limited(tmp_path, make_gateway, upstream, redis_server):
    # RFC 6749 §10.10 / RFC 7662 §4: the client-secret check is throttled on every endpoint
    # that performs it, not only on /oauth/token (else /oauth/introspect is the oracle).
    limited = OAuthSetup(tmp_path, make_gateway, upstream.url, redis_server.port,
                         oauth_settings="token_requests_per_client = 5\ntoken_requests_per_address = 5")
    wrong = (limited.confidential_client, "wrong-secret-" + "x" * 30)
    statuses = [requests.post(limited.endpoint("token"), data={"grant_type": "client_credentials"}, auth=wrong,
                              timeout=10).status_code for _ in range(8)]
    assert 429 in statuses, statuses  # the token endpoint is throttled with these settings
    for endpoint in ("introspect", "revoke"):
        statuses = [requests.post(limited.endpoint(endpoint), data={"token": "x"}, auth=wrong, timeout=10).status_code
                    for _ in range(20)]
        assert 429 in statuses, (endpoint, statuses)


def test_a_client_cannot_introspect_access_tokens_issued_to_another_client(setup):
    # RFC 7662 §4 (token scanning / information leak): the confidential client learns nothing
    # (sub, scope) about a user's token issued to the public client; refresh tokens already
    # follow this rule, access tokens do not.
    issued = public_tokens(setup)
    body = introspect(setup, issued["access_token"]).json()
    assert body == {"active": False}, body


def test_authorize_refuses_a_code_challenge_that_cannot_be_an_s256_value(setup):
    # RFC 7636 §4.2: an S256 challenge is exactly 43 base64url characters; a 44..128-char one
    # makes an unredeemable code, so it is refused up front with invalid_request.
    session = requests.Session()
    code_for(setup, setup.public_client, session=session)  # signed in, consent remembered
    for challenge in ("A" * 44, "A" * 128):
        r = session.get(authorize_url(setup, setup.public_client, loopback(), challenge), allow_redirects=False,
                        timeout=10)
        assert r.status_code in (302, 303), (len(challenge), r.status_code)
        assert query_of(r.headers["Location"]).get("error") == "invalid_request", r.headers["Location"]


def test_one_consent_form_yields_at_most_one_authorization_code(setup):
    # The flow record is read, a code issued, and only then deleted: concurrent submissions of
    # the same consent form (a double click, a replayed POST) each mint a code for one approval.
    # The flow must be taken atomically, so at most one submission gets a code.


    session = requests.Session()
    _, challenge = pkce()
    r = session.get(authorize_url(setup, setup.public_client, loopback(), challenge), allow_redirects=False, timeout=10)
    form = HTMLForms(r.text).with_field("password")
    r = session.post(urljoin(r.url, form["action"]), data=HTMLForms.hidden(form) | {"email": EMAIL, "password": OAUTH_PASSWORD},
                     allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.text
    r = session.get(urljoin(setup.url, r.headers["Location"]), allow_redirects=False, timeout=10)
    form = HTMLForms(r.text).with_field("decision")
    assert form is not None, r.text[:500]
    data = HTMLForms.hidden(form) | {"decision": "allow"}
    cookies = session.cookies.get_dict()
    barrier = threading.Barrier(10)
    answers = []

    def submit():
        barrier.wait()
        answers.append(requests.post(urljoin(r.url, form["action"]), data=data, cookies=cookies, allow_redirects=False,
                                     timeout=10))

    threads = [threading.Thread(target=submit) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = [a for a in answers if "code=" in a.headers.get("Location", "")]
    assert len(codes) <= 1, [(a.status_code, a.headers.get("Location", "")[:60]) for a in answers]


def test_unauthenticated_authorize_requests_cannot_fill_redis_with_flow_records(setup, redis_server):
    # Every GET /oauth/authorize with a valid client stores a flow record (up to ~2 KB with a
    # 1 KiB state) for ten minutes, before anyone signs in, with no per-address limit: one
    # address can grow Redis without bound. Flow creation must be throttled per address (429)
    # or the stored flows bounded.
    _, challenge = pkce()
    url = authorize_url(setup, setup.public_client, loopback(), challenge, state="s" * 1000)
    session = requests.Session()
    statuses = [session.get(url, allow_redirects=False, timeout=10).status_code for _ in range(1000)]
    reply = redis_server.command("EVAL", "return #redis.call('KEYS', ARGV[1])", "0", "*oauth-flow:*")
    flows = int(reply.strip().lstrip(b":"))
    assert 429 in statuses or flows <= 300, (flows, {s: statuses.count(s) for s in set(statuses)})


def _post_from(source_ip: str, url: str, data: dict, auth) -> int:
    """POST a form to `url` from the loopback address `source_ip`; the status."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10, source_address=(source_ip, 0))
    basic = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    connection.request("POST", parts.path, body=urlencode(data),
                       headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Basic " + basic})
    status = connection.getresponse().status
    connection.close()
    return status


def test_unauthenticated_requests_cannot_use_up_a_clients_token_budget(tmp_path, make_gateway, upstream, redis_server):
    # The per-client bucket is charged before the client is authenticated, by anyone naming
    # the (public) client id: a few addresses sending garbage lock every user of the client out
    # of /oauth/token. RFC 6749 §10.10 throttling must not become a lockout: the right secret
    # from another address still works (checklist item 57).
    limited = OAuthSetup(tmp_path, make_gateway, upstream.url, redis_server.port,
                         oauth_settings="token_requests_per_client = 10\ntoken_requests_per_address = 100")
    wrong = (limited.confidential_client, "wrong-secret-" + "x" * 30)
    for _ in range(12):
        _post_from("127.0.0.1", limited.endpoint("token"), {"grant_type": "client_credentials"}, wrong)
    status = _post_from("127.0.0.2", limited.endpoint("token"), {"grant_type": "client_credentials"},
                        (limited.confidential_client, limited.client_secret))
    assert status == 200, status


def test_twenty_parallel_redemptions_of_one_code_give_exactly_one_token_response(setup):
    # Acceptance 3 / RFC 6749 §4.1.2: of 20 parallel redemptions exactly one succeeds. The
    # redemption marks the code used, then signs; the 19 others arrive in between, turn the
    # marker into "reused", and the winner's recordIssued then revokes its own tokens, so
    # nobody gets a token at all.

    code, redirect_uri, verifier = code_for(setup, setup.public_client)
    barrier = threading.Barrier(20)

    def attempt(_):
        barrier.wait()
        return redeem(setup, setup.public_client, code, redirect_uri, verifier)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(attempt, range(20)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [400] * 19, statuses
    assert all(a.json()["error"] == "invalid_grant" for a in answers if a.status_code == 400)


def test_check_config_refuses_an_oauth_issuer_that_is_not_an_https_url(setup, tmp_path):
    # RFC 8414 §2 / RFC 9207 §2: the authorization server's issuer is an https URL with no
    # query or fragment; the metadata's endpoint URLs are built from it. With [oauth] on,
    # check-config accepts "gateway-internal" (endpoints become "gateway-internal/oauth/token"),
    # plain http, and a query or fragment.


    text = setup.gateway.config_path.read_text()
    assert f'issuer = "{OWN_ISSUER}"' in text
    for issuer in ("gateway-internal", "http://gateway.example", "https://gateway.example/?tenant=1", "https://gateway.example/#x"):
        path = tmp_path / "bad-issuer.conf"
        path.write_text(text.replace(f'issuer = "{OWN_ISSUER}"', f'issuer = "{issuer}"'))
        result = subprocess.run([gateway_binary(), "check-config", "--config", str(path)], capture_output=True, text=True,
                                timeout=30)
        assert result.returncode != 0 and "issuer" in (result.stdout + result.stderr), (issuer, result.returncode)


def test_a_grant_revoked_for_refresh_token_reuse_also_forgets_the_remembered_consent(setup):
    # The design: the remembered consent is deleted when the grant (refresh family) is revoked.
    # /oauth/revoke does so; revocation for a detected refresh-token reuse (a theft signal) does
    # not, so the confidential client's next authorization is approved silently again.
    session = requests.Session()
    code, redirect_uri, verifier = code_for(setup, setup.confidential_client, session=session)
    auth = confidential_auth(setup)
    rt1 = redeem(setup, setup.confidential_client, code, redirect_uri, verifier, auth=auth).json()["refresh_token"]
    rt2 = refresh(setup, setup.confidential_client, rt1, auth=auth).json()["refresh_token"]
    assert refresh(setup, setup.confidential_client, rt2, auth=auth).status_code == 200
    r = refresh(setup, setup.confidential_client, rt1, auth=auth)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text  # reuse: family revoked
    _, challenge = pkce()
    r = session.get(authorize_url(setup, setup.confidential_client, loopback(), challenge), allow_redirects=False, timeout=10)
    assert r.status_code == 200 and "Location" not in r.headers, (r.status_code, r.headers.get("Location", "")[:80])
