#!/usr/bin/python3
"""Black-box tests of the sembed command-line tool.

Run from the repo root: /usr/bin/python3 tests/test_cli.py build/sembed
Checks the tokenizer cases through `sembed tokenize`, encode output in all
three formats (numpy reads the .npy), exit codes, messages that name the
line, atomic output files, `similarity` and `info`. Prints
"test_cli: N passed, N failed" and exits non-zero on failure.
"""
import json, os, subprocess, sys, tempfile
import numpy as np

SEMBED = sys.argv[1] if len(sys.argv) > 1 else "build/sembed"
FIX = "tests/fixtures/models/"
passed = failed = 0


def run(*args, input=None):
    p = subprocess.run([SEMBED, *args], input=input, capture_output=True)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name} {detail}", file=sys.stderr)


def test_tokenizer_cases():
    cases = [json.loads(l) for l in open("tests/fixtures/tokenizers/tokenizer-cases.jsonl")]
    for model in sorted({c["model"] for c in cases}):
        cs = [c for c in cases if c["model"] == model]
        inp = "".join(json.dumps({"text": c["text"], "text_pair": c["text_pair"]}) + "\n" for c in cs)
        rc, out, err = run("tokenize", "-m", "tests/fixtures/tokenizers/" + model, "--jsonl-input", "--max-length", "0",
                           input=inp.encode())
        got = [json.loads(l) for l in out.splitlines()]
        bad = [c["case"] for c, g in zip(cs, got) if g != c["ids"]]
        check(f"tokenize {model}", rc == 0 and len(got) == len(cs) and not bad, f"rc={rc} bad={bad} {err}")
    # plain text lines and --pair with tabs
    rc, out, _ = run("tokenize", "-m", "tests/fixtures/tokenizers/bert-base-uncased", "--pair", "--types",
                     input=b"hello\tworld\n")
    d = json.loads(out)
    check("tokenize --pair", rc == 0 and d["ids"] == [101, 7592, 102, 2088, 102] and d["token_type_ids"] == [0, 0, 0, 1, 1])


def expected(model):
    lines = open(FIX + model + "/expected.jsonl").read().splitlines()
    return json.loads(lines[0]), [json.loads(l) for l in lines[1:]]


def test_encode_formats():
    with tempfile.TemporaryDirectory() as d:
        for model in ["en-mean-norm", "zh-cls-dense-f16", "en-allpool-prompt"]:
            hdr, exp = expected(model)
            ref = np.array([e["embedding"] for e in exp], dtype=np.float32)
            extra = ["--prompt-name", hdr["prompt_name"]] if hdr.get("prompt_name") else []
            base = ["encode", "-m", FIX + model, "-i", FIX + "sentences.jsonl", "--jsonl-input", "-q", *extra]
            rc, out, err = run(*base)
            js = np.array([json.loads(l) for l in out.splitlines()], dtype=np.float32)
            check(f"encode jsonl {model}", rc == 0 and js.shape == ref.shape and np.abs(js - ref).max() <= 1e-4,
                  f"rc={rc} {err}")
            npy = os.path.join(d, model + ".npy")
            rc, _, err = run(*base, "-f", "npy", "-o", npy)
            arr = np.load(npy)
            check(f"encode npy {model}", rc == 0 and arr.dtype == np.float32 and np.array_equal(arr, js), err)
            check(f"no temp files {model}", not [f for f in os.listdir(d) if ".tmp." in f])
            rc, out_bytes, _ = 0, None, None
            p = subprocess.run([SEMBED, *base, "-f", "npy"], capture_output=True)  # .npy on a pipe: buffered
            with open(os.path.join(d, "pipe.npy"), "wb") as f:
                f.write(p.stdout)
            check(f"encode npy pipe {model}", p.returncode == 0 and np.array_equal(np.load(os.path.join(d, "pipe.npy")), js))
            f32 = os.path.join(d, model + ".f32")
            rc, _, _ = run(*base, "-f", "f32", "-o", f32)
            raw = np.fromfile(f32, dtype="<f4").reshape(js.shape)
            check(f"encode f32 {model}", rc == 0 and np.array_equal(raw, js))
        # truncation is reported; --truncate-dim renormalises; --normalize on a non-normalising model
        rc, out, err = run("encode", "-m", FIX + "en-mean-norm", "-i", FIX + "sentences.jsonl", "--jsonl-input")
        check("truncation count on stderr", rc == 0 and "6 of 34 texts were truncated" in err, err)
        rc, out, _ = run("encode", "-m", FIX + "en-mean-norm", "--truncate-dim", "8", input=b"hello world\n")
        v = np.array(json.loads(out))
        check("--truncate-dim", rc == 0 and v.shape == (8,) and abs(np.linalg.norm(v) - 1) < 1e-5)
        rc, out, _ = run("encode", "-m", FIX + "en-max-relu-bf16", "--normalize", input=b"hello world\n")
        check("--normalize", rc == 0 and abs(np.linalg.norm(json.loads(out)) - 1) < 1e-5)
        # empty input: no lines; .npy of shape (0, dim)
        rc, out, _ = run("encode", "-m", FIX + "en-mean-norm", input=b"")
        check("empty input", rc == 0 and out == "")
        rc, _, _ = run("encode", "-m", FIX + "en-mean-norm", "-f", "npy", "-o", os.path.join(d, "e.npy"), input=b"")
        check("empty npy", rc == 0 and np.load(os.path.join(d, "e.npy")).shape == (0, 32))
        # empty lines are encoded (as sentence-transformers encodes "")
        rc, out, _ = run("encode", "-m", FIX + "en-mean-norm", input=b"a\n\nb\n")
        check("empty line encoded", rc == 0 and len(out.splitlines()) == 3)
        # CRLF input equals LF input
        _, lf, _ = run("encode", "-m", FIX + "en-mean-norm", input=b"hello\nworld\n")
        _, crlf, _ = run("encode", "-m", FIX + "en-mean-norm", input=b"hello\r\nworld\r\n")
        check("CRLF", lf == crlf and lf != "")


