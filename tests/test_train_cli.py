#!/usr/bin/python3
"""Black-box tests of `sembed train` (issue 15, scope 4).

Run from the repo root: /usr/bin/python3 tests/test_train_cli.py build/sembed
Data: tests/fixtures/train/stsb-pairs.jsonl (48 paraphrase pairs: STS
Benchmark train pairs scored >= 4), stsb-scored.tsv (32 train pairs, score
/ 5), stsb-dev.tsv (40 dev pairs, s1<TAB>s2<TAB>score) - see that folder's
README. The model is tests/fixtures/models/en-mean-norm (random weights, 2
layers x 32), so each run takes well under a second.
- the loss goes down (MNRL, CoSENT, MSE to teacher vectors);
- --seed: the same bytes twice (on 1 and 2 threads), other bytes for
  another seed;
- a checkpoint is a model folder that sembed encodes as the torch reference
  does (a Dense student's too); a run resumed from it ends with the same
  weights as one that did not stop; Ctrl-C saves a checkpoint and prints the resume command;
- the output folder loads in `sembed encode`, whose vectors equal the
  PyTorch reference of tools/train_grad_ref.py on the folder's files
  (1e-5), for a fine-tuned model and a --init random student;
- --init random --arch xlmr (--spm) and mpnet (--vocab): Hugging Face's folders
  (config.json, tokenizer files, special ids), trained, loaded by sembed and the
  torch reference alike;
- --init random --dense D: a Dense module (2_Dense/) to D dimensions, trained,
  loaded and encoded by sembed as the torch reference does;
- --eval-ir on a BEIR folder: nDCG@10, MRR@10, Recall@10 as `sembed eval ir`
  computes them on the output, under sentence-transformers' metric names;
- the loss curve of 50 MNRL steps (dropout on) equals PyTorch's within 0.1% at
  every step (tests/fixtures/train-curve/, made by tools/train_curve_ref.py);
- bad data files and options give errors naming the file and line;
- --help and the main help's command list.
Prints "test_train_cli.py: N passed, N failed" and exits non-zero on failure.
"""
import json, os, shutil, signal, subprocess, sys, tempfile, time

import numpy as np

from clitest import SEMBED, check, report, run

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
MODEL = "tests/fixtures/models/en-mean-norm"
FIX = "tests/fixtures/train/"
PAIRS, SCORED, DEV = FIX + "stsb-pairs.jsonl", FIX + "stsb-scored.tsv", FIX + "stsb-dev.tsv"


def train(out, *extra, data=PAIRS, loss="mnrl", model=MODEL):
    """Runs sembed train into out; returns (rc, stdout, stderr)."""
    args = ["train", "--loss", loss, "--data", data, "-o", out, "-q", *extra]
    if model:
        args = args[:1] + ["-m", model] + args[1:]
    return run(*args)


def state(out):
    with open(os.path.join(out, "trainer_state.json")) as f:
        return json.load(f)


def weights(out):
    with open(os.path.join(out, "model.safetensors"), "rb") as f:
        return f.read()


def epoch_losses(st, steps_per_epoch):
    """The mean logged loss of each epoch (logging every step)."""
    l = [e["loss"] for e in st["log_history"]]
    return [sum(l[i:i + steps_per_epoch]) / steps_per_epoch for i in range(0, len(l), steps_per_epoch)]


def nodrop(d):
    """en-mean-norm without dropout (config.json's probabilities 0), made once in d: its loss curves are smooth
    (dropout 0.1 on a 32-wide model is most of the noise), so a few epochs show the descent."""
    nd = os.path.join(d, "nodrop")
    if not os.path.isdir(nd):
        shutil.copytree(MODEL, nd)
        with open(os.path.join(nd, "config.json")) as f:
            cfg = json.load(f)
        cfg["hidden_dropout_prob"] = cfg["attention_probs_dropout_prob"] = 0.0
        with open(os.path.join(nd, "config.json"), "w") as f:
            json.dump(cfg, f)
    return nd


