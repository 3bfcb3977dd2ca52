"""SentenceTransformer.encode and friends against `sembed encode`, bit for
bit, and sentence-transformers' shapes, precision modes and errors."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

import sembed
from sembed import SentenceTransformer, util
from conftest import FIX, USE, ROOT, cli, cli_npy, corpus_lines, fixture_sentences

EMBEDDING_FIXTURES = sorted(d for d in os.listdir(FIX) if os.path.isdir(os.path.join(FIX, d)) and not d.startswith("ce-"))


def test_encode_use_lite_bit_identical_to_cli(use_model, tmp_path):
    texts = corpus_lines() + ["", "  padded  ", "苹果手机质量怎么样"]
    want = cli_npy(tmp_path, USE, texts)
    got = use_model.encode(texts)
    assert got.dtype == np.float32 and got.shape == want.shape == (len(texts), 512)
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("name", EMBEDDING_FIXTURES)
def test_encode_fixture_bit_identical_to_cli(name, tmp_path):
    path = os.path.join(FIX, name)
    texts = fixture_sentences()
    m = SentenceTransformer(path)
    want = cli_npy(tmp_path, path, texts)
    assert m.encode(texts, batch_size=7).tobytes() == want.tobytes()
    # normalize_embeddings and truncate_dim as --normalize and --truncate-dim
    want = cli_npy(tmp_path, path, texts[:5], "--normalize", "--truncate-dim", "4")
    assert m.encode(texts[:5], normalize_embeddings=True, truncate_dim=4).tobytes() == want.tobytes()
    assert SentenceTransformer(path, truncate_dim=4).encode(texts[:5], normalize_embeddings=True).tobytes() == want.tobytes()


def test_prompts_as_cli(tmp_path):
    path = os.path.join(FIX, "en-allpool-prompt")
    m = SentenceTransformer(path)
    texts = fixture_sentences()[:6]
    assert m.prompts == {"query": "query: ", "passage": "passage: "}
    assert m.similarity_fn_name == "dot"
    q = cli_npy(tmp_path, path, texts, "--prompt-name", "query")
    assert m.encode(texts, prompt_name="query").tobytes() == q.tobytes()
    assert m.encode_query(texts).tobytes() == q.tobytes()
    assert m.encode(texts, prompt="query: ").tobytes() == q.tobytes()
    p = cli_npy(tmp_path, path, texts, "--prompt-name", "passage")
    assert m.encode_document(texts).tobytes() == p.tobytes()
    # an edited prompts dict applies, as in sentence-transformers
    m.prompts["query"] = "passage: "
    assert m.encode_query(texts).tobytes() == p.tobytes()
    with pytest.raises(ValueError, match="'nope' not found"):
        m.encode("x", prompt_name="nope")


def test_shapes(use_model):
    assert use_model.encode("A man is eating food.").shape == (512,)
    assert use_model.encode(["a", "b"]).shape == (2, 512)
    assert use_model.encode(("a", "b", "c")).shape == (3, 512)
    assert use_model.encode([]).shape == (0,)
    assert use_model.get_sentence_embedding_dimension() == 512
    assert use_model.max_seq_length == 128
    assert use_model.similarity_fn_name == "cosine"
    rows = use_model.encode(["a", "b"], convert_to_numpy=False)
    assert isinstance(rows, list) and len(rows) == 2 and tuple(rows[0].shape) == (512,)


def test_convert_to_tensor(use_model):
    torch = pytest.importorskip("torch")
    t = use_model.encode(["a", "b"], convert_to_tensor=True)
    assert isinstance(t, torch.Tensor) and tuple(t.shape) == (2, 512)
    assert np.array_equal(t.numpy(), use_model.encode(["a", "b"]))
    assert tuple(use_model.encode("a", convert_to_tensor=True).shape) == (512,)
    assert tuple(use_model.encode([], convert_to_tensor=True).shape) == (0,)


def _st_quantize(emb, precision):
    """sentence-transformers' quantize_embeddings, written out in numpy (ranges from emb)."""
    if precision in ("int8", "uint8"):
        ranges = np.vstack((np.min(emb, axis=0), np.max(emb, axis=0)))
        starts = ranges[0, :]
        steps = (ranges[1, :] - ranges[0, :]) / 255
        if precision == "uint8":
            return ((emb - starts) / steps).astype(np.uint8)
        return ((emb - starts) / steps - 128).astype(np.int8)
    if precision == "binary":
        return (np.packbits(emb > 0).reshape(emb.shape[0], -1) - 128).astype(np.int8)
    return np.packbits(emb > 0).reshape(emb.shape[0], -1)


