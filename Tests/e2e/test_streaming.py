"""1 GiB through the gateway in each direction with flat memory: bodies are streamed
with backpressure, never buffered."""

import socket
import time

import requests

from conftest import read_until_closed

GIB = 1 << 30
# The README's claim: under 1 MiB of RSS growth (about 450 KiB measured).
LIMIT_KIB = 1024


def warm_up(gateway):
    with requests.Session() as session:
        for _ in range(20):
            session.post(f"{gateway.url}/warm", data=b"w" * 200_000, timeout=10)
            session.get(f"{gateway.url}/download?bytes=2000000", timeout=10).content


def test_one_gib_download_and_upload_with_flat_memory(make_gateway, upstream):
    gateway = make_gateway(upstream.url, server='max_body_bytes = "2GiB"\nbody_timeout = "30s"')
    warm_up(gateway)
    baseline = gateway.rss_kib()
    gateway.reset_peak_rss()

    received = 0
    started = time.monotonic()
    with requests.get(f"{gateway.url}/download?bytes={GIB}", stream=True, timeout=60) as r:
        assert r.status_code == 200
        assert int(r.headers["Content-Length"]) == GIB
        for chunk in r.iter_content(chunk_size=1 << 20):
            received += len(chunk)
    download_seconds = time.monotonic() - started
    assert received == GIB
    download_peak = gateway.peak_rss_kib()

    gateway.reset_peak_rss()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=60) as s:
        s.sendall(
            b"POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % GIB
        )
        block = b"\0" * (1 << 20)
        for _ in range(GIB // len(block)):
            s.sendall(block)
        answer = read_until_closed(s)
    upload_seconds = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b'"body_bytes": %d' % GIB in answer
    upload_peak = gateway.peak_rss_kib()

    print(
        f"\n1 GiB download {download_seconds:.1f}s, upload {upload_seconds:.1f}s; "
        f"RSS baseline {baseline} KiB, peak during download {download_peak} KiB, during upload {upload_peak} KiB"
    )
    assert download_peak - baseline < LIMIT_KIB, (baseline, download_peak)
    assert upload_peak - baseline < LIMIT_KIB, (baseline, upload_peak)