def test_loss_down(d):
    # MNRL: 48 pairs, batch 8 -> 6 steps an epoch, 4 epochs
    nd = nodrop(d)
    out = os.path.join(d, "mnrl")
    rc, _, err = train(out, "--epochs", "4", "--batch-size", "8", "--lr", "3e-3", "--logging-steps", "1",
                       "--eval-sts", DEV, "--eval-steps", "4", model=nd)
    check("mnrl runs", rc == 0, err)
    if rc:
        return
    st = state(out)
    ep = epoch_losses(st, 6)
    check("mnrl steps", st["global_step"] == 24 and len(st["log_history"]) == 24, st["global_step"])
    # measured: epoch means 1.69, 0.75, 0.35, 0.13 (ln 8 = 2.08 is chance)
    check("mnrl loss goes down", ep[-1] < 0.4 * ep[0] and ep == sorted(ep, reverse=True), ep)
    check("mnrl eval per epoch and every 4 steps", [e["step"] for e in st["eval_history"]] == [4, 6, 8, 12, 16, 18, 20, 24]
          and all(-100 <= e["eval_sts_spearman"] <= 100 for e in st["eval_history"]), st["eval_history"])
    # CoSENT on scored pairs (TSV with a header)
    out = os.path.join(d, "cosent")
    rc, _, err = train(out, "--epochs", "4", "--batch-size", "8", "--lr", "3e-3", "--logging-steps", "1",
                       data=SCORED, loss="cosent", model=nd)
    check("cosent runs", rc == 0, err)
    if rc == 0:
        ep = epoch_losses(state(out), 4)
        check("cosent loss goes down", ep[-1] < ep[0] - 0.2, ep)  # measured 4.30, 3.46, 3.27, 3.13
    # MSE to teacher vectors (a fixed random direction per row)
    t = np.random.RandomState(0).standard_normal((48, 32)).astype("<f4")
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    np.save(os.path.join(d, "teacher.npy"), t)
    out = os.path.join(d, "mse")
    rc, _, err = train(out, "--epochs", "4", "--batch-size", "8", "--lr", "3e-3", "--logging-steps", "1",
                       "--teacher-vectors", os.path.join(d, "teacher.npy"), loss="mse", model=nd)
    check("mse runs", rc == 0, err)
    if rc == 0:
        ep = epoch_losses(state(out), 6)
        check("mse loss goes down", ep[-1] < ep[0] * 0.9, ep)  # measured 0.0612 -> 0.0511
    # MSE to a sembed teacher (USE lite, 512-d, truncated to the student's 32) under Matryoshka 32, 16, 8
    out = os.path.join(d, "mse-teacher")
    rc, _, err = train(out, "--epochs", "2", "--batch-size", "8", "--lr", "3e-3", "--logging-steps", "1",
                       "--teacher", "models/use-lite", "--matryoshka", "32,16,8", loss="mse", model=nd)
    check("mse --teacher runs", rc == 0, err)
    if rc == 0:
        ep = epoch_losses(state(out), 6)
        check("mse --teacher loss goes down", ep[-1] < ep[0] * 0.8, ep)  # measured 0.047 -> 0.035
    # Triplet on three columns; Matryoshka wider than the model
    p = os.path.join(d, "triplets.jsonl")
    with open(p, "w") as f:
        for a, b, c in [("a man plays", "a man is playing", "stocks fell"), ("a cat sleeps", "the cat is asleep", "rain")]:
            f.write(json.dumps({"anchor": a, "positive": b, "negative": c}) + "\n")
    rc, _, err = train(os.path.join(d, "triplet"), data=p, loss="triplet")
    check("triplet runs", rc == 0, err)
    rc, _, err = train(os.path.join(d, "m64"), "--matryoshka", "64", data=SCORED, loss="cosent")
    check("matryoshka wider than the model refused", rc == 1 and "--matryoshka 64: wider than the model's 32" in err, err)


def test_eval_stsb(d):
    """--eval-sts on the STS Benchmark's format (gzip, a header, --eval-split): the last evaluation equals
    `sembed eval sts` on the output folder (the trainer's forward against the library's)."""
    import gzip
    p = os.path.join(d, "stsb-mini.tsv.gz")
    with open(DEV) as f, gzip.open(p, "wt") as g:
        g.write("split\tgenre\tdataset\tyear\tsid\tscore\tsentence1\tsentence2\n")
        for i, l in enumerate(f):
            s1, s2, sc = l.rstrip("\n").split("\t")
            g.write("%s\tmain\tx\t2012\t%04d\t%s\t%s\t%s\n" % ("dev" if i < 30 else "test", i, sc, s1, s2))
    out = os.path.join(d, "eval-stsb")
    rc, _, err = train(out, "--batch-size", "16", "--eval-sts", p, "--eval-split", "dev")
    check("eval-sts STS-B format runs", rc == 0, err)
    if rc:
        return
    got = state(out)["eval_history"][-1]["eval_sts_spearman"]
    rc, o, err = run("eval", "sts", "-m", out, p, "--split", "dev", "--json")
    want = json.loads(o)
    check("eval-sts: 30 dev pairs, the Spearman of sembed eval sts",
          rc == 0 and want["pairs"] == 30 and abs(got - want["spearman"]) < 0.01, (got, o, err))
    rc, _, err = train(os.path.join(d, "eval-bad"), "--eval-sts", SCORED)  # a header row of names: not a score
    check("eval-sts: a bad file named with its line", rc == 1 and SCORED + ':1: score "score" is not a number' in err, err)


