"""A small OpenID Connect provider for the SSO tests, on loopback in a thread of the test
process: discovery (`/.well-known/openid-configuration`), JWKS (`/jwks.json`), an
authorization endpoint with a login form (or auto-approve for a preset user), and a token
endpoint that checks client_secret_basic, the redirect URI and the PKCE S256 verifier and
issues RS256 ID tokens signed with jwks_server.SigningKey.

Tests steer it: `users` (login name -> claims), `auto_login` (the user auto-approved),
`tamper` (claim overrides of the next ID tokens) and `sign_with` (another key)."""

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from jwks_server import SigningKey, b64url


class OIDCProvider:
    def __init__(self, client_id: str = "dbaudit-gateway", client_secret: str | None = None):
        self.client_id = client_id
        self.client_secret = client_secret or "provider-secret-" + secrets.token_hex(16)
        self.key = SigningKey("RS256")
        self.sign_with: SigningKey | None = None
        self.users: dict[str, dict] = {}
        self.auto_login: str | None = None
        self.tamper: dict = {}
        self.codes: dict[str, dict] = {}
        self.token_requests: list[dict] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def _send(self, status: int, body: bytes, content_type: str = "application/json", headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def do_GET(self):
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/.well-known/openid-configuration":
                    self._send(200, json.dumps(owner.discovery()).encode())
                elif parts.path == "/jwks.json":
                    self._send(200, json.dumps({"keys": [owner.key.public_jwk]}).encode(), headers={"Cache-Control": "max-age=300"})
                elif parts.path == "/authorize":
                    if owner.auto_login:
                        self._send(302, b"", headers={"Location": owner.approve(query, owner.auto_login)})
                    else:
                        hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in query.items())
                        page = ("<!doctype html><title>Test IdP</title><h1>Test identity provider</h1>"
                                f'<form method="post" action="/authorize">{hidden}'
                                '<input id="username" name="username"><button id="signin" type="submit">Sign in</button></form>')
                        self._send(200, page.encode(), "text/html; charset=utf-8")
                else:
                    self._send(404, b"{}")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                parts = urlsplit(self.path)
                if parts.path == "/authorize":
                    self._send(302, b"", headers={"Location": owner.approve(form, form.get("username", ""))})
                elif parts.path == "/token":
                    status, body = owner.token(form, self.headers.get("Authorization", ""))
                    self._send(status, json.dumps(body).encode(), headers={"Cache-Control": "no-store"})
                else:
                    self._send(404, b"{}")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.issuer = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self._stopped = False

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks.json",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }

    def approve(self, query: dict, username: str) -> str:
        """A code for `username` and the redirect back to the relying party."""
        assert query.get("response_type") == "code" and query.get("client_id") == self.client_id, query
        assert query.get("code_challenge_method") == "S256" and query.get("code_challenge"), query
        code = secrets.token_urlsafe(24)
        with self._lock:
            self.codes[code] = {"user": username, "redirect_uri": query["redirect_uri"], "nonce": query.get("nonce"),
                                "challenge": query["code_challenge"], "scope": query.get("scope", "")}
        return query["redirect_uri"] + "?" + urlencode({"code": code, "state": query.get("state", ""), "iss": self.issuer})

    def token(self, form: dict, authorization: str) -> tuple[int, dict]:
        with self._lock:
            self.token_requests.append({"form": dict(form), "authorization": authorization})
            grant = self.codes.pop(form.get("code", ""), None)
        expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if authorization != expected:
            return 401, {"error": "invalid_client"}
        if grant is None or form.get("grant_type") != "authorization_code" or form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        if b64url(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.client_id, "sub": grant["user"], "iat": now, "exp": now + 300,
                  "nonce": grant["nonce"], **self.users.get(grant["user"], {})}
        claims.update(self.tamper)
        key = self.sign_with or self.key
        return 200, {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 300,
                     "id_token": key.sign_pyjwt({k: v for k, v in claims.items() if v is not None})}

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
