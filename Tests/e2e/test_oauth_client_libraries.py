"""Issue 12 acceptance 1 and 4, end to end with independent client libraries: authlib
(authorization code + PKCE S256 through the gateway's login and consent forms, refresh,
revoke, introspect, client credentials with both client authentication methods),
requests-oauthlib (client credentials), the RFC 7636 Appendix B vector, and the gateway's JWT
access tokens checked with PyJWT against its JWKS (RFC 9068), refused for another audience and
after revocation on a second instance. Real redis-server, gateway binary and upstream."""

import secrets
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt as pyjwt
import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session as OAuthlibSession

from conftest import (AUDIENCE, OAUTH_SCOPES, OWN_ISSUER, USER_ROUTES, OAuthSetup, bearer, free_port, header,
                      oauth_authorize, scaled, seconds_until_refused)

SCOPE = " ".join(OAUTH_SCOPES)
# RFC 7636 Appendix B.
APPENDIX_B_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
APPENDIX_B_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.fixture(autouse=True)
def plain_http_on_loopback(monkeypatch):
    # Both libraries refuse http:// token endpoints unless told; the gateway under test
    # listens on plain loopback (TLS is covered by test_tls.py).
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def loopback_redirect() -> str:
    """A native app's redirect URI: the registered http://127.0.0.1/callback with a port of
    its own (RFC 8252 §7.3)."""
    return f"http://127.0.0.1:{free_port()}/callback"


def assert_metadata(setup: OAuthSetup) -> dict:
    metadata = setup.metadata()
    assert metadata["issuer"] == OWN_ISSUER
    for name, path in (("authorization", "authorize"), ("token", "token"), ("revocation", "revoke"),
                       ("introspection", "introspect")):
        assert metadata[f"{name}_endpoint"].endswith(f"/oauth/{path}"), metadata
    assert "S256" in metadata["code_challenge_methods_supported"] and "plain" not in metadata["code_challenge_methods_supported"]
    return metadata


def endpoints(setup: OAuthSetup) -> dict:
    """The endpoints of this gateway on its loopback address. The metadata names them under
    the issuer (https://gateway.test), which is not where the test gateway listens."""
    return {"authorize": setup.endpoint("authorize"), "token": setup.endpoint("token"),
            "revoke": setup.endpoint("revoke"), "introspect": setup.endpoint("introspect")}


def redirect_params(location: str, redirect_uri: str) -> dict:
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == redirect_uri, location
    query = parse_qs(parts.query, keep_blank_values=True)
    assert all(len(values) == 1 for values in query.values()), location
    return {name: values[0] for name, values in query.items()}


def assert_bearer_response(token: dict, scope: str = SCOPE, refresh: bool = True) -> None:
    assert token["token_type"] == "Bearer", token
    assert token["access_token"] and isinstance(token["expires_in"], int) and token["expires_in"] > 0, token
    assert token["scope"] == scope, token
    assert ("refresh_token" in token) == refresh, token


def call_proxy(setup: OAuthSetup, upstream, access_token: str, path: str = "/v1/databases") -> dict:
    """Calls a route through the gateway with the access token; returns what the upstream saw."""
    r = requests.get(f"{setup.url}{path}", headers=bearer(access_token), timeout=10)
    assert r.status_code == 200, r.text
    return upstream.wait_for_path(path)


def test_authlib_public_client_code_flow_with_pkce_then_refresh_and_revoke(oauth_setup, upstream):
    setup = oauth_setup
    user = setup.add_user("ada@example.test")
    assert_metadata(setup)
    urls = endpoints(setup)
    redirect_uri = loopback_redirect()
    client = OAuth2Session(setup.public_client, token_endpoint_auth_method="none", scope=SCOPE,
                           redirect_uri=redirect_uri, code_challenge_method="S256")
    verifier = generate_token(64)
    authorize_url, state = client.create_authorization_url(urls["authorize"], code_verifier=verifier)
    assert f"code_challenge={create_s256_code_challenge(verifier)}" in authorize_url

    location = oauth_authorize(setup.url, authorize_url, "ada@example.test")
    params = redirect_params(location, redirect_uri)
    assert params["state"] == state and params["iss"] == OWN_ISSUER and params["code"], location

    token = client.fetch_token(urls["token"], authorization_response=location, code_verifier=verifier)
    assert_bearer_response(token)
    seen = call_proxy(setup, upstream, token["access_token"])
    assert header(seen, "X-DBAudit-Subject") == [user["id"]]
    assert header(seen, "X-DBAudit-Credential") == ["oauth"] and header(seen, "X-DBAudit-Client-Id") == [setup.public_client]

    # Refresh rotates: a new pair, the same scopes, and the new access token works.
    upstream.reset()
    refreshed = client.refresh_token(urls["token"], refresh_token=token["refresh_token"])
    assert_bearer_response(refreshed)
    assert refreshed["refresh_token"] != token["refresh_token"] and refreshed["access_token"] != token["access_token"]
    call_proxy(setup, upstream, refreshed["access_token"])

    # Revocation (RFC 7009) of the refresh token ends the family: it no longer refreshes.
    r = client.revoke_token(urls["revoke"], token=refreshed["refresh_token"], token_type_hint="refresh_token")
    assert r.status_code == 200, r.text
    with pytest.raises(OAuthError) as refused:
        client.refresh_token(urls["token"], refresh_token=refreshed["refresh_token"])
    assert refused.value.error == "invalid_grant"


