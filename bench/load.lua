-- wrk script for bench/load.py: the request's headers from the environment, a JSON summary at the end.
-- Errors are socket errors (connect, read, write, timeout) plus every answer of status 400 or above (a 429 included).
local host = os.getenv("BENCH_LOAD_HOST")
local authorization = os.getenv("BENCH_LOAD_AUTHORIZATION")

wrk.headers["Host"] = host
if authorization ~= nil and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_LOAD_JSON {"requests": %d, "duration_us": %d, "requests_per_second": %.3f, '
      .. '"p50_ms": %.3f, "p99_ms": %.3f, "socket_errors": %d, "status_errors": %d, "errors": %d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    errors.connect + errors.read + errors.write + errors.timeout, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout + errors.status))
end
