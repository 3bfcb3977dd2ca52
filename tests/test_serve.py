#!/usr/bin/python3
"""Black-box tests of `sembed serve` over HTTP on loopback.

Run from the repo root: /usr/bin/python3 tests/test_serve.py build/sembed
(`make tsan` adds --concurrency-only, against a ThreadSanitizer build.)
Starts servers with --port 0 (the port is read from the start line), on the
default model (models/use-lite) and fixture models, and checks every route
against `sembed encode` / `sembed tokenize` (bit for bit), the error statuses
and bodies, dynamic batching under concurrent load (bit-identical vectors),
429, SIGTERM, one log line per request, and the real `openai` npm client
(tests/clients, installed by setup.sh with npm ci) run with node. Prints
"test_serve: N passed, N failed" and exits non-zero on failure.
"""
import base64, http.client, json, os, random, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time

import numpy as np

from clitest import SEMBED, check, report, run

MODEL = "models/use-lite"
EN = "tests/fixtures/models/en-mean-norm"        # BERT, Normalize, strips texts
PLAIN = "tests/fixtures/models/en-plain-hf"      # BERT, no Normalize
PROMPT = "tests/fixtures/models/en-allpool-prompt"  # prompts excluded from pooling
CE = "tests/fixtures/models/ce-bert-1"           # a reranker (one label, sigmoid)
NLI = "tests/fixtures/models/ce-bert-3-bin"      # a classifier (3 labels, identity)
CEX = "tests/fixtures/models/ce-xlmr-1"          # an XLM-R reranker
CLIENTS = "tests/clients"

TEXTS = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply.",
         "  padded with blanks  ", "Ünïcödé café naïve", "tab\tinside and\nnewline", "\u00a0nbsp\u3000",
         "x", "Will it rain this weekend?", "How do I reset my router?", "   "]


class Server:
    """A running `sembed serve`: its process, base address and log lines."""

    def __init__(self, *args, env=None):
        self.p = subprocess.Popen([SEMBED, "serve", "--port", "0", *args], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=env)
        self.lines, self.host, self.port = [], None, None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.p.stderr.readline().decode("utf-8", "replace")
            if not line:
                break
            self.lines.append(line)
            if " on http://" in line:
                hp = line.rsplit("http://", 1)[1].strip().rstrip("/")
                self.host, self.port = hp.rsplit(":", 1)[0], int(hp.rsplit(":", 1)[1])
                break
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stderr:
            self.lines.append(line.decode("utf-8", "replace"))

    def request(self, method, path, body=None, headers=None, conn=None):
        """One request; returns (status, parsed JSON or raw bytes, headers). body: dict/list -> JSON, bytes as is."""
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        if body is not None and not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode()
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data
        return r.status, parsed, dict(r.getheaders())

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends sig and returns the exit code (None when it did not exit). A sanitizer's report
        (which makes the exit code non-zero) is printed."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            rc = None
        self.reader.join(timeout=5)
        if rc != 0 and any("Sanitizer" in l for l in self.lines):
            print("".join(l for l in self.lines if not l.startswith(("20", "{"))), file=sys.stderr)
        return rc


def encode_ref(model, texts, *opts):
    """`sembed encode` of texts (JSONL in and out) as a float32 matrix."""
    inp = "".join(json.dumps(t) + "\n" for t in texts)
    rc, out, err = run("encode", "-m", model, "--jsonl-input", "-q", *opts, input=inp.encode())
    if rc != 0:
        print(err, file=sys.stderr)
        return None
    return np.array([json.loads(l) for l in out.splitlines()], dtype=np.float32)


def tokenize_ref(model, texts, *opts):
    inp = "".join(json.dumps(t) + "\n" for t in texts)
    rc, out, _ = run("tokenize", "-m", model, "--jsonl-input", *opts, input=inp.encode())
    return [json.loads(l) for l in out.splitlines()] if rc == 0 else None


def f32(rows):
    return np.array(rows, dtype=np.float32)


def same(a, b):
    """Bit-identical float32 matrices."""
    return a is not None and b is not None and a.shape == b.shape and a.tobytes() == b.tobytes()


def maxdiff(a, b):
    return float(np.max(np.abs(a - b))) if a is not None and b is not None and a.shape == b.shape else float("inf")


def is_tei_error(body, status_type=None):
    return isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("error_type"), str) \
        and (status_type is None or body["error_type"] == status_type)


def is_openai_error(body):
    e = body.get("error") if isinstance(body, dict) else None
    return isinstance(e, dict) and isinstance(e.get("message"), str) and "type" in e and "param" in e and "code" in e


# ==== routes against `sembed encode` ====

def test_routes(s):
    ref = encode_ref(MODEL, TEXTS)
    st, body, _ = s.request("POST", "/embed", {"inputs": TEXTS})
    check("embed: 200", st == 200, f"{st} {body}")
    check("embed: bit-identical to sembed encode", st == 200 and same(f32(body), ref),
          f"max diff {maxdiff(f32(body) if st == 200 else None, ref)}")
    st, body, _ = s.request("POST", "/embed", {"inputs": TEXTS[0]})
    check("embed: one string -> one vector", st == 200 and len(body) == 1 and same(f32(body), ref[:1]), str(st))
    st, body, _ = s.request("POST", "/", {"inputs": TEXTS[:3]})
    check("POST / dispatches to /embed", st == 200 and same(f32(body), ref[:3]), str(st))

    # OpenAI: float and base64, usage counts the tokens
    toks = tokenize_ref(MODEL, TEXTS)
    st, body, _ = s.request("POST", "/v1/embeddings", {"input": TEXTS, "model": "use-lite", "encoding_format": "float",
                                                        "user": "someone"})
    ok = st == 200 and body.get("object") == "list" and body.get("model") == "use-lite" \
        and [d["index"] for d in body["data"]] == list(range(len(TEXTS))) \
        and all(d["object"] == "embedding" for d in body["data"])
    check("openai float: shape of the response", ok, str(body)[:300])
    check("openai float: bit-identical to sembed encode",
          ok and same(f32([d["embedding"] for d in body["data"]]), ref))
    ntok = sum(len(t) for t in toks) if toks else -1
    check("openai: usage counts the tokens", ok and body["usage"] == {"prompt_tokens": ntok, "total_tokens": ntok},
          f"{body.get('usage') if ok else None} vs {ntok}")
    st, body, _ = s.request("POST", "/v1/embeddings", {"input": TEXTS, "encoding_format": "base64"})
    got = f32([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in body["data"]]) if st == 200 else None
    check("openai base64: little-endian float32, bit-identical", same(got, ref), str(st))
    st, body, _ = s.request("POST", "/v1/embeddings", {"input": TEXTS[1]})
    check("openai: a string input", st == 200 and len(body["data"]) == 1 and same(f32([body["data"][0]["embedding"]]), ref[1:2]))

    # dimensions: Matryoshka, as sembed encode --truncate-dim
    ref64 = encode_ref(MODEL, TEXTS, "--truncate-dim", "64")
    st, body, _ = s.request("POST", "/v1/embeddings", {"input": TEXTS, "dimensions": 64})
    check("openai dimensions 64 = sembed encode --truncate-dim 64",
          st == 200 and same(f32([d["embedding"] for d in body["data"]]), ref64), str(st))
    n64 = np.linalg.norm(ref64, axis=1) if ref64 is not None else None
    check("dimensions: renormalised", n64 is not None and np.allclose(n64, 1, atol=1e-5))
    st, body, _ = s.request("POST", "/embed", {"inputs": TEXTS, "dimensions": 64})
    check("embed dimensions 64", st == 200 and same(f32(body), ref64), str(st))
    st, body, _ = s.request("POST", "/embed", {"inputs": TEXTS, "dimensions": 512})
    check("embed dimensions = the model's: all of it", st == 200 and same(f32(body), ref), str(st))

    # token-id inputs give the text's vector
    if toks:
        st, body, _ = s.request("POST", "/embed", {"inputs": toks})
        check("embed int[][] = the texts' vectors", st == 200 and same(f32(body), ref), str(st))
        st, body, _ = s.request("POST", "/v1/embeddings", {"input": toks[2]})
        check("openai int[] = the text's vector", st == 200 and same(f32([body["data"][0]["embedding"]]), ref[2:3]), str(st))
        check("openai int[]: usage counts the ids", st == 200 and body["usage"]["prompt_tokens"] == len(toks[2]))

    # tokenize
    st, body, _ = s.request("POST", "/tokenize", {"inputs": TEXTS[:3]})
    check("tokenize: ids = sembed tokenize",
          st == 200 and [[t["id"] for t in seq] for seq in body] == toks[:3], str(body)[:200])
    check("tokenize: fields", st == 200 and all(set(t) == {"id", "text", "special", "start", "stop"}
                                                 for seq in body for t in seq))
    st, body, _ = s.request("POST", "/tokenize", {"inputs": "Hello world", "model": "en"})
    check("tokenize: specials marked ([CLS] ... [SEP])",
          st == 200 and [t["special"] for t in body[0]] == [True, False, False, True]
          and body[0][0]["text"] == "[CLS]", str(body))
    st, body, _ = s.request("POST", "/tokenize", {"inputs": "Hello world", "model": "en", "add_special_tokens": False})
    check("tokenize: add_special_tokens false (texts are the input's bytes)",
          st == 200 and [t["text"] for t in body[0]] == ["Hello", "world"], str(body))

    # info, health, models
    st, body, _ = s.request("GET", "/info")
    check("info", st == 200 and body["model_id"] == "use-lite" and body["max_input_length"] == 128
          and body["max_client_batch_size"] == 32 and [m["id"] for m in body["models"]] == ["use-lite", "en", "plain", "prompt", "qp", "lc", "nan"]
          and body["models"][1]["dim"] == 32, str(body)[:300])
    st, body, _ = s.request("GET", "/health")
    check("health: 200", st == 200)
    st, body, _ = s.request("GET", "/v1/models")
    check("v1/models", st == 200 and body["object"] == "list"
          and [m["id"] for m in body["data"]] == ["use-lite", "en", "plain", "prompt", "qp", "lc", "nan"], str(body))


def read_response(sock):
    """Reads one HTTP response (with Content-Length) from sock: (status, body bytes)."""
    out = b""
    while True:
        head, sep, tail = out.partition(b"\r\n\r\n")
        if sep:
            cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
            n = int(cl[0].split(b":")[1]) if cl else 0
            if len(tail) >= n:
                return status_of(out), tail[:n]
        b = sock.recv(65536)
        if not b:
            return status_of(out), None
        out += b


def test_keepalive_and_clients(s):
    """Several requests on one connection (HTTP/1.1 keep-alive); curl and python3-requests."""
    ref = encode_ref(MODEL, TEXTS[:2])
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    body = json.dumps({"inputs": TEXTS[:2]}).encode()
    got = []
    for _ in range(3):
        sock.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        got.append(read_response(sock))
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    got.append(read_response(sock))
    sock.close()
    check("keep-alive: 4 requests on one connection", [g[0] for g in got] == [200, 200, 200, 200], str(got)[:200])
    check("keep-alive: same vectors each time", all(g[1] and same(f32(json.loads(g[1])), ref) for g in got[:3]))
    p = subprocess.run(["curl", "-s", "-f", f"http://127.0.0.1:{s.port}/embed", "-H", "Content-Type: application/json",
                        "-d", body.decode()], capture_output=True, timeout=60)
    check("curl: bit-identical", p.returncode == 0 and same(f32(json.loads(p.stdout or b"null") or []), ref), p.stderr)
    try:
        import requests
        r = requests.post(f"http://127.0.0.1:{s.port}/v1/embeddings", json={"input": TEXTS[:2]}, timeout=60)
        check("python3-requests: bit-identical", r.status_code == 200
              and same(f32([d["embedding"] for d in r.json()["data"]]), ref), r.text[:200])
    except ImportError:
        check("python3-requests installed (setup.sh)", False)


