"""sembed.SetFitHead (python/sembed/classify.py): the same head as `sembed
classify fit` on the same data (bit for bit: the same embeddings, the same
deterministic fit), sklearn's attribute shapes, the file shared both ways
with the CLI, and another model refused."""
import json
import os

import numpy as np
import pytest

import sembed
from conftest import FIX, ROOT, USE, cli

DATA = os.path.join(ROOT, "tests", "fixtures", "classify", "train.jsonl")


def rows(n):
    with open(DATA, encoding="utf-8") as f:
        r = [json.loads(l) for l in f if l.strip()][:n]
    return [x["text"] for x in r], [x["label"] for x in r]


def test_classify_head_matches_cli(use_model, tmp_path):
    texts, labels = rows(60)
    src = tmp_path / "train.jsonl"
    src.write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in zip(texts, labels)), encoding="utf-8")
    rc, _, err = cli("classify", "fit", "-m", USE, "--data", str(src), "-o", str(tmp_path / "cli.json"), "-q")
    assert rc == 0, err
    cli_head = json.loads((tmp_path / "cli.json").read_text())
    head = sembed.SetFitHead(use_model).fit(texts, labels)
    assert list(head.classes_) == ["main-captions", "main-forum", "main-news"] == cli_head["classes"]
    assert head.coef_.shape == (3, 512) and head.intercept_.shape == (3,)
    assert np.array_equal(head.coef_, np.array(cli_head["coef"]))
    assert np.array_equal(head.intercept_, np.array(cli_head["intercept"]))
    proba = head.predict_proba(texts[:5])
    assert proba.shape == (5, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-6)
    assert head.predict(texts[:5]) == [head.classes_[k] for k in proba.argmax(axis=1)]
    # the Python head's file drives the CLI, and the CLI's loads in Python
    head.save(tmp_path / "py.json")
    rc, out, err = cli("classify", "predict", "-m", USE, "--head", str(tmp_path / "py.json"), "--proba",
                       input=("\n".join(texts[:5]) + "\n").encode())
    assert rc == 0, err
    got = [json.loads(l) for l in out.decode().splitlines()]
    assert [g["label"] for g in got] == head.predict(texts[:5])
    assert np.allclose([[g["proba"][c] for c in head.classes_] for g in got], proba, atol=1e-7)
    back = sembed.SetFitHead.load(tmp_path / "cli.json", use_model)
    assert np.array_equal(back.coef_, head.coef_) and back.predict(texts[:5]) == head.predict(texts[:5])


def test_classify_binary_and_errors(use_model, tmp_path):
    texts, labels = rows(30)
    y = [1 if l == "main-news" else 0 for l in labels]
    head = sembed.SetFitHead(use_model, C=0.5).fit(texts, y)
    assert list(head.classes_) == ["0", "1"] and head.coef_.shape == (1, 512) and head.intercept_.shape == (1,)
    with pytest.raises(sembed.SembedError, match="two classes"):
        sembed.SetFitHead(use_model).fit(texts[:3], ["x", "x", "x"])
    with pytest.raises(ValueError):
        sembed.SetFitHead(use_model).fit(texts[:3], ["x", "y"])
    with pytest.raises(RuntimeError, match="not fitted"):
        sembed.SetFitHead(use_model).predict(["a"])
    head.save(tmp_path / "h.json")
    other = sembed.SentenceTransformer(os.path.join(FIX, "en-mean-norm"))
    with pytest.raises(sembed.SembedError, match="another model"):
        sembed.SetFitHead.load(tmp_path / "h.json", other)