def test_seed(d):
    a, b, c = (os.path.join(d, x) for x in ("seed-a", "seed-b", "seed-c"))
    common = ["--epochs", "1", "--batch-size", "8", "--lr", "1e-4", "--seed", "7"]
    ra = train(a, *common)
    rb = train(b, *common, "-t", "2")
    rc_ = train(c, *common[:-1], "8")
    check("seed runs", ra[0] == 0 and rb[0] == 0 and rc_[0] == 0, ra[2] + rb[2] + rc_[2])
    if ra[0] or rb[0] or rc_[0]:
        return
    check("seed: the same bytes twice (1 and 2 threads)", weights(a) == weights(b))
    check("seed: another seed, other weights", weights(a) != weights(c))
    check("seed: trained weights differ from the init", weights(a) != weights(MODEL))


def test_resume(d):
    full, part, res = (os.path.join(d, x) for x in ("res-full", "res-part", "res-resumed"))
    # 48 rows in batches of 16: 3 micro-batches an epoch, 2 steps (the second of one micro-batch), 6 steps
    common = ["--epochs", "3", "--batch-size", "16", "--lr", "2e-4", "--warmup-ratio", "0.2", "--weight-decay", "0.01",
              "--grad-accum", "2", "--logging-steps", "1"]
    r1 = train(full, *common)
    r2 = train(part, *common, "--save-steps", "3")  # 6 steps: checkpoint 3 (mid-epoch), none at the end
    ck = os.path.join(part, "checkpoint-3")
    check("resume: checkpoints written", r1[0] == 0 and r2[0] == 0 and os.path.isdir(ck)
          and sorted(x for x in os.listdir(part) if x.startswith("checkpoint-")) == ["checkpoint-3"], r1[2] + r2[2])
    # the checkpoint is a model folder as it stands (as Hugging Face's checkpoint-N are)
    for f in ["config.json", "modules.json", "1_Pooling/config.json", "tokenizer.json", "model.safetensors",
              "optimizer.safetensors", "trainer_state.json"]:
        check("checkpoint has " + f, os.path.isfile(os.path.join(ck, f)), f)
    v = encodes_as_reference("checkpoint", ck)
    if v is not None:
        rc0, v0 = sembed_vectors(MODEL, TEXTS)
        rcf, vf = sembed_vectors(full, TEXTS)
        check("checkpoint: its vectors are step 3's (moved from the init, not yet the end's)",
              rc0 == 0 and rcf == 0 and np.abs(v - v0).max() > 1e-4 and np.abs(v - vf).max() > 1e-4)
    r3 = train(res, *common, "--resume", ck)
    check("resume runs", r3[0] == 0, r3[2])
    if r1[0] or r3[0]:
        return
    check("resume: the same weights as without a stop", weights(full) == weights(res))
    check("resume: the same final step", state(res)["global_step"] == 6)
    check("resume: the log history carried over, the same as without a stop",
          state(res)["log_history"] == state(full)["log_history"] and len(state(full)["log_history"]) == 6,
          (state(res)["log_history"], state(full)["log_history"]))
    # a checkpoint of another model's shape
    rc, _, err = train(os.path.join(d, "res-bad"), *common, "--resume", ck, model="tests/fixtures/models/en-plain-hf")
    check("resume: another model's checkpoint refused", rc == 1 and "n_parameters" in err, err)


def st_floats(path):
    with open(path, "rb") as f:
        b = f.read()
    n = int.from_bytes(b[:8], "little")
    return np.frombuffer(b[8 + n:], "<f4")


def test_cmnrl(d):
    """CachedMNRL (GradCache, mini-batches of 5 sentences) trains as MNRL on the whole batch: on a model without
    dropout (the masks are drawn per mini-batch), the same weights to float rounding."""
    nd = nodrop(d)
    a, b = os.path.join(d, "c-mnrl"), os.path.join(d, "c-cmnrl")
    common = ["--batch-size", "16", "--epochs", "2", "--lr", "1e-3"]
    r1 = train(a, *common, model=nd)
    r2 = train(b, *common, "--mini-batch-size", "5", loss="cmnrl", model=nd)
    check("cmnrl runs", r1[0] == 0 and r2[0] == 0, r1[2] + r2[2])
    if r1[0] == 0 and r2[0] == 0:
        diff = np.abs(st_floats(os.path.join(a, "model.safetensors")) - st_floats(os.path.join(b, "model.safetensors")))
        check("cmnrl equals mnrl (1e-6)", diff.max() < 1e-6, diff.max())  # measured 1.2e-7
    rc, _, err = train(os.path.join(d, "c-sym"), *common, loss="mnrl-sym", model=nd)
    check("mnrl-sym runs", rc == 0, err)