def test_models(s):
    """The second and further -m: chosen by "model"; each as sembed encode with the same options."""
    ref = encode_ref(EN, TEXTS)
    st, body, _ = s.request("POST", "/v1/embeddings", {"input": TEXTS, "model": "en"})
    check("model en (BERT, strips texts): bit-identical", st == 200 and same(f32([d["embedding"] for d in body["data"]]), ref),
          f"{st} {maxdiff(f32([d['embedding'] for d in body['data']]) if st == 200 else None, ref)}")
    st, body, _ = s.request("POST", "/embed", {"inputs": TEXTS, "model": "en"})
    check("embed model en", st == 200 and same(f32(body), ref))
    toks = tokenize_ref(EN, TEXTS)
    st, body, _ = s.request("POST", "/embed", {"inputs": toks, "model": "en"})
    check("embed model en int[][]", st == 200 and same(f32(body), ref))
    # a model without Normalize: TEI's normalize (default true) = --normalize; false = as it is
    refn, ref0 = encode_ref(PLAIN, TEXTS, "--normalize"), encode_ref(PLAIN, TEXTS)
    st, body, _ = s.request("POST", "/embed", {"inputs": TEXTS, "model": "plain"})
    check("normalize default true = sembed encode --normalize", st == 200 and same(f32(body), refn))
    st, body, _ = s.request("POST", "/embed", {"inputs": TEXTS, "model": "plain", "normalize": False})
    check("normalize false = sembed encode", st == 200 and same(f32(body), ref0))
    check("normalize false is not unit length", ref0 is not None and not np.allclose(np.linalg.norm(ref0, axis=1), 1))
    # prompts (excluded from pooling: the text path through se_encode)
    refq = encode_ref(PROMPT, TEXTS, "--prompt-name", "query", "--normalize")
    st, body, _ = s.request("POST", "/embed", {"inputs": TEXTS, "model": "prompt", "prompt_name": "query"})
    check("prompt_name query = sembed encode --prompt-name query", st == 200 and same(f32(body), refq), str(st))
    refp = encode_ref(PROMPT, TEXTS, "--normalize")
    st, body, _ = s.request("POST", "/embed", {"inputs": TEXTS, "model": "prompt"})
    check("no prompt_name: no prompt", st == 200 and same(f32(body), refp) and not same(refp, refq))
    st, body, _ = s.request("POST", "/embed", {"inputs": "x", "model": "prompt", "prompt_name": "nope"})
    check("unknown prompt_name: 422", st == 422 and is_tei_error(body, "validation") and "nope" in body["error"], str(body))


def make_variants(d):
    """Copies of en-mean-norm: "qp" with prompts that pooling includes and a default prompt (the ids
    path prepends and strips as se_encode does), "lc" with do_lower_case (the text path)."""
    qp, lc = os.path.join(d, "qp"), os.path.join(d, "lc")
    shutil.copytree(EN, qp)
    with open(os.path.join(qp, "config_sentence_transformers.json"), "w") as f:
        json.dump({"prompts": {"query": "query: ", "doc": "  Passage:  "}, "default_prompt_name": "query"}, f)
    shutil.copytree(EN, lc)
    with open(os.path.join(lc, "sentence_bert_config.json"), "w") as f:
        json.dump({"max_seq_length": 24, "do_lower_case": True}, f)
    return qp, lc


def make_nan_model(d):
    """A copy of en-mean-norm whose embedding row of "hello" (id 7592) is NaN: texts with that
    word fail in the model (SE_E_RANGE), others do not."""
    nan = os.path.join(d, "nan")
    shutil.copytree(EN, nan)
    path = os.path.join(nan, "model.safetensors")
    b = bytearray(open(path, "rb").read())
    n = int.from_bytes(b[:8], "little")
    t = json.loads(b[8:8 + n])["embeddings.word_embeddings.weight"]
    row = 8 + n + t["data_offsets"][0] + 7592 * 32 * 4
    b[row:row + 32 * 4] = np.full(32, np.nan, dtype="<f4").tobytes()
    open(path, "wb").write(bytes(b))
    return nan


def test_backend_error(s):
    """A model failing on one input: 424 naming that input (found by re-running the pass one by
    one); the same pass's other requests and later ones are served."""
    st, body, _ = s.request("POST", "/embed", {"inputs": ["good text", "hello there", "more"], "model": "nan"})
    check("model failure: 424 naming input 1", st == 424 and is_tei_error(body, "backend")
          and body["error"].startswith("input 1:"), f"{st} {body}")
    ref = encode_ref(s.nan_dir, ["good text", "more"])
    st, body, _ = s.request("POST", "/embed", {"inputs": ["good text", "more"], "model": "nan"})
    check("model failure: other inputs still served", st == 200 and same(f32(body), ref), f"{st} {body}")


def test_variants(s, qp, lc):
    ref = encode_ref(qp, TEXTS)
    st, body, _ = s.request("POST", "/embed", {"inputs": TEXTS, "model": "qp"})
    check("default prompt (pooled) = sembed encode", st == 200 and same(f32(body), ref), str(st))
    ref = encode_ref(qp, TEXTS, "--prompt-name", "doc")
    st, body, _ = s.request("POST", "/embed", {"inputs": TEXTS, "model": "qp", "prompt_name": "doc"})
    check("prompt_name doc (pooled, blanks stripped) = sembed encode --prompt-name doc", st == 200 and same(f32(body), ref))
    st, body, _ = s.request("POST", "/v1/embeddings", {"input": TEXTS, "model": "qp"})
    check("openai with a default prompt", st == 200 and same(f32([d["embedding"] for d in body["data"]]),
                                                              encode_ref(qp, TEXTS)))
    ref = encode_ref(lc, TEXTS)
    st, body, _ = s.request("POST", "/embed", {"inputs": TEXTS, "model": "lc"})
    check("do_lower_case model = sembed encode", st == 200 and same(f32(body), ref), str(st))


def test_truncation(s):
    long_text = " ".join(["word"] * 300)
    st, body, _ = s.request("POST", "/embed", {"inputs": [long_text]})
    check("too long without truncate: 422", st == 422 and is_tei_error(body, "validation") and "128" in body["error"], str(body))
    st, body, _ = s.request("POST", "/embed", {"inputs": [long_text], "truncate": True})
    check("truncate: true = sembed encode (which truncates)", st == 200 and same(f32(body), encode_ref(MODEL, [long_text])))
    toks = tokenize_ref(MODEL, [long_text], "--max-length", "0")
    st, body, _ = s.request("POST", "/embed", {"inputs": toks})
    check("too many token ids: 422", st == 422 and "128" in body.get("error", ""), str(body)[:200])


# ==== one text path, left truncation, normalize false, /embed_all, /tokenize offsets, /decode ====

def expected_records(model):
    """The PyTorch reference records of a fixture model (tests/fixtures/models/*/expected.jsonl)."""
    with open(os.path.join(model, "expected.jsonl")) as f:
        return [r for r in map(json.loads, f) if r.get("text")]


def test_text_path(s):
    """Texts are tokenised by se_encode_tokenize on the request thread and pooled from its pooling
    start: bit-identical to `sembed encode` on a prompt-excluded-from-pooling model (normalize false:
    the model's own vectors), and on USE lite with blank texts (whose tokens are only its whitespace
    pieces)."""
    for name in ("query", "passage"):
        ref = encode_ref(PROMPT, TEXTS, "--prompt-name", name)
        st, body, _ = s.request("POST", "/embed", {"inputs": TEXTS, "model": "prompt", "prompt_name": name,
                                                   "normalize": False})
        check(f"text path: prompt {name} excluded from pooling = sembed encode", st == 200 and same(f32(body), ref),
              f"{st} {maxdiff(f32(body) if st == 200 else None, ref)}")
    blanks = ["   ", " ", "\t", "a", " a "]
    st, body, _ = s.request("POST", "/embed", {"inputs": blanks})
    check("text path: USE lite blank texts = sembed encode", st == 200 and same(f32(body), encode_ref(MODEL, blanks)),
          str(st))


def tail_ids(ids, keep):
    """Left truncation of a templated id list ([CLS] ... [SEP]) to keep ids: the first and last
    special tokens kept, the text's last keep - 2 ids between them."""
    return [ids[0]] + ids[len(ids) - 1 - (keep - 2):len(ids) - 1] + [ids[-1]]


def test_truncation_left(s):
    """truncation_direction "Left" keeps the last tokens: of a text (se_tokenize's truncate_left,
    then pooled as token ids: equal to sending the left-truncated ids), and of a token id list."""
    long_text = " ".join(f"w{i % 7} river{i % 3}" for i in range(40))
    full = tokenize_ref(EN, [long_text], "--max-length", "0")[0]
    keep = 24  # en-mean-norm's max_seq_length
    want = tail_ids(full, keep)
    st, ref, _ = s.request("POST", "/embed", {"inputs": [want], "model": "en"})
    st2, body, _ = s.request("POST", "/embed", {"inputs": long_text, "model": "en", "truncate": True,
                                                 "truncation_direction": "Left"})
    check("truncation left: a text = its last tokens' ids (with [CLS] ... [SEP])",
          st == 200 and st2 == 200 and same(f32(body), f32(ref)), f"{st} {st2}")
    st3, right, _ = s.request("POST", "/embed", {"inputs": long_text, "model": "en", "truncate": True})
    check("truncation left differs from right", st3 == 200 and st2 == 200 and not same(f32(right), f32(body)))
    st, body, _ = s.request("POST", "/embed", {"inputs": [full], "model": "en", "truncate": True,
                                               "truncation_direction": "left"})
    st2, ref, _ = s.request("POST", "/embed", {"inputs": [full[-keep:]], "model": "en"})
    check("truncation left: token ids keep their last max_seq_length ids", st == 200 and st2 == 200
          and same(f32(body), f32(ref)), f"{st} {st2}")
    st, body, _ = s.request("POST", "/embed", {"inputs": long_text, "model": "en", "truncation_direction": "left"})
    check("truncation left without truncate: still 422 (too long)", st == 422 and is_tei_error(body, "validation"),
          f"{st} {body}")
    st, body, _ = s.request("POST", "/embed", {"inputs": "a", "truncation_direction": "up"})
    check("truncation_direction up: 422", st == 422 and is_tei_error(body, "validation"), f"{st} {body}")