@pytest.fixture(scope="module")
def corpus_f32(use_model):
    """The corpus encoded once in float32."""
    return use_model.encode(corpus_lines())


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_precision_modes(use_model, corpus_f32, precision):
    texts = corpus_lines()
    f = corpus_f32
    q = use_model.encode(texts, precision=precision)
    want = _st_quantize(f, precision)
    assert q.dtype == want.dtype and q.shape == want.shape
    # the library's rounding may differ from numpy's float32 arithmetic only by one step at a bucket edge
    diff = np.abs(q.astype(np.int32) - want.astype(np.int32))
    assert diff.max() <= (1 if precision in ("int8", "uint8") else 0)
    assert (diff > 0).mean() < 0.001
    assert np.array_equal(q, util.quantize_embeddings(f, precision))
    assert use_model.encode(texts[0], precision=precision).shape == want.shape[1:]


def test_bad_arguments(use_model):
    with pytest.raises(TypeError, match="str or a list of str"):
        use_model.encode(42)
    with pytest.raises(TypeError, match=r"sentences\[1\] must be a str"):
        use_model.encode(["a", 3])
    with pytest.raises(ValueError, match="Precision 'int4'"):
        use_model.encode("a", precision="int4")
    with pytest.raises(ValueError, match="batch_size"):
        use_model.encode("a", batch_size=0)
    with pytest.raises(ValueError, match="CPU only"):
        use_model.encode("a", device="cuda")
    with pytest.raises(ValueError, match="CPU only"):
        SentenceTransformer(USE, device="cuda")
    with pytest.raises(ValueError, match="output_value"):
        use_model.encode("a", output_value="hidden_states")
    with pytest.raises(ValueError, match="truncate_dim"):
        use_model.encode("a", truncate_dim=513)
    with pytest.raises(ValueError, match="similarity_fn_name"):
        use_model.similarity_fn_name = "jaccard"
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate cannot be UTF-8
        use_model.encode("bad \ud800 text")


def test_library_errors_carry_the_message(tmp_path):
    with pytest.raises(ValueError, match="not a model folder"):
        SentenceTransformer(str(tmp_path / "missing"))
    broken = tmp_path / "broken"
    shutil.copytree(os.path.join(FIX, "en-mean-norm"), broken)
    (broken / "config.json").write_text('{"model_type": "bert", "hidden_size": ')
    with pytest.raises(sembed.SembedError) as e:
        SentenceTransformer(str(broken))
    assert "config.json" in str(e.value) and e.value.status == "SE_E_FORMAT"
    assert isinstance(e.value, RuntimeError)
    with pytest.raises(ValueError, match="cross-encoder"):
        SentenceTransformer(os.path.join(FIX, "ce-bert-1"))


def test_error_names_text_across_batches(use_model, monkeypatch):
    # the library's "text N" counts within one call; encode renumbers it for the whole input
    from sembed import _lib
    calls = []
    real = _lib.lib.se_encode

    def fail_second(ctx, ptrs, lens, n, p, out, cap, trunc, err):
        calls.append(n)
        if len(calls) == 2:
            err._obj.msg = b"text 1: invalid UTF-8 at byte 0"
            return -7
        return real(ctx, ptrs, lens, n, p, out, cap, trunc, err)
    monkeypatch.setattr(_lib.lib, "se_encode", fail_second)
    with pytest.raises(sembed.SembedError, match="text 5: invalid UTF-8") as e:
        use_model.encode(["a"] * 8, batch_size=4)
    assert e.value.status == "SE_E_UTF8"


