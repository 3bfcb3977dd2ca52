-- wrk script of bench/serve: each request POSTs one prepared body (1-16 STS-B sentences, TEI's
-- {"inputs"} or OpenAI's {"input", "encoding_format": "base64"}, written by bench_serve.py, one "COUNT<TAB>JSON" line each, file named by
-- SEMBED_BENCH_BODIES). wrk thread t of T sends bodies t, t+T, t+2T, ... (wrapping), so the
-- sentences sent are known from each thread's count of requests: bench_serve.py rebuilds that
-- multiset for the offline peer. Responses that are not 2xx are counted here (wrk's own
-- "status" error counts only >= 400), and the vectors of 2xx responses are counted.
-- done() prints one line "SEMBED_JSON {...}".

local bodies = {}
for line in io.lines(os.getenv("SEMBED_BENCH_BODIES")) do
    local _, b = line:match("^(%d+)\t(.*)$")
    bodies[#bodies + 1] = b
end
local n_threads = tonumber(os.getenv("SEMBED_BENCH_WRK_THREADS") or "1")
local threads = {}
local next_id = 0

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

-- setup (main state): numbers each wrk thread and keeps it for done()
function setup(thread)
    thread:set("id", next_id)
    next_id = next_id + 1
    threads[#threads + 1] = thread
end

-- init (each thread's state): its counters
function init(args)
    sent, ok, non2xx, vectors = 0, 0, 0, 0
end

-- request: the thread's next body
function request()
    local i = (id + sent * n_threads) % #bodies + 1
    sent = sent + 1
    return wrk.format(nil, nil, nil, bodies[i])
end

-- response: a 2xx TEI body [[...],[...]] has one "],[" between each two vectors; an OpenAI
-- body one "embedding" key per vector
function response(status, headers, body)
    if status >= 200 and status < 300 then
        ok = ok + 1
        if body:sub(1, 1) == "[" then
            local _, n = body:gsub("%],%[", "")
            vectors = vectors + n + 1
        else
            local _, n = body:gsub('"embedding":', "")
            vectors = vectors + n
        end
    else
        non2xx = non2xx + 1
    end
end

-- done (main state): the summary, latency percentiles and each thread's counters as JSON
function done(summary, latency, requests)
    local per, s_ok, s_non2xx, s_vec = {}, 0, 0, 0
    for _, t in ipairs(threads) do
        per[#per + 1] = string.format('{"id":%d,"sent":%d}', t:get("id"), t:get("sent"))
        s_ok = s_ok + t:get("ok")
        s_non2xx = s_non2xx + t:get("non2xx")
        s_vec = s_vec + t:get("vectors")
    end
    local e = summary.errors
    io.write(string.format('SEMBED_JSON {"duration_s":%.3f,"requests":%d,"ok":%d,"non2xx":%d,"vectors":%d,' ..
        '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
        '"latency_ms":{"p50":%.3f,"p90":%.3f,"p99":%.3f,"mean":%.3f,"max":%.3f},"threads":[%s]}\n',
        summary.duration / 1e6, summary.requests, s_ok, s_non2xx, s_vec,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
        latency.mean / 1e3, latency.max / 1e3, table.concat(per, ",")))
end
