"""Helpers for the JWT end-to-end tests: a real JWKS HTTP server on loopback whose key set
the test can change and whose fetches it can count, and signing keys of every algorithm
the gateway supports with their public JWKs.

The server runs in a thread of the test process (the gateway is a separate process, so
this is a real network fetch); `stop()` closes its socket, so the gateway then gets
"connection refused", like a provider that is down."""

import base64
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm

ASYMMETRIC_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
SYMMETRIC_ALGORITHMS = ["HS256", "HS384", "HS512"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


class JWKSServer:
    """Serves `document` as JSON on `/jwks.json` (and on any path not set with `set_path`)
    and counts those GETs; `set_path` serves other documents (an OIDC discovery one)."""

    def __init__(self, document: dict | None = None, cache_control: str | None = "max-age=3600",
                 tls: tuple[str, str] | None = None):
        self._lock = threading.Lock()
        self._document = json.dumps(document or {"keys": []}).encode()
        self.cache_control = cache_control
        self.fetch_times: list[float] = []
        self._paths: dict[str, bytes] = {}
        self.path_hits: dict[str, int] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_GET(self):
                with owner._lock:
                    if self.path in owner._paths:
                        owner.path_hits[self.path] = owner.path_hits.get(self.path, 0) + 1
                        body = owner._paths[self.path]
                    else:
                        owner.fetch_times.append(time.monotonic())
                        body = owner._document
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if owner.cache_control:
                    self.send_header("Cache-Control", owner.cache_control)
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.scheme = "http"
        if tls:
            import ssl
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self._stopped = False

    @property
    def url(self) -> str:
        host = "localhost" if self.scheme == "https" else "127.0.0.1"
        return f"{self.scheme}://{host}:{self.port}/jwks.json"

    def url_of(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set_path(self, path: str, document: dict) -> None:
        with self._lock:
            self._paths[path] = json.dumps(document).encode()

    def set_document(self, document: dict) -> None:
        with self._lock:
            self._document = json.dumps(document).encode()

    def set_keys(self, keys) -> None:
        self.set_document({"keys": [key.public_jwk for key in keys]})

    @property
    def fetches(self) -> int:
        with self._lock:
            return len(self.fetch_times)

    def last_fetch(self) -> float | None:
        with self._lock:
            return self.fetch_times[-1] if self.fetch_times else None

    def wait_for_fetches(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.fetches >= count:
                return
            time.sleep(0.02)
        raise AssertionError(f"JWKS fetched {self.fetches} times, expected at least {count} within {timeout}s")

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)


class SigningKey:
    """A private key (or HMAC secret) pinned to one algorithm, with a `kid` and the public
    JWK (`alg`, `kid`, `use: sig`) a provider would publish."""

    def __init__(self, algorithm: str, kid: str | None = None, rsa_key=None):
        self.algorithm = algorithm
        self.kid = kid or f"{algorithm.lower()}-{os.urandom(4).hex()}"
        if algorithm.startswith(("RS", "PS")):
            self.private = rsa_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        elif algorithm == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        elif algorithm == "ES384":
            self.private = ec.generate_private_key(ec.SECP384R1())
            jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        elif algorithm == "EdDSA":
            self.private = ed25519.Ed25519PrivateKey.generate()
            jwk = OKPAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        elif algorithm in SYMMETRIC_ALGORITHMS:
            # At least the digest size (RFC 7518 §3.2), here exactly twice the minimum.
            size = {"HS256": 32, "HS384": 48, "HS512": 64}[algorithm]
            self.private = os.urandom(size * 2)
            jwk = HMACAlgorithm.to_jwk(self.private, as_dict=True)
        else:
            raise ValueError(algorithm)
        jwk.update({"kid": self.kid, "alg": algorithm, "use": "sig"})
        self.public_jwk = jwk

    @property
    def symmetric(self) -> bool:
        return self.algorithm in SYMMETRIC_ALGORITHMS

    def private_pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign_pyjwt(self, claims: dict, headers: dict | None = None) -> str:
        import jwt

        return jwt.encode(claims, self.private, algorithm=self.algorithm, headers={"kid": self.kid, **(headers or {})})

    def sign_joserfc(self, claims: dict, headers: dict | None = None) -> str:
        from joserfc import jwt as jose_jwt
        from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

        if self.symmetric:
            key = OctKey.import_key(self.private)
        elif self.algorithm.startswith(("RS", "PS")):
            key = RSAKey.import_key(self.private_pem())
        elif self.algorithm.startswith("ES"):
            key = ECKey.import_key(self.private_pem())
        else:
            key = OKPKey.import_key(self.private_pem())
        header = {"alg": self.algorithm, "kid": self.kid, **(headers or {})}
        return jose_jwt.encode(header, claims, key, algorithms=[self.algorithm])

    def sign_raw(self, header: dict, payload_segment: str) -> str:
        """Signs `b64url(header).payload_segment` by hand (for headers libraries refuse)."""
        import jwt

        signing_input = f"{b64url_json(header)}.{payload_segment}".encode()
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        key = algorithm.prepare_key(self.private if not self.symmetric else self.private)
        return f"{signing_input.decode()}.{b64url(algorithm.sign(signing_input, key))}"


def pem_file(tmp_path, name: str, key: SigningKey):
    path = tmp_path / name
    path.write_bytes(key.private_pem())
    return path
