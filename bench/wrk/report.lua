-- Loaded by bench/run.py with `wrk -s`. Defines only done(), so wrk's per-request path is
-- unchanged (no request()/response() callbacks); prints one machine-readable line at the end.
-- Latencies are in microseconds. "status" counts responses with a status >= 400 (wrk's own
-- "Non-2xx or 3xx responses" counter).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,' ..
    '"errors_connect":%.0f,"errors_read":%.0f,"errors_write":%.0f,"errors_timeout":%.0f,"non_2xx":%.0f,' ..
    '"latency_p50_us":%.0f,"latency_p90_us":%.0f,"latency_p99_us":%.0f,"latency_p999_us":%.0f,' ..
    '"latency_max_us":%.0f,"latency_mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
