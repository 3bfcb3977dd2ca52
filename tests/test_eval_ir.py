#!/usr/bin/python3
"""Black-box tests of `sembed eval ir`.

Run from the repo root: /usr/bin/python3 tests/test_eval_ir.py build/sembed
- eval_ir_matches_reference: on tests/fixtures/eval/scifact-mini (a SciFact
  subset with deliberate duplicate documents, so equal scores occur) with the
  default model, every metric of `--json` equals tools/ir_eval_ref.py's on the
  run file `--run` wrote, to 1e-4 (the tie rule changes nDCG there by ~0.009);
- eval_ir_graded: graded qrels, a score-0 judgement, a query without relevant
  documents, a judged document missing from the corpus (a warning), against
  the reference with and without --binary-ndcg;
- eval_ir_index: --index builds the index, a second run reuses it, the
  metrics equal the exact search's;
- eval_ir_chunks: --chunks finds an answer past max_seq_length that the
  whole-document (truncated) embedding misses;
- eval_ir_rerank: --rerank re-orders the first stage's top N only;
- eval_ir_zh_keyword: keyword (and hybrid) search finds Chinese passages
  that the default, English-only model cannot read;
- eval_ir_fusion_never_worse: on en-stsb-ir (English, where the dense side
  is the better one) and zh-stsb-ir (Chinese, dense carries nothing) the
  default hybrid's nDCG@10 is >= max(dense, keyword) - 0.5 points;
- bad input: missing files, a bad JSON line, a qrels line with a wrong field
  count or score, a query missing from queries.jsonl, duplicate ids, usage.
Prints "test_eval_ir: N passed, N failed" and exits non-zero on failure.
"""
import json, os, sqlite3, subprocess, tempfile

from clitest import check, report, run

USE = "models/use-lite"
MINI = "tests/fixtures/eval/scifact-mini"
ZH_MIN_NDCG = 0.75  # 0.858 (keyword and hybrid) in the optimised run; dense is 0.13
KEYS = ["ndcg@10", "mrr@10", "recall@1", "recall@10", "recall@100", "map@100", "precision@1", "precision@10",
        "accuracy@1", "accuracy@3", "accuracy@5", "accuracy@10"]


def reference(d, run_file, *extra):
    """tools/ir_eval_ref.py's JSON for folder d and a run file."""
    p = subprocess.run(["/usr/bin/python3", "tools/ir_eval_ref.py", d, run_file, *extra], capture_output=True, text=True)
    return json.loads(p.stdout) if p.returncode == 0 else {"error": p.stderr}


def close(a, b, tol=1e-4):
    """The metrics of two JSON objects agree within tol, key by key."""
    return all(abs(a["metrics"][k] - b["metrics"][k]) <= tol for k in KEYS)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def tiny(d, qrels="query-id\tcorpus-id\tscore\nq1\ta\t2\nq1\tb\t1\nq1\tc\t0\nq2\tc\t1\nq3\tb\t0\n"):
    """A small folder: 5 documents, 3 queries, the given qrels."""
    docs = [("a", "Cats", "Cats are small furry animals that purr."),
            ("b", "Dogs", "Dogs bark and like to play fetch."),
            ("c", "", "The stock market fell sharply on Monday."),
            ("d", "Weather", "Rain is expected tomorrow afternoon."),
            ("e", "Cooking", "Boil the pasta for ten minutes.")]
    write(os.path.join(d, "corpus.jsonl"), "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in docs))
    write(os.path.join(d, "queries.jsonl"), "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in
                                                    [("q1", "pets that purr"), ("q2", "shares dropped"), ("q3", "rain")]))
    write(os.path.join(d, "qrels.tsv"), qrels)


