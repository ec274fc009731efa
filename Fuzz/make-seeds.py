#!/usr/bin/env python3
"""Writes the checked-in seed corpora under Fuzz/corpus/<target>/ from the test suites:
the e2e smuggling cases, the path-normaliser vectors, the Wycheproof JWS/JWK files, the
configuration tests' TOML, plus a few hand-written inputs. Re-run after changing a source;
each seed is named by its content's hash, so re-running is idempotent.

Usage: Fuzz/make-seeds.py   (from the package root)
"""

import ast
import base64
import hashlib
import json
import os
import re

ROOT = "Fuzz/corpus"
MAX_SEED_BYTES = 8192
MAX_PER_TARGET = 300


def write(target, items):
    directory = os.path.join(ROOT, target)
    os.makedirs(directory, exist_ok=True)
    seen = set()
    for item in items:
        data = item if isinstance(item, bytes) else item.encode()
        if len(data) > MAX_SEED_BYTES or data in seen:
            continue
        seen.add(data)
        if len(seen) > MAX_PER_TARGET:
            break
        name = hashlib.sha1(data).hexdigest()[:16]
        with open(os.path.join(directory, name), "wb") as out:
            out.write(data)


def smuggling_cases():
    tree = ast.parse(open("Tests/e2e/test_smuggling.py").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "CASES" for t in node.targets):
            return list(ast.literal_eval(node.value).values())
    return []


def smuggling_payloads():
    """The other raw requests of the smuggling tests: module-level and inline byte strings."""
    text = open("Tests/e2e/test_smuggling.py").read()
    return [ast.literal_eval(m) for m in re.findall(r'(b"(?:[^"\\]|\\.)*")', text) if b"HTTP/1" in ast.literal_eval(m)]


def http1_seeds():
    """Raw request streams for the HTTP/1 parser: the smuggling cases, and the shapes of the
    request-hardening tests (pipelining, trailers, Expect, upgrades, CONNECT, padded lengths)."""
    get = b"GET /v1/databases HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer dbaudit_live_x\r\n\r\n"
    post = b"POST /v1/policies HTTP/1.1\r\nHost: g\r\nContent-Length: 50\r\n\r\n" + b"x" * 50
    chunked = b"POST /public/upload HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n"
    trailers = (b"X-DBAudit-Subject: admin-user\r\nX-DBAudit-Scopes: admin\r\n"
                b"X-Forwarded-For: 6.6.6.6\r\nAuthorization: Bearer stolen\r\n\r\n")
    overrides = b"".join(b"%s: DELETE\r\n" % n for n in (b"X-HTTP-Method-Override", b"X-HTTP-Method", b"X-Original-URL"))
    return smuggling_cases() + smuggling_payloads() + [
        get + post + get,
        get * 3 + post + get,
        chunked[:-2] + b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\n" + trailers,
        b"GET /v1/databases HTTP/1.1\r\nHost: g\r\n" + overrides + b"Connection: close\r\n\r\n",
        b"POST /v1/policies HTTP/1.1\r\nHost: g\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
        chunked + b"5;ext=" + b"e" * 2000 + b"\r\nhello\r\n0\r\n\r\n",
        b"POST /public/first HTTP/1.1\r\nHost: g\r\nUpgrade: x\r\nContent-Length: 0\r\n\r\n" + chunked + b"5;e=x\r\nhello\r\n0\r\n\r\n",
        b"POST /public/first HTTP/1.1\r\nHost: g\r\nContent-Length: 0" + b" " * 600 + b"\r\n\r\n" + get,
        b"POST /public/first HTTP/1.1\r\nHost: g\r\nContent-Length:" + b" " * 600 + b"0\r\n\r\n" + get,
        b"POST /public/ws HTTP/1.1\r\nHost: g\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n" + get,
        b"CONNECT g:443 HTTP/1.1\r\nHost: g:443\r\n\r\n" + get,
        b"GET /v1/databases%3Bx HTTP/1.1\r\nHost: g\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n" + get,
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + get,
        b"GET / HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n" + get,
        b"\r\n\r\n" + get,
        b"GET /v1?q=%20&a=b HTTP/1.1\r\nHost: [::1]:8443\r\nX-Empty:\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
        chunked + b"000A;a;b=\"q\\\"x\"\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n" + get,
        b"PUT /x HTTP/1.1\r\nHost: h\r\ncontent-length: 3\r\n\r\nabcDELETE /y HTTP/1.1\r\nHost: h\r\n\r\n",
    ]


def swift_string_pairs(path):
    """First string of each ("...", "...") tuple in a Swift test file."""
    return [bytes(m, "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")
            for m in re.findall(r'\(\s*"((?:[^"\\]|\\.)*)"\s*,', open(path, encoding="utf-8").read())]


