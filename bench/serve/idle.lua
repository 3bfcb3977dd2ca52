-- wrk script of bench/serve: one fixed body (SEMBED_BENCH_BODY, one 16-token text) again and
-- again, for the idle latency with one connection (wrk -t1 -c1). done() prints one line
-- "SEMBED_JSON {...}"; non-2xx responses are counted.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("SEMBED_BENCH_BODY")
local threads = {}

-- setup (main state): keeps each thread for done()
function setup(thread)
    threads[#threads + 1] = thread
end

-- init (each thread's state): its counter
function init(args)
    non2xx = 0
end

-- response: counts what is not 2xx
function response(status, headers, body)
    if status < 200 or status >= 300 then non2xx = non2xx + 1 end
end

-- done (main state): latency percentiles as JSON
function done(summary, latency, requests)
    local bad = 0
    for _, t in ipairs(threads) do bad = bad + t:get("non2xx") end
    io.write(string.format('SEMBED_JSON {"duration_s":%.3f,"requests":%d,"non2xx":%d,' ..
        '"latency_ms":{"p50":%.3f,"p90":%.3f,"p99":%.3f,"mean":%.3f,"min":%.3f}}\n',
        summary.duration / 1e6, summary.requests, bad, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
        latency:percentile(99) / 1e3, latency.mean / 1e3, latency.min / 1e3))
end