def test_normalize_false(s):
    """normalize: false on a model ending with Normalize (en-mean-norm) gives the pooled vector
    before Normalize: PyTorch's pooled output of the fixture, not unit norm."""
    recs = expected_records(EN)[:6]
    st, body, _ = s.request("POST", "/embed", {"inputs": [r["text"] for r in recs], "model": "en", "normalize": False})
    pooled = f32([r["pooled"] for r in recs])
    got = f32(body) if st == 200 else None
    norms = np.linalg.norm(got, axis=1) if got is not None else None
    check("normalize false: the pooled vector before Normalize (PyTorch fixture, 1e-5)",
          st == 200 and maxdiff(got, pooled) <= 1e-5 and float(np.min(np.abs(norms - 1))) > 1e-2,
          f"{st} {maxdiff(got, pooled)} {norms}")
    st, unit, _ = s.request("POST", "/embed", {"inputs": [r["text"] for r in recs], "model": "en"})
    check("normalize false / its norm = normalize true (1e-6)", st == 200 and got is not None
          and maxdiff(got / norms[:, None], f32(unit)) <= 1e-6)


def embed_all_ref_ok(body, recs, atol=5e-5, rtol=1e-4):
    """Whether /embed_all's answer equals the fixture records' last hidden states."""
    if not isinstance(body, list) or len(body) != len(recs):
        return False
    for got, r in zip(body, recs):
        g = f32(got)
        want = f32(r["hidden_states"][-1])  # flattened: tokens x hidden
        if want.size != g.size:
            return False
        want = want.reshape(g.shape)
        if g.shape != want.shape or not np.allclose(g, want, atol=atol, rtol=rtol):
            return False
    return True


def test_embed_all(s):
    """POST /embed_all: per input, per token (special tokens included), the last hidden state:
    PyTorch's hidden states of the fixture; prompts' tokens included; token id inputs; USE lite's
    per-token outputs; the same floats whatever shares the pass (concurrent requests)."""
    recs = [r for r in expected_records(EN) if not r["truncated"]][:8]
    st, body, _ = s.request("POST", "/embed_all", {"inputs": [r["text"] for r in recs], "model": "en"})
    check("embed_all: = PyTorch last hidden states (en-mean-norm, atol 5e-5)", st == 200 and embed_all_ref_ok(body, recs),
          f"{st} {str(body)[:200]}")
    st, b1, _ = s.request("POST", "/embed_all", {"inputs": [r["ids"] for r in recs], "model": "en"})
    check("embed_all: token id inputs = the same texts", st == 200 and st == 200 and b1 == body)
    st, one, _ = s.request("POST", "/embed_all", {"inputs": "query text here", "model": "prompt", "prompt_name": "query"})
    st2, tk, _ = s.request("POST", "/tokenize", {"inputs": "query text here", "model": "prompt", "prompt_name": "query"})
    check("embed_all: the prompt's tokens are included (as many rows as /tokenize's tokens)",
          st == 200 and st2 == 200 and len(one) == 1 and len(one[0]) == len(tk[0]) == 7,
          f"{st} {st2}")
    long_text = " ".join(["word"] * 300)
    st, b, _ = s.request("POST", "/embed_all", {"inputs": long_text, "model": "en"})
    check("embed_all: too long without truncate -> 422", st == 422 and is_tei_error(b, "validation"), f"{st} {b}")
    st, b, _ = s.request("POST", "/embed_all", {"inputs": long_text, "model": "en", "truncate": True})
    check("embed_all: truncate true -> max_seq_length rows", st == 200 and len(b[0]) == 24, str(st))
    st, u, _ = s.request("POST", "/embed_all", {"inputs": ["Hello world", "a"]})
    toks = tokenize_ref(MODEL, ["Hello world", "a"])
    check("embed_all: USE lite, one 512-wide row per token", st == 200 and [len(x) for x in u] == [len(t) for t in toks]
          and all(len(row) == 512 for x in u for row in x), str(st))
    # the Python package's encode(output_value="token_embeddings") on the same library: bit for bit
    lib = os.path.join(os.path.dirname(SEMBED), "libsembed.so")
    ldd = subprocess.run(["ldd", lib], capture_output=True, text=True).stdout if os.path.exists(lib) else ""
    if ldd and "libasan" not in ldd and "libtsan" not in ldd:  # a sanitized library needs its runtime preloaded
        code = ("import json, sys, sembed; m = sembed.SentenceTransformer(sys.argv[1]); "
                "print(json.dumps([t.tolist() for t in m.encode(json.loads(sys.argv[2]), "
                "output_value='token_embeddings')]))")
        p = subprocess.run(["/usr/bin/python3", "-c", code, EN, json.dumps([r["text"] for r in recs])],
                           capture_output=True, text=True, env=dict(os.environ, SEMBED_LIBRARY=lib, PYTHONPATH="python"))
        pk = json.loads(p.stdout) if p.returncode == 0 else None
        check("embed_all: = the Python package's token_embeddings (se_encode_tokens), bit for bit",
              pk is not None and len(pk) == len(body) and all(f32(a).tobytes() == f32(b).tobytes()
                                                              for a, b in zip(pk, body)), p.stderr[-300:])
    st, b, _ = s.request("POST", "/embed_all", {"inputs": "a", "normalize": False, "model": "en"})
    check("embed_all: unknown fields are ignored as TEI's serde does", st == 200, f"{st} {b}")
    # bit-identical whatever the batch: many concurrent mixed requests against solo answers
    texts = [r["text"] for r in expected_records(EN) if not r["truncated"]][:12]
    solo = {}
    for t in texts:
        _, b, _ = s.request("POST", "/embed_all", {"inputs": t, "model": "en"})
        solo[t] = b[0]
    bad, errs = [], []

    def worker(seed):
        rnd = random.Random(seed)
        for _ in range(6):
            pick = rnd.sample(texts, rnd.randint(1, 5))
            st, b, _ = s.request("POST", "/embed_all", {"inputs": pick, "model": "en"})
            if st != 200:
                errs.append(st)
                continue
            for t, rows in zip(pick, b):
                if f32(rows).tobytes() != f32(solo[t]).tobytes():
                    bad.append(t)
            # a vector request in the same passes
            s.request("POST", "/embed", {"inputs": pick, "model": "en"})

    th = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    check("embed_all: bit-identical under concurrent mixed load", not bad and not errs, f"{bad[:2]} {errs[:3]}")


def test_tokenize_offsets(s):
    """POST /tokenize: TEI's SimpleToken with byte offsets (se_tokenize_offsets): a normal token's
    text is the input's bytes [start, stop), special tokens have null start/stop and their piece."""
    text = "Héllo 世界 café"
    st, body, _ = s.request("POST", "/tokenize", {"inputs": text, "model": "en"})
    want = [(101, "[CLS]", True, None, None), (7592, "Héllo", False, 0, 6), (1745, "世", False, 7, 10),
            (100, "界", False, 10, 13), (7668, "café", False, 14, 19), (102, "[SEP]", True, None, None)]
    got = [(t["id"], t["text"], t["special"], t["start"], t["stop"]) for t in body[0]] if st == 200 else None
    check("tokenize: byte offsets through accents and CJK (BERT uncased)", got == want, str(got))
    raw = text.encode()
    st, body, _ = s.request("POST", "/tokenize", {"inputs": [text, "  Ünïcödé  naïve  "]})
    ok = st == 200 and all(t["text"] == raw[t["start"]:t["stop"]].decode() for t in body[0] if not t["special"])
    ok = ok and [t["id"] for t in body[1]] == tokenize_ref(MODEL, ["  Ünïcödé  naïve  "])[0]
    spans = [(t["start"], t["stop"]) for t in body[0]] if st == 200 else None
    check("tokenize: USE lite (sentencepiece) spans cover the text's bytes in order",
          ok and spans[0][0] == 0 and spans[-1][1] == len(raw) and all(a[1] == b[0] for a, b in zip(spans, spans[1:])),
          str(spans))
    st, body, _ = s.request("POST", "/tokenize", {"inputs": "text here", "model": "prompt", "prompt_name": "query"})
    check("tokenize: prompt_name prepends the prompt, offsets into prompt + input",
          st == 200 and [t["text"] for t in body[0]] == ["[CLS]", "query", ":", "text", "here", "[SEP]"]
          and body[0][3]["start"] == len("query: "), str(body))
    st, body, _ = s.request("POST", "/tokenize", {"inputs": "x", "model": "prompt", "prompt_name": "nope"})
    check("tokenize: unknown prompt_name -> 422", st == 422 and is_tei_error(body, "validation"), f"{st} {body}")


def test_decode(s):
    """POST /decode: one id list -> [text], a list of lists -> a text each; skip_special_tokens
    (default true); round trips of /tokenize's ids."""
    st, tk, _ = s.request("POST", "/tokenize", {"inputs": ["Hello world, how are you?", "Ünïcödé café"], "model": "en"})
    ids = [[t["id"] for t in x] for x in tk]
    st, body, _ = s.request("POST", "/decode", {"ids": ids[0], "model": "en"})
    check("decode: one list -> [text] (WordPiece cleanup)", st == 200 and body == ["hello world, how are you?"], str(body))
    st, body, _ = s.request("POST", "/decode", {"ids": ids, "model": "en", "skip_special_tokens": False})
    check("decode: lists, specials kept", st == 200 and body == ["[CLS] hello world, how are you? [SEP]",
                                                                  "[CLS] unicode cafe [SEP]"], str(body))
    text = "Hello there: café au lait, 2 + 2 = 4. Tea time!"
    st, tk, _ = s.request("POST", "/tokenize", {"inputs": text})
    st, body, _ = s.request("POST", "/decode", {"ids": [t["id"] for t in tk[0]]})
    check("decode: USE lite round trip", st == 200 and body == [text], str(body))
    st, body, _ = s.request("POST", "/decode", {"ids": [[], [5]]})
    check("decode: an empty list -> \"\"", st == 200 and len(body) == 2 and body[0] == "", str(body))
    for name, b, want in [("ids missing", {}, 422), ("ids a string", {"ids": "1 2"}, 422),
                          ("an id not an integer", {"ids": [1, "a"]}, 422), ("a negative id", {"ids": [[1], [-1]]}, 422),
                          ("an id outside the vocabulary", {"ids": [1, 8001]}, 422),
                          ("skip_special_tokens a string", {"ids": [1], "skip_special_tokens": "no"}, 422),
                          ("too many lists", {"ids": [[1]] * 33}, 422)]:
        st, body, _ = s.request("POST", "/decode", b)
        check(f"decode: {name} -> {want}", st == want and is_tei_error(body), f"{st} {body}")


# ==== /similarity ====

