"""The soak's oracle: classifies every recorded request against the credentials' time-stamped
states, the active configuration and the fault windows, checks the invariants, and writes
the report (report.json, report.md, latency.svg and latency.png) to the results directory.

A request is a tuple (soak id, gateway index, credential name, path, sent, answered, status,
error code); times are time.monotonic() seconds; status -1 is a transport failure."""

import bisect
import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import plot

UPSTREAM_MARGIN = 0.5
STORE_UNAVAILABLE = {"auth_unavailable", "rate_limit_unavailable"}
STORE_FAULTS = {"redis_kill", "redis_pause"}
UPSTREAM_FAULTS = {"upstream_slow", "upstream_reset", "upstream_kill"}

# Outcomes; the first three must never occur.
WRONGLY_ALLOWED = "wrongly_allowed"
WRONGLY_REFUSED = "wrongly_refused"
FAILED_BY_RELOAD = "failed_by_reload"
UNEXPLAINED = "unexplained_failure"


def overlaps(sent, answered, windows) -> bool:
    return any(sent <= end and answered >= start for start, end in windows)


class Timeline:
    def __init__(self, events, config_timeline, reload_windows, recovery_bound):
        # A store 503 counts as caused by a store fault until the recovery bound after its end.
        self.store = [(s, e + recovery_bound) for kind, s, e, _ in events if kind in STORE_FAULTS]
        self.upstream = [(s, e + UPSTREAM_MARGIN) for kind, s, e, _ in events if kind in UPSTREAM_FAULTS]
        self.reloads = list(reload_windows) + [(s, e) for kind, s, e, _ in events if kind == "reload_invalid"]
        self.config_times = [t for t, _ in config_timeline]
        self.config_names = [name for _, name in config_timeline]

    def config_at(self, sent, answered):
        """The configuration certainly active for the whole request, or None inside a reload."""
        if overlaps(sent, answered, self.reloads):
            return None
        return self.config_names[bisect.bisect_right(self.config_times, sent) - 1]


def classify(rec, creds, timeline, forwarded) -> str:
    soak_id, _, name, path, sent, answered, status, code = rec
    in_store = overlaps(sent, answered, timeline.store)
    in_upstream = overlaps(sent, answered, timeline.upstream)
    in_reload = overlaps(sent, answered, timeline.reloads)
    if name.startswith("flow-"):
        must_allow, must_refuse, scope_ok = True, False, True
    else:
        cred = creds[name]
        must_refuse = sent >= cred["invalid_from"] or answered < cred.get("refused_until", -math.inf)
        must_allow = answered < cred["valid_until"] and sent >= cred.get("allowed_from", -math.inf)
        scope_ok = True
        if path == "/v1/flip":
            config = timeline.config_at(sent, answered)
            scope_ok = None if config is None else cred["flip"][config]
    if must_refuse and soak_id in forwarded:
        return WRONGLY_ALLOWED  # reached the upstream, whatever the answer
    if 200 <= status < 300:
        if must_refuse or scope_ok is False:
            return WRONGLY_ALLOWED
        return "allowed" if must_allow and scope_ok else "allowed (either was correct)"
    if status in (401, 403):
        if must_allow and scope_ok:
            return WRONGLY_REFUSED
        if status == 403 and code == "insufficient_scope" and scope_ok is False:
            return "refused: scope"
        if must_allow and scope_ok is None:
            return "refused: scope (inside a reload)" if code == "insufficient_scope" else WRONGLY_REFUSED
        return "refused"
    if status == 503 and code in STORE_UNAVAILABLE:
        return "503: store outage" if in_store else UNEXPLAINED
    if status in (502, 504) or (status == -1 and in_upstream):
        return f"{status if status > 0 else 'transport error'}: upstream fault" if in_upstream else (
            FAILED_BY_RELOAD if in_reload else UNEXPLAINED)
    if status == 503 and code == "busy" and name.startswith("flow-"):
        return "503: busy (login)"
    return FAILED_BY_RELOAD if in_reload else UNEXPLAINED