def test_authlib_confidential_client_code_flow_with_pkce_then_introspect_and_revoke(oauth_setup, upstream):
    setup = oauth_setup
    user = setup.add_user("grace@example.test")
    urls = endpoints(setup)
    redirect_uri = loopback_redirect()
    client = OAuth2Session(setup.confidential_client, setup.client_secret, token_endpoint_auth_method="client_secret_basic",
                           scope=SCOPE, redirect_uri=redirect_uri, code_challenge_method="S256")
    verifier = generate_token(48)
    authorize_url, state = client.create_authorization_url(urls["authorize"], code_verifier=verifier)
    location = oauth_authorize(setup.url, authorize_url, "grace@example.test")
    assert redirect_params(location, redirect_uri)["iss"] == OWN_ISSUER
    token = client.fetch_token(urls["token"], authorization_response=location, code_verifier=verifier)
    assert_bearer_response(token)

    # Introspection (RFC 7662), authenticated as the client.
    active = client.introspect_token(urls["introspect"], token=token["access_token"], token_type_hint="access_token")
    assert active.status_code == 200, active.text
    claims = active.json()
    assert claims["active"] is True, claims
    assert claims["client_id"] == setup.confidential_client and claims["sub"] == user["id"], claims
    assert claims["scope"] == SCOPE and claims["iss"] == OWN_ISSUER and claims["exp"] > time.time(), claims
    unknown = client.introspect_token(urls["introspect"], token="not-a-token-" + secrets.token_urlsafe(16))
    assert unknown.status_code == 200 and unknown.json() == {"active": False}, unknown.text

    # Introspection needs client authentication.
    anonymous = requests.post(urls["introspect"], data={"token": token["access_token"]}, timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client", anonymous.text

    # Revoking the access token: introspection says inactive and the proxy refuses it.
    call_proxy(setup, upstream, token["access_token"])
    r = client.revoke_token(urls["revoke"], token=token["access_token"], token_type_hint="access_token")
    assert r.status_code == 200, r.text
    assert client.introspect_token(urls["introspect"], token=token["access_token"]).json() == {"active": False}
    assert seconds_until_refused(f"{setup.url}/v1/databases", token["access_token"], timeout=1.0, probes=2) is not None

    # The refresh token is still live until it is revoked too.
    assert client.introspect_token(urls["introspect"], token=token["refresh_token"],
                                   token_type_hint="refresh_token").json()["active"] is True
    client.revoke_token(urls["revoke"], token=token["refresh_token"], token_type_hint="refresh_token")
    assert client.introspect_token(urls["introspect"], token=token["refresh_token"]).json() == {"active": False}


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_client_credentials_with_both_authentication_methods(oauth_setup, upstream, method):
    setup = oauth_setup
    client = OAuth2Session(setup.confidential_client, setup.client_secret, token_endpoint_auth_method=method, scope="read:databases")
    sent = []
    client.hooks["response"].append(lambda response, *args, **kwargs: sent.append(response.request))
    token = client.fetch_token(setup.endpoint("token"), grant_type="client_credentials")
    assert_bearer_response(token, scope="read:databases", refresh=False)
    request = sent[-1]
    body = parse_qs(request.body if isinstance(request.body, str) else request.body.decode())
    if method == "client_secret_basic":
        assert request.headers["Authorization"].startswith("Basic ") and "client_secret" not in body
    else:
        assert "Authorization" not in request.headers and body["client_secret"] == [setup.client_secret]
    seen = call_proxy(setup, upstream, token["access_token"])
    # The subject of a client's own token is namespaced: it can never be a user's id.
    assert header(seen, "X-DBAudit-Subject") == [f"client:{setup.confidential_client}"]
    assert header(seen, "X-DBAudit-Scopes") == ["read:databases"]

    # The same library with a wrong secret gets invalid_client.
    wrong = OAuth2Session(setup.confidential_client, setup.client_secret + "x", token_endpoint_auth_method=method)
    with pytest.raises(OAuthError) as refused:
        wrong.fetch_token(setup.endpoint("token"), grant_type="client_credentials")
    assert refused.value.error == "invalid_client"


@pytest.mark.parametrize("include_client_id", [False, True], ids=["basic", "post"])
def test_requests_oauthlib_backend_application_client_credentials(oauth_setup, upstream, include_client_id):
    setup = oauth_setup
    session = OAuthlibSession(client=BackendApplicationClient(client_id=setup.confidential_client, scope=OAUTH_SCOPES))
    token = session.fetch_token(token_url=setup.endpoint("token"), client_id=setup.confidential_client,
                                client_secret=setup.client_secret, include_client_id=include_client_id)
    # oauthlib hands the scope back as a list (it parses the space-separated string).
    assert token["scope"] == OAUTH_SCOPES, token
    assert_bearer_response({**token, "scope": " ".join(token["scope"])}, refresh=False)
    # The library attaches the token to its own requests.
    r = session.get(f"{setup.url}/v1/logs", timeout=10)
    assert r.status_code == 200, r.text
    seen = upstream.wait_for_path("/v1/logs")
    assert header(seen, "X-DBAudit-Subject") == [f"client:{setup.confidential_client}"]


def authorize_url_with_challenge(setup: OAuthSetup, redirect_uri: str, challenge: str, state: str) -> str:
    query = {"response_type": "code", "client_id": setup.public_client, "redirect_uri": redirect_uri,
             "scope": SCOPE, "state": state, "code_challenge": challenge, "code_challenge_method": "S256"}
    return f"{setup.endpoint('authorize')}?{urlencode(query)}"


def redeem(setup: OAuthSetup, code: str, redirect_uri: str, verifier: str) -> requests.Response:
    return requests.post(setup.endpoint("token"), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "client_id": setup.public_client, "code_verifier": verifier}, timeout=10)


