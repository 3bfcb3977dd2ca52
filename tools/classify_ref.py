#!/usr/bin/env python3
"""An independent reference for `sembed classify` (numpy only).

    classify_ref.py fit --emb train.npy --data train.jsonl [--label-field label]
                        [--C 1.0] [--predict dev.npy] -o ref.json
        Fits the same regularised objective as src/classify.c,
            C * sum_i logloss(x_i, y_i) + 0.5 * ||W||^2
        (scikit-learn's LogisticRegression(C) objective: the penalty on the
        weights, not the intercepts; one logistic of classes[1] for two
        classes, a softmax otherwise), with its own optimiser: Newton's
        method on the full Hessian (in the row space of X: see fit()) with a
        backtracking line search, to a gradient of ~1e-12. The softmax intercepts have a flat direction (a
        common shift); the Hessian gets the projection onto it added, so the
        step stays orthogonal to it and the intercepts keep summing to zero,
        as sembed's do. Writes {"classes", "coef", "intercept", "objective",
        "proba" (of --predict's rows)} as JSON.

    classify_ref.py fixture [--sts tests/fixtures/eval/stsbenchmark.tsv.gz]
                            [--out tests/fixtures/classify]
        Makes the committed genre data set: STS Benchmark sentences
        labelled by their genre column (main-captions, main-news,
        main-forum; the dev split spells it main-forums), 100 a genre from the train split (train.jsonl) and 50
        a genre from the dev split (dev.jsonl), chosen evenly through the
        file (every k-th distinct sentence), deterministic.

Labels are sorted as Python sorts str (code points: the same order as
sembed's byte order of UTF-8).
"""
import argparse
import gzip
import json
import sys

import numpy as np