def test_tokenize_as_cli(use_model):
    texts = corpus_lines()[:5] + ["  hello world  "]
    # the CLI tokenizes the line as it is; the model reads it stripped (as sentence-transformers' tokenize)
    rc, out, err = cli("tokenize", "-m", USE, input="\n".join(t.strip() for t in texts).encode() + b"\n")
    assert rc == 0, err
    want = [json.loads(l) for l in out.decode().splitlines()]
    got = use_model.tokenize(texts)
    assert got["input_ids"].shape == (6, max(map(len, want)))
    for i, w in enumerate(want):
        assert got["input_ids"][i, :len(w)].tolist() == w
        assert got["attention_mask"][i].sum() == len(w)


def test_similarity_methods(use_model):
    e = use_model.encode(["A man is eating food.", "A man is eating bread.", "Stocks fell."])
    s = use_model.similarity(e, e)
    assert s.shape == (3, 3) and np.array_equal(s, util.cos_sim(e, e))
    assert s[0, 1] > 0.5 > s[0, 2]
    p = use_model.similarity_pairwise(e, e[::-1].copy())
    assert p.shape == (3,) and abs(p[1] - 1) < 1e-6 and abs(p[0] - s[0, 2]) < 1e-6
    use2 = SentenceTransformer(USE)
    use2.similarity_fn_name = "dot"
    assert np.array_equal(use2.similarity(e, e), util.dot_score(e, e))
    use3 = SentenceTransformer(USE, similarity_fn_name="manhattan", trust_remote_code=False)
    assert np.array_equal(use3.similarity(e, e), util.manhattan_sim(e, e))
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        SentenceTransformer(USE, colour="red")


def test_seed_snippets(use_model):
    # the snippets with only the import changed
    from sembed import SentenceTransformer as ST
    from sembed.util import cos_sim
    model = ST(USE)
    emb = model.encode("苹果手机质量怎么样")
    assert emb.shape == (512,)
    a, b = "A man is eating food.", "A man is eating a piece of bread."
    s = cos_sim(model.encode(a), model.encode(b))
    assert s.shape == (1, 1) and 0.5 < float(s[0, 0]) <= 1


def test_threads_give_the_same_vectors(use_model):
    texts = corpus_lines()
    want = use_model.encode(texts)
    one = SentenceTransformer(USE, n_threads=1)  # one library worker per Python thread, as a server would
    got, errors = [None] * 4, []

    def work(i):
        try:
            for _ in range(2):
                r = one.encode(texts, batch_size=8)
                assert r.tobytes() == want.tobytes()
            got[i] = r
        except Exception as e:  # reported below, not lost in the thread
            errors.append(e)
    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not errors
    assert all(g is not None and g.tobytes() == want.tobytes() for g in got)


