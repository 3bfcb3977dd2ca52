#!/usr/bin/python3
"""The web page of `sembed serve` (GET / from a browser), in headless Chromium.

Run from the repo root: /usr/bin/python3 tests/test_serve_page.py build/sembed
Needs Debian's chromium (setup.sh installs it). One server on the default
model (models/use-lite), started with an API key and --max-client-batch-size 6:
  - HTTP: GET / and HEAD / answer the page (the bytes of src/web/index.html, text/html) to a
    request whose Accept lists text/html, without the key; other Accept values keep the JSON
    routes' answers; the page loads nothing from the network.
  - Chromium (--headless --dump-dom, driven by the page's query string): the heatmap's N x N
    cells equal, to the 4 decimals shown, the cosines of the server's own /embed vectors
    (numpy); a screenshot is saved to $BUILD/artefacts/serve-page.png; without the key the page
    shows the server's 401 message and a key field; 7 sentences show the server's 422 message.
  - The search box, against a stand-in server for /info and /search (the contract of POST
    /search), and against sembed itself when `sembed serve` has --index.
Prints "test_serve_page: N passed, N failed" and exits non-zero on failure.
"""
import base64, fcntl, html.parser, http.server, json, os, re, select, shutil, subprocess, sys, tempfile, threading, time
import urllib.parse

import numpy as np

from clitest import SEMBED, check, report, run
from test_serve import MODEL, Server, f32

BUILD = os.environ.get("BUILD", os.path.dirname(os.path.abspath(SEMBED)))
PAGE_SRC = "src/web/index.html"
KEY = "page-test-key"
SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
             "一个男人正在吃东西。"]


# ==== the DOM Chromium dumps ====

class Node:
    """An element of the dumped DOM: tag, attributes, children (Nodes and strings)."""

    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.children, self.parent = tag, dict(attrs), [], parent

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.walk()

    def find(self, pred):
        return [n for n in self.walk() if pred(n)]

    def by_id(self, i):
        found = self.find(lambda n: n.attrs.get("id") == i)
        return found[0] if found else None

    def hidden(self):
        """Hidden by its own or an ancestor's hidden attribute."""
        n = self
        while n is not None:
            if "hidden" in n.attrs:
                return True
            n = n.parent
        return False