def cos(a, b):
    a, b = np.float64(a), np.float64(b)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_similarity(s):
    """TEI's /similarity: the model's similarity function of the source sentence's vector with each
    sentence's, the server's own vectors (as /embed gives them)."""
    src, sents = TEXTS[0], TEXTS[1:6]
    st, body, _ = s.request("POST", "/similarity", {"inputs": {"source_sentence": src, "sentences": sents}})
    st2, vecs, _ = s.request("POST", "/embed", {"inputs": [src] + sents})
    want = [cos(vecs[0], v) for v in vecs[1:]] if st2 == 200 else None
    check("similarity: one score per sentence, the cosine of /embed's vectors within 1e-6", st == 200 and want is not None
          and len(body) == len(sents) and max(abs(a - b) for a, b in zip(body, want)) <= 1e-6, f"{st} {body} {want}")
    st, body, _ = s.request("POST", "/similarity", {"inputs": {"source_sentence": src, "sentences": sents}, "model": "en",
                                                    "parameters": None})
    st2, vecs, _ = s.request("POST", "/embed", {"inputs": [src] + sents, "model": "en"})
    check("similarity model en (parameters null)", st == 200 and st2 == 200
          and max(abs(a - cos(vecs[0], v)) for a, v in zip(body, vecs[1:])) <= 1e-6, f"{st} {body}")
    # the model's own similarity function ("prompt": dot product, no Normalize) on its vectors as it
    # gives them (normalize false), with parameters.prompt_name as /embed's prompt_name
    st, body, _ = s.request("POST", "/similarity", {"inputs": {"source_sentence": src, "sentences": sents}, "model": "prompt",
                                                    "parameters": {"prompt_name": "query", "truncate": False}})
    st2, vecs, _ = s.request("POST", "/embed", {"inputs": [src] + sents, "model": "prompt", "prompt_name": "query",
                                                "normalize": False})
    st3, plain, _ = s.request("POST", "/similarity", {"inputs": {"source_sentence": src, "sentences": sents}, "model": "prompt"})
    want = [float(np.float64(vecs[0]) @ np.float64(v)) for v in vecs[1:]] if st2 == 200 else None
    check("similarity on a dot-product model, parameters.prompt_name: the dot product of /embed's unnormalised vectors "
          "(relative 1e-6)", st == 200 and want is not None and st3 == 200 and body != plain
          and max(abs(a - b) for a, b in zip(body, want)) <= 1e-6 * max(1, max(abs(w) for w in want)), f"{body} {want}")
    long_text = " ".join(["word"] * 300)
    st, body, _ = s.request("POST", "/similarity", {"inputs": {"source_sentence": long_text, "sentences": ["a"]}})
    check("similarity: too long without truncate -> 422", st == 422 and is_tei_error(body, "validation"), f"{st} {body}")
    st, body, _ = s.request("POST", "/similarity", {"inputs": {"source_sentence": long_text, "sentences": ["a"]},
                                                    "parameters": {"truncate": True}})
    check("similarity: parameters.truncate true", st == 200 and len(body) == 1, f"{st} {body}")
    cases = [("inputs a string", {"inputs": "a"}, 422), ("no source_sentence", {"inputs": {"sentences": ["a"]}}, 422),
             ("sentences empty", {"inputs": {"source_sentence": "a", "sentences": []}}, 400),
             ("sentences a string", {"inputs": {"source_sentence": "a", "sentences": "b"}}, 422),
             ("an empty sentence", {"inputs": {"source_sentence": "a", "sentences": ["b", ""]}}, 400),
             ("32 sentences + the source > 32", {"inputs": {"source_sentence": "a", "sentences": ["b"] * 32}}, 422),
             ("parameters a list", {"inputs": {"source_sentence": "a", "sentences": ["b"]}, "parameters": []}, 422),
             ("unknown prompt_name", {"inputs": {"source_sentence": "a", "sentences": ["b"]}, "model": "prompt",
                                      "parameters": {"prompt_name": "nope"}}, 422)]
    for name, body, want in cases:
        st, b, _ = s.request("POST", "/similarity", body)
        check(f"similarity bad input: {name} -> {want}", st == want and is_tei_error(b), f"{st} {b}")


# ==== cross-encoders: /rerank, /v1/rerank, /predict ====

def fixture_pairs(model):
    """The expected.jsonl records (after the header) of a cross-encoder fixture: the independent
    PyTorch reference (tools/gen_fixtures.py)."""
    with open(os.path.join(model, "expected.jsonl")) as f:
        return [json.loads(l) for l in f][1:]


def rerank_ref(model, query, docs, *opts):
    """`sembed rerank --json` (se_rank's order and scores): [(index, score)]."""
    rc, out, err = run("rerank", "-m", model, "--json", "-q", *opts, query, input="".join(d + "\n" for d in docs).encode())
    if rc != 0:
        print(err, file=sys.stderr)
        return None
    return [(r["index"], r["score"]) for r in map(json.loads, out.splitlines())]


def sigmoid(x):
    return 1 / (1 + np.exp(-np.float64(x)))


def test_rerank(s):
    """TEI's /rerank and the Jina/Cohere /v1/rerank on the rerankers: scores and order as `sembed rerank`
    (se_rank) and within 1e-5 of the PyTorch fixture."""
    recs = fixture_pairs(CE)[:6]  # one query, six documents (three cut at model_max_length)
    query, docs = recs[0]["text"], [r["text_pair"] for r in recs]
    st, body, _ = s.request("POST", "/rerank", {"query": query, "texts": docs})
    check("rerank: documents longer than the model reads without truncate -> 422 naming one",
          st == 422 and is_tei_error(body, "validation") and "input 0" in body["error"] and "32" in body["error"],
          f"{st} {body}")
    for raw in (False, True):
        ref = rerank_ref(CE, query, docs, *(["--raw-scores"] if raw else []))
        st, body, _ = s.request("POST", "/rerank", {"query": query, "texts": docs, "truncate": True, "raw_scores": raw,
                                                    "return_text": True})
        got = [(r["index"], r["score"]) for r in body] if st == 200 else None
        check(f"rerank raw_scores={raw}: order = sembed rerank", got is not None and ref is not None
              and [g[0] for g in got] == [r[0] for r in ref], f"{st} {body} {ref}")
        check(f"rerank raw_scores={raw}: scores within 1e-6 of sembed rerank (se_rank)", got is not None and ref is not None
              and max(abs(a[1] - b[1]) for a, b in zip(got, ref)) <= 1e-6, f"{got} {ref}")
        want = {i: (r["logits"][0] if raw else r["scores"][0]) for i, r in enumerate(recs)}
        check(f"rerank raw_scores={raw}: within 1e-5 of the PyTorch fixture", got is not None
              and all(abs(sc - want[i]) <= 1e-5 for i, sc in got), f"{got} {want}")
        check(f"rerank raw_scores={raw}: sorted by score, descending", got is not None
              and all(got[k][1] >= got[k + 1][1] for k in range(len(got) - 1)))
        check(f"rerank return_text: each document's text", st == 200
              and all(r["text"] == docs[r["index"]] and set(r) == {"index", "text", "score"} for r in body), str(body)[:300])
    st, body, _ = s.request("POST", "/rerank", {"query": query, "texts": docs[1:4]})
    check("rerank: no text unless return_text", st == 200 and all(set(r) == {"index", "score"} for r in body), str(body))
    check("rerank: raw_scores false is the sigmoid of the logit (TEI's activation for one label)", st == 200
          and all(abs(r["score"] - sigmoid(recs[1 + r["index"]]["logits"][0])) <= 1e-6 for r in body), str(body))
    # the XLM-R reranker, as a second model chosen by "model"
    xr = fixture_pairs(CEX)[5:8]  # not cut
    ref = rerank_ref(CEX, xr[0]["text"], [xr[0]["text_pair"]])
    st, body, _ = s.request("POST", "/rerank", {"query": xr[0]["text"], "texts": [xr[0]["text_pair"]], "model": "xlmr"})
    check("rerank model xlmr = sembed rerank and the fixture", st == 200 and ref is not None
          and abs(body[0]["score"] - ref[0][1]) <= 1e-6 and abs(body[0]["score"] - xr[0]["scores"][0]) <= 1e-5, f"{st} {body} {ref}")

    # Jina / Cohere, as llama.cpp serves it
    ref = rerank_ref(CE, query, docs[1:4])
    jdocs = [docs[1], {"text": docs[2]}, docs[3]]
    for path in ("/v1/rerank", "/v1/reranking", "/reranking", "/rerank"):
        st, body, _ = s.request("POST", path, {"model": "ce", "query": query, "documents": jdocs, "top_n": 2,
                                               "return_documents": True})
        ok = st == 200 and isinstance(body, dict) and body.get("model") == "ce" and body.get("object") == "list"
        check(f"jina {path}: {{model, object, usage, results}}", ok and set(body) == {"model", "object", "usage", "results"},
              f"{st} {body}")
        res = body["results"] if ok else []
        check(f"jina {path}: top_n 2, best first, as sembed rerank", ok and ref is not None and len(res) == 2
              and [r["index"] for r in res] == [r[0] for r in ref[:2]]
              and all(abs(r["relevance_score"] - f[1]) <= 1e-6 for r, f in zip(res, ref)), f"{res} {ref}")
        check(f"jina {path}: return_documents gives {{text}}", ok
              and all(r["document"] == {"text": docs[1 + r["index"]]} for r in res), str(res))
    st, body, _ = s.request("POST", "/v1/rerank", {"query": query, "texts": docs[1:4]})
    check("jina path with a TEI body (texts): TEI's answer, as llama.cpp", st == 200 and isinstance(body, list)
          and [r["index"] for r in body] == [r[0] for r in ref], f"{st} {body}")
    # usage: the tokens of the pairs ([CLS] query [SEP] doc [SEP]), as sembed tokenize --pair counts them
    rc, out, _ = run("tokenize", "-m", CE, "--pair", input="".join(f"{query}\t{d}\n" for d in docs[1:4]).encode())
    ntok = sum(len(json.loads(l)) for l in out.splitlines()) if rc == 0 else -1
    st, body, _ = s.request("POST", "/v1/rerank", {"query": query, "documents": docs[1:4]})
    check("jina: usage counts the pairs' tokens; all documents without top_n; no document unless asked",
          st == 200 and body["usage"] == {"prompt_tokens": ntok, "total_tokens": ntok} and len(body["results"]) == 3
          and all(set(r) == {"index", "relevance_score"} for r in body["results"]), f"{st} {body} {ntok}")


def test_predict(s):
    """TEI's /predict on the 3-label classifier and the reranker: [{score, label}] sorted, TEI's
    activation (softmax for several labels, sigmoid for one), raw_scores the logits."""
    recs = fixture_pairs(NLI)
    r0 = recs[1]  # not cut
    labels = ["contradiction", "entailment", "neutral"]
    st, body, _ = s.request("POST", "/predict", {"inputs": [r0["text"], r0["text_pair"]], "model": "nli"})
    check("predict: one pair -> a flat list of {score, label}", st == 200 and isinstance(body, list) and len(body) == 3
          and all(set(p) == {"score", "label"} for p in body), f"{st} {body}")
    if st == 200:
        got = {p["label"]: p["score"] for p in body}
        check("predict: softmax over the labels, within 1e-5 of the fixture",
              all(abs(got[l] - r0["softmax"][k]) <= 1e-5 for k, l in enumerate(labels)), f"{got} {r0['softmax']}")
        check("predict: sorted by score, descending", [p["score"] for p in body] == sorted(got.values(), reverse=True))
    pairs = [[r["text"], r["text_pair"]] for r in recs[1:4]]
    st, body, _ = s.request("POST", "/predict", {"inputs": pairs, "model": "nli", "raw_scores": True})
    check("predict: a batch of pairs -> one list per pair", st == 200 and len(body) == 3 and all(len(p) == 3 for p in body),
          f"{st} {body}")
    if st == 200:
        check("predict raw_scores: the logits, within 1e-5 of the fixture",
              all(abs({p["label"]: p["score"] for p in body[i]}[l] - recs[1 + i]["logits"][k]) <= 1e-5
                  for i in range(3) for k, l in enumerate(labels)), str(body))
    # one text alone (the single template): the same as sent in a batch with pairs
    st1, one, _ = s.request("POST", "/predict", {"inputs": "A man is eating.", "model": "nli", "raw_scores": True})
    st2, mixed, _ = s.request("POST", "/predict", {"inputs": [pairs[0], ["A man is eating."]], "model": "nli",
                                                    "raw_scores": True})
    check("predict: one text -> a flat list; the same scores inside a mixed batch", st1 == 200 and st2 == 200
          and one == mixed[1] and len(one) == 3, f"{one} {mixed}")
    # the reranker: one label (LABEL_0), sigmoid
    r1 = fixture_pairs(CE)[1]
    st, body, _ = s.request("POST", "/predict", {"inputs": [r1["text"], r1["text_pair"]]})
    check("predict on the reranker: [{score: sigmoid, label: LABEL_0}]", st == 200 and len(body) == 1
          and body[0]["label"] == "LABEL_0" and abs(body[0]["score"] - r1["scores"][0]) <= 1e-5, f"{st} {body}")
    st, body2, _ = s.request("POST", "/", {"inputs": [r1["text"], r1["text_pair"]]})
    check("POST / on a cross-encoder default model = /predict", st == 200 and body2 == body, f"{st} {body2}")


