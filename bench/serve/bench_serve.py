#!/usr/bin/python3
"""Load benchmark of `sembed serve` (issue 11); prints one JSON object on stdout.

Run from the repo root (bench/serve/run.sh builds first, then runs this):
    /usr/bin/python3 bench/serve/bench_serve.py [--quick] [--sembed build/sembed] [--model models/use-lite]

1. load:    wrk (load.lua), --connections connections, each request 1-16 STS-B test sentences
            (tests/fixtures/eval/stsbenchmark.tsv.gz, a seeded choice), for --duration seconds:
            requests/s, sentences/s, latency p50/p90/p99, errors (non-2xx counted in Lua).
2. offline: `sembed encode` over the same multiset of sentences (rebuilt from wrk's per-thread
            request counts), the same --threads: sentences/s; ratio server/offline (goal >= 0.9).
3. idle:    one 16-token text, one connection (wrk -t1 -c1, idle.lua): p50, against the 1x16
            latency of `sembed bench`, in alternating rounds, medians (goal: p50 <= that + 0.3 ms).
4. soak:    VmRSS of the server (/proc/PID/status) every --soak-every seconds during --soak
            seconds of the same load: min/max/first/last (goal: flat within +-5% after warm-up).
--quick runs about a minute in all; the default about 14 minutes. Progress goes to stderr.
"""
import argparse, gzip, json, os, platform, random, resource, shutil, signal, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
STSB = "tests/fixtures/eval/stsbenchmark.tsv.gz"
WORDS = ["the", "house", "water", "people", "city", "music", "light", "garden", "\u2581the", "a"]  # as cli_bench.c


def log(msg):
    print(f"bench_serve: {msg}", file=sys.stderr, flush=True)


def stsb_sentences():
    """The STS-B test split's sentences (both columns, in file order, CR stripped)."""
    rows = gzip.open(STSB, "rt", encoding="utf-8").read().replace("\r", "").split("\n")[1:]
    return [s for r in rows if r.startswith("test\t") for s in r.split("\t")[6:8]]


def make_bodies(path, sents, n, seed, openai=False):
    """n request bodies of 1-16 sentences each (seeded), TEI's or OpenAI's with base64 vectors;
    returns the list of sentence lists."""
    r = random.Random(seed)
    reqs = [[sents[r.randrange(len(sents))] for _ in range(r.randint(1, 16))] for _ in range(n)]
    with open(path, "w", encoding="utf-8") as f:
        for q in reqs:
            body = {"input": q, "encoding_format": "base64"} if openai else {"inputs": q}
            f.write(f"{len(q)}\t{json.dumps(body, ensure_ascii=False)}\n")
    return reqs


def sent_multiset(reqs, threads):
    """The sentences wrk sent: thread t sends bodies t, t+T, ... (load.lua), threads = [{id, sent}]."""
    T = len(threads)
    out = []
    for th in threads:
        out.extend(s for k in range(th["sent"]) for s in reqs[(th["id"] + k * T) % len(reqs)])
    return out


def run_wrk(script, url, conns, wthreads, seconds, env, latency=True):
    """Runs wrk with a Lua script; returns the JSON its done() printed (and wrk's text on failure)."""
    cmd = ["wrk", "-t", str(wthreads), "-c", str(conns), "-d", f"{seconds}s", "--timeout", "120s",
           "-s", os.path.join(HERE, script)] + (["--latency"] if latency else []) + [url]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    for line in p.stdout.splitlines():
        if line.startswith("SEMBED_JSON "):
            return json.loads(line[len("SEMBED_JSON "):])
    raise RuntimeError(f"wrk failed ({p.returncode}): {p.stdout[-2000:]} {p.stderr[-2000:]}")


def steady_rate(done, t0, t1):
    """Sentences/s from the server's answer times in [t0, t1]: the sentences answered after the first
    answer, over the time from the first answer to the last. wrk's count over its whole window is
    biased low when answers come in bursts (one forward pass answers every queued request at once)."""
    xs = [(t, n) for t, n, st in done if t0 <= t <= t1 and st == 200]
    if len(xs) < 2 or xs[-1][0] <= xs[0][0]:
        return None
    return sum(n for _, n in xs[1:]) / (xs[-1][0] - xs[0][0])


