#!/usr/bin/python3
"""Black-box tests of `sembed index`, `search INDEX`, `cluster`, `dedup`, `mine`.

Run from the repo root: /usr/bin/python3 tests/test_index_cli.py build/sembed
Uses the default model (models/use-lite, made by setup.sh). Includes the kill
test: `sembed index add` is killed with SIGKILL at random points, and after
every kill the index must open, and hold exactly a prefix of the input made
of whole committed batches, with nothing committed earlier lost. Prints
"test_index_cli: N passed, N failed" and exits non-zero on failure.
"""
import json, os, random, signal, sqlite3, subprocess, sys, tempfile, time

from clitest import SEMBED, check, report, run

MODEL = "models/use-lite"
CORPUS = "examples/corpus.txt"


def corpus_lines():
    return [l for l in open(CORPUS, encoding="utf-8").read().split("\n") if l]


def test_build_search(d):
    idx = os.path.join(d, "c.idx")
    rc, out, err = run("index", "build", "-m", MODEL, "-i", CORPUS, "-o", idx)
    check("build", rc == 0 and os.path.exists(idx) and "32 documents" in err, err)
    check("build leaves no temporary file", sorted(os.listdir(d)) == ["c.idx"], str(os.listdir(d)))
    rc, out, err = run("index", "build", "-m", MODEL, "-i", CORPUS, "-o", idx)
    check("build refuses to overwrite", rc == 1 and "already exists" in err, err)
    rc, out, _ = run("index", "info", idx, "--json")
    info = json.loads(out) if rc == 0 else {}
    check("info", info.get("documents") == 32 and info.get("vectors") == 32 and info.get("dim") == 512
          and info.get("kind") == "hnsw" and info.get("M") == 16 and info.get("model", "").endswith("models/use-lite"), out)
    queries = ["My wifi keeps disconnecting", "Will it rain this weekend?", "How long should I cook spaghetti?"]
    rc, out, err = run("search", idx, "-k", "5", "--json", *queries)
    got = [json.loads(l) for l in out.splitlines()] if rc == 0 else []
    # the same scores as the brute-force search over the text file
    rc2, out2, _ = run("search", "-m", MODEL, "-c", CORPUS, "-k", "5", "--json", *queries)
    ref = [json.loads(l) for l in out2.splitlines()] if rc2 == 0 else []
    ok = len(got) == 3 and len(ref) == 3
    for g, r in zip(got, ref):
        ok = ok and [h["id"] for h in g.get("results", [])] == [h["id"] for h in r.get("results", [])]
        ok = ok and all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(g["results"], r["results"]))
    check("search INDEX = brute force", ok, out + out2)
    # issue 9.17: one JSON layout and one default k for both searches
    rc, out, _ = run("search", idx, "--json", queries[0])
    rc2, out2, _ = run("search", "-m", MODEL, "-c", CORPUS, "--json", queries[0])
    a = json.loads(out) if rc == 0 else {}
    b = json.loads(out2) if rc2 == 0 else {}
    ra, rb = a.get("results", []), b.get("results", [])
    check("search -c and search INDEX: one layout, default k 10", sorted(a) == sorted(b) == ["query", "results"]
          and len(ra) == len(rb) == 10 and sorted(ra[0]) == sorted(rb[0]) and [h["id"] for h in ra] == [h["id"] for h in rb],
          out + out2)
    _, t1, _ = run("search", idx, queries[0])
    _, t2, _ = run("search", "-m", MODEL, "-c", CORPUS, queries[0])
    check("search -c and search INDEX: one text layout", t1 == t2 and "  1. " in t1, t1 + t2)
    check("search top hit", got and got[0]["results"][0]["text"].startswith("Restart your router")
          and abs(got[0]["results"][0]["score"] - 0.6688) < 2e-3, out)
    rc, out, err = run("search", idx, "-i", "-", input=b"Who won the game?\n")
    check("search queries from stdin", rc == 0 and "Who won the game?" in out and "1." in out, err)
    rc, out, err = run("search", os.path.join(d, "missing.idx"), "x")
    check("search missing index", rc == 1 and "missing.idx" in err, err)
    bad = os.path.join(d, "garbage.idx")
    open(bad, "wb").write(os.urandom(4096))
    rc, out, err = run("search", bad, "x")
    check("search garbage file", rc == 1 and "not a sembed index" in err, err)
    os.unlink(bad)
    rc, out, err = run("search", idx, "--filter", "novalue", "x")
    check("bad --filter is a usage error", rc == 2, err)
    return idx