def test_errors():
    rc, out, err = run("encode", "-m", FIX + "en-mean-norm", input=b"good\nbad \xff byte\n")
    check("invalid UTF-8 names the line", rc == 1 and "<stdin>:2:" in err and "invalid UTF-8" in err, err)
    with tempfile.TemporaryDirectory() as d:
        o = os.path.join(d, "out.jsonl")
        rc, _, _ = run("encode", "-m", FIX + "en-mean-norm", "-o", o, input=b"good\nbad \xff\n")
        check("failed run leaves no output", rc == 1 and os.listdir(d) == [], str(os.listdir(d)))
        bad = os.path.join(d, "bad.jsonl")
        open(bad, "w").write('"ok"\n{"text": 3}\n')
        rc, _, err = run("encode", "-m", FIX + "en-mean-norm", "-i", bad, "--jsonl-input")
        check("bad JSONL names the line", rc == 1 and "bad.jsonl:2:" in err, err)
    rc, _, err = run("encode", "-m", "/nonexistent")
    check("missing model", rc == 1 and "/nonexistent" in err, err)
    rc, _, err = run("encode")
    check("missing -m is a usage error", rc == 2 and "usage" in err)
    rc, _, err = run("encode", "-m", FIX + "en-mean-norm", "--format", "xml")
    check("bad format", rc == 2)
    rc, _, err = run("encode", "-m", FIX + "en-mean-norm", "--truncate-dim", "64", input=b"x\n")
    check("truncate-dim too large", rc == 2 and "64" in err, err)
    rc, _, err = run("encode", "-m", FIX + "en-mean-norm", "--prompt-name", "nope", input=b"x\n")
    check("unknown prompt name", rc == 1 and "nope" in err, err)
    rc, _, err = run("frobnicate")
    check("unknown command", rc == 2 and "frobnicate" in err)
    rc, _, err = run("tokenize", "-m", "tests/fixtures/tokenizers/bert-base-uncased", "--pair", input=b"no tab here\n")
    check("--pair without tab", rc == 1 and ":1:" in err, err)


def test_help_version_info_similarity():
    rc, out, _ = run("--version")
    check("--version", rc == 0 and out.startswith("sembed 0."))
    for cmd in [[], ["encode"], ["tokenize"], ["similarity"], ["info"]]:
        rc, out, _ = run(*cmd, "--help")
        check(f"{cmd} --help", rc == 0 and "usage: sembed" in out)
    rc, out, _ = run("info", "-m", FIX + "en-allpool-prompt", "--json")
    i = json.loads(out)
    check("info --json", rc == 0 and i["dimension"] == 8 and i["similarity"] == "dot" and i["prompts"]["query"] == "query: "
          and i["pooling"] == "cls+max+mean+mean_sqrt_len_tokens+weightedmean+lasttoken" and i["include_prompt"] is False)
    rc, out, _ = run("info", "-m", FIX + "zh-cls-dense-f16")
    check("info text", rc == 0 and "F16" in out and "gelu_new" in out and "1e-05" in out)
    rc, out, _ = run("similarity", "-m", FIX + "en-mean-norm", "a man plays guitar", "a man plays guitar", "stock markets fell")
    m = np.array([json.loads(l) for l in out.splitlines()])
    check("similarity", rc == 0 and m.shape == (3, 3) and abs(m[0, 1] - 1) < 1e-5 and np.allclose(m, m.T, atol=1e-6))


for t in [test_tokenizer_cases, test_encode_formats, test_errors, test_help_version_info_similarity]:
    t()
print(f"test_cli: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