def test_interrupt(d):
    out = os.path.join(d, "intr")
    p = subprocess.Popen([SEMBED, "train", "-m", MODEL, "--loss", "mnrl", "--data", PAIRS, "-o", out, "--epochs",
                          "100000", "--batch-size", "8", "--progress", "--logging-steps", "2"],
                         stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    first = b""
    while b"train: step" not in first:  # training has started: the first progress line
        line = p.stderr.readline()
        if not line:
            break
        first += line
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    err = first.decode() + err.decode()
    cks = [x for x in os.listdir(out)] if os.path.isdir(out) else []
    check("interrupt: exit 130", p.returncode == 130, p.returncode)
    check("interrupt: a checkpoint and the resume command",
          len(cks) == 1 and cks[0].startswith("checkpoint-") and "resume with: sembed train" in err
          and "--resume " + os.path.join(out, cks[0]) in err, (cks, err))


def ref_vectors(folder, texts):
    """The PyTorch reference (tools/train_grad_ref.py, float64) on folder's files, ids from sembed tokenize."""
    import train_grad_ref as ref
    rc, out, err = run("tokenize", "-m", folder, input="\n".join(texts).encode() + b"\n")
    ids = [json.loads(l) for l in out.splitlines()]
    M = ref.load_model(os.path.abspath(folder))
    return ref.encode(M, ids, [0] * len(ids)).detach().numpy()


def sembed_vectors(folder, texts):
    rc, out, err = run("encode", "-m", folder, "-q", input="\n".join(texts).encode() + b"\n")
    return rc, np.array([json.loads(l) for l in out.splitlines()]) if rc == 0 else err


def encodes_as_reference(what, folder):
    """Checks that folder loads in sembed encode and gives the torch reference's vectors (1e-5); its vectors, or
    None."""
    rc, v = sembed_vectors(folder, TEXTS)
    check(what + " loads in sembed encode", rc == 0, v)
    if rc:
        return None
    r = ref_vectors(folder, TEXTS)
    check(what + ": sembed encode equals the torch reference (1e-5)", np.abs(v - r).max() < 1e-5, np.abs(v - r).max())
    return v


TEXTS = ["A plane is taking off.", "A man is playing a flute.", "Three dogs run on the beach at noon."]


def test_output(d):
    out = os.path.join(d, "mnrl")  # from test_loss_down
    for f in ["model.safetensors", "config.json", "modules.json", "1_Pooling/config.json", "sentence_bert_config.json",
              "config_sentence_transformers.json", "tokenizer.json", "tokenizer_config.json"]:
        check("output has " + f, os.path.isfile(os.path.join(out, f)), f)
    check("output: no temporary folder left", not [x for x in os.listdir(d) if ".tmp." in x], os.listdir(d))
    v = encodes_as_reference("output", out)
    if v is not None:
        rc0, v0 = sembed_vectors(MODEL, TEXTS)
        check("output: the vectors moved from the init", rc0 == 0 and np.abs(v - v0).max() > 1e-3)
    # a sharded bf16 init (model-0000N-of-00002.safetensors + index): one F32 model.safetensors, no stale shards
    sh = os.path.join(d, "sharded")
    rc, _, err = train(sh, "--batch-size", "16", model="tests/fixtures/models/xlmr-mean-norm-bf16")
    check("sharded init runs", rc == 0, err)
    if rc == 0:
        w = sorted(x for x in os.listdir(sh) if x.endswith((".safetensors", ".bin", ".json")) and "model" in x)
        check("sharded init: only model.safetensors", w == ["model.safetensors"], w)
        rc, v = sembed_vectors(sh, TEXTS)
        check("sharded init: equals the torch reference (1e-5)", rc == 0 and np.abs(v - ref_vectors(sh, TEXTS)).max() < 1e-5)
    # -m ORG/NAME from the hub cache (offline), as every command's -m
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = os.path.join(d, "hub", "models--test-org--tiny")
    os.makedirs(os.path.join(repo, "refs"))
    with open(os.path.join(repo, "refs", "main"), "w") as f:
        f.write(sha)
    shutil.copytree(MODEL, os.path.join(repo, "snapshots", sha))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=os.path.join(d, "hub"))
    p = subprocess.run([SEMBED, "train", "-m", "test-org/tiny", "--loss", "mnrl", "--data", PAIRS, "-q", "-o",
                        os.path.join(d, "from-hub")], env=env, capture_output=True)
    check("-m ORG/NAME from the hub cache", p.returncode == 0 and os.path.isfile(os.path.join(d, "from-hub", "tokenizer.json")),
          p.stderr)
    # a student from scratch
    st = os.path.join(d, "random")
    rc, _, err = run("train", "--init", "random", "--vocab", "tests/fixtures/models/zh-cls-dense-f16/vocab.txt",
                     "--layers", "1", "--hidden", "32", "--heads", "2", "--max-seq-length", "32", "--loss", "mnrl",
                     "--data", PAIRS, "--batch-size", "16", "-o", st, "-q")
    check("init random runs", rc == 0, err)
    if rc == 0:
        rc, v = sembed_vectors(st, TEXTS)
        check("init random: loads in sembed encode", rc == 0 and v.shape == (3, 32), v)
        if rc == 0:
            r = ref_vectors(st, TEXTS)
            check("init random: equals the torch reference (1e-5)", np.abs(v - r).max() < 1e-5, np.abs(v - r).max())
    rc, _, err = train(out)
    check("output: a folder holding a model is refused", rc == 1 and "already holds a model" in err, err)


