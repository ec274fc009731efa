"""Issue 18 item 1: the soak (soak/soak.py, `make soak` runs it for SOAK_SECONDS, default
600 s), here in its 60-second version: two gateways (TLS) sharing a redis-server, a recording
upstream, a JWKS provider, labelled load and one cycle of faults (Redis kill -9 and restart,
CLIENT PAUSE, upstream slow, resetting and killed, a key published by the JWKS provider,
reloads alternating two configurations and two certificates, an invalid one, key
revocations, a logout, a disabled user). Every invariant of the oracle must hold; the report
is written to soak/results/test-60s/.

The oracle itself is tested on synthetic records: each invariant must fail when its
condition is violated (a soak whose oracle cannot fail proves nothing)."""

import sys
from pathlib import Path

from conftest import ROOT, scaled

sys.path.insert(0, str(ROOT / "soak"))

import oracle  # noqa: E402
import soak  # noqa: E402


def test_soak_60_seconds_every_invariant_holds():
    results = ROOT / "soak" / "results" / "test-60s"
    report = soak.run_soak(scaled(60.0), results)
    print("\n" + report["summary_text"])
    assert report["failures"] == [], report["summary_text"]
    # The run did what it says: every kind of fault was injected and each kind of
    # credential was both allowed and refused.
    assert {"redis_kill", "redis_pause", "upstream_slow", "upstream_reset", "upstream_kill", "reload",
            "reload_invalid", "cert_rotation", "revoke_key", "logout", "disable_user", "jwks_rotate"} <= set(report["faults_injected"])
    for kind in ("api_key", "own_jwt", "ext_jwt"):
        outcomes = report["per_credential_kind"][kind]
        assert outcomes.get("allowed", 0) > 0 and outcomes.get("refused", 0) > 0, (kind, outcomes)
    assert report["rate_limit"]["admitted"] > 0 and report["outcomes"].get("429: over the budget", 0) > 0
    assert (results / "latency.svg").read_text().startswith("<svg")
    png = (results / "latency.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000, len(png)


def synthetic_report(tmp_path, records, events=(), samples=None, forwarded=frozenset(), reload_windows=()):
    creds = {
        "valid": {"kind": "api_key", "valid_until": float("inf"), "invalid_from": float("inf"), "flip": {"A": True, "B": False}},
        # Revoked by a command that ran from 10.0 to 10.1 s: refused from 11.1 s on.
        "revoked": {"kind": "api_key", "valid_until": 10.0, "invalid_from": 11.1, "flip": {"A": True, "B": False}},
    }
    if samples is None:
        samples = [(t, g, 1000, 40) for t in (11.0, 59.5) for g in (0, 1)]
    return oracle.evaluate(records=records, events=list(events), samples=samples, creds=creds,
                           config_timeline=[(float("-inf"), "A"), (30.0, "B")], reload_windows=list(reload_windows),
                           forwarded=set(forwarded), load_started=0.0, warm_up=10.0, seconds=60.0, rate=10, burst=5,
                           results=tmp_path)


def test_oracle_passes_consistent_records(tmp_path):
    records = [("1", 0, "valid", "/v1/databases", 5.0, 5.01, 200, ""),
               ("2", 1, "revoked", "/v1/databases", 10.5, 10.51, 200, ""),  # inside the bound: either
               ("3", 0, "revoked", "/v1/databases", 12.0, 12.01, 401, "invalid_token"),
               ("4", 0, "valid", "/v1/flip", 31.0, 31.01, 403, "insufficient_scope"),  # config B
               ("5", 0, "valid", "/v1/databases", 40.5, 40.6, 503, "auth_unavailable"),
               # Both instances decide on the limited route again 0.3 s after the store is back.
               ("6", 0, "limited", "/v1/limited", 41.2, 41.3, 200, ""),
               ("7", 1, "limited", "/v1/limited", 41.2, 41.3, 429, "rate_limited")]
    report = synthetic_report(tmp_path, records, events=[("redis_kill", 40.0, 41.0, "")])
    assert report["failures"] == [], report["failures"]


def test_oracle_fails_on_each_violated_invariant(tmp_path):
    records = [
        ("a", 0, "revoked", "/v1/databases", 12.0, 12.01, 200, ""),  # 2xx beyond the bound
        ("b", 0, "revoked", "/v1/databases", 13.0, 13.01, 502, "upstream_error"),  # forwarded
        ("c", 1, "valid", "/v1/databases", 14.0, 14.01, 401, "invalid_token"),  # valid refused
        ("d", 1, "valid", "/v1/flip", 15.0, 15.01, 403, "insufficient_scope"),  # config A: must pass
        ("e", 0, "valid", "/v1/flip", 31.0, 31.01, 200, ""),  # config B: must be refused
        ("f", 0, "valid", "/v1/databases", 20.1, 20.2, -1, "ConnectionResetError"),  # during a reload
        ("g", 0, "valid", "/v1/databases", 25.0, 25.01, 503, "auth_unavailable"),  # no outage
    ]
    # The limited route: 100 admissions in one second (the exact budget is 5 + 10).
    records += [(f"l{n}", 0, "limited", "/v1/limited", 1.0 + n / 100, 1.0 + n / 100 + 0.001, 200, "")
                for n in range(100)]
    # After a store fault ending at 45 s, gateway 1 is back at 45.2 s but another loop still
    # refuses at 45.5 s; gateway 0 never comes back.
    records += [("r1", 1, "limited", "/v1/limited", 45.1, 45.2, 429, "rate_limited"),
                ("r2", 1, "limited", "/v1/limited", 45.5, 45.6, 503, "rate_limit_unavailable")]
    samples = [(11.0, g, 1000, 40) for g in (0, 1)] + [(59.5, 0, 1200, 40), (59.5, 1, 1000, 50)]
    report = synthetic_report(tmp_path, records, events=[("redis_kill", 44.0, 45.0, "")], samples=samples,
                              forwarded={"b"}, reload_windows=[(20.0, 20.5)])
    assert report["outcomes"][oracle.WRONGLY_ALLOWED] == 3  # a, b, e
    assert report["outcomes"][oracle.WRONGLY_REFUSED] == 2  # c, d
    assert report["outcomes"][oracle.FAILED_BY_RELOAD] == 1  # f
    assert report["outcomes"][oracle.UNEXPLAINED] == 1  # g
    failures = "\n".join(report["failures"])
    for expected in ("wrongly_allowed: 3", "wrongly_refused: 2", "failed_by_reload: 1", "unexplained_failure: 1",
                     "rate limit: admissions differ from the exact budget by",
                     "recovery after redis_kill on gateway 0: None s",
                     "gateway 1 still answered 1 store 503s after its first loop was back",
                     "rss_kib of gateway 0", "fds of gateway 1"):
        assert expected in failures, (expected, failures)
    assert report["rate_limit"]["worst_difference"] >= 80, report["rate_limit"]
    assert "rss_kib of gateway 1" not in failures and "fds of gateway 0" not in failures