def test_library_lookup(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(ROOT, "python")
    env["SEMBED_LIBRARY"] = str(tmp_path / "nope.so")
    p = subprocess.run([sys.executable, "-c", "import sembed"], env=env, capture_output=True, text=True)
    assert p.returncode != 0 and "SEMBED_LIBRARY: %s (no such file)" % (tmp_path / "nope.so") in p.stderr
    # next to the package: a copy of the package with the library inside
    pkg = tmp_path / "site" / "sembed"
    shutil.copytree(os.path.join(ROOT, "python", "sembed"), pkg)
    shutil.copy(sembed.library_path, pkg / "libsembed.so.0")
    del env["SEMBED_LIBRARY"]
    env["PYTHONPATH"] = str(tmp_path / "site")
    p = subprocess.run([sys.executable, "-c", "import sembed; print(sembed.library_path)"], env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == str(pkg / "libsembed.so.0"), p.stderr
    # nowhere: the message lists every place looked
    os.remove(pkg / "libsembed.so.0")
    env["LD_LIBRARY_PATH"] = str(tmp_path)
    p = subprocess.run([sys.executable, "-c", "import sembed"], env=env, capture_output=True, text=True)
    if p.returncode != 0:  # (a system-wide install would be found instead)
        assert "the package folder" in p.stderr and "the system loader" in p.stderr


def test_pip_install_ships_the_library(tmp_path, use_model):
    # what the README's set-up does: `make python` (the library into the package), then pip from the folder
    pytest.importorskip("pip")
    if os.environ.get("SEMBED_SANITIZER"):
        pytest.skip("packaging, not memory: checked by the optimised run only")
    src = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "python"), src,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "libsembed.so*"))
    shutil.copy(os.path.realpath(sembed.library_path), src / "sembed" / "libsembed.so.0")
    p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation", "--no-deps",
                        "--target", str(tmp_path / "site"), str(src)], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("SEMBED_LIBRARY", "PYTHONPATH")}
    env["PYTHONPATH"] = str(tmp_path / "site")
    code = ("import sembed, sys; m = sembed.SentenceTransformer(sys.argv[1]); "
            "sys.stdout.write(sembed.library_path + '\\n' + m.encode('A man is eating food.').tobytes().hex())")
    p = subprocess.run([sys.executable, "-c", code, USE], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    where, vec = p.stdout.split("\n")
    assert where == str(tmp_path / "site" / "sembed" / "libsembed.so.0")
    assert bytes.fromhex(vec) == use_model.encode("A man is eating food.").tobytes()


def test_library_notices_go_to_logging(caplog):
    # a plain Hugging Face folder: the library's "mean pooling" notice becomes a record of the "sembed" logger
    with caplog.at_level("INFO", logger="sembed"):
        SentenceTransformer(os.path.join(FIX, "en-plain-hf"))
    assert any(r.name == "sembed" and "pooling" in r.getMessage() for r in caplog.records), caplog.records


def _expected(name):
    """A fixture model's PyTorch reference records with a non-empty text."""
    with open(os.path.join(FIX, name, "expected.jsonl"), encoding="utf-8") as f:
        return [r for r in map(json.loads, f) if r.get("text")]


def test_token_embeddings_match_pytorch():
    """output_value="token_embeddings": per text a (tokens, hidden) array, special tokens included,
    equal to the fixture's PyTorch last hidden states (truncated texts too); batch_size does not
    change a bit."""
    m = SentenceTransformer(os.path.join(FIX, "en-mean-norm"))
    recs = _expected("en-mean-norm")
    got = m.encode([r["text"] for r in recs], output_value="token_embeddings")
    assert isinstance(got, list) and len(got) == len(recs)
    for g, r in zip(got, recs):
        want = np.asarray(r["hidden_states"][-1], dtype=np.float32).reshape(len(r["ids"]), -1)
        assert g.dtype == np.float32 and g.shape == want.shape == (len(r["ids"]), 32)
        np.testing.assert_allclose(g, want, atol=5e-5, rtol=1e-4)
    small = m.encode([r["text"] for r in recs], output_value="token_embeddings", batch_size=3)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(got, small))
    one = m.encode(recs[1]["text"], output_value="token_embeddings")
    assert one.tobytes() == got[1].tobytes()


def test_token_embeddings_prompt_and_use_lite(use_model):
    """A prompt's tokens are in the token embeddings (as sentence-transformers keeps them); USE lite
    gives one 512-wide row per sentencepiece token."""
    m = SentenceTransformer(os.path.join(FIX, "en-allpool-prompt"))
    plain = m.encode("text here", output_value="token_embeddings")
    q = m.encode("text here", output_value="token_embeddings", prompt_name="query")
    assert q.shape[0] == plain.shape[0] + 2  # "query", ":"
    rc, out, _ = cli("tokenize", "-m", USE, input=b"Hello world\n")
    n = len(json.loads(out))
    u = use_model.encode(["Hello world", "another one here"], output_value="token_embeddings")
    assert u[0].shape == (n, 512) and u[1].shape[1] == 512