def test_jsonl_chunks_filters(d):
    lines = corpus_lines()
    src = os.path.join(d, "docs.jsonl")
    with open(src, "w", encoding="utf-8") as f:
        for i, l in enumerate(lines):
            f.write(json.dumps({"id": f"d{i}", "text": l, "lang": "fr" if i % 8 == 0 else "en", "year": 2020 + i % 2,
                                "tags": ["even"] if i % 2 == 0 else ["odd"]}) + "\n")
        f.write(json.dumps({"id": "long", "text": " ".join(lines * 6), "lang": "en"}) + "\n")
        f.write(json.dumps({"id": "zh", "text": "今天天气很好，我们去公园散步吧。" * 60, "lang": "zh"}) + "\n")
    idx = os.path.join(d, "j.idx")
    rc, out, err = run("index", "build", "-m", MODEL, "-i", src, "-o", idx, "--chunk", "48", "--overlap", "8", "--hnsw", "8,100")
    info = json.loads(run("index", "info", idx, "--json")[1])
    check("chunked build", rc == 0 and info["documents"] == 34 and info["vectors"] > 40 and info["M"] == 8
          and info["chunk_tokens"] == 48 and info["chunk_overlap"] == 8, err + json.dumps(info))
    # every chunk of the long document fits 48 tokens (checked with `sembed tokenize`)
    con = sqlite3.connect(idx)
    text, = con.execute("SELECT text FROM docs WHERE ext_id = 'long'").fetchone()
    spans = con.execute("SELECT start, end FROM chunks c JOIN docs d ON d.id = c.doc WHERE d.ext_id = 'long' ORDER BY chunk").fetchall()
    con.close()
    raw = text.encode("utf-8")
    pieces = [raw[a:b].decode("utf-8") for a, b in spans]
    rc, out, _ = run("tokenize", "-m", MODEL, "--jsonl-input", "--max-length", "0",
                     input="".join(json.dumps(p) + "\n" for p in pieces).encode())
    lens = [len(json.loads(l)) for l in out.splitlines()]
    check("chunks fit and cover the text", rc == 0 and len(pieces) > 5 and max(lens) <= 48 + 2 and spans[0][0] == 0
          and spans[-1][1] == len(raw) and all(b[0] < a[1] for a, b in zip(spans, spans[1:])), f"{lens} {spans[:3]}")
    # filters: exact on a small match set, and through metadata arrays / numbers
    rc, out, err = run("search", idx, "--json", "-k", "10", "--filter", "lang=fr", "weather")
    res = json.loads(out)["results"] if rc == 0 else []
    check("filter lang=fr returns all 4 and only them", len(res) == 4 and all(r["metadata"]["lang"] == "fr" for r in res), out + err)
    rc, out, err = run("search", idx, "--json", "-k", "50", "--filter", "tags=odd", "--filter", "year=2021", "x")
    res = json.loads(out)["results"] if rc == 0 else []
    check("filter on array and number", len(res) == 16 and all(r["metadata"]["year"] == 2021 for r in res), out + err)
    rc, out, err = run("search", idx, "--json", "-k", "3", "--filter", "lang=zh", "天气")
    res = json.loads(out)["results"] if rc == 0 else []
    check("best chunk per document", len(res) == 1 and res[0]["id"] == "zh", out)
    rc, out, err = run("search", idx, "--json", "-k", "3", "--all-chunks", "--filter", "lang=zh", "天气")
    res = json.loads(out)["results"] if rc == 0 else []
    check("--all-chunks", len(res) == 3 and all(r["id"] == "zh" for r in res), out)
    # add: replace one, add one; delete
    upd = os.path.join(d, "upd.jsonl")
    with open(upd, "w") as f:
        f.write(json.dumps({"id": "d3", "text": "A brand new text about quantum computers.", "lang": "de"}) + "\n")
        f.write(json.dumps({"id": "new", "text": "Quantum computing uses qubits.", "lang": "de"}) + "\n")
    rc, _, err = run("index", "add", idx, "-i", upd)
    rc2, out, _ = run("search", idx, "--json", "-k", "5", "--filter", "lang=de", "quantum")
    res = json.loads(out)["results"] if rc2 == 0 else []
    check("add replaces and adds", rc == 0 and sorted(r["id"] for r in res) == ["d3", "new"], err + out)
    rc, _, err = run("index", "delete", idx, "d3", "new", "nope")
    info2 = json.loads(run("index", "info", idx, "--json")[1])
    check("delete", rc == 0 and "deleted 2 of 3" in err and info2["documents"] == 33 and info2["free_slots"] >= 1, err + json.dumps(info2))
    rc, out, err = run("index", "add", idx, "-i", os.path.join(d, "nope.jsonl"))
    check("add: missing input", rc == 1 and "nope.jsonl" in err, err)
    bad = os.path.join(d, "bad.jsonl")
    open(bad, "w").write('{"text": "ok"}\n{"text": 5}\n')
    rc, out, err = run("index", "add", idx, "-i", bad)
    check("add: bad JSONL names the line", rc == 1 and "bad.jsonl:2" in err, err)
    open(bad, "w").write('{"text": "ok"}\nnot json\n')
    rc, out, err = run("index", "add", idx, "-i", bad)
    check("add: malformed JSON names the line", rc == 1 and "bad.jsonl:2" in err, err)
    check("failed adds changed nothing", json.loads(run("index", "info", idx, "--json")[1])["documents"] == 33)


def small_index(d, name, *extra):
    """Builds a flat index of the corpus (quick) and returns its path."""
    idx = os.path.join(d, name)
    rc, _, err = run("index", "build", "-m", MODEL, "-i", CORPUS, "-o", idx, "--flat", "-q", *extra)
    check(f"small index {name}", rc == 0, err)
    return idx


def test_delete_failure(d):
    """Issue 9.14: a failed delete closed nothing (the open index leaked;
    LeakSanitizer in `make asan`)."""
    idx = small_index(d, "del.idx")
    con = sqlite3.connect(idx)
    con.execute("CREATE TRIGGER no_delete BEFORE DELETE ON docs BEGIN SELECT RAISE(ABORT, 'deletes refused'); END")
    con.commit()
    con.close()
    rc, _, err = run("index", "delete", idx, "3")
    check("delete failure: an error, no leak", rc == 1 and "delete" in err and "LeakSanitizer" not in err, f"rc={rc} {err}")
    check("delete failure: no side files left", sorted(f for f in os.listdir(d) if f.startswith("del.idx")) == ["del.idx"],
          str(os.listdir(d)))