def test_rfc7636_appendix_b_vector_in_authlib_and_the_gateway(oauth_setup):
    assert create_s256_code_challenge(APPENDIX_B_VERIFIER) == APPENDIX_B_CHALLENGE
    setup = oauth_setup
    setup.add_user("linus@example.test")
    redirect_uri = loopback_redirect()
    session = requests.Session()

    location = oauth_authorize(setup.url, authorize_url_with_challenge(setup, redirect_uri, APPENDIX_B_CHALLENGE, "vector"),
                               "linus@example.test", session=session)
    params = redirect_params(location, redirect_uri)
    assert params["state"] == "vector"
    r = redeem(setup, params["code"], redirect_uri, APPENDIX_B_VERIFIER)
    assert r.status_code == 200, r.text
    assert_bearer_response(r.json())

    # The same challenge with any other verifier is refused: the gateway really computes S256.
    location = oauth_authorize(setup.url, authorize_url_with_challenge(setup, redirect_uri, APPENDIX_B_CHALLENGE, "other"),
                               "linus@example.test", session=session)
    other = APPENDIX_B_VERIFIER[:-1] + ("A" if APPENDIX_B_VERIFIER[-1] != "A" else "B")
    r = redeem(setup, redirect_params(location, redirect_uri)["code"], redirect_uri, other)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


# --- Acceptance 4: JWT access tokens ------------------------------------------------------------


