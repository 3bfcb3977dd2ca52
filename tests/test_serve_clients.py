#!/usr/bin/python3
"""Real JS clients against `sembed serve`, run with node on loopback (no network).

Run from the repo root: /usr/bin/python3 tests/test_serve_clients.py build/sembed
The clients are the npm packages of tests/clients (exact versions in package-lock.json; setup.sh
installs them with npm ci):
  - LangChain's OpenAIEmbeddings (@langchain/openai, configuration.baseURL, apiKey, model):
    embedDocuments over several batches and embedQuery, on POST /v1/embeddings;
  - Hugging Face's InferenceClient (@huggingface/inference) featureExtraction against the server
    as a TEI endpoint (InferenceClient(key).endpoint(URL): POST /), a list and a single string.
Each client's vectors must equal `sembed encode`'s within 1e-6 (checked here with numpy). One
server (the default model, with an API key, so each client is seen sending it).
Prints "test_serve_clients: N passed, N failed" and exits non-zero on failure.
"""
import json, os, subprocess

from clitest import check, report
from test_serve import MODEL, Server, encode_ref, f32, maxdiff, same

CLIENTS = "tests/clients"
KEY = "clients-test-key"
DOCS = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply.",
        "Ünïcödé café naïve", "一个男人正在吃东西。"]
NEWLINE_DOC = "first line\nsecond line"  # LangChain sends it with the newline replaced by a space
QUERY = "Will it rain this weekend?"


def node(script, *args):
    """Runs a client script with node; returns (parsed stdout or None, stderr tail). The LangChain
    and Hugging Face environment variables that could send anything elsewhere are removed."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LANGCHAIN_", "LANGSMITH_", "OPENAI_", "HF_", "HUGGING"))}
    try:
        p = subprocess.run(["node", os.path.join(CLIENTS, script), *args], capture_output=True, timeout=90, env=env)
    except subprocess.TimeoutExpired:
        return None, f"{script}: timed out"
    try:
        return (json.loads(p.stdout) if p.returncode == 0 else None), p.stderr.decode("utf-8", "replace")[-800:]
    except ValueError:
        return None, p.stderr.decode("utf-8", "replace")[-800:]


def installed(pkg):
    ok = os.path.isfile(os.path.join(CLIENTS, "node_modules", pkg, "package.json"))
    check(f"npm package {pkg} installed (setup.sh runs npm ci in tests/clients)", ok)
    return ok


def test_langchain(s):
    if not (installed("@langchain/openai") and installed("@langchain/core")):
        return
    docs = DOCS + [NEWLINE_DOC]
    ref = encode_ref(MODEL, DOCS + [NEWLINE_DOC.replace("\n", " ")])
    qref = encode_ref(MODEL, [QUERY])
    n0 = len([l for l in s.lines if " POST /v1/embeddings 200 " in l])
    res, err = node("langchain_embed.mjs", f"http://127.0.0.1:{s.port}/v1", KEY, "use-lite", "2", json.dumps(docs),
                    QUERY, "wrong")
    check("LangChain OpenAIEmbeddings: ran", res is not None, err)
    if res is None:
        return
    got, q = f32(res["documents"]), f32([res["query"]])
    check("LangChain embedDocuments: vectors within 1e-6 of sembed encode", maxdiff(got, ref) <= 1e-6,
          f"max diff {maxdiff(got, ref)}")
    check("LangChain embedQuery: within 1e-6 of sembed encode", maxdiff(q, qref) <= 1e-6, f"max diff {maxdiff(q, qref)}")
    check("LangChain: bit-identical to sembed encode", same(got, ref) and same(q, qref))
    sent = res["sent"]
    check("LangChain: 3 batches of at most 2 texts, then the query, on /v1/embeddings",
          [len(x["body"]["input"]) if isinstance(x["body"]["input"], list) else 1 for x in sent] == [2, 2, 2, 1]
          and all(x["url"].endswith("/v1/embeddings") and x["body"]["model"] == "use-lite" for x in sent),
          json.dumps(sent)[:500])
    check("LangChain: the newline was sent as a space (stripNewLines)", sent[2]["body"]["input"][1] == "first line second line",
          json.dumps(sent[2]["body"])[:300])
    n1 = len([l for l in s.lines if " POST /v1/embeddings 200 " in l])
    check("LangChain: 4 requests in the server's log, with the key", n1 - n0 == 4, f"{n1 - n0}")
    e = res.get("wrong_key_error") or ""
    check("LangChain with a wrong key: fails with the server's 401 message",
          e.startswith("401 ") and "missing or wrong API key" in e, e)


def test_hf(s):
    if not installed("@huggingface/inference"):
        return
    ref = encode_ref(MODEL, DOCS)
    n0 = len([l for l in s.lines if " POST / 200 " in l])
    res, err = node("hf_feature_extraction.mjs", f"http://127.0.0.1:{s.port}", KEY, json.dumps(DOCS), "wrong")
    check("@huggingface/inference featureExtraction: ran", res is not None, err)
    if res is None:
        return
    got = f32(res["batch"])
    check("HF featureExtraction (list): vectors within 1e-6 of sembed encode", maxdiff(got, ref) <= 1e-6,
          f"max diff {maxdiff(got, ref)}")
    single = f32(res["single"])
    check("HF featureExtraction (one string): TEI's [[...]], within 1e-6", maxdiff(single, ref[:1]) <= 1e-6,
          f"shape {single.shape} max diff {maxdiff(single, ref[:1])}")
    check("HF: bit-identical to sembed encode", same(got, ref) and same(single, ref[:1]))
    sent = res["sent"]
    check("HF: POSTs {inputs} to the endpoint URL itself (TEI's POST /), nothing else",
          [x["url"] for x in sent] == [f"http://127.0.0.1:{s.port}"] * 2
          and [x["body"] for x in sent] == [{"inputs": DOCS}, {"inputs": DOCS[0]}], json.dumps(sent)[:500])
    n1 = len([l for l in s.lines if " POST / 200 " in l])
    check("HF: 2 requests in the server's log, with the key", n1 - n0 == 2, f"{n1 - n0}")
    e = res.get("wrong_key_error") or ""
    check("HF with a wrong key: fails with the server's message", "missing or wrong API key" in e, e)


def main():
    if not os.path.exists(os.path.join(MODEL, "model.safetensors")):
        check("the default model is there (./setup.sh makes models/use-lite)", False)
        report("test_serve_clients")
    s = Server("-m", MODEL, "--api-key", KEY)
    check("server started", s.port is not None, "".join(s.lines))
    try:
        if s.port is not None:
            test_langchain(s)
            test_hf(s)
    finally:
        rc = s.stop()
    check("server: exit 0 on SIGTERM", rc == 0, "".join(s.lines[-5:]))
    report("test_serve_clients")


if __name__ == "__main__":
    main()