def rate_limit_check(records, timeline, events, rate, burst):
    """The limited route against an exact token bucket fed the same requests: within each
    stretch between two store faults (where the store's bucket and the simulated one may
    differ by at most what a fault can leave behind), admissions differ by at most one burst."""
    limited = sorted((r for r in records if r[3] == "/v1/limited"), key=lambda r: r[4])
    cuts = sorted((s, kind) for kind, s, _, _ in events if kind in STORE_FAULTS)
    segments = []
    bounds = [(float("-inf"), "start")] + cuts + [(float("inf"), "end")]
    for (lo, kind), (hi, _) in zip(bounds, bounds[1:]):
        # After a CLIENT PAUSE the store's bucket starts empty: the commands the gateway gave up
        # on during the pause run when it ends and take the tokens that accrued. After a
        # restart it starts full (the bucket's state survived, and it refilled meanwhile).
        tokens, last = (0.0 if kind == "redis_pause" else float(burst)), None
        admitted = simulated = 0
        for _, _, _, _, sent, _, status, code in limited:
            if not lo <= sent < hi:
                continue
            if status == -1 or (status == 503 and code in STORE_UNAVAILABLE):
                continue  # never reached a decision by the store
            if last is not None:
                tokens = min(float(burst), tokens + (sent - last) * rate)
            last = sent
            if tokens >= 1.0:
                tokens -= 1.0
                simulated += 1
            if status != 429:
                admitted += 1
        segments.append({"after": kind, "admitted": admitted, "exact_budget": simulated,
                         "difference": admitted - simulated})
    worst = max((abs(s["difference"]) for s in segments), default=0)
    return {"segments": segments, "worst_difference": worst, "burst": burst,
            "admitted": sum(s["admitted"] for s in segments), "exact_budget": sum(s["exact_budget"] for s in segments)}


def revocation_lags(classified, creds, revocation_bound):
    """For each credential whose state changed during the run: how long after the change
    (the end of the command that made it) its last 2xx was answered."""
    last = {}
    for rec, outcome in classified:
        cred = creds.get(rec[2])
        if cred and cred["invalid_from"] != math.inf and 200 <= rec[6] < 300:
            last[rec[2]] = max(last.get(rec[2], -math.inf), rec[5] - (cred["invalid_from"] - revocation_bound))
    return {name: round(lag, 3) for name, lag in sorted(last.items()) if lag > -math.inf}


def adoption_lags(classified, creds):
    """For each credential that became valid during the run (a key the provider published):
    how long after the publication its first 2xx was answered."""
    first = {}
    for rec, outcome in classified:
        cred = creds.get(rec[2])
        if cred and -math.inf < cred.get("refused_until", -math.inf) < math.inf and 200 <= rec[6] < 300:
            first[rec[2]] = min(first.get(rec[2], math.inf), rec[5] - cred["refused_until"])
    return {name: round(lag, 3) for name, lag in sorted(first.items())}


def recovery_check(records, events):
    """After each store fault: per instance, the first answer that is not a store 503
    (the store is back for that loop), and any store 503 to a request sent after it (another
    loop still refusing)."""
    results = []
    limited = [r for r in records if r[3] == "/v1/limited"]
    starts = sorted(s for kind, s, _, _ in events if kind in STORE_FAULTS)
    for kind, start, end, _ in events:
        if kind not in STORE_FAULTS:
            continue
        following = next((s for s in starts if s > start), float("inf"))
        for index in (0, 1):
            mine = sorted((r for r in limited if r[1] == index and end <= r[5] and r[4] < following), key=lambda r: r[5])
            first = next((r for r in mine if r[6] != -1 and not (r[6] == 503 and r[7] in STORE_UNAVAILABLE)), None)
            if first is None:
                results.append({"fault": kind, "gateway": index, "recovery_s": None, "late_503": 0, "late_by_s": 0})
                continue
            # Store 503s later than this are another incident (an unexplained failure).
            late = [r for r in mine if first[5] < r[4] < end + 5.0 and r[6] == 503 and r[7] in STORE_UNAVAILABLE]
            results.append({"fault": kind, "gateway": index, "recovery_s": round(first[5] - end, 3),
                            "late_503": len(late),
                            "late_by_s": round(max((r[5] - first[5] for r in late), default=0.0), 3)})
    return results