def client_credentials_token(setup: OAuthSetup, scope: str = "read:databases", url: str | None = None) -> str:
    r = requests.post(url or setup.endpoint("token"), data={"grant_type": "client_credentials", "scope": scope},
                      auth=(setup.confidential_client, setup.client_secret), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def jwks(setup: OAuthSetup) -> pyjwt.PyJWKSet:
    r = requests.get(f"{setup.url}/.well-known/jwks.json", timeout=10)
    assert r.status_code == 200, r.text
    return pyjwt.PyJWKSet.from_dict(r.json())


def verify_access_token(token: str, keys: pyjwt.PyJWKSet) -> dict:
    """RFC 9068 §4 as a resource server does it: typ at+jwt, the key by kid from the JWKS,
    iss, aud, exp, and the required claims present."""
    header_ = pyjwt.get_unverified_header(token)
    assert header_["typ"] == "at+jwt" and header_["alg"] == "RS256", header_
    key = keys[header_["kid"]]
    return pyjwt.decode(token, key=key, algorithms=["RS256"], audience=AUDIENCE, issuer=OWN_ISSUER,
                        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"]})


def test_jwt_access_tokens_verify_in_pyjwt_against_the_jwks(oauth_setup):
    setup = oauth_setup
    user = setup.add_user("barbara@example.test")
    keys = jwks(setup)

    claims = verify_access_token(client_credentials_token(setup), keys)
    assert claims["sub"] == f"client:{setup.confidential_client}" and claims["client_id"] == setup.confidential_client
    assert claims["scope"] == "read:databases" and claims["exp"] > claims["iat"]

    redirect_uri = loopback_redirect()
    verifier = generate_token(50)
    location = oauth_authorize(setup.url, authorize_url_with_challenge(
        setup, redirect_uri, create_s256_code_challenge(verifier), "s"), "barbara@example.test")
    r = redeem(setup, redirect_params(location, redirect_uri)["code"], redirect_uri, verifier)
    assert r.status_code == 200, r.text
    claims = verify_access_token(r.json()["access_token"], keys)
    assert claims["sub"] == user["id"] and claims["client_id"] == setup.public_client and claims["scope"] == SCOPE

    # A token signed by a key the JWKS does not hold fails the same verification.
    from jwks_server import SigningKey
    stranger = SigningKey("RS256", kid="gw-rs256")
    forged = pyjwt.encode(claims, stranger.private, algorithm="RS256", headers={"kid": "gw-rs256", "typ": "at+jwt"})
    with pytest.raises(pyjwt.InvalidSignatureError):
        verify_access_token(forged, keys)


def test_access_token_for_another_audience_gets_401_at_the_proxy(oauth_setup, make_gateway, upstream, redis_server, tmp_path):
    setup = oauth_setup
    # A second gateway: same issuer, same signing key, same Redis and clients, but it issues
    # for another audience. Its tokens are genuine in every respect except `aud`.
    other_tail = setup.tail.replace(f'audience = "{AUDIENCE}"', 'audience = "another-api"')
    assert other_tail != setup.tail
    other = make_gateway(upstream.url, routes=USER_ROUTES, tail=other_tail)
    foreign = client_credentials_token(setup, url=f"{other.url}/oauth/token")
    assert pyjwt.decode(foreign, options={"verify_signature": False})["aud"] in ("another-api", ["another-api"])
    assert requests.get(f"{other.url}/v1/databases", headers=bearer(foreign), timeout=10).status_code == 200
    r = requests.get(f"{setup.url}/v1/databases", headers=bearer(foreign), timeout=10)
    assert r.status_code == 401, r.text

    # The same claims with our audience, signed with the same key, are accepted: only aud differs.
    claims = pyjwt.decode(foreign, options={"verify_signature": False})
    claims["aud"] = AUDIENCE
    claims["jti"] = claims["jti"] + "-x"
    own = pyjwt.encode(claims, setup.signing_key.private, algorithm="RS256", headers={"kid": "gw-rs256", "typ": "at+jwt"})
    assert requests.get(f"{setup.url}/v1/databases", headers=bearer(own), timeout=10).status_code == 200


def test_access_token_revoked_at_oauth_revoke_is_refused_on_a_second_instance_within_1s(oauth_setup, make_gateway, upstream):
    setup = oauth_setup
    second = make_gateway(upstream.url, routes=USER_ROUTES, tail=setup.tail)
    token = client_credentials_token(setup)
    assert requests.get(f"{second.url}/v1/databases", headers=bearer(token), timeout=10).status_code == 200
    start = time.monotonic()
    r = requests.post(setup.endpoint("revoke"), data={"token": token, "token_type_hint": "access_token"},
                      auth=(setup.confidential_client, setup.client_secret), timeout=10)
    assert r.status_code == 200, r.text
    elapsed = seconds_until_refused(f"{second.url}/v1/databases", token, timeout=1.0, since=start, probes=2)
    assert elapsed is not None and elapsed <= scaled(1.0), f"still accepted on the second instance after {scaled(1.0)}s"