IR = "tests/fixtures/eval/scifact-mini"


def test_eval_ir(d):
    """--eval-ir DIR (BEIR's layout, gzipped files): after each epoch and every --eval-steps, nDCG@10, MRR@10 and
    Recall@10 under sentence-transformers' names (eval_{folder}_cosine_ndcg@10); the last equals `sembed eval ir`
    on the output folder (the trainer's forward and exact search against the library's); the best nDCG@10 is
    trainer_state.json's best_metric."""
    nd = nodrop(d)
    out = os.path.join(d, "eval-ir")
    rc, _, err = run("train", "-m", nd, "--loss", "mnrl", "--data", PAIRS, "-o", out, "--batch-size", "16",
                     "--epochs", "2", "--lr", "3e-3", "--eval-ir", IR + "/", "--eval-steps", "2")
    check("eval-ir runs", rc == 0, err)
    if rc:
        return
    st = state(out)
    h = st["eval_history"]
    keys = ["eval_scifact-mini_cosine_" + k for k in ("ndcg@10", "mrr@10", "recall@10")]
    check("eval-ir: per epoch and every 2 steps, three metrics in [0, 1]",
          [e["step"] for e in h] == [2, 3, 4, 6] and all(0 <= e[k] <= 1 for e in h for k in keys), h)
    check("eval-ir: the metrics change as the model trains", len({e[keys[0]] for e in h}) > 1, h)
    check("eval-ir: on the progress lines",
          err.count("nDCG@10 ") == 4 and "(30 queries) on " + IR in err, err)
    rc, o, e2 = run("eval", "ir", "-m", out, IR, "--json", "-q")
    want = json.loads(o)["metrics"] if rc == 0 else {}
    check("eval-ir: the last evaluation equals sembed eval ir on the output",
          rc == 0 and all(abs(h[-1][k] - want[k.rsplit("_", 1)[1]]) < 2e-6 for k in keys), (h[-1], o, e2))
    best = max(h, key=lambda e: e[keys[0]])
    check("eval-ir: the best nDCG@10 is trainer_state's best_metric",
          st.get("metric_for_best_model") == keys[0] and st.get("best_metric") == best[keys[0]]
          and st.get("best_global_step") == best["step"], st)
    # errors: a folder without the files; a bad qrels line named with its line
    rc, _, err = train(os.path.join(d, "ir-none"), "--eval-ir", d)
    check("eval-ir: a folder without corpus.jsonl refused", rc == 1 and "--eval-ir " + d + ": expected corpus.jsonl" in err, err)
    bad = os.path.join(d, "ir-bad")
    shutil.copytree(IR, bad)
    with open(os.path.join(bad, "qrels.tsv"), "a") as f:
        f.write("q1 d2\n")
    rc, _, err = train(os.path.join(d, "ir-bad-out"), "--eval-ir", bad)
    check("eval-ir: a bad qrels line named", rc == 1 and os.path.join(bad, "qrels.tsv") + ":33: expected query-id" in err, err)


CURVE = "tests/fixtures/train-curve/en-mean-norm-mnrl.json"


def test_loss_curve(d):
    """Issue 15's acceptance: 50 steps of MNRL from the same initial weights, data order and learning rate give
    PyTorch's loss curve within 0.1% at every step. The reference curve is tools/train_curve_ref.py's (torch
    float32, 2 threads, OpenBLAS), made by the command in the fixture's "command" field:
        LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp OMP_NUM_THREADS=2 /usr/bin/python3 \
          tools/train_curve_ref.py -m tests/fixtures/models/en-mean-norm --data tests/fixtures/train/stsb-pairs.jsonl \
          --batch-size 10 --epochs 10 --lr 1e-3 --warmup-ratio 0.1 --weight-decay 0.01 \
          -o tests/fixtures/train-curve/en-mean-norm-mnrl.json
    It recomputes sembed's data order (the seed's permutations) and draws sembed's dropout masks (the counter-based
    hash), so the curves match with dropout on (config.json's 0.1): 48 rows in batches of 10 (the fifth of 8),
    5 warm-up steps, weight decay 0.01, clipping at 1 on every step (gradient norms 3 to 8). Measured: worst
    relative difference 5e-7 (float32 rounding; nothing drifts)."""
    with open(CURVE) as f:
        want = json.load(f)
    out = os.path.join(d, "curve")
    rc, _, err = run("train", "-m", MODEL, "--loss", "mnrl", "--data", PAIRS, "-o", out, "--batch-size", "10",
                     "--epochs", "10", "--lr", "1e-3", "--warmup-ratio", "0.1", "--weight-decay", "0.01", "--seed", "42",
                     "--logging-steps", "1")
    check("loss curve: 50 steps run", rc == 0, err)
    if rc:
        return
    h = state(out)["log_history"]
    # ceil(R * steps) in double, as transformers' get_warmup_steps: 0.1 of 50 is 5 (R as a float32 gave 6)
    lr = [e["learning_rate"] for e in h]
    check("warmup ratio 0.1 of 50 steps: 5 warm-up steps", "50 steps (10 epochs of 5), batch 10 x 1, 5 warm-up steps" in err
          and abs(lr[4] - 8e-4) < 1e-9 and abs(lr[5] - 1e-3) < 1e-9 and abs(lr[6] - 1e-3 * 44 / 45) < 1e-9, (err, lr[:8]))
    got = [e["loss"] for e in h]
    rel = [abs(a - b) / abs(b) for a, b in zip(got, want["loss"])]
    check("loss curve: 50 steps, PyTorch's loss within 0.1% at every step",
          len(got) == 50 == len(want["loss"]) and max(rel) < 1e-3, (max(rel), got, want["loss"]))
    gn = [abs(e["grad_norm"] - b) / b for e, b in zip(h, want["grad_norm"])]
    check("loss curve: PyTorch's gradient norms within 0.1%", max(gn) < 1e-3, max(gn))
    lr = [abs(e["learning_rate"] - b) for e, b in zip(h, want["learning_rate"])]
    check("loss curve: PyTorch's learning rates (warm-up 5, linear decay)", max(lr) < 1e-9, lr)