def test_chunk_options(d):
    """Issue 9.15: --overlap >= --chunk was silently halved; --chunk above
    the model's length was clamped but recorded as given."""
    rc, _, err = run("index", "build", "-m", MODEL, "-i", CORPUS, "-o", os.path.join(d, "o1.idx"), "--chunk", "20",
                     "--overlap", "20")
    check("--overlap = --chunk is a usage error", rc == 2 and "--overlap 20" in err and not os.path.exists(os.path.join(d, "o1.idx")), err)
    rc, _, err = run("index", "build", "-m", MODEL, "-i", CORPUS, "-o", os.path.join(d, "o2.idx"), "--overlap", "500")
    check("--overlap above the model's length is a usage error", rc == 2 and "--overlap 500" in err, err)
    check("refused builds leave nothing", not [f for f in os.listdir(d) if f.startswith(("o1.idx", "o2.idx"))], str(os.listdir(d)))
    idx = small_index(d, "c500.idx", "--chunk", "500")
    rc, out, err = run("index", "info", idx, "--json")
    info = json.loads(out) if rc == 0 else {}
    check("--chunk 500 on a 128-token model records 128", info.get("chunk_tokens") == 128, out)
    rc, _, err = run("index", "build", "-m", MODEL, "-i", CORPUS, "-o", os.path.join(d, "c500b.idx"), "--flat", "--chunk", "500")
    check("--chunk 500 warns", rc == 0 and "warning" in err and "--chunk 500" in err and "128" in err, err)


def test_jsonl_detection(d):
    """Issue 9.16: JSONL piped to `index build -i -` was indexed as raw text."""
    recs = [{"id": f"r{i}", "text": l, "lang": "en"} for i, l in enumerate(corpus_lines()[:5])]
    data = ("\n" + "".join(json.dumps(r) + "\n" for r in recs)).encode()
    idx = os.path.join(d, "piped.idx")
    p = subprocess.run([SEMBED, "index", "build", "-m", MODEL, "-i", "-", "-o", idx, "--flat"], input=data, capture_output=True)
    err = p.stderr.decode()
    rc, out, _ = run("search", idx, "--json", "-k", "1", corpus_lines()[2])
    res = json.loads(out)["results"] if rc == 0 else []
    check("JSONL on stdin is detected", p.returncode == 0 and "JSONL" in err and res and res[0]["id"] == "r2"
          and res[0]["metadata"] == {"lang": "en"} and res[0]["text"] == corpus_lines()[2], err + out)
    # (blank lines are documents here: a small BERT fixture, whose empty text still has [CLS] [SEP];
    # an empty text through USE lite hits a library memcpy from NULL under UBSan, encode.c)
    small = "tests/fixtures/models/en-mean-norm"
    idx2 = os.path.join(d, "forced-text.idx")
    p = subprocess.run([SEMBED, "index", "build", "-m", small, "-i", "-", "-o", idx2, "--flat", "--text"], input=data,
                       capture_output=True)
    rc, out, _ = run("index", "info", idx2, "--json")
    check("--text forces plain lines", p.returncode == 0 and rc == 0 and json.loads(out)["documents"] == 6, p.stderr.decode() + out)
    # plain text on stdin stays text, blank lines included
    idx3 = os.path.join(d, "plain.idx")
    p = subprocess.run([SEMBED, "index", "build", "-m", small, "-i", "-", "-o", idx3, "--flat"], input=b"\nfirst line\nsecond\n",
                       capture_output=True)
    rc, out, _ = run("index", "info", idx3, "--json")
    check("plain text on stdin stays text", p.returncode == 0 and rc == 0 and json.loads(out)["documents"] == 3
          and "JSONL" not in p.stderr.decode(), p.stderr.decode() + out)


