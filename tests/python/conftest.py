"""pytest set-up for the sembed Python package tests (tests/python/).

Run through tests/test_python.py (which sets SEMBED_LIBRARY, SEMBED_BIN and
PYTHONPATH from the build directory), or by hand from the repo root:
    SEMBED_LIBRARY=build/libsembed.so SEMBED_BIN=build/sembed PYTHONPATH=python \\
        /usr/bin/python3 -m pytest -q tests/python
"""
import json
import os
import subprocess

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures", "models")
USE = os.path.join(ROOT, "models", "use-lite")
CORPUS = os.path.join(ROOT, "examples", "corpus.txt")
SEMBED = os.environ.get("SEMBED_BIN", os.path.join(ROOT, "build", "sembed"))


def cli(*args, input=None):
    """Runs the sembed CLI; returns (rc, stdout bytes, stderr str)."""
    p = subprocess.run([SEMBED, *args], input=input, capture_output=True)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def cli_npy(tmp_path, model, texts, *opts):
    """`sembed encode` of texts (as JSONL input) into .npy, loaded."""
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(t) + "\n" for t in texts), encoding="utf-8")
    out = tmp_path / "out.npy"
    rc, _, err = cli("encode", "-m", model, "--jsonl-input", "-i", str(src), "-o", str(out), "-q", *opts)
    assert rc == 0, err
    return np.load(out)


def fixture_sentences():
    """The fixture sentences (tests/fixtures/models/sentences.jsonl)."""
    with open(os.path.join(FIX, "sentences.jsonl"), encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def corpus_lines():
    """examples/corpus.txt, one text per line."""
    with open(CORPUS, encoding="utf-8") as f:
        return f.read().splitlines()


@pytest.fixture(scope="session")
def use_model():
    """The default model, loaded once."""
    import sembed
    return sembed.SentenceTransformer(USE)
