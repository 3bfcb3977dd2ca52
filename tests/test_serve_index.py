#!/usr/bin/python3
"""Black-box tests of `sembed serve --index` over HTTP on loopback: embedding, index and query
as one service (issue 11).

Run from the repo root: /usr/bin/python3 tests/test_serve_index.py build/sembed
(--concurrency-only: only the writer-and-readers check, for a ThreadSanitizer build.)
Builds indexes with `sembed index build`, serves them, and checks POST /search against
`sembed search --json` (same hits, same float32 scores, same chunk texts), the document
routes (adds, replaces, deletes, counts), the start-up refusals (missing or corrupt file, a
recorded model that is gone or changed), the error statuses and bodies, --api-key and
--payload-limit on the new routes, SIGTERM (flushed, one file left), and a writer adding
documents while readers search: every answer 200, and the index it leaves equals one built
offline from the same documents. Prints "test_serve_index: N passed, N failed" and exits
non-zero on failure.
"""
import http.client, json, os, shutil, signal, sqlite3, subprocess, sys, tempfile, threading, time, urllib.parse

import numpy as np

from clitest import SEMBED, check, report, run

MODEL = "models/use-lite"
EN = "tests/fixtures/models/en-mean-norm"   # BERT, H=32, max_seq_length 24 (cheap under sanitizers)

WORDS = ("river mountain bread coffee market storm engine violin garden library winter harbor signal "
         "orchard copper lantern meadow rocket thunder pepper castle canyon glacier saddle tunnel").split()


def doc_text(i, n_words):
    """A deterministic text of n_words words for document i."""
    return " ".join(WORDS[(i * 7 + j * 3 + j * j) % len(WORDS)] for j in range(n_words)) + "."


def make_docs(n, seed):
    """n documents: every fourth one long (several chunks), metadata of each JSON kind."""
    docs = []
    for i in range(n):
        d = {"id": f"{seed}-{i}", "text": doc_text(i + seed, 60 if i % 4 == 0 else 8 + i % 5)}
        meta = {"lang": "en" if i % 2 else "fr", "n": i % 3, "flag": i % 5 == 0, "tags": ["a", "b"] if i % 3 else ["c"]}
        if i % 7 == 6:
            meta = {}
        d["meta"] = meta
        docs.append(d)
    return docs


def write_jsonl(path, docs):
    """Writes docs as `sembed index build` reads them (metadata as top-level fields)."""
    with open(path, "w") as f:
        for d in docs:
            f.write(json.dumps({"id": d["id"], "text": d["text"], **(d.get("meta") or {})}) + "\n")


def build(path, model, docs, d, *opts):
    src = os.path.join(d, os.path.basename(path) + ".jsonl")
    write_jsonl(src, docs)
    rc, _, err = run("index", "build", "-q", "-m", model, "-i", src, "-o", path, *opts)
    check(f"index build {os.path.basename(path)}", rc == 0, err)


def cli_search(idx, queries, k=10, filters=None, ef=None, extra=()):
    """`sembed search --json` of each query: a list of result lists."""
    opts = ["-k", str(k), *extra]
    for key, v in (filters or {}).items():
        opts += ["--filter", f"{key}={v}"]
    if ef:
        opts += ["--ef", str(ef)]
    rc, out, err = run("search", idx, "--json", "-q", *opts, *queries)
    if rc != 0:
        print(err, file=sys.stderr)
        return None
    return [json.loads(l)["results"] for l in out.splitlines()]


def cli_info(idx):
    rc, out, _ = run("index", "info", "--json", idx)
    return json.loads(out) if rc == 0 else None


def same_hits(hits, ref):
    """Server hits equal `sembed search --json` results: ids, float32 scores, chunks, texts, metadata."""
    if hits is None or ref is None or len(hits) != len(ref):
        return False
    for h, r in zip(hits, ref):
        if (h["id"], h["chunk"], h["text"]) != (r["id"], r["chunk"], r["text"]):
            return False
        if np.float32(h["score"]) != np.float32(r["score"]):
            return False
        if (h["meta"] if h["meta"] is not None else {}) != r["metadata"]:
            return False
    return True


