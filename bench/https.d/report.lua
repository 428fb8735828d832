-- wrk script: print one JSON line at the end (requests/s, bytes/s, latency percentiles in
-- microseconds, errors) so bench/https can tabulate runs without parsing wrk's prose.
function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"rps":%.1f,"bytes_per_s":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"mean_us":%.1f,"errors":%d,"non2xx":%d}\n',
    summary.requests, summary.requests / secs, summary.bytes / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.connect + e.read + e.write + e.timeout, e.status))
end