def test_init_arch(d):
    """--init random --arch xlmr|mpnet: the folder Hugging Face writes for XLMRobertaModel (sentencepiece.bpe.model,
    fairseq ids <s>=0 <pad>=1 </s>=2) or MPNetModel (a WordPiece vocab.txt with <s> </s>, a relative position
    bias), RoBERTa's positions (max_position_embeddings = length + 2, padding_idx 1 whose rows start and stay
    zero), trained; sembed encode equals the torch reference on the folder's files."""
    cases = [("xlmr", ["--spm", "tests/fixtures/sentencepiece/test_model.model"], "xlm-roberta", "sentencepiece.bpe.model"),
             ("mpnet", ["--vocab", "tests/fixtures/models/mpnet-mean-norm/vocab.txt"], "mpnet", "vocab.txt")]
    for arch, src, mt, tokfile in cases:
        out = os.path.join(d, "init-" + arch)
        rc, _, err = run("train", "--init", "random", "--arch", arch, *src, "--layers", "1", "--hidden", "32", "--heads",
                         "2", "--max-seq-length", "32", "--loss", "mnrl", "--data", PAIRS, "--batch-size", "16",
                         "--lr", "1e-3", "-o", out, "-q")
        check("init %s runs" % arch, rc == 0, err)
        if rc:
            continue
        with open(os.path.join(out, "config.json")) as f:
            cfg = json.load(f)
        check("init %s: config.json" % arch, cfg["model_type"] == mt and cfg["max_position_embeddings"] == 34
              and cfg["pad_token_id"] == 1 and cfg["hidden_size"] == 32 and cfg["num_hidden_layers"] == 1
              and cfg.get("type_vocab_size", 0) == (1 if arch == "xlmr" else 0)
              and (arch == "xlmr" or cfg["relative_attention_num_buckets"] == 32), cfg)
        with open(os.path.join(out, "sentence_bert_config.json")) as f:
            msl = json.load(f)["max_seq_length"]
        check("init %s: tokenizer files, max_seq_length 32" % arch,
              all(os.path.isfile(os.path.join(out, x)) for x in (tokfile, "tokenizer_config.json", "special_tokens_map.json"))
              and msl == 32, os.listdir(out))
        rc, o, e = run("tokenize", "-m", out, input=b"A plane is taking off.\n")
        ids = json.loads(o) if rc == 0 else []
        check("init %s: <s> ... </s> as ids 0 ... 2" % arch, len(ids) > 3 and ids[0] == 0 and ids[-1] == 2, (o, e))
        w = {}
        import train_grad_ref as ref
        w = ref.read_safetensors(os.path.join(out, "model.safetensors"))
        check("init %s: the padding_idx rows zero (Hugging Face's init; never used, so never trained)" % arch,
              float(w["embeddings.word_embeddings.weight"][1].abs().max()) == 0
              and float(w["embeddings.position_embeddings.weight"][1].abs().max()) == 0
              and float(w["embeddings.word_embeddings.weight"][5].abs().max()) > 0)
        if arch == "mpnet":
            check("init mpnet: MPNet's names and relative position bias",
                  tuple(w["encoder.relative_attention_bias.weight"].shape) == (32, 2)
                  and "encoder.layer.0.attention.attn.q.weight" in w, sorted(w)[:8])
        rc, v = sembed_vectors(out, TEXTS)
        check("init %s: loads in sembed encode" % arch, rc == 0 and v.shape == (3, 32), v)
        if rc == 0:
            r = ref_vectors(out, TEXTS)
            check("init %s: equals the torch reference (1e-5)" % arch, np.abs(v - r).max() < 1e-5, np.abs(v - r).max())
    rc, _, err = run("train", "--init", "random", "--arch", "xlmr", "--vocab", "tests/fixtures/models/mpnet-mean-norm/vocab.txt",
                     "--loss", "mnrl", "--data", PAIRS, "-o", os.path.join(d, "init-bad"))
    check("init xlmr without --spm: usage error", rc == 2 and "--arch xlmr needs --spm FILE" in err, err)
    rc, _, err = run("train", "--init", "random", "--arch", "gpt", "--vocab", "x", "--loss", "mnrl", "--data", PAIRS,
                     "-o", os.path.join(d, "init-bad"))
    check("init --arch gpt: usage error", rc == 2 and "--arch gpt: one of bert, xlmr, mpnet" in err, err)