def test_progress(d):
    """Issue 9.18: progress moved once per 256 documents with no rate or ETA;
    --progress forces time-based lines (at least one a second) with both."""
    import re
    src = os.path.join(d, "prog.jsonl")
    base = corpus_lines()
    n = 250 if os.environ.get("SAN") else 800  # a sanitizer build is slow enough with fewer
    with open(src, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"p{i}", "text": f"{base[i % len(base)]} ({i})"}) + "\n")
    # batches of n/2 documents, yet the line moves at least once a second: each line is timed as it arrives
    p = subprocess.Popen([SEMBED, "index", "build", "-m", MODEL, "-i", src, "-o", os.path.join(d, "prog.idx"), "--flat",
                          "--progress", "-b", str(n // 2)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    timed = [(time.time(), l.decode().rstrip("\n")) for l in p.stderr]
    p.wait()
    lines = [(t, l) for t, l in timed if l.startswith("indexing:")]
    pat = re.compile(rf"indexing: (\d+)/{n} docs \(\d+%\), [0-9.]+ docs/s, (ETA \S.*|[0-9.]+ s)$")
    gaps = [b[0] - a[0] for a, b in zip(lines, lines[1:])]
    ok = p.returncode == 0 and lines and all(pat.match(l) for _, l in lines) and lines[-1][1].startswith(f"indexing: {n}/{n}")
    ok = ok and all("ETA" in l for _, l in lines[:-1]) and (not gaps or max(gaps) < 1.5)
    check("--progress: a line at least once a second, with docs/s and ETA", ok,
          f"gaps {[round(g, 2) for g in gaps]}\n" + "\n".join(l for _, l in timed))


def many_docs(d, n=1500):
    """A JSONL file of n documents (slow enough to interrupt)."""
    src = os.path.join(d, f"many{n}.jsonl")
    base = corpus_lines()
    with open(src, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"m{i}", "text": f"{base[i % len(base)]} (copy {i})"}) + "\n")
    return src


def wait_for(pred, timeout=30):
    """Polls pred until it is true or timeout seconds pass."""
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_interrupted_builds(d):
    """Issue 9.6: an interrupted (SIGINT, SIGTERM), killed or disk-full build
    left *.tmp.PID and -wal/-shm behind."""
    sub = os.path.join(d, "intr")
    os.mkdir(sub)
    src = many_docs(d)
    for sig, code in [(signal.SIGINT, 130), (signal.SIGTERM, 143)]:
        out = os.path.join(sub, "x.idx")
        p = subprocess.Popen([SEMBED, "index", "build", "-m", MODEL, "-i", src, "-o", out, "-b", "64"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started = wait_for(lambda: any(".tmp." in f for f in os.listdir(sub)))
        time.sleep(0.5)
        p.send_signal(sig)
        err = p.communicate()[1].decode()
        check(f"{sig.name} during build: exit {code}, nothing left", started and p.returncode == code and os.listdir(sub) == []
              and "index add" in err, f"rc={p.returncode} {os.listdir(sub)} {err}")
    # SIGINT during add: committed batches stay, the message says how to go on
    idx = small_index(d, "intr-add.idx")
    p = subprocess.Popen([SEMBED, "index", "add", idx, "-i", src, "-b", "32"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: os.path.exists(idx + "-wal"))
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    err = p.communicate()[1].decode()
    rc, out, _ = run("index", "info", idx, "--json")
    n = json.loads(out)["documents"] - 32 if rc == 0 else -1
    check("SIGINT during add: exit 130, whole batches kept, how to continue", p.returncode == 130 and n >= 0 and n % 32 == 0
          and f"{n} of 1500 documents" in err and f"sembed index add {idx} -i {src}" in err, f"rc={p.returncode} n={n} {err}")
    # SIGKILL can't be caught: the next build removes the dead build's files
    out = os.path.join(sub, "k.idx")
    p = subprocess.Popen([SEMBED, "index", "build", "-m", MODEL, "-i", src, "-o", out], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    wait_for(lambda: os.path.exists(f"{out}.tmp.{p.pid}-wal"))
    p.kill()
    p.wait()
    left = sorted(os.listdir(sub))
    other = os.path.join(sub, f"k.idx.tmp.{os.getpid()}")  # a live process's file: not touched
    open(other, "w").close()
    rc, _, err = run("index", "build", "-m", MODEL, "-i", CORPUS, "-o", out, "--flat", "-q")
    check("SIGKILL: the next build removes the stale temporary files", len(left) >= 2 and rc == 0
          and sorted(os.listdir(sub)) == sorted(["k.idx", os.path.basename(other)]) and "removed" in err,
          f"{left} -> {os.listdir(sub)} {err}")
    os.unlink(other)
    os.unlink(out)
    # a full disk: a 2 MB tmpfs (root), else a file-size limit
    full = os.path.join(d, "full")
    os.mkdir(full)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", full], capture_output=True).returncode == 0
    try:
        def limit():
            if not mounted:
                import resource
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))
        p = subprocess.run([SEMBED, "index", "build", "-m", MODEL, "-i", src, "-o", os.path.join(full, "f.idx"), "--flat", "-q"],
                           capture_output=True, preexec_fn=limit)
        err = p.stderr.decode()
        check(f"disk full ({'tmpfs' if mounted else 'RLIMIT_FSIZE'}): an error, nothing left, how to go on",
              p.returncode == 1 and os.listdir(full) == [] and "index add" in err, f"rc={p.returncode} {os.listdir(full)} {err}")
    finally:
        if mounted:
            subprocess.run(["umount", full])


def test_duplicate_ids(d):
    """Issue 9.5: duplicate ids inside one input were silently collapsed and
    the summary counted them as documents."""
    src = os.path.join(d, "dups.jsonl")
    lines = corpus_lines()
    recs = [{"id": f"u{i}", "text": lines[i]} for i in range(10)] + [{"id": "u3", "text": "The later text of u3 wins."}]
    open(src, "w").write("".join(json.dumps(r) + "\n" for r in recs))
    idx = os.path.join(d, "dups.idx")
    rc, _, err = run("index", "build", "-m", MODEL, "-i", src, "-o", idx, "--flat")
    info = json.loads(run("index", "info", idx, "--json")[1]) if rc == 0 else {}
    rc2, out, _ = run("search", idx, "--json", "-k", "1", "The later text of u3 wins.")
    res = json.loads(out)["results"] if rc2 == 0 else []
    check("duplicate ids: warned naming both lines, counted, the later wins",
          rc == 0 and "dups.jsonl:11" in err and "line 4" in err and '"u3"' in err
          and "added 10 documents" in err and "1 duplicate id" in err and info.get("documents") == 10
          and res and res[0]["id"] == "u3" and res[0]["text"] == "The later text of u3 wins.", err + out)


ZH = ["苹果手机质量怎么样", "今天天气很好", "股票大跌"]


def test_unknown_tokens(d):
    """Issue 9.2: dedup dropped 今天天气很好 as a duplicate of 苹果手机质量怎么样
    (both are only unknown tokens to the English-only model); cluster merged
    them. Every command now names such texts, and dedup keeps them."""
    src = os.path.join(d, "zh.txt")
    lines = corpus_lines()[:4] + ZH
    open(src, "w").write("\n".join(lines) + "\n")
    kept, rep = os.path.join(d, "zh-kept.txt"), os.path.join(d, "zh-report.jsonl")
    rc, _, err = run("dedup", "-m", MODEL, "-i", src, "-o", kept, "--report", rep)
    k = open(kept).read().splitlines() if rc == 0 else []
    r = [json.loads(l) for l in open(rep)] if rc == 0 else []
    check("dedup keeps mostly-unknown lines and says so", rc == 0 and k == lines and all(f"zh.txt:{i}:" in err for i in (5, 6, 7))
          and sorted(x["line"] for x in r if "kept" in x) == [5, 6, 7] and not [x for x in r if "duplicate_of" in x]
          and "3 lines of mostly unknown tokens" in err, err + str(r))
    for cmd in (["cluster", "--threshold", "0.9"], ["mine"]):
        rc, _, err = run(cmd[0], "-m", MODEL, "-i", src, *cmd[1:])
        check(f"{cmd[0]} names mostly-unknown lines", rc == 0 and all(f"zh.txt:{i}:" in err for i in (5, 6, 7)), err)
    idx = os.path.join(d, "zh.idx")
    rc, _, err = run("index", "build", "-m", MODEL, "-i", src, "-o", idx, "--flat", "-q")
    check("index build names mostly-unknown documents", rc == 0 and "zh.txt:6 (id 6)" in err, err)
    rc, _, err = run("search", idx, "-k", "1", "weather", ZH[1])
    check("search names a mostly-unknown query", rc == 0 and "query 2:" in err and "query 1:" not in err, err)
    rc, _, err = run("search", "-m", MODEL, "-c", src, "-k", "1", "weather", ZH[1])
    check("search -c names mostly-unknown lines and queries", rc == 0 and "zh.txt:5:" in err and "query 2:" in err, err)


def other_model(d):
    """A copy of the default model with one weight byte changed (same
    shapes, same dimension: a fine-tuned model in miniature)."""
    import shutil, struct
    dst = os.path.join(d, "use-lite-tuned")
    if not os.path.exists(dst):
        shutil.copytree(MODEL, dst)
        path = os.path.join(dst, "model.safetensors")
        with open(path, "r+b") as f:
            n, = struct.unpack("<Q", f.read(8))
            pos = 8 + n + 4096  # inside the data section, the low byte of a float32
            f.seek(pos)
            b = f.read(1)
            f.seek(pos)
            f.write(bytes([b[0] ^ 1]))
    return dst


def test_model_fingerprint(d):
    """Issue 9.5: `index add -m OTHER` (same dimension) mixed two embedding
    spaces silently. The index records the model's fingerprint and refuses
    another model."""
    other = other_model(d)
    idx = small_index(d, "fp.idx")
    rc, out, _ = run("index", "info", idx, "--json")
    info = json.loads(out) if rc == 0 else {}
    fp = info.get("model_fingerprint") or ""
    check("index info --json: the fingerprint", "weights=" in fp and "dim=512" in fp, out)
    rc, out, _ = run("index", "info", idx)
    check("index info: the fingerprint", rc == 0 and "fingerprint" in out and fp in out, out)
    upd = os.path.join(d, "fp-add.jsonl")
    open(upd, "w").write(json.dumps({"id": "x1", "text": "A sentence from another model."}) + "\n")
    rc, _, err = run("index", "add", idx, "-i", upd, "-m", other)
    after = json.loads(run("index", "info", idx, "--json")[1])
    check("index add -m OTHER is refused", rc == 1 and "weights" in err and after["documents"] == 32, err)
    rc, _, err = run("index", "add", idx, "-i", upd)
    check("index add with the recorded model", rc == 0, err)
    rc, _, err = run("search", idx, "-m", other, "x")
    check("search -m OTHER is refused", rc == 1 and "weights" in err, err)
    # an index built with the other model searches with it (the recorded model)
    idx2 = os.path.join(d, "fp2.idx")
    rc, _, err = run("index", "build", "-m", other, "-i", CORPUS, "-o", idx2, "--flat", "-q")
    rc2, out, err2 = run("search", idx2, "-k", "1", "router")
    check("an index searches with its recorded model", rc == 0 and rc2 == 0 and "router" in out, err + err2)


def test_filters(d):
    """Issue 9.15: an unknown --filter key matched nothing without a word;
    32 filter terms were accepted but failed at 30."""
    src = os.path.join(d, "flt.jsonl")
    with open(src, "w") as f:
        for i, l in enumerate(corpus_lines()):
            f.write(json.dumps({"id": f"f{i}", "text": l, "lang": "fr" if i % 8 == 0 else "en"}) + "\n")
    idx = os.path.join(d, "flt.idx")
    rc, _, err = run("index", "build", "-m", MODEL, "-i", src, "-o", idx, "-q")
    rc, out, err = run("search", idx, "--json", "--filter", "lnag=en", "weather")
    check("--filter on a key no document has: warned", rc == 0 and 'no document has a metadata field "lnag"' in err
          and json.loads(out)["results"] == [], err + out)
    rc, out, err = run("search", idx, "--json", "--filter", "lang=en", "weather")
    check("--filter on a known key: no warning", rc == 0 and "warning" not in err, err)
    many = [a for _ in range(32) for a in ("--filter", "lang=fr")]
    rc, out, err = run("search", idx, "--json", "-k", "10", *many, "weather")
    res = json.loads(out)["results"] if rc == 0 else []
    check("32 --filter terms work", rc == 0 and len(res) == 4, err + out)
    rc, out, err = run("search", idx, "--json", *many, "--filter", "lang=fr", "weather")
    check("33 --filter terms: a usage error", rc == 2 and "at most 32" in err, err)


def test_output_targets(d):
    """Issue 9.1 for cluster, dedup and mine: -o through a symlink keeps the
    link; -o (and --report) on a device node writes through it."""
    import stat
    sub = os.path.join(d, "outs")
    os.mkdir(sub)
    real, link = os.path.join(sub, "real.txt"), os.path.join(sub, "link.txt")
    open(real, "w").write("old\n")
    os.symlink("real.txt", link)
    null = os.path.join(sub, "null")
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    for cmd in (["dedup"], ["mine", "--top-k", "2"], ["cluster", "--threshold", "0.6"]):
        open(real, "w").write("old\n")
        rc, _, err = run(cmd[0], "-m", MODEL, "-i", CORPUS, "-o", link, "-q", *cmd[1:])
        check(f"{cmd[0]} -o symlink: the link stays, the target is written", rc == 0 and os.path.islink(link)
              and open(real).read() not in ("", "old\n"), err)
        rc, _, err = run(cmd[0], "-m", MODEL, "-i", CORPUS, "-o", null, "-q", *cmd[1:])
        check(f"{cmd[0]} -o device: still a device", rc == 0 and stat.S_ISCHR(os.lstat(null).st_mode), err)
    rc, _, err = run("dedup", "-m", MODEL, "-i", CORPUS, "-o", null, "--report", null, "-q")
    check("dedup --report device", rc == 0 and stat.S_ISCHR(os.lstat(null).st_mode)
          and sorted(os.listdir(sub)) == ["link.txt", "null", "real.txt"], err + str(os.listdir(sub)))


def test_kill(d):
    """SIGKILL `sembed index add` at random points; the index always opens and
    holds a prefix of whole committed batches; nothing committed is lost."""
    rnd = random.Random(1234)
    src = os.path.join(d, "many.jsonl")
    base = corpus_lines()
    n, batch = 3000, 16
    with open(src, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"k{i}", "text": f"{base[i % len(base)]} (variant {i})"}) + "\n")
    idx = os.path.join(d, "k.idx")
    rc, _, err = run("index", "build", "-m", MODEL, "-i", CORPUS, "-o", idx, "-q")
    check("kill: base index", rc == 0, err)
    prev = 0
    kills = 0
    for attempt in range(6):
        p = subprocess.Popen([SEMBED, "index", "add", idx, "-i", src, "-b", str(batch), "-q"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.3, 2.0))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
        rc, out, err = run("index", "info", idx, "--json")
        ok = rc == 0
        con = sqlite3.connect(idx)
        ids = [r[0] for r in con.execute("SELECT ext_id FROM docs WHERE ext_id LIKE 'k%' ORDER BY id")]
        nchunks = con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        ndocs = con.execute("SELECT COUNT(*) FROM docs").fetchone()[0]
        con.close()
        k = len(ids)
        # each run re-adds from the start (replacing), so the set is a prefix of the input
        ok = ok and sorted(ids, key=lambda s: int(s[1:])) == [f"k{i}" for i in range(k)]
        ok = ok and k >= prev and (k % batch == 0 or k == n) and nchunks == ndocs
        ok = ok and json.loads(out)["vectors"] == nchunks
        check(f"kill {attempt}: index opens, a prefix of whole batches, nothing lost", ok,
              f"rc={rc} k={k} prev={prev} chunks={nchunks} docs={ndocs} {err}")
        prev = k
    check("kill: the adds were really killed", kills >= 3, f"kills={kills}")
    # the graph caught up with the rows: searching finds a committed document
    if prev:
        con = sqlite3.connect(idx)
        text, = con.execute("SELECT text FROM docs WHERE ext_id = ?", (f"k{prev - 1}",)).fetchone()
        con.close()
        rc, out, err = run("search", idx, "--json", "-k", "3", text)
        res = json.loads(out)["results"] if rc == 0 else []
        check("kill: the last committed document is found", any(r["text"] == text for r in res), out + err)
    # a killed build leaves no index behind
    out_idx = os.path.join(d, "killed.idx")
    p = subprocess.Popen([SEMBED, "index", "build", "-m", MODEL, "-i", src, "-o", out_idx, "-q"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.8)
    p.send_signal(signal.SIGKILL)
    p.wait()
    check("kill: an interrupted build leaves no index", not os.path.exists(out_idx))


def test_cluster_dedup_mine(d):
    lines = corpus_lines()
    dup = lines + [lines[0].replace("nine", "ten"), lines[17].replace(".", "!"), lines[27] + " ", lines[5]]
    src = os.path.join(d, "dup.txt")
    open(src, "w").write("\n".join(dup) + "\n")
    kept, report = os.path.join(d, "kept.txt"), os.path.join(d, "report.jsonl")
    rc, out, err = run("dedup", "-m", MODEL, "-i", src, "--threshold", "0.95", "-o", kept, "--report", report)
    k = open(kept).read().splitlines() if rc == 0 else []
    rep = [json.loads(l) for l in open(report)] if rc == 0 else []
    check("dedup keeps the firsts", rc == 0 and k == lines, err)
    check("dedup report", sorted((r["line"], r["duplicate_of"]) for r in rep) == [(33, 1), (34, 18), (35, 28), (36, 6)]
          and all(r["score"] >= 0.95 for r in rep), str(rep))
    rc, out, err = run("mine", "-m", MODEL, "-i", src, "--json", "--top-k", "5")
    pairs = [json.loads(l) for l in out.splitlines()] if rc == 0 else []
    top4 = sorted((p["i"], p["j"]) for p in pairs[:4])
    check("mine: the duplicates pair up first", top4 == [(1, 33), (6, 36), (18, 34), (28, 35)]
          and all(a["score"] >= b["score"] for a, b in zip(pairs, pairs[1:])) and all(p["i"] < p["j"] for p in pairs), str(pairs[:5]))
    rc, out, err = run("cluster", "-m", MODEL, "-i", src, "--json", "--threshold", "0.9", "--min-size", "2")
    cl = [json.loads(l) for l in out.splitlines()] if rc == 0 else []
    groups = sorted(sorted(m["line"] for m in c["members"]) for c in cl)
    check("cluster: communities of the duplicates", groups == [[1, 33], [6, 36], [18, 34], [28, 35]], str(groups))
    rc, out, err = run("cluster", "-m", MODEL, "-i", src, "--json", "--kmeans", "5")
    cl = [json.loads(l) for l in out.splitlines()] if rc == 0 else []
    members = sorted(m["line"] for c in cl for m in c["members"])
    together = all(any({a, b} <= {m["line"] for m in c["members"]} for c in cl) for a, b in [(1, 33), (6, 36), (18, 34), (28, 35)])
    check("kmeans: every line once, duplicates together", len(cl) == 5 and members == list(range(1, 37)) and together, str(cl)[:300])
    rc, out, err = run("cluster", "-m", MODEL, "-i", src, "--kmeans", "99")
    check("kmeans: K > n is an error", rc == 1 and "99" in err, err)
    for cmd in ["cluster", "dedup", "mine"]:
        rc, out, _ = run(cmd, "--help")
        check(f"{cmd} --help", rc == 0 and "usage: sembed " + cmd in out)
        rc, _, _ = run(cmd)
        check(f"{cmd} without args is a usage error", rc == 2)


def test_keyword_hybrid_rerank(d):
    """search --keyword / --hybrid / --rerank, and the upgrade of a format-1 index (issue 14)."""
    idx = os.path.join(d, "kw.idx")
    rc, _, err = run("index", "build", "-q", "-m", MODEL, "-i", CORPUS, "-o", idx)
    check("kw: build", rc == 0, err)
    rc, out, err = run("search", idx, "--keyword", "-k", "3", "--json", "How do I restart my router?")
    res = json.loads(out)["results"] if rc == 0 else []
    check("kw: --keyword finds the router passage first, BM25 > 0, no vector score",
          res and res[0]["text"].startswith("Restart your router") and all(r["keyword_score"] > 0 and r["vector_score"] is None
                                                                         and r["score"] == r["keyword_score"] for r in res),
          out + err)
    # and / or are English stop words (not searched, as in Elasticsearch's english analyzer); router is a word
    rc, out, err = run("search", idx, "--keyword", "--json", "\" AND NEAR( router* ) OR")
    res = json.loads(out)["results"] if rc == 0 else []
    words = [set(w.strip(".,!?").lower() for w in r["text"].split()) for r in res]
    check("kw: a query of FTS5 syntax is words (near, router), not an error or operators",
          res and all(w & {"near", "router"} for w in words), out + err)
    rc, out, err = run("search", idx, "--keyword", "--json", "?! ... --")
    check("kw: a query of punctuation only finds nothing", rc == 0 and json.loads(out)["results"] == [], out + err)
    rc, out, err = run("search", idx, "--hybrid", "-k", "32", "--json", "Will it rain this weekend?")
    res = json.loads(out)["results"] if rc == 0 else []
    check("kw: --hybrid gives both component scores (null where a side missed) and fused scores in order",
          len(res) == 32 and all(r["vector_score"] is not None for r in res)
          and any(r["keyword_score"] is None for r in res) and any(r["keyword_score"] is not None for r in res)
          and all(a["score"] >= b["score"] for a, b in zip(res, res[1:])) and 0 <= res[-1]["score"] <= res[0]["score"] <= 1,
          out + err)
    rc, out, err = run("search", idx, "--hybrid", "--fusion", "rrf", "-k", "3", "--json", "Will it rain this weekend?")
    res = json.loads(out)["results"] if rc == 0 else []
    check("kw: --fusion rrf scores are sums of 1/(60 + rank)", res and 1 / 61 <= res[0]["score"] <= 2 / 61 + 1e-7, out + err)
    for args, words in [(["--keyword", "--hybrid"], "exclude"), (["--alpha", "0.5"], "for --hybrid"),
                        (["--hybrid", "--fusion", "max"], "rrf or score"), (["--hybrid", "--alpha", "1.5"], "--alpha"),
                        (["--hybrid", "--fusion", "rrf", "--alpha", "0.2"], "not rrf"), (["--keyword", "--all-chunks"], "--all-chunks")]:
        rc, _, err = run("search", idx, *args, "x")
        check(f"kw: search {' '.join(args)} is a usage error", rc == 2 and words in err, err)
    rc, out, _ = run("search", "--help")
    check("kw: search --help lists the new options", rc == 0 and all(o in out for o in ("--keyword", "--hybrid", "--alpha", "--fusion",
                                                                                     "--rerank", "--rerank-top")))
    # --keyword needs no model: the index's recorded model may be gone
    gone = os.path.join(d, "gone-model")
    subprocess.run(["cp", "-r", "tests/fixtures/models/en-mean-norm", gone], check=True)
    gidx = os.path.join(d, "gone.idx")
    rc, _, err = run("index", "build", "-q", "-m", gone, "-i", CORPUS, "-o", gidx)
    subprocess.run(["rm", "-rf", gone], check=True)
    rc, out, err = run("search", gidx, "--keyword", "-k", "1", "router")
    check("kw: --keyword works without the model", rc == 0 and "Restart your router" in out, out + err)
    # --rerank: the first stage's top hits in the order se_rank gives (sembed rerank on their texts)
    ce = "tests/fixtures/models/ce-bert-1"
    q = "How do I restart my router?"
    rc, out, err = run("search", idx, "--hybrid", "-k", "6", "--json", q)
    first = json.loads(out)["results"] if rc == 0 else []
    src = os.path.join(d, "first.txt")
    with open(src, "w", encoding="utf-8") as f:
        f.write("".join(r["text"] + "\n" for r in first))
    rc, out, err = run("rerank", "-m", ce, q, "-i", src, "--json", "-q")
    ranked = [json.loads(l) for l in out.splitlines()] if rc == 0 else []
    rc, out, err = run("search", idx, "--hybrid", "-k", "6", "--rerank", ce, "--rerank-top", "6", "--json", "-q", q)
    got = json.loads(out)["results"] if rc == 0 else []
    check("kw: --rerank order and scores = sembed rerank (se_rank) on the first stage's chunks",
          len(got) == 6 and [g["id"] for g in got] == [first[r["index"]]["id"] for r in ranked]
          and [g["score"] for g in got] == [r["score"] for r in ranked], out + err)
    check("kw: --rerank keeps the first-stage score", got and all(
        g["first_stage_score"] == next(f["score"] for f in first if f["id"] == g["id"]) for g in got), out)
    rc, out, err = run("search", idx, "--hybrid", "-k", "3", "--rerank", ce, "--rerank-top", "6", "--json", "-q", q)
    got3 = json.loads(out)["results"] if rc == 0 else []
    check("kw: -k 3 --rerank-top 6 shows the best 3 of the 6 reranked", [g["id"] for g in got3] == [g["id"] for g in got[:3]], out + err)
    rc, out, err = run("search", idx, "--rerank", MODEL, "x")
    check("kw: --rerank with an embedding model is refused", rc == 1 and "not a cross-encoder" in err, err)
    # an index made before the keyword index (format 1): refused read-only with how to upgrade, then upgraded
    old = os.path.join(d, "v1.idx")
    subprocess.run(["cp", "tests/fixtures/index/v1-en-mean-norm.idx", old], check=True)
    rc, out, err = run("search", old, "--keyword", "dogs")
    check("kw: format-1 index: --keyword refused, saying how to upgrade",
          rc == 1 and f"sembed index upgrade {old}" in err, err)
    rc, out, err = run("index", "upgrade", old)
    check("kw: index upgrade", rc == 0 and "format 4" in out and "upgraded from index format 1" in err, out + err)
    rc, out, err = run("search", old, "--keyword", "--json", "dog garden")
    res = json.loads(out)["results"] if rc == 0 else []
    check("kw: upgraded index answers keyword searches", [r["id"] for r in res] == ["a"], out + err)
    rc, out, err = run("search", old, "--keyword", "--json", "手机")
    res = json.loads(out)["results"] if rc == 0 else []
    check("kw: a Chinese query finds the Chinese document", [r["id"] for r in res] == ["c"], out + err)
    rc, out, _ = run("index", "info", old, "--json")
    check("kw: info says format 4 after the upgrade", rc == 0 and json.loads(out)["format_version"] == 4, out)


def test_titles(d):
    """A JSONL "title" (issue 14, BEIR's field layout): stored apart from the text and the metadata,
    returned by search, keyword-searched as its own field, embedded as title + " " + text."""
    src = os.path.join(d, "titled.jsonl")
    with open(src, "w", encoding="utf-8") as f:
        f.write(json.dumps({"id": "t1", "title": "Zebrafish fin regeneration", "text": "The fins grow back within weeks.",
                            "lang": "en"}) + "\n")
        f.write(json.dumps({"id": "t2", "text": "Router restarts fix most wifi drops."}) + "\n")
        f.write(json.dumps({"id": "t3", "title": None, "text": "Pasta cooks in ten minutes."}) + "\n")
    idx = os.path.join(d, "titled.idx")
    rc, _, err = run("index", "build", "-m", MODEL, "-i", src, "-o", idx, "--flat", "-q")
    check("title: build", rc == 0, err)
    con = sqlite3.connect(idx)
    rows = con.execute("SELECT ext_id, title, text, meta FROM docs ORDER BY ext_id").fetchall()
    con.close()
    check("title: stored apart from the text and the metadata",
          rows == [("t1", "Zebrafish fin regeneration", "The fins grow back within weeks.", '{"lang":"en"}'),
                   ("t2", None, "Router restarts fix most wifi drops.", None),
                   ("t3", None, "Pasta cooks in ten minutes.", None)], str(rows))
    rc, out, err = run("search", idx, "--keyword", "--json", "zebrafish")
    res = json.loads(out)["results"] if rc == 0 else []
    check("title: --keyword finds a title-only word, the hit has its title",
          [r["id"] for r in res] == ["t1"] and res[0].get("title") == "Zebrafish fin regeneration"
          and res[0]["text"] == "The fins grow back within weeks." and res[0]["metadata"] == {"lang": "en"}, out + err)
    rc, out, err = run("search", idx, "--json", "-k", "3", "Zebrafish fin regeneration The fins grow back within weeks.")
    res = json.loads(out)["results"] if rc == 0 else []
    check("title: the vector is of title + \" \" + text (cosine 1 with that query)",
          res and res[0]["id"] == "t1" and abs(res[0]["score"] - 1.0) < 1e-4 and "title" not in res[1], out + err)
    rc, out, err = run("search", idx, "-k", "1", "zebrafish fins")
    check("title: the text output shows it", rc == 0 and "[t1] Zebrafish fin regeneration: The fins" in out, out + err)
    bad = os.path.join(d, "badtitle.jsonl")
    with open(bad, "w", encoding="utf-8") as f:
        f.write(json.dumps({"id": "a", "text": "x"}) + "\n" + json.dumps({"id": "b", "title": 5, "text": "y"}) + "\n")
    rc, _, err = run("index", "build", "-m", MODEL, "-i", bad, "-o", os.path.join(d, "bad.idx"), "--flat", "-q")
    check("title: a non-string title is refused naming the line", rc != 0 and "badtitle.jsonl:2" in err
          and '"title" must be a string' in err, err)


if __name__ == "__main__":
    if not os.path.exists(MODEL + "/model.safetensors"):
        print(f"test_index_cli: {MODEL} is missing (run ./setup.sh)", file=sys.stderr)
        sys.exit(1)
    with tempfile.TemporaryDirectory() as d:
        test_build_search(d)
        test_jsonl_chunks_filters(d)
        test_cluster_dedup_mine(d)
        test_delete_failure(d)
        test_chunk_options(d)
        test_jsonl_detection(d)
        test_progress(d)
        test_interrupted_builds(d)
        test_duplicate_ids(d)
        test_unknown_tokens(d)
        test_model_fingerprint(d)
        test_filters(d)
        test_output_targets(d)
        test_keyword_hybrid_rerank(d)
        test_titles(d)
        test_kill(d)
    report("test_index_cli")