class DomParser(html.parser.HTMLParser):
    """Chromium's serialised DOM (well-formed) into a Node tree."""
    VOID = {"meta", "link", "input", "br", "img", "hr", "col", "area", "base", "source", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in self.VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse_dom(text):
    p = DomParser()
    p.feed(text)
    return p.root


# ==== Chromium ====

def chromium_cmd():
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium for the whole test, driven over the DevTools protocol on a pipe
    (--remote-debugging-pipe: commands on its fd 3, answers on its fd 4, each JSON message ended by
    a NUL), so each page costs a tab, not a browser start. --no-sandbox only as root (Chromium's
    sandbox refuses to run as root)."""

    def __init__(self, profile):
        to_c, from_us = os.pipe()   # Chromium reads fd 3
        to_us, from_c = os.pipe()   # Chromium writes fd 4
        cmd = [chromium_cmd(), "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
               "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
               "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"]
        if os.geteuid() == 0:
            cmd.insert(2, "--no-sandbox")

        def fds():  # in the child: the pipe ends onto fds 3 and 4 (through high fds: they may be 3 or 4 now)
            a, b = fcntl.fcntl(to_c, fcntl.F_DUPFD, 20), fcntl.fcntl(from_c, fcntl.F_DUPFD, 20)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, close_fds=False, preexec_fn=fds)
        os.close(to_c)
        os.close(from_c)
        self.w, self.r, self.buf, self.next_id = from_us, to_us, b"", 0

    def _recv(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.time()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=None, timeout=60):
        """Sends one command and returns its result (events in between are dropped)."""
        self.next_id += 1
        m = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            m["sessionId"] = session
        os.write(self.w, json.dumps(m).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            a = self._recv(deadline)
            if a.get("id") == self.next_id:
                if "error" in a:
                    raise RuntimeError(f"{method}: {a['error']}")
                return a.get("result", {})

    def open(self, url, width=1100, height=820, timeout=30):
        """Opens url in a new tab of width x height and waits until <body data-state> is done or
        error (the page's scripts finished). Returns the tab's session."""
        tid = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = self.call("Target.attachToTarget", {"targetId": tid, "flatten": True})["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, sid)
        self.call("Page.navigate", {"url": url}, sid)
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = self.eval("document.body ? document.body.dataset.state : null", sid)
            if st in ("done", "error"):
                break
            time.sleep(0.05)
        return sid

    def eval(self, expr, sid):
        return self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, sid)["result"].get("value")

    def dom(self, url, **kw):
        """The page at url after its scripts ran, as a Node tree (None, counted as a failure, when
        Chromium fails). The tab's session is kept in self.last for more steps."""
        try:
            self.last = self.open(url, **kw)
            return self.snapshot(self.last)
        except (TimeoutError, EOFError, RuntimeError, ValueError) as e:
            check(f"chromium loads {url}", False, str(e))
            return None

    def snapshot(self, sid):
        """The tab's DOM now, as a Node tree."""
        return parse_dom(self.eval("document.documentElement.outerHTML", sid))

    def wait(self, expr, sid, timeout=30):
        """Polls the JS expression until it is true; returns whether it became so."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.eval(expr, sid):
                return True
            time.sleep(0.05)
        return False

    def screenshot(self, url, path, **kw):
        sid = self.open(url, **kw)
        png = base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"}, sid)["data"])
        with open(path, "wb") as f:
            f.write(png)

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except (TimeoutError, EOFError, RuntimeError, OSError):
            pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        os.close(self.w)
        os.close(self.r)


def body_state(dom):
    b = dom.find(lambda n: n.tag == "body") if dom else []
    return b[0].attrs.get("data-state") if b else None


def page_url(port, params, key=None):
    q = urllib.parse.urlencode(params, doseq=True, quote_via=urllib.parse.quote)
    return f"http://127.0.0.1:{port}/?{q}" + (f"#key={urllib.parse.quote(key)}" if key else "")


# ==== HTTP: who gets the page ====

def test_http(s, page):
    auth = {"Authorization": f"Bearer {KEY}"}
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
    st, body, h = s.request("GET", "/", headers={"Accept": browser})
    check("GET / (browser Accept, no key): 200 text/html; charset=utf-8",
          st == 200 and h.get("Content-Type") == "text/html; charset=utf-8", f"{st} {h.get('Content-Type')}")
    check("GET /: the bytes of src/web/index.html", body == page, f"{len(body or b'')} vs {len(page)} bytes")
    st, body, h = s.request("HEAD", "/", headers={"Accept": "text/html"})
    check("HEAD / (text/html): 200, the page's Content-Length, no body",
          st == 200 and h.get("Content-Length") == str(len(page)) and not body, f"{st} {h}")
    for accept in ("application/json, TEXT/HTML;q=0.5", "text/html ; q=1.0"):
        st, body, _ = s.request("GET", "/", headers={"Accept": accept})
        check(f"GET / Accept {accept!r}: the page", st == 200 and body == page, str(st))
    # not a browser: today's answers (401 without the key, 405 with it: / is POST-only for TEI)
    for accept in (None, "*/*", "application/json", "text/*", "text/html;q=0", "text/htmlx"):
        h = {"Accept": accept} if accept else {}
        st, body, _ = s.request("GET", "/", headers=h)
        check(f"GET / Accept {accept!r}, no key: 401 JSON, not the page",
              st == 401 and isinstance(body, dict) and "error" in body, f"{st} {body!r:.200}")
        st, body, _ = s.request("GET", "/", headers={**h, **auth})
        check(f"GET / Accept {accept!r}, key: 405 JSON, not the page",
              st == 405 and isinstance(body, dict) and "error" in body, f"{st} {body!r:.200}")
    st, body, _ = s.request("GET", "/info", headers={"Accept": "text/html"})
    check("GET /info with Accept text/html, no key: still 401 (only / is the page)", st == 401, str(st))
    st, body, _ = s.request("POST", "/", {"inputs": "x"}, headers={"Accept": "text/html", **auth})
    check("POST / with Accept text/html: TEI embed, not the page", st == 200 and isinstance(body, list), str(st))
    # self-contained: nothing fetched from another host (no CDN, no web fonts)
    text = page.decode("utf-8")
    ext = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import""", text)
    check("the page loads nothing from the network", not ext, str(ext))


# ==== Chromium: the heatmap ====

def test_heatmap(s, br):
    st, vecs, _ = s.request("POST", "/embed", {"inputs": SENTENCES}, headers={"Authorization": f"Bearer {KEY}"})
    check("reference /embed: 200", st == 200, str(st))
    if st != 200:
        return
    v = f32(vecs).astype(np.float64)
    n = len(SENTENCES)
    cos = (v @ v.T) / np.outer(np.linalg.norm(v, axis=1), np.linalg.norm(v, axis=1))
    url = page_url(s.port, {"s": SENTENCES, "run": "1"}, KEY)
    dom = br.dom(url)
    if dom is None:
        return
    check("heatmap: body data-state done", body_state(dom) == "done", str(body_state(dom)))
    err = dom.by_id("error")
    check("heatmap: no error shown", err is not None and err.hidden(), err.text() if err else "no #error")
    cells = dom.find(lambda x: x.tag == "td" and "data-i" in x.attrs)
    got = {(int(c.attrs["data-i"]), int(c.attrs["data-j"])): c.text() for c in cells}
    check(f"heatmap: {n} x {n} cells", sorted(got) == [(i, j) for i in range(n) for j in range(n)], str(sorted(got)))
    bad = []
    for (i, j), t in sorted(got.items()):
        if not re.fullmatch(r"-?\d\.\d{4}", t):
            bad.append(((i, j), t, "not 4 decimals"))
        elif i < n and j < n and abs(float(t) - cos[i, j]) > 0.5e-4 + 1e-9:
            bad.append(((i, j), t, f"{cos[i, j]:.6f}"))
    check("heatmap: every cell is the cosine of the server's /embed vectors, to 4 decimals", not bad and got,
          str(bad[:5]))
    exact = sum(1 for (i, j), t in got.items() if t == f"{cos[i, j]:.4f}")
    check("heatmap: the cells read as numpy's own rounding", exact == len(got), f"{exact}/{len(got)}")
    check("heatmap: the off-diagonal cells are not all equal (real values)",
          len({t for (i, j), t in got.items() if i != j}) > 1, str(got))
    bg = {}
    for c in cells:
        m = re.search(r"background(?:-color)?:\s*(rgb\([^)]*\))", c.attrs.get("style", ""))
        bg[(int(c.attrs["data-i"]), int(c.attrs["data-j"]))] = m.group(1) if m else None
    check("heatmap colours: cosine 1 (the diagonal) is the scale's top, rgb(178, 24, 43)",
          bg and all(bg[(i, i)] == "rgb(178, 24, 43)" for i in range(n) if (i, i) in bg), str(bg))
    check("heatmap colours: cells of different cosines differ",
          len({bg[k] for k in bg}) == len({got[k] for k in got if k in bg}), str(bg))
    legend = dom.find(lambda x: x.attrs.get("class") == "ticks")
    check("heatmap: a legend from -1 through 0 to 1",
          len(legend) == 1 and [t.text() for t in legend[0].children if isinstance(t, Node)] == ["\u22121", "0", "1"],
          str([t.text() for t in legend[0].walk()] if legend else None))
    rows = dom.find(lambda x: x.tag == "th" and x.attrs.get("class") == "rowh")
    check("heatmap: row labels are the sentences (Chinese included)",
          [r.text() for r in rows] == [f"{i + 1}. {t}" for i, t in enumerate(SENTENCES)], str([r.text() for r in rows]))
    model = dom.by_id("model")
    opts = [o.text() for o in model.find(lambda x: x.tag == "option")] if model else []
    check("model list from GET /v1/models", opts == ["use-lite"], str(opts))
    sb = dom.by_id("searchbox")
    check("no index on the server: no search box", sb is not None and sb.hidden())
    kb = dom.by_id("keybox")
    check("the key was accepted: no key field shown", kb is not None and kb.hidden())
    # the screenshot, kept among the artefacts
    art = os.path.join(BUILD, "artefacts")
    os.makedirs(art, exist_ok=True)
    png = os.path.join(art, "serve-page.png")
    if os.path.exists(png):
        os.remove(png)
    err = ""
    try:
        br.screenshot(url, png, width=1100, height=820)
    except (TimeoutError, EOFError, RuntimeError, KeyError) as e:
        err = str(e)
    ok = os.path.exists(png)
    head = open(png, "rb").read(24) if ok else b""
    w, h = (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")) if len(head) == 24 else (0, 0)
    check("screenshot: a 1100 x 820 PNG", ok and head[:8] == b"\x89PNG\r\n\x1a\n" and (w, h) == (1100, 820),
          f"{(w, h)} {err}")
    if ok:
        print(f"test_serve_page: screenshot {png}")


# ==== Chromium: errors and the key ====

def test_errors(s, br):
    dom = br.dom(page_url(s.port, {"run": "1"}))
    if dom is not None:
        err, kb = dom.by_id("error"), dom.by_id("keybox")
        msg = err.text() if err else ""
        check("no key: state error", body_state(dom) == "error", str(body_state(dom)))
        check("no key: the server's 401 message shown",
              err is not None and not err.hidden() and msg.startswith("HTTP 401: ") and "API key" in msg, msg)
        check("no key: the key field shown", kb is not None and not kb.hidden())
        # a person types the key and compares: the models load, the field goes, the heatmap comes
        sid = br.last
        br.eval(f"document.getElementById('key').value = {json.dumps(KEY)};"
                "document.getElementById('keyset').click(); true", sid)
        ok = br.wait("document.getElementById('keybox').hidden && document.getElementById('model').options.length > 0",
                     sid)
        check("key typed in the page: models listed, the key field hidden", ok)
        br.eval("document.getElementById('run').click(); true", sid)
        ok = br.wait("document.querySelectorAll('td[data-i]').length > 0 || !document.getElementById('error').hidden",
                     sid)
        dom = br.snapshot(sid)
        n = len(dom.find(lambda x: x.tag == "td" and "data-i" in x.attrs))
        err = dom.by_id("error")
        check("key typed, Compare clicked: the example sentences' 5 x 5 heatmap, no error",
              ok and n == 25 and err.hidden(), f"{n} cells, error {err.text()!r}")
    many = [f"sentence number {i}" for i in range(7)]
    st, body, _ = s.request("POST", "/embed", {"inputs": many, "model": "use-lite"},
                            headers={"Authorization": f"Bearer {KEY}"})
    check("7 inputs over --max-client-batch-size 6: 422", st == 422 and isinstance(body, dict), str(st))
    dom = br.dom(page_url(s.port, {"s": many, "run": "1"}, KEY))
    if dom is not None and isinstance(body, dict):
        err = dom.by_id("error")
        msg = err.text() if err else ""
        check("7 sentences: the server's 422 message, word for word",
              err is not None and not err.hidden() and msg == f"HTTP 422: {body.get('error')}", msg)
        res = dom.by_id("result")
        check("7 sentences: no heatmap", res is not None and res.hidden())


# ==== the search box ====

class StandIn(http.server.BaseHTTPRequestHandler):
    """A stand-in for a server with indexes: the page, /v1/models, /info with two indexes, and POST
    /search answering the contract {"hits": [{"id", "score", "text", "meta"}]} (a query "boom" gets
    TEI's 422 error body). Records the /search bodies."""
    page = b""
    searches = []
    HITS = [{"id": "doc-7", "score": 0.91234567, "text": "Boil the <b>pasta</b> & drain it.", "chunk": 0,
             "start": 0, "end": 33, "meta": {"lang": "en"}},
            {"id": "42", "score": 0.5, "text": "意大利面", "chunk": 1, "start": 10, "end": 22, "meta": None},
            {"id": "x", "score": -0.12345, "text": "", "chunk": 0, "start": 0, "end": 0, "meta": None}]

    def log_message(self, *a):
        pass

    def answer(self, status, obj, ctype="application/json"):
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/":
            self.answer(200, self.page, "text/html; charset=utf-8")
        elif path == "/v1/models":
            self.answer(200, {"object": "list", "data": [{"id": "stand-in", "object": "model"}]})
        elif path == "/info":
            self.answer(200, {"model_id": "stand-in", "version": "0", "indexes": [
                {"name": "docs", "file": "docs.idx", "model": "stand-in", "documents": 3, "chunks": 3},
                {"name": "other", "file": "other.idx", "model": "stand-in", "documents": 0, "chunks": 0}]})
        else:
            self.answer(404, {"error": "no route", "error_type": "not_found"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
        if self.path == "/search":
            StandIn.searches.append(body)
            if body.get("query") == "boom":
                self.answer(422, {"error": "the index `other` is empty", "error_type": "validation"})
            else:
                self.answer(200, {"index": body.get("index"), "model": "stand-in", "hits": self.HITS})
        else:
            self.answer(404, {"error": "no route", "error_type": "not_found"})


def test_search_stand_in(page, br):
    StandIn.page = page
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    port = httpd.server_address[1]
    try:
        dom = br.dom(page_url(port, {"q": "how to cook pasta", "index": "other", "k": "3", "search": "1"}))
        if dom is not None:
            check("search: state done", body_state(dom) == "done", str(body_state(dom)))
            sb = dom.by_id("searchbox")
            check("search: the box is shown when /info lists indexes", sb is not None and not sb.hidden())
            sel = dom.by_id("index")
            opts = [o.text() for o in sel.find(lambda x: x.tag == "option")] if sel else []
            check("search: the indexes of /info", opts == ["docs", "other"], str(opts))
            check("search: POST /search {index, query, k} as the contract says",
                  StandIn.searches[-1:] == [{"index": "other", "query": "how to cook pasta", "k": 3}],
                  str(StandIn.searches))
            rows = dom.find(lambda x: x.tag == "tr" and x.attrs.get("class") == "hit")
            got = [[td.text() for td in r.find(lambda x: x.tag == "td")] for r in rows]
            want = [[str(n + 1), h["id"], f"{h['score']:.4f}", h["text"]] for n, h in enumerate(StandIn.HITS)]
            check("search: each hit's rank, id, score (4 decimals) and text, as text (no markup)", got == want,
                  f"{got} vs {want}")
            check("search: no markup from a hit's text reached the DOM",
                  not dom.find(lambda x: x.tag == "b"))
        dom = br.dom(page_url(port, {"q": "boom", "index": "other", "search": "1"}))
        if dom is not None:
            err = dom.by_id("serror")
            msg = err.text() if err else ""
            check("search: the server's error message", not err.hidden() and
                  msg == "HTTP 422: the index `other` is empty", msg)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_search_sembed(tmp, br):
    """The search box against `sembed serve --index` (when this binary has it): the hits the page
    shows are POST /search's, which sembed's own tests check against `sembed search`."""
    rc, out, err = run("serve", "--help")
    if "--index" not in out:
        print("test_serve_page: note: `sembed serve` has no --index yet; the search box was checked "
              "against the stand-in only")
        return
    idx = os.path.join(tmp, "demo.idx")
    rc, _, err = run("index", "build", "-m", MODEL, "-i", "examples/corpus.txt", "-o", idx)
    check("index build for the search box", rc == 0, err)
    if rc != 0:
        return
    s = Server("-m", MODEL, "--index", f"demo={idx}")
    try:
        check("server with --index started", s.port is not None, "".join(s.lines))
        if s.port is None:
            return
        q = "how long do I cook pasta"
        st, body, _ = s.request("POST", "/search", {"index": "demo", "query": q, "k": 5})
        check("POST /search: 200 with hits", st == 200 and isinstance(body, dict) and body.get("hits"), str(st))
        dom = br.dom(page_url(s.port, {"q": q, "index": "demo", "k": "5", "search": "1"}))
        if dom is None or st != 200:
            return
        rows = dom.find(lambda x: x.tag == "tr" and x.attrs.get("class") == "hit")
        got = [[td.text() for td in r.find(lambda x: x.tag == "td")] for r in rows]
        want = [[str(n + 1), str(h["id"]), f"{h['score']:.4f}", h["text"] or ""] for n, h in enumerate(body["hits"])]
        check("search box on sembed: the hits of POST /search", got == want, f"{got} vs {want}")
        png = os.path.join(BUILD, "artefacts", "serve-page-search.png")
        try:
            br.screenshot(page_url(s.port, {"s": [q, body["hits"][0]["text"] or "-"], "run": "1", "q": q,
                                            "index": "demo", "k": "5", "search": "1"}), png, height=1000)
            print(f"test_serve_page: screenshot {png}")
        except (TimeoutError, EOFError, RuntimeError, KeyError) as e:
            check("search screenshot", False, str(e))
    finally:
        s.stop()


def main():
    if not chromium_cmd():
        check("chromium is installed (Debian package chromium: run ./setup.sh)", False)
        report("test_serve_page")
    if not os.path.exists(os.path.join(MODEL, "model.safetensors")):
        check("the default model is there (./setup.sh makes models/use-lite)", False)
        report("test_serve_page")
    page = open(PAGE_SRC, "rb").read()
    tmp = tempfile.mkdtemp(prefix="sembed-page-")
    br = Browser(os.path.join(tmp, "profile"))
    s = Server("-m", MODEL, "--api-key", KEY, "--max-client-batch-size", "6")
    check("server started", s.port is not None, "".join(s.lines))
    try:
        if s.port is not None:
            test_http(s, page)
            test_heatmap(s, br)
            test_errors(s, br)
        rc = s.stop()
        check("server: exit 0 on SIGTERM", rc == 0, "".join(s.lines[-5:]))
        served = [l for l in s.lines if " GET / 200 " in l]
        check("server log: the page's requests", len(served) >= 4, "".join(s.lines[-20:]))
        test_search_stand_in(page, br)
        test_search_sembed(tmp, br)
    finally:
        s.stop()
        br.close()
        shutil.rmtree(tmp, ignore_errors=True)
    report("test_serve_page")


if __name__ == "__main__":
    main()
