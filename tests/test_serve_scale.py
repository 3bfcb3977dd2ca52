#!/usr/bin/python3
"""Scale-out and overload tests of `sembed serve` (issue 11), black-box over HTTP on loopback.

Run from the repo root: /usr/bin/python3 tests/test_serve_scale.py build/sembed

- Scale-out: two servers on the default model (models/use-lite) behind Debian's nginx, run as
  this user from a config in a temp dir (pid, logs and every temp path inside it; nothing is
  written to /var or /etc). Client threads load /embed and /v1/embeddings through nginx while
  one server is killed (SIGKILL), restarted, and then the other is stopped with SIGTERM and
  restarted (a rolling restart). Not one client request may fail, and every vector must be
  within 1e-6 of `sembed encode`'s.
- Overload: one server with --max-concurrent-requests 8 and 64 concurrent clients: some 429s
  with TEI's (or OpenAI's) error body, nothing else but 200s, every 200 correct, no crash. A 429
  leaves the client's keep-alive connection open, and a 65th idle connection is still served
  (--max-concurrent-requests limits requests, not connections).

The texts are STS-B test sentences (tests/fixtures/eval/stsbenchmark.tsv.gz, a seeded sample).
nginx, the servers and the clients are stopped by PID at the end, even on failure.
Prints "test_serve_scale: N passed, N failed" and exits non-zero on failure.
"""
import base64, ctypes, gzip, http.client, json, os, random, shutil, signal, socket, subprocess, sys, tempfile, \
    threading, time

import numpy as np

from clitest import SEMBED, check, report
from test_serve import MODEL, Server, encode_ref, f32, hold_request, finish_held, is_openai_error, is_tei_error, \
    maxdiff, read_response

STSB = "tests/fixtures/eval/stsbenchmark.tsv.gz"
TOL = 1e-6
_children = []  # every process this test started (stopped by PID in cleanup)


def stsb_sentences(n, seed=11):
    """n distinct STS-B test-split sentences, a seeded sample."""
    rows = gzip.open(STSB, "rt", encoding="utf-8").read().replace("\r", "").split("\n")[1:]
    sents = sorted({s for r in rows if r.startswith("test\t") for s in r.split("\t")[6:8] if s.strip()})
    return random.Random(seed).sample(sents, n)


def free_port():
    """A loopback port free right now (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent():
    """preexec_fn: the child gets SIGKILL if this test process dies, so no nginx outlives it."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start_server(port, *args):
    """`sembed serve` on the default model on a fixed port (the last --port wins over Server's --port 0)."""
    s = Server("-m", MODEL, "--port", str(port), *args)
    _children.append(s.p)
    return s


def n_posts(s):
    """The POST requests a server has answered (its log lines)."""
    return sum(1 for l in list(s.lines) if " POST " in l)