def test_dense(d):
    """--init random --dense D: the student of a wider teacher (a 48-row teacher of 64 dimensions here; USE lite's
    512 in the experiments): Transformer, Pooling, 2_Dense (hidden -> D, identity), Normalize."""
    st = os.path.join(d, "dense")
    t = np.random.RandomState(1).standard_normal((48, 64)).astype("<f4")
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    np.save(os.path.join(d, "teacher64.npy"), t)
    rc, _, err = run("train", "--init", "random", "--vocab", "tests/fixtures/models/zh-cls-dense-f16/vocab.txt",
                     "--layers", "1", "--hidden", "32", "--heads", "2", "--max-seq-length", "32", "--dense", "64",
                     "--loss", "mse", "--teacher-vectors", os.path.join(d, "teacher64.npy"), "--data", PAIRS,
                     "--batch-size", "8", "--epochs", "4", "--lr", "3e-3", "--logging-steps", "1", "--save-steps", "12",
                     "-o", st, "-q")
    check("dense: init random --dense 64 runs", rc == 0, err)
    if rc:
        return
    with open(os.path.join(st, "modules.json")) as f:
        mods = [(m["path"], m["type"].rsplit(".", 1)[-1]) for m in json.load(f)]
    check("dense: modules Transformer, Pooling, 2_Dense, 3_Normalize",
          mods == [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Dense", "Dense"), ("3_Normalize", "Normalize")], mods)
    with open(os.path.join(st, "2_Dense", "config.json")) as f:
        dc = json.load(f)
    check("dense: 2_Dense/config.json as models.Dense writes it",
          dc == {"in_features": 32, "out_features": 64, "bias": True,
                 "activation_function": "torch.nn.modules.linear.Identity"}, dc)
    w = st_floats(os.path.join(st, "2_Dense", "model.safetensors"))
    check("dense: 2_Dense/model.safetensors holds 64 x 32 + 64 floats", w.size == 64 * 32 + 64, w.size)
    ep = epoch_losses(state(st), 6)
    check("dense: the MSE to the 64-d teacher goes down", ep[-1] < ep[0] * 0.9, ep)
    # the output, and its checkpoint (the random init's files, 2_Dense/model.safetensors)
    for what, folder in (("dense", st), ("dense: the checkpoint", os.path.join(st, "checkpoint-12"))):
        v = encodes_as_reference(what, folder)
        check(what + ": 64 dimensions", v is not None and v.shape == (3, 64), None if v is None else v.shape)
    rc, _, err = train(os.path.join(d, "dense-m"), "--dense", "64")
    check("dense: with -m refused", rc == 2 and "--dense goes with --init random" in err, err)


def test_errors(d):
    # a checkpoint folder already there, its config.json a symlink: not written through, the run fails
    out, target = os.path.join(d, "o-ckpt-link"), os.path.join(d, "link-target.txt")
    os.makedirs(os.path.join(out, "checkpoint-3"))
    with open(target, "w") as f:
        f.write("keep")
    os.symlink(target, os.path.join(out, "checkpoint-3", "config.json"))
    rc, _, err = train(out, "--epochs", "3", "--batch-size", "16", "--save-steps", "3")
    with open(target) as f:
        kept = f.read()
    check("checkpoint: a symlink in its folder is not replaced", rc == 1 and "not a regular file" in err and kept == "keep",
          (rc, err, kept))

    def bad(name, text, want, loss="mnrl", *extra):
        p = os.path.join(d, name)
        with open(p, "w") as f:
            f.write(text)
        rc, _, err = train(os.path.join(d, "o-" + name), *extra, data=p, loss=loss)
        check("error " + name, rc == 1 and want.format(p=p) in err, err)
    bad("badjson.jsonl", '{"anchor": "a", "positive": "b"}\n{"anchor": "c", "positive": "d"}\n{"anchor": "e",\n',
        "{p}:3: ")
    bad("missing.jsonl", '{"anchor": "a", "positive": "b"}\n{"anchor": "c"}\n', "{p}:2: 1 fields, the first row has 2")
    bad("notstr.jsonl", '{"anchor": "a", "positive": "b"}\n{"anchor": "c", "positive": 5}\n',
        '{p}:2: field "positive" is not a string')
    bad("fields.tsv", "sentence1\tsentence2\tscore\na\tb\t0.5\nc\td\n", "{p}:3: 2 fields, the header has 3", "cosent")
    bad("score.tsv", "sentence1\tsentence2\tscore\na\tb\t0.5\nc\td\thigh\n", '{p}:3: score "high" is not a number', "cosent")
    bad("quote.csv", 'anchor,positive\na,b\n"c,d\n', "{p}:3: a quoted field is not closed")
    bad("nolabel.jsonl", '{"anchor": "a", "positive": "b"}\n', "--loss cosent takes two text columns", "cosent")
    bad("empty.tsv", "", "{p}: no training rows")
    bad("one.jsonl", '{"anchor": "a"}\n', "--loss mnrl takes at least two text columns")
    p = os.path.join(d, "raw.tsv")
    with open(p, "wb") as f:
        f.write(b"anchor\tpositive\na\tb\nc\t\xff\n")
    rc, _, err = train(os.path.join(d, "o-raw"), data=p)
    check("error invalid UTF-8", rc == 1 and p + ":3: column \"positive\" is not valid UTF-8" in err, err)
    rc, _, err = train(os.path.join(d, "o-x"), data=PAIRS.replace(".jsonl", ".txt"))
    check("error format by name", rc == 1 and "must end in .jsonl, .tsv or .csv" in err, err)
    # --columns: a headerless CSV by position
    p = os.path.join(d, "nohdr.csv")
    with open(p, "w") as f:
        f.write('"A plane, taking off.",An air plane is taking off.\nA man plays.,"A man is playing, ""a flute"""\n')
    rc, _, err = train(os.path.join(d, "o-nohdr"), "--columns", "anchor,positive", data=p)
    check("headerless CSV with --columns", rc == 0, err)
    rc, _, err = train(os.path.join(d, "o-hdr2"), "--columns", "sentence1,sentence2,score", data=SCORED, loss="cosent")
    check("--columns on a file with that header row refused", rc == 1 and SCORED + ":1: a header row" in err, err)
    # JSONL: the columns in use are named on stderr; --columns picks fields (an "id" left out, order as given)
    p = os.path.join(d, "ids.jsonl")
    with open(p, "w") as f:
        f.write('{"id": 1, "positive": "a man is playing", "anchor": "a man plays"}\n'
                '{"id": 2, "positive": "the cat is asleep", "anchor": "a cat sleeps"}\n')
    rc, _, err = run("train", "-m", MODEL, "--loss", "mnrl", "--data", p, "-o", os.path.join(d, "o-ids"))
    check("jsonl: a non-string extra field is refused", rc == 1 and p + ':1: field "id" is not a string' in err, err)
    rc, _, err = run("train", "-m", MODEL, "--loss", "mnrl", "--data", p, "-o", os.path.join(d, "o-ids2"),
                     "--columns", "anchor,positive")
    check("jsonl --columns picks and orders fields", rc == 0 and "text columns anchor, positive\n" in err, err)
    # an output folder that cannot be made fails before training, not after
    rc, _, err = run("train", "-m", MODEL, "--loss", "mnrl", "--data", PAIRS, "-o", os.path.join(d, "no", "such", "out"))
    check("unwritable -o fails before training", rc == 1 and "cannot make" in err and "rows x" not in err, err)
    rc, _, err = train(os.path.join(d, "o-loss"), loss="nope")
    check("unknown loss: usage error", rc == 2 and "--loss nope" in err, err)
    rc, _, err = train(os.path.join(d, "o-mse"), loss="mse")
    check("mse without a teacher: usage error", rc == 2 and "--teacher-vectors" in err, err)
    np.save(os.path.join(d, "short.npy"), np.zeros((3, 32), "<f4"))
    rc, _, err = train(os.path.join(d, "o-mse2"), "--teacher-vectors", os.path.join(d, "short.npy"), loss="mse")
    check("mse: teacher rows must match", rc == 1 and "3 x 32 vectors; the data has 48 rows" in err, err)


def test_help():
    rc, out, _ = run("train", "--help")
    check("train --help", rc == 0 and "--loss" in out and "--resume" in out and "--init random" in out, out)
    rc, out, _ = run("--help")
    check("main help lists train", rc == 0 and "  train " in out, out)


def main():
    with tempfile.TemporaryDirectory() as d:
        test_help()
        test_loss_down(d)
        test_eval_stsb(d)
        test_eval_ir(d)
        test_seed(d)
        test_resume(d)
        test_cmnrl(d)
        test_interrupt(d)
        test_output(d)
        test_init_arch(d)
        test_dense(d)
        test_loss_curve(d)
        test_errors(d)
    report("test_train_cli.py")


if __name__ == "__main__":
    main()