def children_cpu_s():
    """CPU time (user + system) of the waited-for child processes so far (wrk, sembed encode)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def text_of_16_tokens(sembed, model):
    """A text of exactly 16 token ids (specials included), built as `sembed bench` builds it."""
    def n_ids(t):
        p = subprocess.run([sembed, "tokenize", "-m", model, "--jsonl-input"], input=json.dumps(t) + "\n",
                           capture_output=True, text=True, check=True)
        return len(json.loads(p.stdout))
    base = n_ids("")
    for w in WORDS:
        if n_ids(w) == base + 1:
            t = " ".join([w] * (16 - base))
            if n_ids(t) == 16:
                return t
    raise RuntimeError("no 16-token text for this tokenizer")


class Server:
    """`sembed serve` on a free port. Its stderr (one log line per request, flushed when the request
    is answered) is read as it comes: each POST's arrival time and input count is recorded."""

    def __init__(self, sembed, model, threads, logpath):
        self.log = open(logpath, "w+")
        self.p = subprocess.Popen([sembed, "serve", "-m", model, "--port", "0", "-t", str(threads)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = self.p.stderr.readline()
        if " on http://" not in line:
            raise RuntimeError(f"server did not start: {line}")
        self.url = line.rsplit("http://", 1)[1].strip().rstrip("/")
        self.url = "http://" + self.url
        self.done = []  # (monotonic time, inputs, status) of each answered POST
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.p.stderr:
            t = time.monotonic()
            self.log.write(line)
            f = line.split()
            if len(f) >= 5 and f[2] == "POST":
                inputs = next((int(x[7:]) for x in f if x.startswith("inputs=")), 0)
                self.done.append((t, inputs, int(f[4]) if f[4].isdigit() else 0))

    def cpu_s(self):
        """The server's CPU time so far (user + system, /proc/PID/stat)."""
        with open(f"/proc/{self.p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_idle(self, timeout=600):
        """Waits until the server uses no CPU for half a second: when wrk stops, the requests it
        abandoned are still being computed, and the next measurement starts after them."""
        deadline = time.monotonic() + timeout
        last = self.cpu_s()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.cpu_s()
            if now - last < 0.02:
                return True
            last = now
        return False

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="about one minute: 15 s load, 20 s soak")
    ap.add_argument("--sembed", default="build/sembed")
    ap.add_argument("--model", default="models/use-lite")
    ap.add_argument("--threads", type=int, default=2, help="the server's and the offline peer's threads")
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--duration", type=int, default=None, help="load seconds (default 60; --quick 15)")
    ap.add_argument("--idle", type=int, default=None, help="idle-latency seconds per round (default 6; --quick 3)")
    ap.add_argument("--idle-rounds", type=int, default=None, help="idle rounds (default 5; --quick 3)")
    ap.add_argument("--soak", type=int, default=None, help="soak seconds (default 600; --quick 20)")
    ap.add_argument("--soak-every", type=int, default=None, help="RSS sample period (default 10; --quick 2)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--base64", type=int, default=None,
                    help="seconds of the same load on /v1/embeddings with base64 vectors, for its CPU per "
                         "sentence (default 30; --quick 10; 0: skip)")
    ap.add_argument("-o", "--output", help="also write the JSON to this file")
    a = ap.parse_args()
    q = a.quick
    a.duration = a.duration or (15 if q else 60)
    a.idle = a.idle or (3 if q else 6)
    a.idle_rounds = a.idle_rounds or (3 if q else 5)
    a.soak = a.soak if a.soak is not None else (20 if q else 600)
    a.soak_every = a.soak_every or (2 if q else 10)
    a.base64 = a.base64 if a.base64 is not None else (10 if q else 30)

    tmp = tempfile.mkdtemp(prefix="sembed-bench-serve-")
    bodies = os.path.join(tmp, "bodies.txt")
    sents = stsb_sentences()
    reqs = make_bodies(bodies, sents, 4096, a.seed)
    env = {"SEMBED_BENCH_BODIES": bodies, "SEMBED_BENCH_WRK_THREADS": str(a.wrk_threads)}
    out = {"bench": "serve", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "quick": q,
           "model": a.model, "threads": a.threads,
           "machine": {"cpus": os.cpu_count(), "cpu": cpu_name(), "kernel": platform.release(),
                       "loadavg_before": os.getloadavg()[0]},
           "texts": {"source": STSB + " (test split, sentence1 and sentence2)", "seed": a.seed,
                     "bodies": len(reqs), "sentences_per_request": "1-16 (uniform)", "route": "POST /embed"}}
    srv = Server(a.sembed, a.model, a.threads, os.path.join(tmp, "server.log"))
    try:
        url = srv.url + "/embed"
        out["rss_mb_at_start"] = rss_kb(srv.p.pid) / 1024
        log(f"server {srv.url} (pid {srv.p.pid}); warm-up 3 s")
        w = run_wrk("load.lua", url, a.connections, a.wrk_threads, 3, env)
        srv.wait_idle()

        # 1. load
        log(f"load: {a.connections} connections, {a.duration} s")
        t0, c0, cw0 = time.monotonic(), srv.cpu_s(), children_cpu_s()
        w = run_wrk("load.lua", url, a.connections, a.wrk_threads, a.duration, env)
        t1, cw1 = time.monotonic(), children_cpu_s()
        dur = w["duration_s"]
        srv.wait_idle()
        srv_cpu = srv.cpu_s() - c0
        steady = steady_rate(srv.done, t0, t1)
        out["load"] = {"connections": a.connections, "wrk_threads": a.wrk_threads, "duration_s": dur,
                       "requests": w["requests"], "requests_per_s": w["ok"] / dur, "sentences": w["vectors"],
                       "sentences_per_s": w["vectors"] / dur, "latency_ms": w["latency_ms"],
                       "sentences_per_s_steady": steady, "non2xx": w["non2xx"], "errors": w["errors"],
                       "wrk_cpu_s": cw1 - cw0, "server_cpu_s": srv_cpu}
        log(f"load: {out['load']['requests_per_s']:.1f} req/s, {out['load']['sentences_per_s']:.1f} sentences/s")

        # 2. offline peer on the same multiset of sentences
        ms = sent_multiset(reqs, w["threads"])
        inp = os.path.join(tmp, "offline.jsonl")
        with open(inp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in ms)
        log(f"offline: sembed encode of the {len(ms)} sentences sent")
        t0, c0 = time.perf_counter(), children_cpu_s()
        subprocess.run([a.sembed, "encode", "-m", a.model, "-t", str(a.threads), "--jsonl-input", "-q", "-i", inp,
                        "-f", "f32", "-o", "/dev/null"], check=True)
        t_off, off_cpu = time.perf_counter() - t0, children_cpu_s() - c0
        out["offline"] = {"command": f"sembed encode -m {a.model} -t {a.threads} --jsonl-input -f f32 (batch 32)",
                          "sentences": len(ms), "seconds": t_off, "sentences_per_s": len(ms) / t_off, "cpu_s": off_cpu,
                          "note": "the sentences of every request wrk sent; the server's count is of the answered "
                                  "ones (up to one request per connection fewer)"}
        out["ratio_server_offline"] = out["load"]["sentences_per_s"] / out["offline"]["sentences_per_s"]
        out["ratio_server_offline_steady"] = steady / out["offline"]["sentences_per_s"] if steady else None
        # CPU time per sentence: the server's from the load's start until it is idle again (the
        # requests wrk abandoned included: the same multiset as the offline peer's)
        out["cpu_ms_per_sentence"] = {"server": 1e3 * srv_cpu / len(ms), "offline": 1e3 * off_cpu / len(ms),
                                      "wrk_per_answered": 1e3 * (cw1 - cw0) / max(1, w["vectors"])}
        log(f"offline: {out['offline']['sentences_per_s']:.1f} sentences/s; ratio {out['ratio_server_offline']:.3f}")

        # 2b. the same load with base64 vectors (OpenAI route): what writing floats as JSON text costs
        if a.base64 > 0:
            b64 = os.path.join(tmp, "bodies-b64.txt")
            make_bodies(b64, sents, 4096, a.seed, openai=True)
            log(f"load, base64: {a.base64} s on /v1/embeddings")
            c0 = srv.cpu_s()
            w64 = run_wrk("load.lua", srv.url + "/v1/embeddings", a.connections, a.wrk_threads, a.base64,
                          {**env, "SEMBED_BENCH_BODIES": b64})
            srv.wait_idle()
            n64 = len(sent_multiset(reqs, w64["threads"]))
            out["load_base64"] = {"route": "POST /v1/embeddings, encoding_format base64", "duration_s": w64["duration_s"],
                                  "sentences_per_s": w64["vectors"] / w64["duration_s"], "non2xx": w64["non2xx"],
                                  "errors": w64["errors"], "server_cpu_s": srv.cpu_s() - c0, "sentences_sent": n64}
            out["cpu_ms_per_sentence"]["server_base64"] = 1e3 * out["load_base64"]["server_cpu_s"] / n64

        # 3. idle latency: one 16-token text, one connection, in --idle-rounds rounds, each a wrk run
        # then an in-process `sembed bench` 1x16: both sides sampled alternately, so that a slow
        # stretch of the machine falls on both; the overhead compares their medians
        text = text_of_16_tokens(a.sembed, a.model)
        rounds = []
        for r in range(a.idle_rounds):
            wi = run_wrk("idle.lua", url, 1, 1, a.idle, {"SEMBED_BENCH_BODY": json.dumps({"inputs": [text]})})
            srv.wait_idle()
            b = subprocess.run([a.sembed, "bench", "-m", a.model, "-t", str(a.threads), "--batch", "1", "--tokens",
                                "4", "--runs", "11"], capture_output=True, text=True, check=True)
            enc = [x for x in json.loads(b.stdout)["results"] if x["workload"] == "1x16"][0]["latency_ms"]
            rounds.append({"requests": wi["requests"], "non2xx": wi["non2xx"], "latency_ms": wi["latency_ms"],
                           "encode_1x16_ms": enc})
            log(f"idle round {r + 1}/{a.idle_rounds}: p50 {wi['latency_ms']['p50']:.3f} ms, encode 1x16 {enc:.3f} ms")
        med = lambda xs: sorted(xs)[len(xs) // 2]
        p50 = med([x["latency_ms"]["p50"] for x in rounds])
        enc_ms = med([x["encode_1x16_ms"] for x in rounds])
        out["idle"] = {"text_tokens": 16, "rounds": rounds, "seconds_per_round": a.idle,
                       "requests": sum(x["requests"] for x in rounds), "non2xx": sum(x["non2xx"] for x in rounds),
                       "p50_ms_median_of_rounds": p50, "encode_1x16_ms_median_of_rounds": enc_ms,
                       "encode_command": f"sembed bench -m {a.model} -t {a.threads} (1x16: median of 11 runs of 20 calls)",
                       "overhead_p50_ms": p50 - enc_ms}
        log(f"idle: p50 {p50:.3f} ms, encode 1x16 {enc_ms:.3f} ms (medians of {a.idle_rounds} rounds)")

        # 4. soak: RSS under the same load
        samples = []
        if a.soak > 0:
            log(f"soak: {a.soak} s, RSS every {a.soak_every} s")
            res = {}
            th = threading.Thread(target=lambda: res.update(
                w=run_wrk("load.lua", url, a.connections, a.wrk_threads, a.soak, env)))
            t0 = time.time()
            th.start()
            while th.is_alive():
                samples.append([round(time.time() - t0, 1), rss_kb(srv.p.pid) / 1024])
                th.join(timeout=a.soak_every)
            ws = res.get("w", {})
            warm = max(1, len(samples) // 10)  # the first tenth (at least one sample) is warm-up
            after = [s[1] for s in samples[warm:]] or [samples[-1][1]]
            base = after[0]
            out["soak"] = {"seconds": a.soak, "every_s": a.soak_every, "rss_mb": {
                "first": samples[0][1], "last": samples[-1][1], "min": min(s[1] for s in samples),
                "max": max(s[1] for s in samples), "after_warmup_first": base,
                "after_warmup_min": min(after), "after_warmup_max": max(after)},
                "after_warmup_band_pct": [100 * (min(after) - base) / base, 100 * (max(after) - base) / base],
                "warmup_samples": warm, "samples": samples,
                "requests": ws.get("requests"), "non2xx": ws.get("non2xx"), "errors": ws.get("errors"),
                "sentences_per_s": ws["vectors"] / ws["duration_s"] if ws else None}
            log(f"soak: RSS {out['soak']['rss_mb']}")
        out["machine"]["loadavg_after"] = os.getloadavg()[0]
        soak = out.get("soak")
        out["goals"] = {
            "non2xx_zero": out["load"]["non2xx"] == 0 and sum(out["load"]["errors"].values()) == 0
            and all(x["non2xx"] == 0 and sum(x["errors"].values()) == 0 for x in (soak, out.get("load_base64")) if x),
            "ratio_ge_0.9": out["ratio_server_offline"] >= 0.9,
            "idle_p50_le_encode_plus_0.3ms": out["idle"]["overhead_p50_ms"] <= 0.3,
            "rss_flat_5pct": bool(soak) and all(abs(x) <= 5 for x in soak["after_warmup_band_pct"])}
    finally:
        rc = srv.stop()
        out["server_exit"] = rc
        shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(out, indent=1)
    print(text)
    if a.output:
        with open(a.output, "w") as f:
            f.write(text + "\n")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


if __name__ == "__main__":
    main()