def test_model_types(s):
    """Routes a model cannot serve answer 424 naming the model and what it is; /info says what each is."""
    cases = [("/embed", {"inputs": "a"}, "ce", "reranker"),
             ("/embed", {"inputs": "a", "model": "nli"}, "nli", "classifier"),
             ("/similarity", {"inputs": {"source_sentence": "a", "sentences": ["b"]}}, "ce", "reranker"),
             ("/rerank", {"query": "q", "texts": ["a"], "model": "nli"}, "nli", "classifier"),
             ("/rerank", {"query": "q", "texts": ["a"], "model": "en"}, "en", "embedding model"),
             ("/predict", {"inputs": "a", "model": "en"}, "en", "embedding model")]
    for path, body, name, what in cases:
        st, b, _ = s.request("POST", path, body)
        check(f"model type: {path} on {name} -> 424 naming it a {what}", st == 424 and is_tei_error(b)
              and f"`{name}`" in b["error"] and what in b["error"], f"{st} {b}")
    st, b, _ = s.request("POST", "/v1/embeddings", {"input": "a"})
    check("model type: /v1/embeddings on a reranker -> 424, OpenAI envelope", st == 424 and is_openai_error(b)
          and "reranker" in b["error"]["message"], f"{st} {b}")
    st, b, _ = s.request("POST", "/v1/rerank", {"query": "q", "documents": ["a"], "model": "en"})
    check("model type: /v1/rerank on an embedding model -> 424", st == 424 and "embedding model" in str(b), f"{st} {b}")
    st, info, _ = s.request("GET", "/info")
    check("info: model_type reranker with id2label (TEI's shape)", st == 200
          and info["model_type"] == {"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}}, str(info)[:300])
    check("info: each model's type", st == 200 and [m["model_type"] for m in info["models"]]
          == ["reranker", "classifier", "reranker", "embedding"], str(info.get("models")))


def test_pair_truncation_left(s):
    """truncation_direction "Left" on /rerank and /predict: each text of the pair cut from its start
    (longest_first, Hugging Face's truncation_side "left"): the score of the query with the long
    document's last words, where "Right" scores its first words."""
    words = ["apple", "river", "green", "house", "music", "light", "water", "stone"]
    doc = " ".join(words[i % 8] + " " + words[(i * 3) % 8] for i in range(30))
    n_query = len(tokenize_ref(CE, ["what is it"], "--no-special")[0])
    keep = 32 - 3 - n_query  # words that fit beside the query (one token each)
    toks = doc.split()
    head, tail = " ".join(toks[:keep]), " ".join(toks[-keep:])
    st, b, _ = s.request("POST", "/rerank", {"query": "what is it", "texts": [doc, head, tail], "truncate": True,
                                             "raw_scores": True, "truncation_direction": "Left", "model": "ce"})
    sc = {r["index"]: r["score"] for r in b} if st == 200 else {}
    check("rerank left: the long document scores as its last words", st == 200 and sc[0] == sc[2] and sc[0] != sc[1],
          f"{st} {sc}")
    st, b, _ = s.request("POST", "/rerank", {"query": "what is it", "texts": [doc, head], "truncate": True,
                                             "raw_scores": True, "model": "ce"})
    sc = {r["index"]: r["score"] for r in b} if st == 200 else {}
    check("rerank right: the long document scores as its first words", st == 200 and sc[0] == sc[1], f"{st} {sc}")
    st, b, _ = s.request("POST", "/predict", {"inputs": [["what is it", doc], ["what is it", tail]], "truncate": True,
                                              "raw_scores": True, "truncation_direction": "left", "model": "ce"})
    check("predict left: the pair's long text cut from its start", st == 200 and b[0] == b[1], f"{st} {b}")


def test_pair_bad_input(s):
    cases = [
        ("rerank: no query", "/rerank", {"texts": ["a"]}, 422),
        ("rerank: query not a string", "/rerank", {"query": 5, "texts": ["a"]}, 422),
        ("rerank: empty query", "/rerank", {"query": "", "texts": ["a"]}, 400),
        ("rerank: texts empty", "/rerank", {"query": "q", "texts": []}, 400),
        ("rerank: texts a string", "/rerank", {"query": "q", "texts": "a"}, 422),
        ("rerank: a text not a string", "/rerank", {"query": "q", "texts": ["a", 5]}, 422),
        ("rerank: an empty text", "/rerank", {"query": "q", "texts": ["a", ""]}, 400),
        ("rerank: too many texts", "/rerank", {"query": "q", "texts": ["a"] * 33}, 422),
        ("rerank: raw_scores a string", "/rerank", {"query": "q", "texts": ["a"], "raw_scores": "yes"}, 422),
        ("rerank: neither texts nor documents", "/rerank", {"query": "q"}, 422),
        ("jina: top_n 0", "/v1/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, 422),
        ("jina: top_n a string", "/v1/rerank", {"query": "q", "documents": ["a"], "top_n": "2"}, 422),
        ("jina: a document object without text", "/v1/rerank", {"query": "q", "documents": [{"body": "a"}]}, 422),
        ("jina: unknown model", "/v1/rerank", {"query": "q", "documents": ["a"], "model": "nope"}, 404),
        ("predict: three strings", "/predict", {"inputs": ["a", "b", "c"]}, 422),
        ("predict: an empty list", "/predict", {"inputs": []}, 400),
        ("predict: an empty inner list", "/predict", {"inputs": [[]]}, 422),
        ("predict: a triple in a batch", "/predict", {"inputs": [["a"], ["a", "b", "c"]]}, 422),
        ("predict: a number", "/predict", {"inputs": 5}, 422),
        ("predict: an empty string", "/predict", {"inputs": ["a", ""]}, 400),
        ("predict: too long without truncate", "/predict", {"inputs": " ".join(["word"] * 60)}, 422),
    ]
    for name, path, body, want in cases:
        st, b, h = s.request("POST", path, body)
        good = is_openai_error(b) if path.startswith("/v1/") else is_tei_error(b)
        check(f"bad input: {name} -> {want} with a JSON error body", st == want and good, f"{st} {str(b)[:200]}")
    st, b, _ = s.request("POST", "/predict", {"inputs": " ".join(["word"] * 60), "truncate": True})
    check("predict: truncate true scores the first 32 tokens", st == 200 and len(b) == 1, f"{st} {b}")


def test_pair_concurrency(s, n_workers=8, n_rounds=6):
    """Pairs scored alone and inside concurrent requests (reranks and predicts of several models
    at once) give identical bytes, and the load did batch requests together."""
    recs = fixture_pairs(CE)
    pool = [(r["text"], r["text_pair"]) for r in recs if not r["truncated"] and r["text"]]
    alone = {}
    for q, d in pool:
        st, b, _ = s.request("POST", "/rerank", {"query": q, "texts": [d], "raw_scores": True})
        alone[(q, d)] = b[0]["score"] if st == 200 else None
    nli = [[r["text"], r["text_pair"]] for r in fixture_pairs(NLI) if not r["truncated"] and r["text"]]
    nli_alone = {}
    for p in nli:
        st, b, _ = s.request("POST", "/predict", {"inputs": p, "model": "nli", "raw_scores": True})
        nli_alone[tuple(p)] = b if st == 200 else None
    info0 = s.request("GET", "/info")[1]
    bad, errors = [], []
    lock = threading.Lock()

    def worker(seed):
        r = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        for _ in range(n_rounds):
            try:
                if r.random() < 0.7:
                    q = r.choice(sorted({p[0] for p in pool}))
                    docs = [d for qq, d in pool if qq == q]
                    docs = r.sample(docs, r.randint(1, len(docs)))
                    st, b, _ = s.request("POST", "/rerank", {"query": q, "texts": docs, "raw_scores": True}, conn=conn)
                    got = {docs[x["index"]]: x["score"] for x in b} if st == 200 else None
                    with lock:
                        if got is None:
                            errors.append(st)
                        else:
                            bad.extend(d for d in docs if got[d] != alone[(q, d)])
                else:
                    ps = r.sample(nli, r.randint(1, len(nli)))
                    st, b, _ = s.request("POST", "/predict", {"inputs": ps, "model": "nli", "raw_scores": True}, conn=conn)
                    with lock:
                        if st != 200:
                            errors.append(st)
                        else:
                            bad.extend(tuple(p) for p, got in zip(ps, b) if got != nli_alone[tuple(p)])
            except Exception as e:  # noqa: BLE001 - reported as a failure
                with lock:
                    errors.append(repr(e))
                return
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check("pairs concurrent: every request served", not errors, str(errors[:5]))
    check("pairs concurrent: every score bit-identical to the pair alone", not bad, str(bad[:5]))
    info = s.request("GET", "/info")[1]
    mixed = sum(m["mixed_batches"] for m in info["models"][:2]) - sum(m["mixed_batches"] for m in info0["models"][:2])
    check("pairs concurrent: some forward passes held several requests' pairs", mixed > 0, str(info["models"][:2]))


# ==== GET /metrics ====

METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*)?\})? '
                         r'(-?[0-9.eE+-]+|\+Inf|NaN)$')


def parse_metrics(text):
    """Parses Prometheus' text format: every line is "# HELP name ...", "# TYPE name type" or a sample
    "name{labels} value". Returns ({(name, labels): value}, {family: type}, [bad lines])."""
    samples, types, bad = {}, {}, []
    for line in text.split("\n"):
        if not line:
            continue
        if line.startswith("# HELP "):
            if len(line.split(" ", 3)) < 4:
                bad.append(line)
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
                bad.append(line)
            else:
                types[parts[2]] = parts[3]
            continue
        m = METRIC_LINE.match(line)
        if not m:
            bad.append(line)
            continue
        name = m.group(1)
        family = re.sub(r"_(bucket|sum|count)$", "", name) if re.sub(r"_(bucket|sum|count)$", "", name) in types else name
        if family not in types:
            bad.append("no TYPE before: " + line)
        samples[(name, m.group(3) or "")] = float(m.group(5))
    return samples, types, bad


def get_metrics(s):
    st, body, h = s.request("GET", "/metrics")
    text = body.decode() if isinstance(body, (bytes, bytearray)) else json.dumps(body)
    return st, h.get("Content-Type"), parse_metrics(text)