def resource_check(samples, load_started, warm_up, seconds):
    """RSS and open fds: the median of the samples of the two seconds after the warm-up
    against the median of the last two seconds of the load."""
    out = []
    for index in (0, 1):
        def window(lo, hi):
            return [s for s in samples if s[1] == index and lo <= s[0] < hi]

        early = window(load_started + warm_up, load_started + warm_up + 2.0)
        late = window(load_started + seconds - 2.0, load_started + seconds + 1.0)
        if not early or not late:
            out.append({"gateway": index, "error": "no samples"})
            continue
        entry = {"gateway": index}
        for field, column in (("rss_kib", 2), ("fds", 3)):
            before = sorted(s[column] for s in early)[len(early) // 2]
            after = sorted(s[column] for s in late)[len(late) // 2]
            entry[field] = {"after_warm_up": before, "end": after, "change": round((after - before) / before, 4),
                            "peak": max(s[column] for s in samples if s[1] == index)}
        out.append(entry)
    return out


def evaluate(records, events, samples, creds, config_timeline, reload_windows, forwarded, load_started, warm_up,
             seconds, rate, burst, results: Path, recovery_bound: float = 2.0, revocation_bound: float = 1.0) -> dict:
    timeline = Timeline(events, config_timeline, reload_windows, recovery_bound)
    outcomes = Counter()
    per_window = defaultdict(Counter)
    per_kind = defaultdict(Counter)
    bad = defaultdict(list)
    classified = []
    for rec in records:
        if rec[3] == "/v1/limited":
            outcome = {200: "allowed", 429: "429: over the budget"}.get(rec[6])
            if outcome is None:
                outcome = classify(rec, {"limited": {"invalid_from": math.inf, "valid_until": math.inf,
                                                     "flip": {}}}, timeline, forwarded)
        else:
            outcome = classify(rec, creds, timeline, forwarded)
        classified.append((rec, outcome))
        outcomes[outcome] += 1
        kind = "flow" if rec[2].startswith("flow-") else ("limited" if rec[2] == "limited" else creds[rec[2]]["kind"])
        per_kind[kind][outcome] += 1
        for kind_, start, end, detail in events:
            if kind_ in STORE_FAULTS or kind_ in UPSTREAM_FAULTS or kind_.startswith("reload"):
                if rec[4] <= end and rec[5] >= start:
                    per_window[f"{kind_} @{start - load_started:.1f}s"][outcome] += 1
        if outcome in (WRONGLY_ALLOWED, WRONGLY_REFUSED, FAILED_BY_RELOAD, UNEXPLAINED) and len(bad[outcome]) < 20:
            bad[outcome].append({"credential": rec[2], "gateway": rec[1], "path": rec[3],
                                 "sent_s": round(rec[4] - load_started, 3), "answered_s": round(rec[5] - load_started, 3),
                                 "status": rec[6], "code": rec[7]})
    rate_limit = rate_limit_check(records, timeline, events, rate, burst)
    lags = revocation_lags(classified, creds, revocation_bound)
    adoptions = adoption_lags(classified, creds)
    recovery = recovery_check(records, events)
    resources = resource_check(samples, load_started, warm_up, seconds)

    failures = []
    for outcome in (WRONGLY_ALLOWED, WRONGLY_REFUSED, FAILED_BY_RELOAD, UNEXPLAINED):
        if outcomes[outcome]:
            failures.append(f"{outcome}: {outcomes[outcome]} (first: {bad[outcome][:3]})")
    for entry in recovery:
        if entry["recovery_s"] is None or entry["recovery_s"] > recovery_bound:
            failures.append(f"recovery after {entry['fault']} on gateway {entry['gateway']}: {entry['recovery_s']} s "
                            f"(bound {recovery_bound} s)")
        if entry["late_503"]:
            failures.append(f"after {entry['fault']}, gateway {entry['gateway']} still answered {entry['late_503']} "
                            f"store 503s after its first loop was back (up to {entry['late_by_s']} s later)")
    if rate_limit["worst_difference"] > burst:
        failures.append(f"rate limit: admissions differ from the exact budget by {rate_limit['worst_difference']} "
                        f"(> one burst, {burst}): {rate_limit['segments']}")
    for entry in resources:
        if "error" in entry:
            failures.append(f"resources of gateway {entry['gateway']}: {entry['error']}")
            continue
        for field in ("rss_kib", "fds"):
            if abs(entry[field]["change"]) > 0.10:
                failures.append(f"{field} of gateway {entry['gateway']}: {entry[field]} (more than 10% from its "
                                "level after the warm-up)")
    for kind, start, end, detail in events:
        if kind == "harness_error" or (kind.startswith(("reload", "cert_rotation")) and "as expected" not in detail):
            failures.append(f"{kind} at {start - load_started:.1f}s: {detail}")

    faults = Counter(kind for kind, _, _, _ in events)
    report = {
        "seconds": seconds, "requests": len(records), "outcomes": dict(outcomes),
        "per_credential_kind": {k: dict(v) for k, v in per_kind.items()},
        "faults_injected": dict(faults),
        "events": [{"kind": k, "start_s": round(s - load_started, 3), "end_s": round(e - load_started, 3), "detail": d}
                   for k, s, e, d in events],
        "per_fault_window": {k: dict(v) for k, v in per_window.items()},
        # One sample in ten (every 5 s) per instance: (seconds, RSS KiB, open fds).
        "resource_samples": {index: [(round(t - load_started, 1), rss, fds)
                                     for t, g, rss, fds in [s for s in samples if s[1] == index][::10]]
                             for index in (0, 1)},
        "rate_limit": rate_limit, "recovery": recovery, "recovery_bound": recovery_bound, "resources": resources,
        "last_2xx_after_state_change_s": lags, "first_2xx_after_key_published_s": adoptions, "revocation_bound": revocation_bound,
        "violations": {k: v for k, v in bad.items()}, "failures": failures,
    }
    report["summary_text"] = summary_text(report)
    results.mkdir(parents=True, exist_ok=True)
    (results / "report.json").write_text(json.dumps(report, indent=2, default=str))
    with open(results / "records.csv", "w") as f:
        f.write("id,gateway,credential,path,sent_s,answered_s,status,code,outcome\n")
        for rec, outcome in classified:
            f.write(f"{rec[0]},{rec[1]},{rec[2]},{rec[3]},{rec[4] - load_started:.4f},{rec[5] - load_started:.4f},"
                    f"{rec[6]},{rec[7]},{outcome}\n")
    (results / "report.md").write_text(report["summary_text"] + "\n")
    plot.latency_svg(results / "latency.svg", records, events, load_started, seconds)
    plot.render_png(results / "latency.svg", results / "latency.png")
    return report


def summary_text(report) -> str:
    lines = [f"# Soak report: {report['seconds']:.0f} s, {report['requests']} requests",
             "", "## Outcomes", ""]
    lines += [f"- {name}: {count}" for name, count in sorted(report["outcomes"].items(), key=lambda i: -i[1])]
    lines += ["", "## Faults injected", ""]
    lines += [f"- {name}: {count}" for name, count in sorted(report["faults_injected"].items())]
    lines += ["", "## Per fault window", ""]
    for window, counts in report["per_fault_window"].items():
        lines.append(f"- {window}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda i: -i[1])))
    rl = report["rate_limit"]
    lines += ["", "## Invariants", "",
              f"- wrongly allowed: {report['outcomes'].get(WRONGLY_ALLOWED, 0)} (must be 0)",
              f"- wrongly refused (401/403 for a valid credential): {report['outcomes'].get(WRONGLY_REFUSED, 0)} "
              "(must be 0)",
              f"- failed by a reload: {report['outcomes'].get(FAILED_BY_RELOAD, 0)} (must be 0)",
              f"- other unexplained failures: {report['outcomes'].get(UNEXPLAINED, 0)} (must be 0)",
              f"- rate limit: {rl['admitted']} admitted, exact budget {rl['exact_budget']}, worst stretch off by "
              f"{rl['worst_difference']} (at most one burst, {rl['burst']})"]
    for entry in report["recovery"]:
        lines.append(f"- recovery after {entry['fault']} on gateway {entry['gateway']}: {entry['recovery_s']} s "
                     f"(<= {report['recovery_bound']} s), store 503s after the first loop was back: {entry['late_503']}")
    lags = report["last_2xx_after_state_change_s"]
    if lags:
        lines.append(f"- last 2xx after a revocation, logout, disable or expiry (bound {report['revocation_bound']} s): "
                     + ", ".join(f"{name} {lag:+.3f} s" for name, lag in lags.items()))
    adoptions = report["first_2xx_after_key_published_s"]
    if adoptions:
        lines.append("- first 2xx of a token of a key the provider published during the run: "
                     + ", ".join(f"{name} {lag:+.3f} s" for name, lag in adoptions.items()))
    for entry in report["resources"]:
        if "error" not in entry:
            lines.append(f"- gateway {entry['gateway']}: RSS {entry['rss_kib']['after_warm_up']} -> "
                         f"{entry['rss_kib']['end']} KiB ({entry['rss_kib']['change']:+.1%}), fds "
                         f"{entry['fds']['after_warm_up']} -> {entry['fds']['end']} ({entry['fds']['change']:+.1%})")
    lines += ["", "## Verdict", ""]
    lines += [f"- FAIL: {f}" for f in report["failures"]] or ["- PASS: every invariant held"]
    return "\n".join(lines)