def start_nginx(d, port, upstreams):
    """Debian's nginx as this user, one process, from DIR/nginx.conf: an upstream of the servers with
    retries on error/timeout/502/503 including POSTs (non_idempotent: an embedding is a pure function
    of its input, so sending it again to the other server is safe), keep-alive to the upstreams.
    Returns (Popen, config text)."""
    servers = "".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=1s;\n" for p in upstreams)
    conf = f"""# written by tests/test_serve_scale.py
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log error;
events {{ worker_connections 512; }}
http {{
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    log_format up '$status $request_uri upstream=[$upstream_addr] upstream_status=[$upstream_status]';
    access_log {d}/access.log up;
    client_max_body_size 2m;
    upstream sembed {{
{servers}        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://sembed;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    p = subprocess.Popen([exe, "-p", d, "-c", os.path.join(d, "nginx.conf"), "-e", os.path.join(d, "error.log")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=die_with_parent)
    _children.append(p)
    deadline = time.time() + 10
    while time.time() < deadline and p.poll() is None:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            st = c.getresponse().status
            c.close()
            if st == 200:
                break
        except OSError:
            pass
        time.sleep(0.05)
    return p, conf


def stop_pid(p, sig=signal.SIGTERM, timeout=30):
    """Sends sig to one process we started and waits; SIGKILL when it does not exit in time."""
    if p.poll() is None:
        p.send_signal(sig)
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return None


def cleanup():
    for p in _children:
        if p.poll() is None:
            stop_pid(p, signal.SIGKILL, 5)


class Load:
    """Client threads, each on one keep-alive connection to host:port, sending 1..max_texts texts a
    request to /embed, /v1/embeddings (float) and /v1/embeddings (base64) in turn, until stopped.
    Records every failure (an exception or a status other than 200) and every vector's distance
    from the reference."""

    def __init__(self, port, pool, ref, n_threads, max_texts, seed=1):
        self.port, self.pool, self.ref, self.max_texts = port, pool, ref, max_texts
        self.done, self.failures, self.worst, self.n_vectors = 0, [], 0.0, 0
        self.lock, self.stopping = threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(seed * 1000 + i,), daemon=True)
                        for i in range(n_threads)]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=90)

    def wait_done(self, n, timeout=60):
        """Waits until n more requests have completed (True) or timeout (False)."""
        goal, deadline = self.done + n, time.time() + timeout
        while self.done < goal and time.time() < deadline:
            time.sleep(0.02)
        return self.done >= goal

    def _run(self, seed):
        r = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        k = 0
        while not self.stopping.is_set():
            idx = [r.randrange(len(self.pool)) for _ in range(r.randint(1, self.max_texts))]
            texts = [self.pool[i] for i in idx]
            route = ("embed", "float", "base64")[k % 3]
            k += 1
            try:
                if route == "embed":
                    body = {"inputs": texts}
                    conn.request("POST", "/embed", json.dumps(body), {"Content-Type": "application/json"})
                else:
                    body = {"input": texts, "model": "use-lite", "encoding_format": route}
                    conn.request("POST", "/v1/embeddings", json.dumps(body), {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 200:
                    with self.lock:
                        self.failures.append(f"{route}: {resp.status} {data[:200]!r}")
                    continue
                b = json.loads(data)
                if route == "embed":
                    got = f32(b)
                elif route == "float":
                    got = f32([d["embedding"] for d in b["data"]])
                else:
                    got = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in b["data"]])
                diff = maxdiff(got, self.ref[idx])
            except Exception as e:  # noqa: BLE001 - a failed client request, reported
                with self.lock:
                    self.failures.append(f"{route}: {e!r}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                continue
            with self.lock:
                self.done += 1
                self.n_vectors += len(idx)
                self.worst = max(self.worst, diff)
        conn.close()


# ==== scale-out: two servers behind nginx, a SIGKILL and a rolling restart under load ====

def test_scale_out(pool, ref):
    d = tempfile.mkdtemp(prefix="sembed-scale-")
    pa, pb, pn = free_port(), free_port(), free_port()
    a, b = start_server(pa), start_server(pb)
    check("scale: both servers started", a.port == pa and b.port == pb, "".join(a.lines + b.lines))
    ngx, _ = start_nginx(d, pn, [pa, pb])
    check("scale: nginx started from its temp-dir config", ngx.poll() is None,
          ngx.stderr.read().decode() if ngx.poll() is not None else "")
    if ngx.poll() is not None or a.port != pa or b.port != pb:
        return d
    load = Load(pn, pool, ref, n_threads=6, max_texts=8)
    load.start()
    phases = {}
    try:
        # 1. both servers take traffic
        deadline = time.time() + 30
        while time.time() < deadline and (n_posts(a) < 5 or n_posts(b) < 5):
            time.sleep(0.05)
        phases["both serving"] = n_posts(a) >= 5 and n_posts(b) >= 5
        # 2. SIGKILL one mid-load; the other carries on alone
        a.p.kill()
        a.p.wait()
        phases["served after SIGKILL of A"] = load.wait_done(15)
        # 3. restart A on its port; nginx sends it traffic again (fail_timeout=1s)
        a2 = start_server(pa)
        deadline = time.time() + 30
        while time.time() < deadline and n_posts(a2) < 5:
            time.sleep(0.05)
        phases["restarted A takes traffic"] = n_posts(a2) >= 5
        # 4. SIGTERM the other mid-load: it drains and exits 0, A takes everything
        b.p.send_signal(signal.SIGTERM)
        try:
            rc_b = b.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            rc_b = None
        check("scale: SIGTERM under load: B exits 0 after draining", rc_b == 0, str(rc_b))
        phases["served after SIGTERM of B"] = load.wait_done(15)
        # 5. restart B: both serve again
        b2 = start_server(pb)
        deadline = time.time() + 30
        while time.time() < deadline and n_posts(b2) < 5:
            time.sleep(0.05)
        phases["restarted B takes traffic"] = n_posts(b2) >= 5
    finally:
        load.stop()
    for name, ok in phases.items():
        check(f"scale: {name}", ok, f"{load.done} requests done, failures {load.failures[:3]}")
    check("scale: 0 failed client requests through kill and rolling restart", not load.failures,
          f"{len(load.failures)} failed: {load.failures[:5]}")
    check("scale: every vector within 1e-6 of sembed encode", load.n_vectors > 0 and load.worst <= TOL,
          f"worst {load.worst} over {load.n_vectors} vectors")
    # nginx did fail over: some requests went to two upstreams (connection refused, reset, or 503)
    with open(os.path.join(d, "access.log")) as f:
        acc = f.read().splitlines()
    retried = [l for l in acc if "upstream=[" in l and "," in l.split("upstream=[", 1)[1]]
    check("scale: nginx retried requests on the other server", len(retried) > 0, f"{len(acc)} lines")
    check("scale: nginx answered every request with 200", acc and all(l.startswith("200 ") for l in acc),
          str([l for l in acc if not l.startswith("200 ")][:5]))
    with open(os.path.join(d, "error.log")) as f:
        errs = f.read()
    print(f"test_serve_scale: {load.done} requests, {load.n_vectors} vectors, worst diff {load.worst:g}, "
          f"{len(retried)} retried; nginx errors: {errs.count('prematurely closed')} premature close, "
          f"{errs.count('Connection refused')} refused, {errs.count('reset by peer')} reset")
    for s in (a2, b2):
        check("scale: restarted server exits 0 on SIGTERM", s.stop() == 0)
    check("scale: nginx stops on SIGQUIT", stop_pid(ngx, signal.SIGQUIT, 10) == 0)
    return d


# ==== overload: --max-concurrent-requests 8, 64 concurrent clients ====

def test_overload(pool, ref, n_clients=64, rounds=2):
    s = start_server(free_port(), "--max-concurrent-requests", "8")
    check("overload: server started", s.port is not None, "".join(s.lines))
    if s.port is None:
        return
    results, lock = [], threading.Lock()
    barrier = threading.Barrier(n_clients)

    def client(i):
        r = random.Random(500 + i)
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        openai = i % 4 == 3
        try:
            conn.connect()
            barrier.wait(timeout=30)
        except Exception as e:  # noqa: BLE001
            with lock:
                results.append(("exception", repr(e), None, None))
            return
        for _ in range(rounds):
            idx = [r.randrange(len(pool)) for _ in range(r.randint(1, 4))]
            texts = [pool[j] for j in idx]
            try:
                if openai:
                    conn.request("POST", "/v1/embeddings", json.dumps({"input": texts, "encoding_format": "float"}),
                                 {"Content-Type": "application/json"})
                else:
                    conn.request("POST", "/embed", json.dumps({"inputs": texts}), {"Content-Type": "application/json"})
                resp = conn.getresponse()
                body = json.loads(resp.read())
                st = resp.status
            except Exception as e:  # noqa: BLE001
                with lock:
                    results.append(("exception", repr(e), None, None))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
                continue
            with lock:
                results.append(("openai" if openai else "tei", st, body, idx))
        conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    statuses = [r[1] for r in results]
    n429 = statuses.count(429)
    print(f"test_serve_scale: overload: {len(results)} requests, {statuses.count(200)} x 200, {n429} x 429")
    check("overload: every client request answered", len(results) == n_clients * rounds, str(len(results)))
    check("overload: no client errors", all(r[0] != "exception" for r in results),
          str([r for r in results if r[0] == "exception"][:3]))
    check("overload: only 200 and 429", all(st in (200, 429) for st in statuses), str(sorted(set(map(str, statuses)))))
    check("overload: some 429s", n429 > 0, str(n429))
    check("overload: some 200s", statuses.count(200) > 0)
    tei429 = [r[2] for r in results if r[0] == "tei" and r[1] == 429]
    oai429 = [r[2] for r in results if r[0] == "openai" and r[1] == 429]
    check("overload: TEI 429 body {error, error_type: overloaded}", tei429 and
          all(is_tei_error(b, "overloaded") for b in tei429), str(tei429[:2]))
    check("overload: OpenAI 429 body in OpenAI's envelope", all(is_openai_error(b) for b in oai429), str(oai429[:2]))
    worst = 0.0
    for kind, st, body, idx in results:
        if st == 200:
            got = f32(body) if kind == "tei" else f32([d["embedding"] for d in body["data"]])
            worst = max(worst, maxdiff(got, ref[idx]))
    check("overload: every 200 within 1e-6 of sembed encode", worst <= TOL, str(worst))
    check("overload: the server is still running", s.p.poll() is None)
    st, _, _ = s.request("POST", "/embed", {"inputs": pool[:2]})
    check("overload: served again afterwards", st == 200, str(st))
    check("overload: exit 0 on SIGTERM", s.stop() == 0)


def raw_post(sock, path, obj):
    """Sends one POST with a JSON body on a raw socket and reads the answer: (status, headers lower-cased, body)."""
    body = json.dumps(obj).encode()
    sock.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)
    out = b""
    while b"\r\n\r\n" not in out:
        b = sock.recv(65536)
        if not b:
            return None, "", None
        out += b
    head = out.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    rest = out.partition(b"\r\n\r\n")[2]
    n = int(head.split("content-length:")[1].split("\r\n")[0]) if "content-length:" in head else 0
    while len(rest) < n:
        b = sock.recv(65536)
        if not b:
            break
        rest += b
    return int(head.split(" ", 2)[1]), head, rest[:n]


def test_429_keeps_connection(pool):
    """A 429 is an answer on a healthy connection: the server reads (and drops) the refused body, so
    the client's keep-alive connection stays open and its next request is served, instead of the
    connection being closed under the client (which, with many clients, turns 429s into resets)."""
    s = start_server(free_port(), "--max-concurrent-requests", "1")
    held, rest = hold_request(s.port)
    time.sleep(0.3)
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    try:
        st, head, body = raw_post(sock, b"/embed", {"inputs": pool[:3]})
        check("429 keeps the connection: the refused request gets 429", st == 429, f"{st} {body}")
        check("429 keeps the connection: no Connection: close", "connection: close" not in head, head)
        finish_held(held, rest)
        try:
            st2, _, _ = raw_post(sock, b"/embed", {"inputs": pool[:1]})
        except OSError as e:
            st2 = repr(e)
        check("429 keeps the connection: the next request on it is served", st2 == 200, str(st2))
    finally:
        sock.close()
    check("429 keeps the connection: exit 0", s.stop() == 0)


def test_connections_beyond_requests(pool):
    """--max-concurrent-requests limits requests, not connections: with 8, a 65th idle keep-alive
    connection (a client pool, a proxy's keepalive) is still answered, not reset."""
    s = start_server(free_port(), "--max-concurrent-requests", "8")
    idle = [socket.create_connection(("127.0.0.1", s.port), timeout=30) for _ in range(64)]
    time.sleep(0.3)
    try:
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
        st, _, body = raw_post(sock, b"/embed", {"inputs": pool[:1]})
        sock.close()
    except OSError as e:
        st, body = repr(e), None
    check("65 keep-alive connections with --max-concurrent-requests 8: the 65th is served", st == 200, str(st))
    for c in idle:
        c.close()
    check("65 connections: exit 0", s.stop() == 0)


def main():
    if not os.path.exists(os.path.join(MODEL, "model.safetensors")):
        check("the default model is there (./setup.sh makes models/use-lite)", False)
        report("test_serve_scale")
    if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
        check("nginx is installed (Debian package nginx)", False)
        report("test_serve_scale")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a killed run still stops its children
    pool = stsb_sentences(48) + ["Ünïcödé café naïve", "x"]
    ref = encode_ref(MODEL, pool)
    check("reference vectors from sembed encode", ref is not None and ref.shape == (len(pool), 512))
    if ref is None:
        report("test_serve_scale")
    d = None
    try:
        d = test_scale_out(pool, ref)
        test_429_keeps_connection(pool)
        test_connections_beyond_requests(pool)
        test_overload(pool, ref)
    finally:
        cleanup()
        if d:
            shutil.rmtree(d, ignore_errors=True)
    report("test_serve_scale")


if __name__ == "__main__":
    main()