def test_metrics(s):
    """GET /metrics in Prometheus' text format with TEI's names; counters move by exactly the requests sent."""
    st, ctype, (m0, types, bad) = get_metrics(s)
    check("metrics: 200, text/plain; version=0.0.4", st == 200 and ctype == "text/plain; version=0.0.4", f"{st} {ctype}")
    check("metrics: every line parses (HELP, TYPE or name{labels} value)", st == 200 and not bad and m0, str(bad[:5]))
    want = {"te_request_count": "counter", "te_request_success": "counter", "te_request_failure": "counter",
            "te_request_duration": "histogram", "te_request_tokenization_duration": "histogram",
            "te_request_queue_duration": "histogram", "te_request_inference_duration": "histogram",
            "te_request_input_length": "histogram", "te_batch_next_size": "histogram",
            "te_batch_next_tokens": "histogram", "te_queue_size": "gauge", "te_embed_count": "counter",
            "te_predict_count": "counter"}
    check("metrics: TEI's names and types", all(types.get(k) == v for k, v in want.items()), str(types))
    q, d = "how many people live in berlin?", ["Berlin is a city.", "Paris is in France.", "Rome"]
    sent = [("/rerank", {"query": q, "texts": d}, 200), ("/v1/rerank", {"query": q, "documents": d[:2]}, 200),
            ("/predict", {"inputs": "one text"}, 200), ("/predict", {"inputs": [["a", "b"], ["c"]]}, 200),
            ("/rerank", {"texts": d}, 422), ("/embed", {"inputs": ["a"]}, 424),
            ("/rerank", {"query": q, "texts": ["a"] * 33}, 422)]
    for path, body, want_st in sent:
        st, b, _ = s.request("POST", path, body)
        check(f"metrics: {path} -> {want_st}", st == want_st, f"{st} {b}")
    s.request("POST", "/tokenize", {"inputs": "not a work request"})
    s.request("GET", "/info")
    st, _, (m1, _, bad) = get_metrics(s)
    delta = lambda name, labels="": m1.get((name, labels), 0) - m0.get((name, labels), 0)
    check("metrics: te_request_count moves by the requests sent (single 1, batch 6)",
          (delta("te_request_count", 'method="single"'), delta("te_request_count", 'method="batch"')) == (1, 6),
          str({k: v for k, v in m1.items() if k[0] == "te_request_count"}))
    check("metrics: te_request_success (single 1, batch 3)",
          (delta("te_request_success", 'method="single"'), delta("te_request_success", 'method="batch"')) == (1, 3))
    check("metrics: te_request_failure by cause (validation 1, model_type 1, batch_size 1, others 0)",
          [delta("te_request_failure", f'err="{k}"') for k in
           ("validation", "model_type", "batch_size", "tokenization", "overloaded", "inference")] == [1, 1, 1, 0, 0, 0],
          str({k: v for k, v in m1.items() if k[0] == "te_request_failure"}))
    check("metrics: te_predict_count 6, te_embed_count 1", (delta("te_predict_count"), delta("te_embed_count")) == (6, 1))
    check("metrics: te_request_duration counts the 4 answered", delta("te_request_duration_count") == 4)
    check("metrics: te_request_input_length counts each input (3 + 2 + 1 + 2)", delta("te_request_input_length_count") == 8,
          str(delta("te_request_input_length_count")))
    check("metrics: te_batch_next_size counts passes", delta("te_batch_next_size_count") >= 1
          and delta("te_batch_next_size_sum") == 8, str(delta("te_batch_next_size_sum")))
    hists = [k for k, v in types.items() if v == "histogram"]
    ok = True
    for h in hists:
        buckets = sorted(((float(lab.split('"')[1]), v) for (n, lab), v in m1.items() if n == h + "_bucket"),
                         key=lambda x: x[0])
        ok = ok and buckets and all(buckets[i][1] <= buckets[i + 1][1] for i in range(len(buckets) - 1)) \
            and buckets[-1][0] == float("inf") and buckets[-1][1] == m1[(h + "_count", "")]
    check("metrics: histogram buckets cumulative, +Inf = _count", ok and not bad)
    check("metrics: te_queue_size 0 when idle", m1.get(("te_queue_size", "")) == 0)


# ==== CORS ====

def test_cors(s):
    """--cors-allow-origin https://a.example --cors-allow-origin https://b.example: the allowed origins
    get Access-Control-Allow-Origin (and Vary: Origin), others and requests without Origin none;
    preflights are answered 204 (curl, as a browser sends them)."""
    A, B = "https://a.example", "https://b.example"
    st, _, h = s.request("GET", "/health", headers={"Origin": A})
    check("cors: allowed origin -> Access-Control-Allow-Origin: it, Vary: Origin",
          st == 200 and h.get("Access-Control-Allow-Origin") == A and "Origin" in h.get("Vary", ""), str(h))
    st, _, h = s.request("POST", "/rerank", {"query": "q", "texts": ["a"]}, headers={"Origin": B})
    check("cors: the second allowed origin, on a POST", st == 200 and h.get("Access-Control-Allow-Origin") == B, str(h))
    st, _, h = s.request("POST", "/rerank", {"query": "q"}, headers={"Origin": B})
    check("cors: on an error answer too (the page can read it)", st == 422 and h.get("Access-Control-Allow-Origin") == B)
    st, _, h = s.request("GET", "/health", headers={"Origin": "https://evil.example"})
    check("cors: another origin gets no CORS header", st == 200 and "Access-Control-Allow-Origin" not in h, str(h))
    st, _, h = s.request("GET", "/health")
    check("cors: no Origin, no CORS header", st == 200 and "Access-Control-Allow-Origin" not in h, str(h))
    p = subprocess.run(["curl", "-s", "-i", "-X", "OPTIONS", f"http://127.0.0.1:{s.port}/rerank", "-H", f"Origin: {A}",
                        "-H", "Access-Control-Request-Method: POST",
                        "-H", "Access-Control-Request-Headers: authorization, content-type"], capture_output=True, timeout=30)
    head = p.stdout.decode("latin-1").split("\r\n\r\n")[0].lower()
    check("cors preflight (curl): 204 with Allow-Origin, Allow-Methods POST, Allow-Headers Authorization and Content-Type",
          head.startswith("http/1.1 204") and f"access-control-allow-origin: {A}" in head
          and re.search(r"access-control-allow-methods: [^\r]*post", head) is not None
          and re.search(r"access-control-allow-headers: [^\r]*authorization", head) is not None
          and re.search(r"access-control-allow-headers: [^\r]*content-type", head) is not None, head)
    st, _, h = s.request("OPTIONS", "/rerank", headers={"Origin": "https://evil.example",
                                                        "Access-Control-Request-Method": "POST"})
    check("cors preflight from another origin: 403, no CORS header", st == 403 and "Access-Control-Allow-Origin" not in h,
          f"{st} {h}")


# ==== slow clients ====

def slow_client(port, first, trickle, out, key, every=0.5):
    """Sends first, then one byte of trickle every `every` seconds (none when trickle is empty: it just
    waits), until the server answers or closes; out[key] = (seconds until then, bytes received)."""
    t0 = time.time()
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    got = b""
    try:
        sock.sendall(first)
        i = 0
        sock.settimeout(every)
        while time.time() - t0 < 12:
            try:
                b = sock.recv(65536)
                if not b:
                    break
                got += b
                continue
            except socket.timeout:
                pass
            if i < len(trickle):
                try:
                    sock.sendall(trickle[i:i + 1])
                except OSError:
                    pass
                i += 1
    except OSError:
        pass
    out[key] = (time.time() - t0, got)
    sock.close()


def test_slow_clients(s):
    """--request-timeout 2: a request must arrive whole within 2 s. A body trickled a byte at a time,
    headers then nothing, and headers trickled are each cut near the deadline with 408 and a JSON body
    and the connection closed, while other clients are served meanwhile."""
    body = json.dumps({"query": "q", "texts": ["a slow document"] * 4}).encode()
    head = b"POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + \
        str(len(body)).encode() + b"\r\n\r\n"
    out = {}
    clients = [threading.Thread(target=slow_client, args=(s.port, head + body[:3], body[3:], out, "body trickled")),
               threading.Thread(target=slow_client, args=(s.port, head, b"", out, "headers, then nothing")),
               threading.Thread(target=slow_client, args=(s.port, head[:10], head[10:], out, "headers trickled")),
               threading.Thread(target=slow_client, args=(s.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", b"", out,
                                                          "kept alive, idle"))]
    for t in clients:
        t.start()
    time.sleep(0.3)
    t0, served = time.time(), 0
    while time.time() - t0 < 1.2:  # others are served while the slow clients hold their connections
        st, b, _ = s.request("POST", "/rerank", {"query": "q", "texts": ["fast"]})
        served += st == 200
    check("slow clients: others served meanwhile", served >= 3, str(served))
    for t in clients:
        t.join()
    for key in ("body trickled", "headers, then nothing", "headers trickled"):
        took, raw = out.get(key, (None, b""))
        check(f"slow clients, {key}: 408 with a JSON error body, then closed, near the 2 s deadline",
              took is not None and 1.8 <= took <= 4.5 and status_of(raw) == 408 and is_tei_error(body_of(raw), "timeout"),
              f"{took} {raw[:300]}")
    took, raw = out.get("kept alive, idle", (None, b""))
    check("slow clients: a kept-alive connection idle past the deadline is closed without a 408 (nothing was asked)",
          took is not None and 1.8 <= took <= 4.5 and raw.count(b"HTTP/1.1") == 1 and status_of(raw) == 200,
          f"{took} {raw[:300]}")
    st, _, _ = s.request("GET", "/health")
    check("slow clients: up afterwards", st == 200)
    time.sleep(0.2)
    check("slow clients: one log line per 408", sum(" 408 " in l for l in s.lines) == 3, "".join(s.lines[-8:]))


# ==== bad input ====