def swift_multiline_strings(directory):
    for name in sorted(os.listdir(directory)):
        text = open(os.path.join(directory, name), encoding="utf-8").read()
        for body in re.findall(r'"""\n(.*?)\n\s*"""', text, re.S):
            if "\\(" not in body:
                yield "\n".join(line.strip() for line in body.splitlines()) + "\n"


def wycheproof(name):
    return json.load(open(os.path.join("Tests/Vectors/wycheproof", name)))


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def main():
    # Request heads: the smuggling cases, and every path vector as a request.
    paths = swift_string_pairs("Tests/GatewayProxyTests/PathNormalizerTests.swift")
    heads = smuggling_cases() + [f"GET {p} HTTP/1.1\r\nHost: a\r\n\r\n" for p in paths] + [
        "POST /v1/databases?x=1 HTTP/1.1\r\nHost: localhost:8443\r\nContent-Length: 5\r\n\r\nhello",
        "GET / HTTP/1.0\r\n\r\n",
        "GET /v1 HTTP/1.1\r\nHost: [::1]:8443\r\nTransfer-Encoding: chunked\r\n\r\n",
    ]
    write("request_head", heads)

    write("http1", http1_seeds())

    tokens = []
    for file in ("json_web_signature_test.json",):
        for group in wycheproof(file)["testGroups"]:
            tokens += [test["jws"] for test in group["tests"] if isinstance(test.get("jws"), str)]
    write("jose", tokens + ["eyJhbGciOiJub25lIn0.e30.", "a.b.c", "..", "eyJhbGciOiJIUzI1NiJ9.e30.AA"])

    documents = []
    for token in tokens:
        for part in token.split(".")[:2]:
            try:
                documents.append(b64url_decode(part))
            except ValueError:
                pass
    key_sets = []
    for file in ("json_web_key_test.json", "json_web_signature_test.json"):
        for group in wycheproof(file)["testGroups"]:
            for member in ("private", "public"):
                if isinstance(group.get(member), dict):
                    key = group[member]
                    if "keys" in key:
                        key_sets.append(json.dumps(key))
                    else:
                        key_sets.append(json.dumps({"keys": [key]}))
                        public = {k: v for k, v in key.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
                        key_sets.append(json.dumps({"keys": [public]}))
    write("jwks", key_sets + ['{"keys":[]}', '{"keys":[{"kty":"oct","k":"AAAA","kid":"a"},{"kty":"oct","k":"AA","kid":"a"}]}'])
    write("json", documents + key_sets[:40] + [
        '{"a":1,"a":2}', '"\\ud800"', "01", "[1,[2,[3]]]", '{"n":-0.0e-0,"s":"\\u00e9\\n"}', "1e400",
        "9223372036854775808",
    ])

    configs = [open("gateway.conf.example").read()]
    configs += list(swift_multiline_strings("Tests/GatewayConfigTests"))
    write("config", configs)

    write("resp", [
        "+OK\r\n", "-ERR wrong\r\n", ":42\r\n", "$3\r\nfoo\r\n", "$-1\r\n", "*-1\r\n", "*0\r\n",
        "*2\r\n$1\r\na\r\n:1\r\n", "*1\r\n*1\r\n*1\r\n+deep\r\n",
        "*3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$5\r\nhello\r\n",
        "-MOVED 3999 127.0.0.1:7001\r\n", "$0\r\n\r\n", ":-9223372036854775808\r\n",
    ])
    write("form", [
        "grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fa.example%2Fcb&code_verifier=x",
        "grant_type=refresh_token&refresh_token=r&scope=a+b", "a=1&&b=2", "a", "a=1&a=2", "a=%zz", "=x",
        "client_id=c&client_secret=s%20t", "name=caf%C3%A9&x=%00",
    ])
    token = "A" * 43
    write("cookie", [
        f"dbgw_session={token}", f"__Host-dbgw_session={token}; dbgw_browser={token}",
        f"dbgw_session={token}\ndbgw_session={token}", f" dbgw_browser = {token} ;x=y", "dbgw_session=",
    ])
    write("authorization", [
        "Bearer dbk_abc.def", "bearer   abc", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "Bearer ",
        "Basic " + base64.b64encode(b"client:secret").decode(),
        "Basic " + base64.b64encode(b"c%3Aid:s%2Bt").decode() + "\nclient_id=c%3Aid",
        "Basic " + base64.b64encode(b"client:secret").decode() + "\nclient_secret=x",
        "Basic !!!", "Digest x",
    ])


if __name__ == "__main__":
    main()