class Server:
    """A running `sembed serve`: its process, port and log lines."""

    def __init__(self, *args):
        self.p = subprocess.Popen([SEMBED, "serve", "--port", "0", *args], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        self.lines, self.port = [], None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.p.stderr.readline().decode("utf-8", "replace")
            if not line:
                break
            self.lines.append(line)
            if " on http://" in line:
                self.port = int(line.rsplit(":", 1)[1].strip().rstrip("/"))
                break
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stderr:
            self.lines.append(line.decode("utf-8", "replace"))

    def request(self, method, path, body=None, headers=None):
        """One request; returns (status, parsed JSON or raw bytes). body: dict/list -> JSON, bytes as is."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        if body is not None and not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode()
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            status = r.status
        except (ConnectionError, http.client.HTTPException) as e:  # a refused upload may close first
            return -1, str(e)
        finally:
            c.close()
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, data

    def stop(self, timeout=30):
        """SIGTERM; returns the exit code (None when it did not exit)."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            rc = None
        self.reader.join(timeout=5)
        if rc != 0:
            print("".join(self.lines[-30:]), file=sys.stderr)
        return rc


def tei_error(body, error_type=None):
    return isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("error_type"), str) \
        and (error_type is None or body["error_type"] == error_type)


def serve_fails(args, code, words, label):
    """`sembed serve` with args exits with code at start, its message holding each of words."""
    p = subprocess.Popen([SEMBED, "serve", "--port", "0", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # it served instead of refusing
        p.kill()
        _, err = p.communicate()
    err = err.decode("utf-8", "replace")
    check(label, p.returncode == code and all(w in err for w in words), f"rc {p.returncode}: {err[-400:]}")


# ==== start-up ====

def test_start_errors(d, good):
    serve_fails(["-m", MODEL, "--index", os.path.join(d, "missing.idx")], 1, ["missing.idx", "no such index file"],
                "start: a missing index file: exit 1, named")
    bad = os.path.join(d, "corrupt.idx")
    with open(bad, "wb") as f:
        f.write(b"SQLite format 3\0" + bytes(range(256)) * 20)
    serve_fails(["-m", MODEL, "--index", f"c={bad}"], 1, ["corrupt.idx", "not a sembed index"],
                "start: a corrupt index file: exit 1, named")
    serve_fails(["-m", MODEL, "--index", f"={good}"], 2, ["NAME"], "start: --index =FILE: usage error")
    serve_fails(["-m", MODEL, "--index", f"x={good}", "--index", f"y={os.path.dirname(good)}/./{os.path.basename(good)}"],
                1, ["the same file as --index x="], "start: one file under two names: exit 1 (one writer per file)")
    serve_fails(["-m", MODEL, "--index", f"x={good}", "--index", f"x={good}"], 2, ["two indexes are named 'x'"],
                "start: two indexes of one name: usage error")
    s = Server("-m", MODEL)
    st, body = s.request("GET", "/info")
    check("no --index: /info has indexes []", st == 200 and body.get("indexes") == [], f"{st} {str(body)[-200:]}")
    st, body = s.request("POST", "/search", {"query": "river"})
    check("no --index: /search is 404 saying how to load one",
          st == 404 and tei_error(body, "not_found") and "--index NAME=FILE" in body["error"], f"{st} {body}")
    st, body = s.request("GET", "/indexes")
    check("no --index: GET /indexes lists none", st == 200 and body == {"indexes": []}, f"{st} {body}")
    check("no --index: exit 0", s.stop() == 0)
    # an index whose recorded model folder is gone, and none of -m is that model
    mdir = os.path.join(d, "en-copy")
    shutil.copytree(EN, mdir)
    gone = os.path.join(d, "gone.idx")
    build(gone, mdir, make_docs(3, 50), d)
    shutil.rmtree(mdir)
    serve_fails(["-m", MODEL, "--index", gone], 1, ["gone.idx", mdir, "no such folder", "serve that model with -m"],
                "start: the recorded model folder is gone: exit 1, names the folder")
    # ... and served under -m from elsewhere: matched by its fingerprint. One stored text is made
    # invalid UTF-8 behind the index's back (the rows are SQLite's): the answer stays valid JSON
    db = sqlite3.connect(gone)
    raw = db.execute("SELECT text FROM docs WHERE ext_id = '50-1'").fetchone()[0].encode()
    db.execute("UPDATE docs SET text = ? WHERE ext_id = '50-1'", (b"\xff" + raw[1:],))
    db.commit()
    db.close()
    s = Server("-m", MODEL, "-m", f"en={EN}", "--index", gone)
    st, body = s.request("POST", "/search", {"query": "river", "k": 3})
    if not isinstance(body, dict):
        body, st = {}, f"{st}, not JSON: {body[:300]!r}"
    check("start: a -m model with the recorded fingerprint serves the index",
          st == 200 and body["model"] == "en" and len(body["hits"]) == 3, f"{st} {body}")
    check("search: a stored text that is not UTF-8 is answered with U+FFFD in its place",
          st == 200 and [h["text"] for h in body["hits"] if h["id"] == "50-1"] == ["\ufffd" + raw[1:].decode()],
          f"{st} {body}")
    check("start: the index's model served elsewhere: exit 0", s.stop() == 0)
    # the recorded folder now holds another model
    shutil.copytree("tests/fixtures/models/en-plain-hf", mdir)
    serve_fails(["-m", MODEL, "--index", gone], 1, ["gone.idx", "built with another model", "no longer holds"],
                "start: the recorded folder holds another model: exit 1, says so")
    shutil.rmtree(mdir)


# ==== one server: search, documents, errors ====

QUERIES = ["river and mountain", "coffee bread market", "a violin in the library", "storm over the harbor",
           "glacier canyon tunnel"]


def test_search(s, d, a_idx, a_docs, b_idx):
    texts = {x["id"]: x["text"].encode() for x in a_docs}
    info, info_b = cli_info(a_idx), cli_info(b_idx)
    st, body = s.request("GET", "/info")
    ix = body.get("indexes") if st == 200 else None
    check("info: indexes [{name, file, model, documents, chunks}]",
          ix is not None and [(i["name"], i["file"], i["model"], i["documents"], i["chunks"]) for i in ix]
          == [("docs", a_idx, "use-lite", info["documents"], info["vectors"]), ("small", b_idx, "en-b@small", 12, info_b["vectors"])],
          str(ix))
    check("the test index has documents of several chunks", info["vectors"] > info["documents"], str(info))
    st, body = s.request("GET", "/indexes")
    check("GET /indexes lists the same", st == 200 and body["indexes"] == ix, f"{st} {body}")
    st, body = s.request("GET", "/indexes/small")
    check("GET /indexes/NAME", st == 200 and body == ix[1], f"{st} {body}")

    cases = [({}, {}), ({"k": 3}, {"k": 3}), ({"k": 25}, {"k": 25}), ({"filters": {"lang": "en"}}, {"filters": {"lang": "en"}}),
             ({"filters": {"n": 2, "lang": "fr"}}, {"filters": {"n": 2, "lang": "fr"}}),
             ({"filters": {"flag": True}}, {"filters": {"flag": "true"}}), ({"filters": {"tags": "c"}}, {"filters": {"tags": "c"}}),
             ({"ef": 4, "k": 5}, {"ef": 4, "k": 5})]
    for req, ref_opts in cases:
        refs = cli_search(a_idx, QUERIES, **ref_opts)
        ok, spans_ok = True, True
        for q, ref in zip(QUERIES, refs or [None] * len(QUERIES)):
            st, body = s.request("POST", "/search", {"index": "docs", "query": q, **req})
            ok = ok and st == 200 and body["index"] == "docs" and body["model"] == "use-lite" and same_hits(body["hits"], ref)
            for h in body.get("hits", []) if st == 200 else []:
                spans_ok = spans_ok and texts[h["id"]][h["start"]:h["end"]].decode() == h["text"]
        check(f"search {json.dumps(req)}: hits and scores = sembed search --json", ok, f"{st} {str(body)[:300]}")
        check(f"search {json.dumps(req)}: [start, end) is the chunk in the document", spans_ok)
    refs = cli_search(a_idx, QUERIES[:1], k=10)
    st, body = s.request("POST", "/search", {"query": QUERIES[0]})
    check("search: the default index is the first, k 10",
          st == 200 and body["index"] == "docs" and len(body["hits"]) == 10 and same_hits(body["hits"], refs[0]), str(st))
    check("search: hit fields", st == 200 and all(set(h) == {"id", "score", "text", "chunk", "start", "end", "meta"}
                                                  for h in body["hits"]))
    check("search: a document without metadata has meta null",
          st == 200 and any(h["meta"] is None for h in
                            s.request("POST", "/search", {"query": "x", "k": 25})[1]["hits"]))
    refs = cli_search(b_idx, QUERIES)
    ok = True
    for q, ref in zip(QUERIES, refs or [None] * len(QUERIES)):
        st, body = s.request("POST", "/search", {"index": "small", "query": q, "k": 4})
        ok = ok and st == 200 and body["model"] == "en-b@small" and same_hits(body["hits"], ref[:4])
    check("search: an index of a model not among -m, with its recorded model = sembed search", ok, f"{st} {body}")


def test_search_modes(s, a_idx):
    """mode keyword / hybrid (fusion, alpha): the same hits, scores and component scores as
    `sembed search --keyword / --hybrid [--fusion F] [--alpha A] --json`."""
    cases = [({"mode": "keyword"}, ["--keyword"]), ({"mode": "hybrid"}, ["--hybrid"]),
             ({"mode": "hybrid", "fusion": "rrf"}, ["--hybrid", "--fusion", "rrf"]),
             ({"mode": "hybrid", "fusion": "score", "alpha": 0.7, "filters": {"lang": "en"}},
              ["--hybrid", "--fusion", "score", "--alpha", "0.7"]),
             ({"mode": "vector"}, [])]
    for req, flags in cases:
        filters = req.get("filters")
        refs = cli_search(a_idx, QUERIES, k=5, filters=filters, extra=flags)
        ok, comp = True, True
        for q, ref in zip(QUERIES, refs or [None] * len(QUERIES)):
            st, body = s.request("POST", "/search", {"index": "docs", "query": q, "k": 5, **req})
            ok = ok and st == 200 and same_hits(body["hits"], ref)
            for h, r in zip(body.get("hits", []) if st == 200 else [], ref or []):
                if req["mode"] == "vector":
                    comp = comp and "vector_score" not in h
                    continue
                for f in ("vector_score", "keyword_score"):
                    comp = comp and (h[f] is None) == (r[f] is None) and (h[f] is None or np.float32(h[f]) == np.float32(r[f]))
        check(f"search {json.dumps(req)}: hits and scores = sembed search {' '.join(flags)} --json", ok and bool(refs),
              f"{st} {str(body)[:300]}")
        check(f"search {json.dumps(req)}: vector_score / keyword_score = the CLI's (null where a side missed)", comp)
    st, body = s.request("POST", "/search", {"query": "river", "mode": "keyword", "k": 3})
    check("search keyword: every hit has a keyword_score and null vector_score",
          st == 200 and body["hits"] and all(h["keyword_score"] > 0 and h["vector_score"] is None for h in body["hits"]),
          f"{st} {body}")
    for body, words in [({"query": "x", "mode": "fuzzy"}, "`mode` must be"), ({"query": "x", "mode": 2}, "`mode` must be"),
                        ({"query": "x", "mode": "hybrid", "fusion": "max"}, "`fusion` must be"),
                        ({"query": "x", "mode": "hybrid", "alpha": 1.5}, "`alpha` must be"),
                        ({"query": "x", "mode": "hybrid", "alpha": "0.5"}, "`alpha` must be"),
                        ({"query": "x", "alpha": 0.5}, "are for"), ({"query": "x", "mode": "keyword", "fusion": "rrf"}, "are for"),
                        ({"query": "x", "mode": "hybrid", "fusion": "rrf", "alpha": 0.5}, "not rrf")]:
        st, got = s.request("POST", "/search", body)
        check(f"search error {json.dumps(body)}: 422 naming the field", st == 422 and tei_error(got, "validation")
              and words in got["error"], f"{st} {got}")
    st, got = s.request("POST", "/search", {"query": "\" AND NEAR( * )", "mode": "keyword"})
    check("search keyword: a query of FTS5 syntax is words, not an error", st == 200, f"{st} {got}")


def test_search_errors(s):
    cases = [
        (b"{not json", 400, "validation", "malformed JSON"),
        (b"[1, 2]", 422, "validation", "JSON object"),
        ({"k": 3}, 422, "validation", "missing field `query`"),
        ({"query": 3}, 422, "validation", "`query` must be a string"),
        ({"query": ""}, 400, "empty", "cannot be empty"),
        ({"query": "x", "k": 0}, 422, "validation", "`k` must be a whole number from 1 to 100000"),
        ({"query": "x", "k": "3"}, 422, "validation", "`k`"),
        ({"query": "x", "ef": -1}, 422, "validation", "`ef`"),
        ({"query": "x", "top_k": 3}, 422, "validation", "unknown field `top_k`"),
        ({"query": "x", "filters": ["lang", "en"]}, 422, "validation", "`filters` must be an object"),
        ({"query": "x", "filters": {"lang": ["en"]}}, 422, "validation", "`filters`.`lang`"),
        ({"query": "x", "filters": {"": "en"}}, 422, "validation", "key"),
        ({"query": "x", "filters": {f"k{i}": i for i in range(33)}}, 422, "validation", "at most 32"),
        ({"query": "x", "index": 3}, 422, "validation", "`index` must be a string"),
        ({"query": "x", "index": "nope"}, 404, "not_found", "no index named `nope` (loaded: docs, small)"),
    ]
    for body, status, etype, words in cases:
        st, got = s.request("POST", "/search", body)
        check(f"search error {str(body)[:60]}: {status} {etype}", st == status and tei_error(got, etype)
              and words in got["error"], f"{st} {got}")
    st, got = s.request("POST", "/search", {"query": "x", "filters": {"nothing": "here"}})
    check("search: a filter no document matches: no hits", st == 200 and got["hits"] == [], f"{st} {got}")
    for method, path, status in [("GET", "/search", 405), ("DELETE", "/indexes", 405), ("POST", "/indexes/docs", 405),
                                 ("GET", "/indexes/docs/documents", 405), ("GET", "/indexes/docs/documents/x", 405),
                                 ("POST", "/indexes/docs/other", 404), ("GET", "/indexes/nope", 404),
                                 ("DELETE", "/indexes/nope/documents/x", 404)]:
        st, got = s.request(method, path, {} if method == "POST" else None)
        check(f"{method} {path}: {status}", st == status and tei_error(got), f"{st} {got}")


def count(s, name="docs"):
    st, body = s.request("GET", f"/indexes/{name}")
    return body["documents"] if st == 200 else None


def test_documents(s, a_docs):
    n0 = count(s)
    new = [{"id": "new-1", "text": "A lantern in the copper orchard at night.", "meta": {"lang": "de", "n": 7}},
           {"id": a_docs[1]["id"], "text": "Replaced: thunder over the glacier.", "meta": {"lang": "xx"}},
           {"id": "new-2", "text": "first version"},
           {"id": "new-2", "text": "Second version wins: saddle and rocket.", "meta": None}]
    st, body = s.request("POST", "/indexes/docs/documents", {"documents": new})
    check("add: {added, replaced, chunks} (an id twice: the later kept)",
          st == 200 and body == {"added": 2, "replaced": 1, "chunks": 3}, f"{st} {body}")
    check("add: the count moved by the new documents", count(s) == n0 + 2, f"{count(s)} vs {n0 + 2}")
    st, body = s.request("POST", "/search", {"query": "lantern copper orchard", "k": 1, "filters": {"lang": "de"}})
    check("add: the new document is found, with its metadata",
          st == 200 and [(h["id"], h["text"], h["meta"]) for h in body["hits"]]
          == [("new-1", new[0]["text"], {"lang": "de", "n": 7})], f"{st} {body}")
    st, body = s.request("POST", "/search", {"query": "x", "k": 5, "filters": {"lang": "xx"}})
    check("add: a replaced document has its new text and metadata",
          st == 200 and [(h["id"], h["text"]) for h in body["hits"]] == [(a_docs[1]["id"], new[1]["text"])], f"{st} {body}")
    st, body = s.request("POST", "/search", {"query": "saddle rocket", "k": 40})
    check("add: the later of two documents with one id",
          st == 200 and [h["text"] for h in body["hits"] if h["id"] == "new-2"] == [new[3]["text"]], f"{st} {body}")
    st, body = s.request("POST", "/indexes/docs/documents", {"id": 42, "text": "An integer id, one document as the body."})
    check("add: one document as the body, an integer id", st == 200 and body == {"added": 1, "replaced": 0, "chunks": 1},
          f"{st} {body}")
    st, body = s.request("POST", "/indexes/docs/documents", {"documents": {"id": "a/b c?", "text": "slash and space"}})
    check("add: documents as one object", st == 200 and body["added"] == 1, f"{st} {body}")
    long_text = doc_text(3, 120)
    st, body = s.request("POST", "/indexes/docs/documents", {"documents": [{"id": "long", "text": long_text}]})
    # the chunks of the index's recorded chunking (--chunk 16 --overlap 4), as `sembed index add`
    check("add: a long document is chunked as the index records", st == 200 and body["chunks"] > 5, f"{st} {body}")
    # a title (issue 14): stored, keyword-searched as its own field, returned with the hit
    st, body = s.request("POST", "/indexes/docs/documents",
                         {"id": "titled", "title": "Quokka habitats", "text": "They live on an island near Perth."})
    check("add: a document with a title", st == 200 and body["added"] == 1, f"{st} {body}")
    st, body = s.request("POST", "/search", {"query": "quokka", "mode": "keyword", "k": 3})
    check("add: a title-only word is found by keyword, the hit has its title",
          st == 200 and [(h["id"], h.get("title"), h["text"]) for h in body["hits"]]
          == [("titled", "Quokka habitats", "They live on an island near Perth.")], f"{st} {body}")
    n1 = count(s)

    # bad bodies: nothing is written
    bad = [
        (b"nope", 400, "validation", "malformed JSON"),
        ({"documents": []}, 400, "empty", "cannot be empty"),
        ({"documents": [{"id": "ok", "text": "fine"}, {"id": "x"}]}, 422, "validation", "documents[1].text is missing"),
        ({"documents": [{"text": "no id"}]}, 422, "validation", "documents[0].id is missing"),
        ({"documents": [{"id": "", "text": "t"}]}, 422, "validation", "documents[0].id must be a non-empty string"),
        ({"documents": [{"id": "x", "text": 5}]}, 422, "validation", "documents[0].text must be a string"),
        ({"documents": [{"id": "x", "text": "t", "title": 5}]}, 422, "validation", "documents[0].title must be a string"),
        ({"documents": [{"id": "x", "text": "t", "meta": [1]}]}, 422, "validation", "documents[0].meta must be an object"),
        ({"documents": [{"id": "x", "text": "t", "metadata": {}}]}, 422, "validation", "unknown field `metadata`"),
        ({"documents": [{"id": "x", "text": "t"}], "extra": 1}, 422, "validation", "unknown field `extra`"),
        ({"documents": "x"}, 422, "validation", "`documents` must be a list"),
        ({"documents": ["x"]}, 422, "validation", "documents[0] must be an object"),
        ({"docs": [{"id": "x", "text": "t"}]}, 422, "validation", "the document (a body without `documents`): unknown field `docs`"),
    ]
    for body, status, etype, words in bad:
        st, got = s.request("POST", "/indexes/docs/documents", body)
        check(f"add error {str(body)[:60]}: {status}", st == status and tei_error(got, etype) and words in got["error"],
              f"{st} {got}")
    check("add errors: nothing was written", count(s) == n1, f"{count(s)} vs {n1}")
    st, got = s.request("POST", "/indexes/nope/documents", {"id": "x", "text": "t"})
    check("add to an unknown index: 404", st == 404 and tei_error(got, "not_found"), f"{st} {got}")

    # delete
    st, got = s.request("DELETE", "/indexes/docs/documents/new-1")
    check("delete: 200 {deleted: true}", st == 200 and got == {"deleted": True}, f"{st} {got}")
    st, got = s.request("DELETE", "/indexes/docs/documents/new-1")
    check("delete again: 404 naming the id", st == 404 and tei_error(got, "not_found") and "new-1" in got["error"], f"{st} {got}")
    st, got = s.request("DELETE", "/indexes/docs/documents/" + urllib.parse.quote("a/b c?", safe=""))
    check("delete: a percent-encoded id with '/', ' ' and '?'", st == 200 and got == {"deleted": True}, f"{st} {got}")
    st, got = s.request("POST", "/search", {"query": "lantern copper orchard", "k": 1, "filters": {"lang": "de"}})
    check("delete: the document is no longer found", st == 200 and got["hits"] == [], f"{st} {got}")
    check("delete: the count", count(s) == n1 - 2, f"{count(s)} vs {n1 - 2}")
    return count(s)


# ==== a writer while readers search; the result equals an offline build ====

def test_concurrency(d, model=EN):
    base, more = make_docs(6, 100), make_docs(30, 200)
    live, key = os.path.join(d, "live.idx"), "k-123"
    build(live, model, base, d, "--chunk", "8", "--overlap", "2")
    s = Server("-m", model, "--index", f"live={live}", "--api-key", key, "--payload-limit", "100000", "-t", "1")
    auth = {"Authorization": f"Bearer {key}"}
    st, got = s.request("POST", "/search", {"query": "river"})
    check("api key: /search without it: 401", st == 401 and tei_error(got, "unauthorized"), f"{st} {got}")
    st, got = s.request("POST", "/indexes/live/documents", {"id": "x", "text": "t"})
    check("api key: adding without it: 401", st == 401 and tei_error(got, "unauthorized"), f"{st} {got}")
    st, got = s.request("DELETE", "/indexes/live/documents/" + base[0]["id"], headers={"Authorization": "Bearer wrong"})
    check("api key: deleting with a wrong one: 401", st == 401 and tei_error(got, "unauthorized"), f"{st} {got}")
    st, got = s.request("POST", "/indexes/live/documents", {"id": "big", "text": "word " * 30000}, headers=auth)
    check("payload limit: a body over --payload-limit: 413", st in (413, -1) and (st == -1 or tei_error(got)), f"{st} {got}")

    versions = {x["id"]: {x["text"]} for x in base}
    final = {x["id"]: x for x in base}
    statuses, bad_hits, lock, done, during = [], [], threading.Lock(), threading.Event(), [0]

    def writer():
        for i in range(0, len(more), 3):
            part = more[i:i + 3]
            with lock:
                for x in part:
                    versions.setdefault(x["id"], set()).add(x["text"])
            st, _ = s.request("POST", "/indexes/live/documents", {"documents": part}, headers=auth)
            with lock:
                statuses.append(("add", st))
            for x in part:
                final[x["id"]] = x
        for j in (1, 4):  # replace two, delete one
            x = dict(more[j], text=doc_text(900 + j, 30), meta={"lang": "zz"})
            with lock:
                versions[x["id"]].add(x["text"])
            st, _ = s.request("POST", "/indexes/live/documents", {"documents": [x]}, headers=auth)
            with lock:
                statuses.append(("replace", st))
            final[x["id"]] = x
        st, _ = s.request("DELETE", "/indexes/live/documents/" + more[7]["id"], headers=auth)
        with lock:
            statuses.append(("delete", st))
        del final[more[7]["id"]]
        done.set()

    def reader(r):
        q = 0
        while not done.is_set() or q < 3:
            body = {"query": QUERIES[(q + r) % len(QUERIES)], "k": 5}
            if q % 3 == 1:
                body["filters"] = {"lang": "en"}
            st, got = s.request("POST", "/search", body, headers=auth)
            with lock:
                statuses.append(("search", st))
                if not done.is_set():
                    during[0] += 1
                for h in got.get("hits", []) if st == 200 else []:
                    # each hit is one consistent version of its document: its chunk of that text
                    if not any(t.encode()[h["start"]:h["end"]].decode("utf-8", "replace") == h["text"]
                               for t in versions.get(h["id"], ())):
                        bad_hits.append(h)
            q += 1

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(r,)) for r in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    n_search = sum(1 for k, _ in statuses if k == "search")
    check("concurrency: every answer 200 (writes and searches)", statuses and all(st == 200 for _, st in statuses),
          str([x for x in statuses if x[1] != 200][:5]))
    check("concurrency: searches ran during the writes", during[0] >= 6, f"{during[0]} of {n_search}")
    print(f"test_serve_index: {during[0]} of {n_search} searches answered while the writer wrote", file=sys.stderr)
    check("concurrency: every hit is a chunk of a version of its document", not bad_hits, str(bad_hits[:2]))

    # the same documents, built offline in one go
    off = os.path.join(d, "offline.idx")
    build(off, model, list(final.values()), d, "--chunk", "8", "--overlap", "2")
    qs = QUERIES + ["pepper castle", "winter signal"]
    refs = cli_search(off, qs, k=10, ef=200)
    ok = refs is not None
    for q, ref in zip(qs, refs or []):
        st, got = s.request("POST", "/search", {"index": "live", "query": q, "k": 10, "ef": 200}, headers=auth)
        ok = ok and st == 200 and same_hits(got["hits"], ref)
    check("concurrency: the served index answers as one built offline from the same documents", ok,
          f"{st} {str(got)[:300]}")
    st, got = s.request("GET", "/indexes/live", headers=auth)
    info_off = cli_info(off)
    check("concurrency: documents and chunks = the offline build's",
          st == 200 and (got["documents"], got["chunks"]) == (info_off["documents"], info_off["vectors"]),
          f"{got} vs {info_off}")
    check("SIGTERM after the writes: exit 0", s.stop() == 0)
    check("SIGTERM: the index is one file again (no -wal, -shm)",
          not os.path.exists(live + "-wal") and not os.path.exists(live + "-shm"), str(os.listdir(d)))
    refs2 = cli_search(live, qs, k=10, ef=200)
    check("SIGTERM: the file holds every write (sembed search on it = the offline build)",
          refs2 is not None and refs is not None and all(same_hits(
              [dict(h, meta=h["metadata"] or None) for h in a], b) for a, b in zip(refs2, refs)))


_t = [time.time()]


def lap(what):
    """Prints the seconds a part of the test took (the suite's time budget is 20 s)."""
    now = time.time()
    print(f"test_serve_index: {what} {now - _t[0]:.1f} s", file=sys.stderr)
    _t[0] = now


def main():
    d = tempfile.mkdtemp(prefix="sembed-serve-index-")
    t0 = time.time()
    try:
        if "--concurrency-only" in sys.argv[2:]:
            test_concurrency(d)
            return
        a_idx, b_idx = os.path.join(d, "a.idx"), os.path.join(d, "b.idx")
        a_docs = make_docs(24, 0)
        build(a_idx, MODEL, a_docs, d, "--chunk", "16", "--overlap", "4")
        en_b = os.path.join(d, "en-b")
        shutil.copytree(EN, en_b)
        build(b_idx, en_b, make_docs(12, 30), d)
        lap("builds")
        test_start_errors(d, a_idx)
        lap("start-up checks")
        # b.idx's model (a copy of en-mean-norm in the folder en-b) is not served: the index loads it; a -m
        # model of another kind named en-b makes its name en-b@small
        s = Server("-m", MODEL, "-m", "en-b=tests/fixtures/models/en-plain-hf", "--index", f"docs={a_idx}",
                   "--index", f"small={b_idx}")
        check("server started", s.port is not None, "".join(s.lines))
        check("start: each index announced with its counts and model",
              any(f"index docs: {a_idx}, 24 documents" in l and "model use-lite" in l for l in s.lines)
              and any("index small:" in l and "model en-b@small (loaded from the folder the index records)" in l
                      for l in s.lines), "".join(s.lines))
        test_search(s, d, a_idx, a_docs, b_idx)
        test_search_errors(s)
        test_search_modes(s, a_idx)
        lap("search")
        n = test_documents(s, a_docs)
        lap("documents")
        # SIGTERM while a write is being encoded: it is answered and kept (or refused and absent)
        late, res = [{"id": f"late-{i}", "text": doc_text(i, 30)} for i in range(24)], {}
        t = threading.Thread(target=lambda: res.setdefault("r", s.request("POST", "/indexes/docs/documents",
                                                                         {"documents": late})))
        t.start()
        time.sleep(0.1)
        check("SIGTERM: exit 0", s.stop() == 0)
        t.join(timeout=60)
        st = res.get("r", (None,))[0]
        info = cli_info(a_idx)
        check("SIGTERM during a write: answered 200 and in the file (or refused and not)",
              st in (200, 503, -1) and info and info["documents"] == n + (len(late) if st == 200 else 0), f"{st} {info}")
        print(f"test_serve_index: the write in flight at SIGTERM was answered {st}", file=sys.stderr)
        check("SIGTERM: no -wal or -shm left", not os.path.exists(a_idx + "-wal") and not os.path.exists(a_idx + "-shm"))
        lap("SIGTERM")
        test_concurrency(d)
        lap("concurrency")
    finally:
        shutil.rmtree(d, ignore_errors=True)
        print(f"test_serve_index: {time.time() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
    report("test_serve_index")