def read_labels(path, field):
    """The label of each non-blank line of a JSONL file (integers as text)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            v = json.loads(line)[field]
            out.append(str(v))
    return out


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def objective(theta, X, Y, C, R, hessian=True):
    """f, gradient and (with hessian) the Hessian of the objective at theta =
    [W (R, D) | b (R)] flattened as R rows of (D + 1): row r = [w_r, b_r]."""
    N, D1 = X.shape
    B = theta.reshape(R, D1)
    Z = X @ B.T  # (N, R)
    pen = np.ones(D1)
    pen[-1] = 0.0  # no penalty on the intercept
    if R == 1:
        z = Z[:, 0]
        y = Y
        loss = np.sum(np.logaddexp(0.0, -z) * y + np.logaddexp(0.0, z) * (1 - y))
        p = 1.0 / (1.0 + np.exp(-z))
        dz = (p - y)[:, None]
        H = C * (X.T * (p * (1 - p))) @ X + np.diag(pen) if hessian else None
        g = C * (X.T @ dz).T + B * pen
        f = C * loss + 0.5 * np.sum((B * pen) ** 2)
        return f, g.ravel(), H
    P = softmax(Z)
    lse = np.log(np.sum(np.exp(Z - Z.max(axis=1, keepdims=True)), axis=1)) + Z.max(axis=1)
    loss = np.sum(lse - Z[np.arange(N), Y])
    T = np.zeros_like(P)
    T[np.arange(N), Y] = 1.0
    g = C * (P - T).T @ X + B * pen  # (R, D1)
    f = C * loss + 0.5 * np.sum((B * pen) ** 2)
    if not hessian:
        return f, g.ravel(), None
    H = np.zeros((R * D1, R * D1))
    for r in range(R):
        for s in range(R):
            w = P[:, r] * ((1.0 if r == s else 0.0) - P[:, s])
            blk = C * (X.T * w) @ X
            if r == s:
                blk += np.diag(pen)
            H[r * D1:(r + 1) * D1, s * D1:(s + 1) * D1] = blk
    return f, g.ravel(), H


def fit(X, labels, C):
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise SystemExit("classify_ref: one class only")
    idx = {c: i for i, c in enumerate(classes)}
    y = np.array([idx[l] for l in labels])
    K = len(classes)
    R = 1 if K == 2 else K
    # W's rows lie in the row space of X at the optimum (the stationarity
    # condition W_r = -C * sum_i dz_ir x_i), so with X = U S V^T the problem
    # is the same one on X' = U S (N x rank) with W = A V^T, exactly: the
    # data term sees X W^T = X' A^T and ||W|| = ||A||. Smaller Hessians
    # when D > N.
    X = X.astype(np.float64)
    U, S, Vt = np.linalg.svd(X, full_matrices=False)
    keep = S > 1e-12 * S[0]
    V = Vt[keep].T  # (D, rank)
    Xa = np.hstack([U[:, keep] * S[keep], np.ones((X.shape[0], 1))])
    D1 = Xa.shape[1]
    Y = y.astype(np.float64) if R == 1 else y
    theta = np.zeros(R * D1)
    # the flat direction of the softmax: every intercept up by the same amount
    u = np.zeros(R * D1)
    if R > 1:
        u[D1 - 1::D1] = 1.0 / np.sqrt(R)
    f, g, H = objective(theta, Xa, Y, C, R)
    newton_steps = 0
    for it in range(200):
        if np.max(np.abs(g)) < 1e-12 * max(1.0, C * X.shape[0]):
            break
        step = np.linalg.solve(H + np.outer(u, u), -g)
        t = 1.0
        while True:
            f2, g2, _ = objective(theta + t * step, Xa, Y, C, R, hessian=False)
            if f2 <= f + 1e-4 * t * (g @ step) or t < 1e-10:
                break
            if f2 <= f + 1e-13 * abs(f) and abs(g2 @ step) <= 0.9 * abs(g @ step):
                break
            t *= 0.5
        theta = theta + t * step
        newton_steps = it + 1
        if np.max(np.abs(t * step)) < 1e-15:
            break
        f, g, H = objective(theta, Xa, Y, C, R)
    B = theta.reshape(R, D1)
    coef, icpt = B[:, :-1] @ V.T, B[:, -1].copy()
    if R > 1:
        icpt -= icpt.mean()
    f, g, _ = objective(theta, Xa, Y, C, R, hessian=False)
    return classes, coef, icpt, f, float(np.max(np.abs(g))), newton_steps


def proba(classes, coef, icpt, X):
    Z = X.astype(np.float64) @ coef.T + icpt
    if len(classes) == 2:
        p1 = 1.0 / (1.0 + np.exp(-Z[:, 0]))
        return np.stack([1 - p1, p1], axis=1)
    return softmax(Z)


def cmd_fit(a):
    X = np.load(a.emb)
    labels = read_labels(a.data, a.label_field)
    if len(labels) != X.shape[0]:
        raise SystemExit(f"classify_ref: {a.emb} has {X.shape[0]} rows, {a.data} {len(labels)} labels")
    classes, coef, icpt, f, gmax, steps = fit(X, labels, a.C)
    out = {"classes": classes, "coef": coef.tolist(), "intercept": icpt.tolist(), "objective": f, "grad_max": gmax,
           "newton_steps": steps}
    if a.predict:
        out["proba"] = proba(classes, coef, icpt, np.load(a.predict)).tolist()
    with open(a.output, "w") as fo:
        json.dump(out, fo)


def cmd_fixture(a):
    rows = {"train": {}, "dev": {}}
    with gzip.open(a.sts, "rt", encoding="utf-8") as f:
        next(f)
        for line in f:
            cols = line.rstrip("\n").split("\t")
            split, genre, s1, s2 = cols[0], cols[1], cols[6], cols[7]
            genre = {"main-forums": "main-forum"}.get(genre, genre)  # the dev split's spelling
            if split not in rows:
                continue
            for s in (s1, s2):
                lst = rows[split].setdefault(genre, [])
                if s not in lst:
                    lst.append(s)
    want = {"train": 100, "dev": 50}
    seen = set()
    for split, per in want.items():
        with open(f"{a.out}/{split}.jsonl", "w", encoding="utf-8") as fo:
            out = []
            for genre in sorted(rows[split]):
                pool = [s for s in rows[split][genre] if s not in seen]
                step = len(pool) / per
                pick = [pool[int(i * step)] for i in range(per)]
                seen.update(pick)
                out += [(s, genre) for s in pick]
            # interleave the genres, so a prefix of the file holds all of them
            out = [out[g * per + i] for i in range(per) for g in range(len(rows[split]))]
            for s, genre in out:
                fo.write(json.dumps({"text": s, "label": genre}, ensure_ascii=False) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit")
    f.add_argument("--emb", required=True)
    f.add_argument("--data", required=True)
    f.add_argument("--label-field", default="label")
    f.add_argument("--C", type=float, default=1.0)
    f.add_argument("--predict")
    f.add_argument("-o", "--output", required=True)
    x = sub.add_parser("fixture")
    x.add_argument("--sts", default="tests/fixtures/eval/stsbenchmark.tsv.gz")
    x.add_argument("--out", default="tests/fixtures/classify")
    a = ap.parse_args()
    {"fit": cmd_fit, "fixture": cmd_fixture}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