def raw_request(port, data, read_timeout=10):
    """Sends raw bytes, returns the response bytes (until close or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        s.sendall(data)
    except OSError:  # the server answered early (413) and closed: read what it said
        pass
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
            if b"\r\n\r\n" in out:
                head, _, rest = out.partition(b"\r\n\r\n")
                cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if cl and len(rest) >= int(cl[0].split(b":")[1]):
                    break
    except socket.timeout:
        pass
    s.close()
    return out


def status_of(raw):
    try:
        return int(raw.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def body_of(raw):
    try:
        return json.loads(raw.partition(b"\r\n\r\n")[2])
    except ValueError:
        return None


def test_bad_input(s):
    cases = [
        ("malformed JSON", "/embed", b'{"inputs": ', 400, "tei"),
        ("not an object", "/embed", b'[1, 2]', 422, "tei"),
        ("inputs missing", "/embed", b'{"input": "x"}', 422, "tei"),
        ("inputs a number", "/embed", b'{"inputs": 5}', 422, "tei"),
        ("inputs mixed", "/embed", b'{"inputs": ["a", 5]}', 422, "tei"),
        ("normalize a string", "/embed", b'{"inputs": "a", "normalize": "yes"}', 422, "tei"),
        ("empty list", "/embed", b'{"inputs": []}', 400, "tei"),
        ("empty string", "/embed", b'{"inputs": ""}', 400, "tei"),
        ("empty ids", "/embed", b'{"inputs": [[]]}', 400, "tei"),
        ("invalid UTF-8", "/embed", b'{"inputs": "caf\xe9"}', 400, "tei"),
        ("NUL in a string", "/embed", b'{"inputs": "a\\u0000b"}', 400, "tei"),
        ("duplicate key", "/embed", b'{"inputs": "a", "inputs": "b"}', 400, "tei"),
        ("id out of range", "/embed", b'{"inputs": [[1, 2, 8002]]}', 422, "tei"),
        ("negative id", "/embed", b'{"inputs": [1, -1]}', 422, "tei"),
        ("id not an integer", "/embed", b'{"inputs": [1, 2.5]}', 422, "tei"),
        ("dimensions 0", "/embed", b'{"inputs": "a", "dimensions": 0}', 422, "tei"),
        ("dimensions too large", "/embed", b'{"inputs": "a", "dimensions": 513}', 422, "tei"),
        ("unknown model (TEI)", "/embed", b'{"inputs": "a", "model": "nope"}', 422, "tei"),
        ("too many inputs", "/embed", json.dumps({"inputs": ["a"] * 33}).encode(), 422, "tei"),
        ("100000 inputs", "/embed", json.dumps({"inputs": ["a"] * 100000}).encode(), 422, "tei"),
        ("tokenize ids", "/tokenize", b'{"inputs": [1, 2]}', 422, "tei"),
        ("openai malformed", "/v1/embeddings", b'{', 400, "openai"),
        ("openai encoding_format", "/v1/embeddings", b'{"input": "a", "encoding_format": "hex"}', 422, "openai"),
        ("openai dimensions 0", "/v1/embeddings", b'{"input": "a", "dimensions": 0}', 422, "openai"),
        ("openai dimensions too large", "/v1/embeddings", b'{"input": "a", "dimensions": 100000}', 422, "openai"),
        ("openai unknown model", "/v1/embeddings", b'{"input": "a", "model": "gpt-4"}', 404, "openai"),
        ("openai ids out of range", "/v1/embeddings", b'{"input": [[5, 99999]]}', 422, "openai"),
        ("openai empty", "/v1/embeddings", b'{"input": []}', 400, "openai"),
    ]
    for name, path, body, want, kind in cases:
        st, b, h = s.request("POST", path, body)
        good = is_tei_error(b) if kind == "tei" else is_openai_error(b)
        check(f"bad input: {name} -> {want} with a JSON error body", st == want and good
              and h.get("Content-Type") == "application/json", f"{st} {str(b)[:200]}")
    st, b, _ = s.request("POST", "/v1/embeddings", b'{"input": "a", "model": "gpt-4"}')
    check("openai unknown model: code model_not_found, param model",
          st == 404 and b["error"]["code"] == "model_not_found" and b["error"]["param"] == "model", str(b))
    st, b, _ = s.request("GET", "/nope")
    check("unknown route: 404", st == 404 and is_tei_error(b), str(b))
    st, b, _ = s.request("GET", "/embed")
    check("GET /embed: 405", st == 405 and is_tei_error(b), str(b))
    st, b, h = s.request("OPTIONS", "/embed", headers={"Origin": "https://a.example", "Access-Control-Request-Method": "POST"})
    check("no --cors-allow-origin: OPTIONS is 405, no CORS header", st == 405 and "Access-Control-Allow-Origin" not in h,
          f"{st} {h}")
    st, b, h = s.request("POST", "/embed", {"inputs": "a"}, headers={"Origin": "https://a.example"})
    check("no --cors-allow-origin: no CORS header", st == 200 and not any(k.lower().startswith("access-control") for k in h),
          str(h))
    # a client's string inside an error message, and a path, cannot forge log lines
    s.request("POST", "/embed", {"inputs": "a", "model": "evil\nINJECTED 127.0.0.1 GET /x 200"})
    s.request("GET", "/nope%0AINJECTED%20line")
    time.sleep(0.3)  # the log reader thread catches up
    check("log: control characters from the client are escaped (one line per request)",
          not any(l.startswith("INJECTED") for l in s.lines)
          and sum("evil\\x0aINJECTED" in l for l in s.lines) == 1
          and sum("/nope\\x0aINJECTED" in l for l in s.lines) == 1, repr(s.lines[-3:]))
    st, _, _ = s.request("GET", "/health")
    check("server still up after the bad inputs", st == 200 and s.p.poll() is None)


def test_payload_limit():
    s = Server("-m", MODEL, "--payload-limit", "1000")
    big = json.dumps({"inputs": ["word " * 50] * 4}).encode()
    st, b, _ = s.request("POST", "/embed", big)
    check("413 over --payload-limit (Content-Length)", st == 413 and is_tei_error(b, "payload_too_large"), f"{st} {b}")
    # chunked upload: no Content-Length, the limit is found while reading
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 300]), big[i:i + 300]) for i in range(0, len(big), 300)) + b"0\r\n\r\n"
    raw = raw_request(s.port, b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    check("413 over --payload-limit (chunked)", status_of(raw) == 413 and is_tei_error(body_of(raw)), raw[:300])
    st, b, _ = s.request("POST", "/embed", {"inputs": "small"})
    check("a body under the limit still served", st == 200)
    # a 10 MB body against the default limit (2 MB)
    rc = s.stop()
    s = Server("-m", MODEL)
    # the answer comes after the headers, before the body: a client that
    # sends the body anyway sees the connection closed under it
    body = b'{"inputs": "' + b"a" * 10_000_000 + b'"}'
    raw = raw_request(s.port, b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
    check("10 MB body: 413", status_of(raw) == 413 and is_tei_error(body_of(raw)), raw[:200])
    st, _, _ = s.request("GET", "/health")
    check("up after the 10 MB body", st == 200)
    check("exit 0", s.stop() == 0 and rc == 0)


def test_api_key(d):
    keyfile = os.path.join(d, "key")
    with open(keyfile, "w") as f:
        f.write("s3cret\n")
    for how in (["--api-key", "s3cret"], ["--api-key-file", keyfile]):
        s = Server("-m", MODEL, *how, "--cors-allow-origin", "*")
        st, b, _ = s.request("POST", "/embed", {"inputs": "a"})
        check(f"{how[0]}: missing key -> 401", st == 401 and is_tei_error(b), f"{st} {b}")
        st, b, _ = s.request("POST", "/v1/embeddings", {"input": "a"}, headers={"Authorization": "Bearer wrong"})
        check(f"{how[0]}: wrong key -> 401 (OpenAI envelope)", st == 401 and is_openai_error(b)
              and b["error"]["code"] == "invalid_api_key", f"{st} {b}")
        st, b, _ = s.request("POST", "/v1/embeddings", {"input": "a"}, headers={"Authorization": "Bearer s3cret2"})
        check(f"{how[0]}: longer key -> 401", st == 401)
        st, b, _ = s.request("POST", "/embed", {"inputs": "a"}, headers={"Authorization": "Bearer s3cret"})
        check(f"{how[0]}: right key -> 200", st == 200)
        st, b, _ = s.request("GET", "/info")
        check(f"{how[0]}: GET /info needs the key", st == 401)
        st, b, _ = s.request("GET", "/health")
        check(f"{how[0]}: /health needs no key", st == 200)
        st, b, h = s.request("OPTIONS", "/v1/embeddings", headers={"Origin": "https://x.example",
                                                                   "Access-Control-Request-Method": "POST",
                                                                   "Access-Control-Request-Headers": "authorization"})
        check(f"{how[0]}: a CORS preflight needs no key (204, Allow-Origin *)", st == 204
              and h.get("Access-Control-Allow-Origin") == "*" and "Authorization" in h.get("Access-Control-Allow-Headers", ""),
              f"{st} {h}")
        st, b, h = s.request("POST", "/embed", {"inputs": "a"}, headers={"Origin": "https://x.example"})
        check(f"{how[0]}: CORS: the 401 carries Allow-Origin *", st == 401 and h.get("Access-Control-Allow-Origin") == "*")
        s.stop()


# ==== batching and concurrency ====

def test_concurrency(s, n_workers=12, n_rounds=12, n_extra=20):
    """The same text alone and inside concurrent mixed requests gives identical bytes: n_workers
    threads, each n_rounds requests of 1-16 texts from a pool of TEXTS and n_extra more."""
    pool = TEXTS + [f"sentence number {i} about {w}" for i, w in enumerate(["cats", "dogs", "rain", "stocks", "music"] * 4)][:n_extra]
    alone = {}
    for t in pool:  # one text per request, one at a time: nothing to batch with
        st, b, _ = s.request("POST", "/embed", {"inputs": [t]})
        alone[t] = f32(b).tobytes() if st == 200 else None
    ref = encode_ref(MODEL, pool)
    check("alone = sembed encode", all(alone[t] == ref[i].tobytes() for i, t in enumerate(pool)))
    bad, errors, n_done = [], [], [0]
    lock = threading.Lock()

    def worker(seed):
        r = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)  # keep-alive: one connection per worker
        for _ in range(n_rounds):
            texts = r.sample(pool, r.randint(1, min(16, len(pool))))
            route = r.choice(["/embed", "/v1/embeddings", "/v1/embeddings-b64"])
            try:
                if route == "/embed":
                    st, b, _ = s.request("POST", "/embed", {"inputs": texts}, conn=conn)
                    vecs = [f32(v).tobytes() for v in b] if st == 200 else None
                else:
                    fmt = "base64" if route.endswith("b64") else "float"
                    st, b, _ = s.request("POST", "/v1/embeddings", {"input": texts, "encoding_format": fmt}, conn=conn)
                    vecs = None
                    if st == 200:
                        vecs = [np.frombuffer(base64.b64decode(d["embedding"]), "<f4").tobytes() if fmt == "base64"
                                else f32(d["embedding"]).tobytes() for d in b["data"]]
            except Exception as e:  # noqa: BLE001 - reported as a failure
                with lock:
                    errors.append(repr(e))
                return
            with lock:
                n_done[0] += 1
                if vecs is None:
                    errors.append(f"{route} {st}")
                else:
                    bad.extend(t for t, v in zip(texts, vecs) if v != alone[t])
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check("concurrent: every request served", not errors and n_done[0] == n_workers * n_rounds, str(errors[:5]))
    check("concurrent: every vector bit-identical to the text alone", not bad, str(bad[:5]))
    # and the load did batch requests together (else the check above proves nothing)
    st, info, _ = s.request("GET", "/info")
    mixed = info["models"][0]["mixed_batches"] if st == 200 else 0
    check("concurrent: some forward passes held several requests' inputs", mixed > 0, str(info.get("models", [{}])[0]))
    batched = [l for l in s.lines if "POST" in l]
    check("concurrent: one log line per request", len(batched) >= len(pool) + n_workers * n_rounds, str(len(batched)))


def hold_request(port, path=b"/embed"):
    """Opens a request whose body is not all sent yet (the server has admitted it); returns (socket, rest)."""
    body = json.dumps({"inputs": ["held request"]}).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body[:5])
    return sock, body[5:]


def finish_held(sock, rest):
    sock.sendall(rest)
    out = b""
    try:
        while b"\r\n\r\n" not in out or len(out.partition(b"\r\n\r\n")[2]) < 10:
            b = sock.recv(65536)
            if not b:
                break
            out += b
            head, _, tail = out.partition(b"\r\n\r\n")
            cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
            if cl and len(tail) >= int(cl[0].split(b":")[1]):
                break
    except socket.timeout:
        pass
    sock.close()
    return out


def test_overload():
    s = Server("-m", MODEL, "--max-concurrent-requests", "1")
    sock, rest = hold_request(s.port)
    time.sleep(0.3)
    st, b, _ = s.request("POST", "/embed", {"inputs": "another"})
    check("429 while --max-concurrent-requests are in flight", st == 429 and is_tei_error(b, "overloaded"), f"{st} {b}")
    st, b, _ = s.request("POST", "/v1/embeddings", {"input": "another"})
    check("429 (OpenAI envelope)", st == 429 and is_openai_error(b), f"{st} {b}")
    for path, body in (("/rerank", {"query": "q", "texts": ["a"]}), ("/predict", {"inputs": "a"}),
                       ("/similarity", {"inputs": {"source_sentence": "a", "sentences": ["b"]}})):
        st, b, _ = s.request("POST", path, body)
        check(f"429 on {path} too (counted against --max-concurrent-requests)", st == 429 and is_tei_error(b, "overloaded"),
              f"{st} {b}")
    st, _, _ = s.request("GET", "/health")
    check("health is not refused with 429", st == 200)
    raw = finish_held(sock, rest)
    vec = body_of(raw)
    check("the held request is served, correctly", status_of(raw) == 200
          and same(f32(vec), encode_ref(MODEL, ["held request"])), raw[:200])
    st, b, _ = s.request("POST", "/embed", {"inputs": "another"})
    check("served again once the slot is free", st == 200)
    check("exit 0", s.stop() == 0)


def test_sigterm():
    s = Server("-m", MODEL)
    sock, rest = hold_request(s.port)
    idle = socket.create_connection(("127.0.0.1", s.port), timeout=30)  # a keep-alive connection, open before
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    first = read_response(idle)
    time.sleep(0.3)
    s.p.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    check("SIGTERM: still running while a request is in flight", s.p.poll() is None)
    try:
        c = socket.create_connection(("127.0.0.1", s.port), timeout=2)
        c.close()
        refused = False
    except OSError:
        refused = True
    check("SIGTERM: new connections refused", refused)
    idle.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n{\"inputs\": \"a\"}")
    st, body = read_response(idle)
    idle.close()
    check("SIGTERM: a new request on an open connection gets 503", first[0] == 200 and st == 503
          and is_tei_error(json.loads(body or b"null"), "unhealthy"), f"{first} {st} {body}")
    raw = finish_held(sock, rest)
    check("SIGTERM: the request in flight is answered", status_of(raw) == 200
          and same(f32(body_of(raw)), encode_ref(MODEL, ["held request"])), raw[:200])
    rc = s.stop(timeout=30)
    check("SIGTERM: exit 0", rc == 0, str(rc))
    s = Server("-m", MODEL)
    check("SIGINT (idle): exit 0", s.stop(sig=signal.SIGINT) == 0)


# ==== logs, options ====

def test_logs():
    s = Server("-m", MODEL, "--log-format", "json")
    s.request("POST", "/embed", {"inputs": ["a", "b"]})
    s.request("POST", "/embed", {"inputs": []})
    s.request("GET", "/health")
    s.stop()
    recs = []
    for l in s.lines:
        if l.startswith("{"):
            try:
                recs.append(json.loads(l))
            except ValueError:
                pass
    check("json log: one line per request", len(recs) == 3, "".join(s.lines))
    check("json log: fields", len(recs) == 3 and recs[0]["path"] == "/embed" and recs[0]["status"] == 200
          and recs[0]["inputs"] == 2 and recs[0]["model"] == "use-lite" and recs[1]["status"] == 400
          and "error" in recs[1] and recs[2]["path"] == "/health", str(recs))


def test_linking():
    """Only the sembed binary links libmicrohttpd; the library stays free of it."""
    lib = os.path.join(os.path.dirname(SEMBED), "libsembed.so")
    ldd = lambda f: subprocess.run(["ldd", f], capture_output=True, text=True).stdout
    check("sembed links libmicrohttpd", "libmicrohttpd" in ldd(SEMBED))
    check("libsembed.so does not", os.path.exists(lib) and "libmicrohttpd" not in ldd(lib), ldd(lib))


def test_usage():
    rc, out, _ = run("serve", "--help")
    check("serve --help", rc == 0 and "--max-batch-tokens" in out and "--api-key-file" in out
          and "--cors-allow-origin" in out and "--request-timeout" in out and "/rerank" in out and "/metrics" in out
          and "/embed_all" in out and "/decode" in out)
    rc, _, err = run("serve", "-m", MODEL, "--request-timeout", "0")
    check("serve --request-timeout 0: usage error", rc == 2 and "--request-timeout" in err, err)
    rc, _, err = run("serve", "-m", MODEL, "--cors-allow-origin", "")
    check("serve --cors-allow-origin '': usage error", rc == 2 and "--cors-allow-origin" in err, err)
    rc, _, err = run("serve")
    check("serve without -m: usage error", rc == 2 and "missing -m" in err, err)
    rc, _, err = run("serve", "-m", MODEL, "--port", "70000")
    check("serve --port 70000: usage error", rc == 2 and "--port" in err, err)
    rc, _, err = run("serve", "-m", MODEL, "--log-format", "xml")
    check("serve --log-format xml: usage error", rc == 2 and "--log-format" in err, err)
    rc, _, err = run("serve", "-m", MODEL, "-m", MODEL)
    check("serve: two models with one name", rc == 2 and "use-lite" in err, err)
    rc, _, err = run("serve", "-m", "/nonexistent/model")
    check("serve: a missing model folder", rc == 1 and "/nonexistent/model" in err, err)
    rc, _, err = run("serve", "-m", MODEL, "--host", "not-an-address")
    check("serve: a bad --host", rc == 2 and "--host" in err, err)
    rc, _, err = run("serve", "-m", MODEL, "--api-key-file", "/nonexistent/key")
    check("serve: a missing --api-key-file", rc == 2 and "/nonexistent/key" in err, err)


# ==== real clients ====

def test_openai_client(s):
    script = os.path.join(CLIENTS, "openai_embed.mjs")
    if not os.path.isdir(os.path.join(CLIENTS, "node_modules", "openai")):
        check("openai npm client installed (setup.sh runs npm ci in tests/clients)", False)
        return
    ref = encode_ref(MODEL, TEXTS[:4])
    for fmt in ("default", "float"):
        p = subprocess.run(["node", script, f"http://127.0.0.1:{s.port}/v1", fmt, json.dumps(TEXTS[:4])],
                           capture_output=True, timeout=60)
        try:
            res = json.loads(p.stdout)
            got, sent = f32(res["vectors"]), res["sent_encoding_format"]
        except (ValueError, KeyError, TypeError):
            got, sent = None, None
        check(f"openai npm client ({fmt} encoding): vectors within 1e-6 of sembed encode",
              p.returncode == 0 and maxdiff(got, ref) <= 1e-6, p.stderr.decode()[-500:])
        check(f"openai npm client ({fmt}): asked for {'base64' if fmt == 'default' else 'float'}",
              sent == ("base64" if fmt == "default" else "float"), str(sent))
        check(f"openai npm client ({fmt}): bit-identical", same(got, ref))


def test_cross_encoder_server():
    """One server with a cross-encoder as the default model (and a classifier, an XLM-R reranker,
    an embedding model), CORS and a short request deadline: the cross-encoder routes, GET /metrics,
    CORS and slow clients."""
    s = Server("-m", f"ce={CE}", "-m", f"nli={NLI}", "-m", f"xlmr={CEX}", "-m", f"en={EN}",
               "--cors-allow-origin", "https://a.example", "--cors-allow-origin", "https://b.example",
               "--request-timeout", "2")
    check("cross-encoder server started", s.port is not None, "".join(s.lines))
    if s.port is None:
        s.stop()
        return
    try:
        test_rerank(s)
        test_predict(s)
        test_model_types(s)
        test_pair_bad_input(s)
        test_pair_truncation_left(s)
        test_pair_concurrency(s)
        test_metrics(s)
        test_cors(s)
        test_slow_clients(s)
    finally:
        rc = s.stop()
    check("cross-encoder server: exit 0 on SIGTERM", rc == 0, "".join(s.lines[-5:]))


def concurrency_only():
    """`make tsan`: the tests where threads meet (batching under concurrent load, 429, SIGTERM with a
    request in flight, cross-encoder pairs batched across requests, the request deadline's
    watchdog), against a ThreadSanitizer build; a report makes the server exit non-zero."""
    s = Server("-m", MODEL)
    try:
        test_concurrency(s, n_workers=8, n_rounds=3, n_extra=0)
    finally:
        rc = s.stop()
    check("concurrent load: exit 0 (no sanitizer report)", rc == 0, str(rc))
    test_overload()
    test_sigterm()
    s = Server("-m", f"ce={CE}", "-m", f"nli={NLI}", "--request-timeout", "2")
    try:
        test_pair_concurrency(s, n_workers=6, n_rounds=3)
        test_slow_clients(s)
    finally:
        rc = s.stop()
    check("cross-encoder load and slow clients: exit 0 (no sanitizer report)", rc == 0, str(rc))
    report("test_serve")


def main():
    if not os.path.exists(os.path.join(MODEL, "model.safetensors")):
        check("the default model is there (./setup.sh makes models/use-lite)", False)
        report("test_serve")
    if "--concurrency-only" in sys.argv[2:]:
        concurrency_only()
    if "--only" in sys.argv[2:]:  # a development aid: run the named test functions alone
        for name in sys.argv[sys.argv.index("--only") + 1:]:
            globals()[name]()
        report("test_serve")
    test_usage()
    test_linking()
    tmp = tempfile.mkdtemp()
    qp, lc = make_variants(tmp)
    nan = make_nan_model(tmp)
    s = Server("-m", MODEL, "-m", f"en={EN}", "-m", f"plain={PLAIN}", "-m", f"prompt={PROMPT}", "-m", f"qp={qp}",
               "-m", f"lc={lc}", "-m", f"nan={nan}")
    s.nan_dir = nan
    check("server started", s.port is not None, "".join(s.lines))
    if s.port is None:
        s.stop()
        report("test_serve")
    try:
        rc, _, err = run("serve", "-m", MODEL, "--port", str(s.port))
        check("serve on a port in use: exit 1, says so", rc == 1 and f"port {s.port}" in err, err)
        test_routes(s)
        test_keepalive_and_clients(s)
        test_models(s)
        test_variants(s, qp, lc)
        test_backend_error(s)
        test_truncation(s)
        test_text_path(s)
        test_truncation_left(s)
        test_normalize_false(s)
        test_embed_all(s)
        test_tokenize_offsets(s)
        test_decode(s)
        test_similarity(s)
        test_bad_input(s)
        test_concurrency(s)
        test_openai_client(s)
        n_post = len([l for l in s.lines if " POST " in l])
    finally:
        rc = s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    check("main server: exit 0 on SIGTERM", rc == 0, "".join(s.lines[-5:]))
    check("main server: log lines", n_post > 0)
    test_cross_encoder_server()
    test_payload_limit()
    with tempfile.TemporaryDirectory() as d:
        test_api_key(d)
    test_overload()
    test_sigterm()
    test_logs()
    report("test_serve")


if __name__ == "__main__":
    main()