def sanitizer_subset(tmp):
    """Under a sanitizer (7x slower), the fixture with fewer documents: the
    relevant ones, the duplicates and 10 others (47 of 137), all 30 queries;
    the optimised run checks the whole fixture."""
    import gzip, shutil
    d = os.path.join(tmp, "mini-san")
    os.makedirs(d)
    rel = {l.split("\t")[1] for l in open(os.path.join(MINI, "qrels.tsv"))}
    docs = [json.loads(l) for l in gzip.open(os.path.join(MINI, "corpus.jsonl.gz"), "rt", encoding="utf-8")]
    others = [c for c in docs if c["_id"] not in rel and not c["_id"].startswith("dup-")][:10]
    keep = [c for c in docs if c["_id"] in rel or c["_id"].startswith("dup-") or c in others]
    write(os.path.join(d, "corpus.jsonl"), "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in keep))
    shutil.copy(os.path.join(MINI, "queries.jsonl.gz"), d)
    shutil.copy(os.path.join(MINI, "qrels.tsv"), d)
    return d, len(keep)


def test_matches_reference(tmp):
    rf = os.path.join(tmp, "mini.run")
    folder, n_docs = sanitizer_subset(tmp) if os.environ.get("SAN") else (MINI, 137)
    rc, out, err = run("eval", "ir", "-m", USE, folder, "--json", "--run", rf, "-q")
    got = json.loads(out) if rc == 0 else {}
    check("eval_ir_matches_reference runs", rc == 0 and got.get("queries") == 30 and got.get("docs") == n_docs, f"{rc} {out} {err}")
    ref = reference(folder, rf)
    check("eval_ir_matches_reference metrics", rc == 0 and ref.get("queries") == 30 and close(got, ref),
          f"\n  sembed {got.get('metrics')}\n  ref    {ref}")
    # the fixture's duplicates tie: a run line pair with one score
    with open(rf) as f:
        rows = [l.split() for l in f]
    ties = {(r[0], r[4]) for r in rows if r[2].startswith("dup-")} & {(r[0], r[4]) for r in rows if not r[2].startswith("dup-")}
    check("eval_ir_matches_reference has ties", len(ties) > 0 and len(rows) == 30 * min(100, n_docs), f"{len(ties)} {len(rows)}")
    check("eval_ir_matches_reference settings", got.get("search") == "vector" and got.get("through") == "exact"
          and got.get("ndcg_gain") == "graded" and got.get("relevant") == 31, out)


def test_graded(tmp):
    d = os.path.join(tmp, "graded")
    tiny(d, "query-id\tcorpus-id\tscore\nq1\ta\t2\nq1\tb\t1\nq1\tc\t0\nq2\tc\t1\nq2\tzz\t1\nq3\tb\t0\n")
    for extra in [[], ["--binary-ndcg"]]:
        rf = os.path.join(tmp, "graded.run")
        rc, out, err = run("eval", "ir", "-m", USE, d, "--json", "--run", rf, "-q", *extra)
        got = json.loads(out) if rc == 0 else {}
        ref = reference(d, rf, *extra)
        check(f"eval_ir_graded {extra} matches reference", rc == 0 and close(got, ref, 1e-6), f"{out} {err} {ref}")
        check(f"eval_ir_graded {extra} counts", got.get("queries") == 2 and got.get("relevant") == 4
              and got.get("qrels_unknown_docs") == 1, out)
        check(f"eval_ir_graded {extra} warns of the unknown document",
              "1 judged document is not in the corpus" in err and "qrels.tsv:6: 'zz'" in err, err)
    # q2's relevant documents: c and zz (never retrieved): recall@100 1/2;
    # q1's: a and b, both retrieved among 5: recall@100 1 -> mean 0.75
    check("eval_ir_graded recall@100", abs(got.get("metrics", {}).get("recall@100", 0) - 0.75) < 1e-9, out)
    # the binary and graded nDCG differ on q1 (gains 2 and 1) unless a, b rank the same both ways
    rc, out, _ = run("eval", "ir", "-m", USE, d, "-q")
    check("eval_ir_graded text output", rc == 0 and "nDCG@10" in out and "(2 queries, 5 documents; vector search, exact)" in out, out)


def test_index(tmp):
    d = os.path.join(tmp, "idx")
    tiny(d)
    idx = os.path.join(tmp, "tiny.idx")
    rc, exact, err = run("eval", "ir", "-m", USE, d, "--json", "-q")
    rc1, out1, err1 = run("eval", "ir", "-m", USE, d, "--json", "-q", "--index", idx)
    rc2, out2, err2 = run("eval", "ir", "-m", USE, d, "--json", "-q", "--index", idx)
    j0 = json.loads(exact) if rc == 0 else {}
    j1 = json.loads(out1) if rc1 == 0 else {}
    j2 = json.loads(out2) if rc2 == 0 else {}
    check("eval_ir_index builds", rc1 == 0 and j1.get("index_built") is True and os.path.exists(idx), f"{out1} {err1}")
    check("eval_ir_index reuses", rc2 == 0 and j2.get("index_built") is False and j2.get("through") == "index", f"{out2} {err2}")
    check("eval_ir_index equals exact", rc == 0 and rc1 == 0 and close(j0, j1, 1e-6) and close(j1, j2, 0), f"{exact}\n{out1}")
    rc, _, err = run("eval", "ir", "-m", "tests/fixtures/models/en-mean-norm", d, "-q", "--index", idx)
    check("eval_ir_index another model refused", rc == 1 and idx in err, err)
    # issue 14: BEIR's title and text stored as two keyword fields (index format 4)
    con = sqlite3.connect(idx)
    rows = con.execute("SELECT ext_id, title, text FROM docs ORDER BY ext_id").fetchall()
    con.close()
    check("eval_ir_index_titles: title and text stored apart",
          rows[:3] == [("a", "Cats", "Cats are small furry animals that purr."), ("b", "Dogs", "Dogs bark and like to play fetch."),
                       ("c", None, "The stock market fell sharply on Monday.")] and len(rows) == 5, str(rows))
    # an index whose documents lack the titles the corpus has (as one built before index format 4)
    old = os.path.join(tmp, "untitled.idx")
    subprocess.run(["cp", idx, old], check=True)
    con = sqlite3.connect(old)
    con.execute("UPDATE docs SET title = NULL")
    con.commit()
    con.close()
    rc, out, err = run("eval", "ir", "-m", USE, d, "--json", "--index", old, "--keyword")
    check("eval_ir_index_titles: a reused index without titles is warned about",
          rc == 0 and "stores no title" in err and "before index format 4" in err and err.count("stores no title") == 1, err)
    # a long titled document: chunks of title + " " + text, their spans mapped into the text
    d2 = os.path.join(tmp, "idx-long")
    body = " ".join(["The committee reviewed the annual budget report and the minutes of the previous meeting."] * 9)
    write(os.path.join(d2, "corpus.jsonl"), json.dumps({"_id": "long", "title": "Budget minutes", "text": body}) + "\n"
          + json.dumps({"_id": "b", "title": "Dogs", "text": "Dogs bark."}) + "\n")
    write(os.path.join(d2, "queries.jsonl"), json.dumps({"_id": "q", "text": "budget minutes"}) + "\n")
    write(os.path.join(d2, "qrels.tsv"), "q\tlong\t1\n")
    idx2 = os.path.join(tmp, "long.idx")
    rc, out, err = run("eval", "ir", "-m", USE, d2, "--json", "-q", "--index", idx2, "--keyword")
    con = sqlite3.connect(idx2)
    sp = con.execute("SELECT c.start, c.end FROM chunks c JOIN docs d ON d.id = c.doc WHERE d.ext_id = 'long' "
                     "ORDER BY c.chunk").fetchall()
    con.close()
    lb = len(body.encode())
    check("eval_ir_index_titles: chunk spans are offsets into the text",
          rc == 0 and len(sp) > 1 and sp[0][0] == 0 and sp[-1][1] == lb and all(0 <= a <= b <= lb for a, b in sp)
          and all(sp[i][1] <= sp[i + 1][1] for i in range(len(sp) - 1)), f"{sp} {lb} {err}")


def test_chunks(tmp):
    """eval_ir_chunks: a document whose answer sits past max_seq_length is
    found by --chunks (its best chunk), not by the whole-document embedding
    (truncated as the evaluator truncates)."""
    d = os.path.join(tmp, "chunks")
    filler = " ".join(["The committee reviewed the annual budget report and the minutes of the previous meeting."] * 9)
    docs = [("long", "", filler + " Cats purr when they are content and relaxed."),
            ("b", "", "Dogs bark at the mail carrier."), ("c", "", "The stock market fell sharply on Monday."),
            ("d", "", "Rain is expected tomorrow afternoon."), ("e", "", "Boil the pasta for ten minutes.")]
    write(os.path.join(d, "corpus.jsonl"), "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in docs))
    write(os.path.join(d, "queries.jsonl"), json.dumps({"_id": "q", "text": "why do cats purr"}) + "\n")
    write(os.path.join(d, "qrels.tsv"), "q\tlong\t1\n")
    rc0, out0, err0 = run("eval", "ir", "-m", USE, d, "--json", "-q")
    rc1, out1, err1 = run("eval", "ir", "-m", USE, d, "--json", "-q", "--chunks")
    j0 = json.loads(out0) if rc0 == 0 else {"metrics": {}}
    j1 = json.loads(out1) if rc1 == 0 else {"metrics": {}}
    check("eval_ir_chunks splits", rc1 == 0 and j1.get("vectors", 0) > 5 and j1.get("chunks") is True, f"{out1} {err1}")
    check("eval_ir_chunks finds the tail", j1["metrics"].get("mrr@10") == 1.0 and j0["metrics"].get("mrr@10", 1) < 1.0,
          f"{out0}\n{out1}")


def test_rerank(tmp):
    """eval_ir_rerank: --rerank re-orders only the first stage's top N (a
    test cross-encoder: the order means nothing, the pipeline is what is
    checked), the rest keep their order below them, and the metrics still
    equal the reference's on the run file."""
    d = os.path.join(tmp, "rr")
    tiny(d)
    r0, r1 = os.path.join(tmp, "first.run"), os.path.join(tmp, "rr.run")
    rc0, out0, _ = run("eval", "ir", "-m", USE, d, "--json", "-q", "--run", r0)
    rc1, out1, err1 = run("eval", "ir", "-m", USE, d, "--json", "-q", "--run", r1, "--rerank",
                          "tests/fixtures/models/ce-bert-1", "--rerank-top", "3")
    check("eval_ir_rerank runs", rc0 == 0 and rc1 == 0 and json.loads(out1).get("rerank_top") == 3, f"{out1} {err1}")
    if rc0 == 0 and rc1 == 0:
        a, b = {}, {}
        for path, dst in [(r0, a), (r1, b)]:
            with open(path) as f:
                for line in f:
                    q, _, doc, rank, score, _ = line.split()
                    dst.setdefault(q, []).append((doc, float(score)))
        check("eval_ir_rerank top 3 re-ordered within", all(sorted(x for x, _ in a[q][:3]) == sorted(x for x, _ in b[q][:3])
                                                            and [x for x, _ in a[q][3:]] == [x for x, _ in b[q][3:]] for q in a), f"{a} {b}")
        check("eval_ir_rerank scores descend", all(all(b[q][i][1] > b[q][i + 1][1] for i in range(2, len(b[q]) - 1)) for q in b), f"{b}")
        check("eval_ir_rerank matches reference", close(json.loads(out1), reference(d, r1), 1e-6), out1)


ZH = "tests/fixtures/eval/zh-stsb-ir"


EN = "tests/fixtures/eval/en-stsb-ir"
FUSION_SLACK = 0.005  # the rule: the default hybrid >= max(dense, keyword) - 0.5 points


def san_subset(tmp, src, prefix, n_queries=60, n_others=140):
    """Under a sanitizer, a BEIR fixture cut to its first n_queries queries,
    their passages and n_others other passages (the optimised run checks the
    whole fixture)."""
    import gzip
    folder = os.path.join(tmp, os.path.basename(src) + "-san")
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(src, "qrels.tsv"), encoding="utf-8")][1:]
    qs = {"%sq%d" % (prefix, i) for i in range(n_queries)}
    rel = {d for q, d, _ in rows if q in qs}
    docs = [json.loads(l) for l in gzip.open(os.path.join(src, "corpus.jsonl.gz"), "rt", encoding="utf-8")]
    keep = [c for c in docs if c["_id"] in rel] + [c for c in docs if c["_id"] not in rel][:n_others]
    queries = [json.loads(l) for l in gzip.open(os.path.join(src, "queries.jsonl.gz"), "rt", encoding="utf-8")]
    write(os.path.join(folder, "corpus.jsonl"), "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in keep))
    write(os.path.join(folder, "queries.jsonl"),
          "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries if q["_id"] in qs))
    write(os.path.join(folder, "qrels.tsv"), "".join(f"{q}\t{d}\t1\n" for q, d, _ in rows if q in qs))
    return folder


def modes_ndcg(folder, idx, modes):
    """nDCG@10 (and the whole JSON) of eval ir through one index per mode ("" is dense)."""
    res = {}
    for mode in modes:
        rc, out, err = run("eval", "ir", "-m", USE, folder, "--json", "-q", "--index", idx, *([mode] if mode else []))
        res[mode] = json.loads(out)["metrics"] if rc == 0 else {"error": err}
    return res


def check_never_worse(name, res):
    """eval_ir_fusion_never_worse: the default hybrid against the better side."""
    best = max(res[""].get("ndcg@10", 1), res["--keyword"].get("ndcg@10", 1))
    hy = res["--hybrid"].get("ndcg@10", 0)
    print(f"  {name}: dense {res[''].get('ndcg@10')} keyword {res['--keyword'].get('ndcg@10')} hybrid {hy}")
    check(f"eval_ir_fusion_never_worse {name}: hybrid >= max(dense, keyword) - 0.5", hy >= best - FUSION_SLACK,
          f"{res}")


def test_zh_keyword(tmp):
    """eval_ir_zh_keyword: keyword search finds Chinese passages the default
    model cannot read (tests/fixtures/eval/zh-stsb-ir: 305 queries, 1298
    passages; under a sanitizer the first 60 queries, their passages and 140
    others); eval_ir_fusion_never_worse: the default hybrid loses nothing
    to BM25 there."""
    folder = san_subset(tmp, ZH, "z") if os.environ.get("SAN") else ZH
    res = modes_ndcg(folder, os.path.join(tmp, "zh.idx"), ["--keyword", "--hybrid", ""])
    for mode in ["--keyword", "--hybrid"]:
        print(f"  zh-stsb-ir {mode}: {res[mode].get('ndcg@10')}")
        check(f"eval_ir_zh_keyword {mode} finds Chinese passages", res[mode].get("ndcg@10", 0) >= ZH_MIN_NDCG
              and res[mode].get("accuracy@10", 0) >= 0.8, f"{res[mode]}")
    check_never_worse("zh-stsb-ir", res)


def test_fusion_en(tmp):
    """eval_ir_fusion_never_worse on tests/fixtures/eval/en-stsb-ir (1337
    English passages, 309 paraphrase queries; dense 93.8, BM25 91.0): the
    default hybrid must not fall below the dense side (the fusion before
    the spread-weighted default gave 92.9). Under a sanitizer the first 60
    queries, their passages and 140 others."""
    folder = san_subset(tmp, EN, "e") if os.environ.get("SAN") else EN
    check_never_worse("en-stsb-ir", modes_ndcg(folder, os.path.join(tmp, "en.idx"), ["", "--keyword", "--hybrid"]))


def test_errors(tmp):
    d = os.path.join(tmp, "bad")
    tiny(d)
    rc, _, err = run("eval", "ir", "-m", USE, os.path.join(tmp, "nowhere"))
    check("eval_ir missing folder", rc == 1 and "no corpus.jsonl" in err, err)
    os.rename(os.path.join(d, "qrels.tsv"), os.path.join(d, "q.tsv"))
    rc, _, err = run("eval", "ir", "-m", USE, d)
    check("eval_ir missing qrels", rc == 1 and "no qrels.tsv or qrels/test.tsv" in err, err)
    os.makedirs(os.path.join(d, "qrels"))
    os.rename(os.path.join(d, "q.tsv"), os.path.join(d, "qrels", "test.tsv"))
    rc, out, err = run("eval", "ir", "-m", USE, d, "-q", "--json")
    check("eval_ir qrels/test.tsv", rc == 0 and json.loads(out)["queries"] == 2, f"{out} {err}")
    with open(os.path.join(d, "corpus.jsonl"), "a") as f:
        f.write('{"_id": "f", "text": "fine"}\n{"_id": "g", "text": \n')
    rc, _, err = run("eval", "ir", "-m", USE, d)
    check("eval_ir bad JSON line", rc == 1 and "corpus.jsonl:7:" in err, err)
    tiny(d)
    with open(os.path.join(d, "corpus.jsonl"), "a") as f:
        f.write('{"_id": "a", "text": "again"}\n')
    rc, _, err = run("eval", "ir", "-m", USE, d)
    check("eval_ir duplicate _id", rc == 1 and "_id 'a' appears twice" in err, err)
    tiny(d)
    with open(os.path.join(d, "corpus.jsonl"), "a") as f:
        f.write('{"_id": "h", "title": "t"}\n')
    rc, _, err = run("eval", "ir", "-m", USE, d)
    check("eval_ir missing text", rc == 1 and "corpus.jsonl:6: \"text\" missing" in err, err)
    for name, qrels, msg in [
            ("unknown query", "query-id\tcorpus-id\tscore\nq1\ta\t1\nzz\ta\t1\n", "qrels.tsv:3: query 'zz' is not in queries.jsonl"),
            ("field count", "query-id\tcorpus-id\tscore\nq1\ta\t1\nq2\tc\n", "qrels.tsv:3: expected query-id, corpus-id, score"),
            ("score", "query-id\tcorpus-id\tscore\nq1\ta\t1\nq2\tc\thigh\n", "qrels.tsv:3: score 'high' is not an integer"),
            ("no relevant", "query-id\tcorpus-id\tscore\nq1\ta\t0\n", "no query has a relevant document")]:
        tiny(d, qrels)
        rc, _, err = run("eval", "ir", "-m", USE, d)
        check(f"eval_ir qrels {name}", rc == 1 and msg in err, err)
    tiny(d, "q1 0 a 1\nq2 0 c 1\n")
    rc, out, err = run("eval", "ir", "-m", USE, d, "-q", "--json")
    check("eval_ir TREC qrels without header", rc == 0 and json.loads(out)["queries"] == 2, f"{out} {err}")
    for args, msg in [([], "missing -m MODEL"), (["-m", USE], "missing DIR"), (["-m", USE, d, "--keyword"], "needs --index"),
                      (["-m", USE, d, "--alpha", "0.5"], "go with --hybrid"),
                      (["-m", USE, d, "--query-prompt-name", "nope"], "no prompt named 'nope'")]:
        rc, _, err = run("eval", "ir", *args)
        check(f"eval_ir usage {msg}", rc == 2 and msg in err, f"{rc} {err}")
    rc, out, _ = run("eval", "ir", "--help")
    check("eval_ir --help", rc == 0 and "--rerank-top" in out and "BEIR" in out, out)
    rc, out, err = run("eval", "-m", USE, "ir", d, "-q", "--json")
    check("eval_ir task after -m", rc == 0 and json.loads(out)["queries"] == 2, err)


with tempfile.TemporaryDirectory() as tmp:
    test_matches_reference(tmp)
    test_graded(tmp)
    test_index(tmp)
    test_chunks(tmp)
    test_rerank(tmp)
    test_zh_keyword(tmp)
    test_fusion_en(tmp)
    test_errors(tmp)
report("test_eval_ir")