def test_output_value_none_gives_both():
    """output_value=None: per text a dict with token_embeddings and sentence_embedding, the latter
    equal to encode()'s vector bit for bit."""
    m = SentenceTransformer(os.path.join(FIX, "en-mean-norm"))
    texts = ["A man is eating food.", "Héllo café"]
    both = m.encode(texts, output_value=None)
    vec = m.encode(texts)
    tok = m.encode(texts, output_value="token_embeddings")
    assert [sorted(d) for d in both] == [["sentence_embedding", "token_embeddings"]] * 2
    for d, v, t in zip(both, vec, tok):
        assert d["sentence_embedding"].tobytes() == v.tobytes()
        assert d["token_embeddings"].tobytes() == t.tobytes()


def _hub_cache(root, repo, src, commit="0123456789abcdef0123456789abcdef01234567"):
    """A huggingface_hub cache at root holding the files of folder src as
    repo at commit (blobs named by a fake etag, relative snapshot links,
    refs/main), as `sembed pull` and huggingface_hub write it."""
    base = root / ("models--" + repo.replace("/", "--"))
    snap = base / "snapshots" / commit
    (base / "blobs").mkdir(parents=True)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(commit)
    for dirpath, _, files in os.walk(src):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            etag = hashlib.sha1(rel.encode()).hexdigest()
            shutil.copy(os.path.join(dirpath, f), base / "blobs" / etag)
            link = snap / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(base / "blobs" / etag, link.parent), link)
    return snap


def test_hub_names_resolve_through_the_cache(tmp_path, monkeypatch):
    # sentence-transformers' names: ORG/NAME, or NAME for sentence-transformers/NAME, from the shared cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    _hub_cache(cache, "sentence-transformers/tiny-mean", os.path.join(FIX, "en-mean-norm"))
    texts = fixture_sentences()[:5]
    want = SentenceTransformer(os.path.join(FIX, "en-mean-norm")).encode(texts)
    for name in ("sentence-transformers/tiny-mean", "tiny-mean"):
        m = SentenceTransformer(name, cache_folder=str(cache))
        assert np.array_equal(m.encode(texts), want), name
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert np.array_equal(SentenceTransformer("tiny-mean", local_files_only=True).encode(texts), want)
    with pytest.raises(sembed.SembedError) as e:
        SentenceTransformer("org/not-cached", cache_folder=str(cache))
    assert "org/not-cached" in str(e.value) and "cache" in str(e.value)


def test_max_seq_length_setter_as_the_folder_setting(tmp_path):
    # model.max_seq_length = N gives what a folder whose sentence_bert_config.json says N gives
    texts = fixture_sentences() + ["  Padded words, then many more words than eight tokens hold.  "]
    for name, prompt_name in (("en-mean-norm", None), ("en-allpool-prompt", "query")):
        src = os.path.join(FIX, name)
        short = tmp_path / name
        shutil.copytree(src, short)
        cfg = json.loads((short / "sentence_bert_config.json").read_text())
        cfg["max_seq_length"] = 8
        (short / "sentence_bert_config.json").write_text(json.dumps(cfg))
        m = SentenceTransformer(src)
        full = m.max_seq_length
        assert full > 8
        m.max_seq_length = 8
        assert m.max_seq_length == 8 and m.get_max_seq_length() == 8
        ref = SentenceTransformer(str(short))
        kw = {"prompt_name": prompt_name} if prompt_name and prompt_name in m.prompts else {}
        assert np.array_equal(m.encode(texts, batch_size=3, **kw), ref.encode(texts, **kw)), name
        tm = m.encode(texts[:4], output_value="token_embeddings", **kw)
        tr = ref.encode(texts[:4], output_value="token_embeddings", **kw)
        assert all(a.shape[0] <= 8 and np.array_equal(a, b) for a, b in zip(tm, tr)), name
        assert m.tokenize(texts)["input_ids"].shape[1] <= 8
        m.max_seq_length = full  # back to the model's own length: se_encode again
        assert np.array_equal(m.encode(texts), SentenceTransformer(src).encode(texts))
    with pytest.raises(ValueError, match="max_seq_length"):
        m.max_seq_length = 0
    with pytest.raises(ValueError, match="max_seq_length"):
        m.max_seq_length = 100000
