#!/usr/bin/python3
"""The driver of the side-by-side benchmark: sembed vs ONNX Runtime vs PyTorch.

Normally started by run.sh (which builds the sembed engine and installs onnxruntime-node
first); prints ONE JSON object on stdout, progress on stderr. See README.md.

For each shape it makes (or reuses) the random-weight model folder and its ONNX export
(make_model.py), starts the three engines as long-lived processes --

    sembed   bench_sembed --serve         se_encode on texts, 2 threads
    ort      node bench_ort.mjs           onnxruntime-node, intra-op 2, inter-op 1, "all"
    torch    python3 bench_torch.py       torch 1.13, inference_mode, 1 and 2 threads

-- checks once that they produce the same embeddings, then times every workload
INTERLEAVED: after one warm-up call per engine, each round runs every engine in turn
(rotating the order each round), so that a burst of load from elsewhere on the machine hits
all of them alike. Each engine times its own calls; the driver only takes the medians.
"""

import argparse
import gzip
import json
import os
import platform
import random
import re
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import make_model  # noqa: E402

SEED = 5150
STSB = os.path.join(ROOT, "tests", "fixtures", "eval", "stsbenchmark.tsv.gz")
FIXED = [("32x32", 32, 32), ("32x128", 32, 128), ("1x16", 1, 16)]  # name, sentences, tokens each
AGREE_TOL = 1e-4
T_START = time.time()


def log(msg):
    print(f"[compare {time.time() - T_START:6.1f}s] {msg}", file=sys.stderr, flush=True)


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def stsb_sentences(n):
    """The first n sentences of the STS Benchmark test then dev splits, row by row
    (sentence1, sentence2), as the file lists them."""
    out = {"test": [], "dev": []}
    with gzip.open(STSB, "rt", encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) >= 8 and cols[0] in out:
                out[cols[0]] += [cols[6], cols[7]]
    sents = out["test"] + out["dev"]
    if len(sents) < n:
        raise SystemExit(f"{STSB}: only {len(sents)} test+dev sentences, {n} wanted")
    return sents[:n]


def make_inputs(folder, sembed_cli, inputs, ragged_n, arch="bert"):
    """Writes <name>.texts.jsonl and <name>.ids.jsonl (ids from `sembed tokenize`) for every
    workload and for the agreement set; returns {name: (texts_path, ids_path, expect_tokens)}."""
    os.makedirs(inputs, exist_ok=True)
    with open(os.path.join(folder, "vocab.txt"), encoding="utf-8") as f:
        vocab = f.read().split("\n")
    # whole lowercase ASCII words of the vocabulary (the real words start at id 1996, 2000 in
    # MPNet's, which has four more specials first): each is one token under
    # BertTokenizer/MPNetTokenizer(do_lower_case); se_tokenize confirms the counts below
    first_word = 2000 if arch == "mpnet" else 1996  # so both draw the very same texts
    words = [w for w in vocab[first_word:] if re.fullmatch(r"[a-z]{2,12}", w)]
    rng = random.Random(SEED)
    texts = {}
    for name, n, seq in FIXED:
        texts[name] = [" ".join(rng.choice(words) for _ in range(seq - 2)) for _ in range(n)]
    sts = stsb_sentences(ragged_n)
    texts["ragged"] = sts
    long_text = " ".join(sts[100:130])  # a few hundred tokens
    texts["agree"] = sts[:40] + [texts["32x128"][0], texts["1x16"][0], long_text, ""]
    spec = {}
    for name, rows in texts.items():
        tp, ip = (os.path.join(inputs, f"{name}.{k}.jsonl") for k in ("texts", "ids"))
        write_jsonl(tp, rows)
        with open(ip, "w") as out:
            subprocess.run([sembed_cli, "tokenize", "-m", folder, "--jsonl-input", "-i", tp], stdout=out, check=True)
        ids = read_jsonl(ip)
        if len(ids) != len(rows):
            raise SystemExit(f"sembed tokenize gave {len(ids)} lines for {len(rows)} texts of {name}")
        expect = next((seq for nm, _, seq in FIXED if nm == name), 0)
        cls, sep = make_model.SPECIAL_IDS[arch]
        if expect and any(len(x) != expect or x[0] != cls or x[-1] != sep for x in ids):
            raise SystemExit(f"{name}: the texts do not tokenize to [CLS]/<s> + {expect - 2} words + [SEP]/</s>")
        spec[name] = (tp, ip, expect)
    lens = [len(x) for x in read_jsonl(spec["ragged"][1])]
    log(f"inputs: ragged = {len(lens)} STS-B sentences, {sum(lens)} tokens, "
        f"{min(lens)}..{max(lens)} per sentence (mean {sum(lens) / len(lens):.1f})")
    return spec


# ---------------------------------------------------------------------------
# Engines
# ---------------------------------------------------------------------------


class Engine:
    def __init__(self, name, argv, env=None):
        self.name = name
        log(f"starting {name}: {' '.join(argv)}")
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
                                  encoding="utf-8", bufsize=1)
        self.info = self._read()
        if not self.info.get("ready"):
            raise RuntimeError(f"{name} did not start: {self.info}")

    def _read(self):
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"engine {self.name} exited (status {self.p.wait()}); see its messages above")
        r = json.loads(line)
        if "error" in r:
            raise RuntimeError(f"engine {self.name}: {r['error']}")
        return r

    def ask(self, **cmd):
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        return self._read()

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write('{"op":"quit"}\n')
                self.p.stdin.flush()
                self.p.stdin.close()
                self.p.wait(timeout=30)
            except Exception:
                self.p.kill()
                self.p.wait()


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def torch_env(args):
    """Debian's torch calls the system BLAS (libblas.so.3) for every Linear. By default that
    is the netlib reference BLAS (about 2 GFLOP/s here), which would make the comparison
    meaningless, so torch is pointed at Debian's OpenBLAS when it is installed
    (libopenblas0-openmp; run.sh installs it), through LD_LIBRARY_PATH for its process
    only; the system's BLAS choice is left alone. OpenBLAS 0.3.21 predates this CPU family,
    so its kernel is chosen explicitly: SkylakeX (AVX-512) where the CPU has AVX-512, else
    the environment's OPENBLAS_CORETYPE or Haswell."""
    env = dict(os.environ)
    note = "system libblas.so.3"
    if args.torch_blas != "system":
        for d in ("openblas-openmp", "openblas-pthread"):
            path = f"/usr/lib/x86_64-linux-gnu/{d}"
            if os.path.exists(os.path.join(path, "libblas.so.3")):
                env["LD_LIBRARY_PATH"] = path + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
                flags = cpu_flags()
                if args.openblas_coretype:
                    env["OPENBLAS_CORETYPE"] = args.openblas_coretype
                elif {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"} <= flags:
                    env["OPENBLAS_CORETYPE"] = "SkylakeX"
                else:
                    env.setdefault("OPENBLAS_CORETYPE", "Haswell")
                note = f"{d} (OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']})"
                break
        else:
            log("WARNING: no Debian OpenBLAS found (apt-get install libopenblas0-openmp): torch runs on the "
                "reference BLAS and its numbers are not representative")
    env.setdefault("OMP_NUM_THREADS", str(args.threads))
    return env, note


# ---------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------


def agreement(engines, spec, tmp):
    """Each engine encodes the agreement set once; returns the pairwise max abs diff."""
    tp, ip, _ = spec["agree"]
    emb = {}
    for name, eng, extra in engines:
        out = os.path.join(tmp, f"agree.{name}.f32")
        r = eng.ask(op="embed", texts=tp, ids=ip, out=out, **extra)
        emb[name] = np.fromfile(out, dtype="<f4").reshape(r["n"], r["dim"])
        os.unlink(out)
    names = list(emb)
    diffs, cos = {}, {}
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = emb[names[i]], emb[names[j]]
            diffs[f"{names[i]}_vs_{names[j]}"] = float(np.abs(a - b).max())
            cos[f"{names[i]}_vs_{names[j]}"] = float(
                (np.sum(a * b, 1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)).min())
    ids = read_jsonl(ip)
    worst = max(diffs.values())
    return {"sentences": len(ids), "tokens_min": min(map(len, ids)), "tokens_max": max(map(len, ids)),
            "max_abs_diff": diffs, "min_cosine": cos, "tolerance": AGREE_TOL, "pass": worst < AGREE_TOL}


def cpu_jiffies(pids):
    """(busy jiffies of the whole machine, jiffies used by the given processes, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6]  # user nice system irq softirq
    steal = v[7] if len(v) > 7 else 0
    ours = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ours += int(fields[11]) + int(fields[12])  # utime stime (all threads)
        except (OSError, IndexError, ValueError):
            pass
    return busy, ours, steal


class ForeignLoad:
    """Measures how many cores OTHER processes (and the hypervisor's steal) used between
    start() and stop(): the noise indicator of a measurement."""

    def __init__(self, pids):
        self.pids = pids + [os.getpid()]

    def start(self):
        self.t0, self.j0 = time.time(), cpu_jiffies(self.pids)

    def stop(self):
        dt = max(time.time() - self.t0, 1e-3)
        j1 = cpu_jiffies(self.pids)
        hz = os.sysconf("SC_CLK_TCK")
        other = ((j1[0] - self.j0[0]) - (j1[1] - self.j0[1])) / hz / dt
        return {"other_cores": round(max(other, 0.0), 2), "steal_cores": round((j1[2] - self.j0[2]) / hz / dt, 2)}


def wait_quiet(max_wait, threshold=0.25):
    """Waits (up to max_wait seconds) until other processes use less than `threshold` cores
    over one second; returns the last measurement in cores."""
    t_end = time.time() + max_wait
    fl = ForeignLoad([])
    while True:
        fl.start()
        time.sleep(1.0)
        other = fl.stop()["other_cores"]
        if other < threshold or time.time() >= t_end:
            return other
        log(f"waiting for a quieter machine: other processes use {other:.2f} cores")


def stats(times):
    return {"median_s": float(np.median(times)), "min_s": float(np.min(times)), "n": len(times)}


def run_workload(name, warm, configs, torch_cfgs, rounds, calls_per_round, probe_calls):
    """One warm-up call per engine and torch thread count (on `warm`, a subset of the workload
    for the ragged one); then the torch thread counts are raced on `warm` (two alternating
    passes, probe_calls calls each; the lowest median wins); then `rounds` rounds in which
    sembed, ort and the winning torch each make calls_per_round timed calls, in an order
    rotated by one each round. Returns ({config: [seconds per call]}, winner, probe)."""
    for cname, eng, extra in configs + torch_cfgs:
        eng.ask(op="run", name=warm, calls=1, **extra)
    probe = {c[0]: [] for c in torch_cfgs}
    for _ in range(2 if len(torch_cfgs) > 1 else 0):
        for cname, eng, extra in torch_cfgs:
            probe[cname].append(float(np.median(eng.ask(op="run", name=warm, calls=probe_calls, **extra)["times"])))
    best = min(torch_cfgs, key=lambda c: min(probe[c[0]]) if probe[c[0]] else 0)
    order = configs + [best]
    times = {c[0]: [] for c in order}
    for r in range(rounds):
        k = r % len(order)
        for cname, eng, extra in order[k:] + order[:k]:
            times[cname] += eng.ask(op="run", name=name, calls=calls_per_round, **extra)["times"]
    return times, best[0], {c: [round(x, 6) for x in v] for c, v in probe.items()}


def bench_shape(shape, args, spec_of, tmp):
    folder = make_model.write_folder(shape, args.cache)
    spec = spec_of(folder, shape)
    env, blas_note = torch_env(args)
    engines = {}
    try:
        engines["sembed"] = Engine("sembed", [args.sembed_bin, "--model", folder, "--threads", str(args.threads),
                                              "--serve"])
        engines["ort"] = Engine("ort", [args.node, os.path.join(HERE, "bench_ort.mjs"), "--model",
                                        os.path.join(folder, "onnx", "model.onnx"), "--threads", str(args.threads),
                                        "--pad-id", str(make_model.PAD_ID[make_model.ARCH[shape]])])
        engines["torch"] = Engine("torch", [args.python, os.path.join(HERE, "bench_torch.py"), "--model", folder,
                                            "--shape", shape], env=env)
        torch_threads = sorted({int(t) for t in args.torch_threads.split(",")})
        configs = [("sembed", engines["sembed"], {}), ("ort", engines["ort"], {})]
        torch_cfgs = [(f"torch@{t}", engines["torch"], {"threads": t}) for t in torch_threads]

        log(f"{shape}: agreement check")
        agree = agreement([("sembed", engines["sembed"], {}), ("ort", engines["ort"], {}),
                           ("torch", engines["torch"], {"threads": 1})], spec, tmp)
        log(f"{shape}: max abs diff {agree['max_abs_diff']} -> {'pass' if agree['pass'] else 'FAIL'}")

        results = []
        big = shape != "minilm"
        for name, n, seq in FIXED + [("ragged", 0, 0)]:
            tp, ip, expect = spec[name]
            loads = {}
            for ename, eng in engines.items():
                cmd = {"op": "load", "name": name, "texts": tp, "ids": ip}
                if ename == "sembed" and expect:
                    cmd["expect_tokens"] = expect
                loads[ename] = eng.ask(**cmd)
            warm = name
            if name == "ragged":  # warm up (and race torch's thread counts) on 256 sentences
                warm = "ragged.warm"
                for eng in engines.values():
                    eng.ask(op="load", name=warm, texts=tp, ids=ip, limit=256)
            latency = name == "1x16"
            if latency:
                rounds = min(args.calls, 5)
                per = max(1, args.calls // rounds)
            else:
                rounds = (args.big_ragged_runs if big else args.ragged_runs) if name == "ragged" else \
                    (args.big_runs if big else args.runs)
                per = 1
            log(f"{shape} {name}: warm-up, torch threads {torch_threads} raced, then {rounds} rounds x {per} "
                f"call(s) per engine")
            before = wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else None
            t0 = time.time()
            fl = ForeignLoad([e.p.pid for e in engines.values()])
            fl.start()
            times, best_t, probe = run_workload(name, warm, configs, torch_cfgs, rounds, per, 10 if latency else 1)
            noise = fl.stop()
            st = {c: stats(t) for c, t in times.items()}
            med = {"sembed": st["sembed"]["median_s"], "ort": st["ort"]["median_s"], "torch": st[best_t]["median_s"]}
            nsent = loads["sembed"]["n"]
            row = {"shape": shape, "workload": name}
            if latency:
                row.update({"unit": "ms per call (lower is better)",
                            **{k: round(1e3 * v, 3) for k, v in med.items()}})
            else:
                row.update({"unit": "sentences/s (higher is better)",
                            **{k: round(nsent / v, 2) for k, v in med.items()}})
            # speed ratios: > 1 means sembed is faster
            row["sembed_vs_ort"] = round(med["ort"] / med["sembed"], 3)
            row["sembed_vs_torch"] = round(med["torch"] / med["sembed"], 3)
            row["detail"] = {
                "sentences": nsent, "tokens": loads["sembed"]["tokens"],
                "padded_tokens": loads["ort"]["padded_tokens"], "batches": loads["ort"]["batches"],
                "sembed_tokenize_ms": round(1e3 * loads["sembed"]["tokenize_s"], 3),
                "torch_threads": int(best_t.split("@")[1]),
                "torch_thread_race_s": probe,
                "seconds": {c: {k: (round(v, 6) if isinstance(v, float) else v) for k, v in s.items()}
                            for c, s in st.items()},
                "other_processes_cores": noise["other_cores"], "steal_cores": noise["steal_cores"],
                "other_processes_cores_before": before,
            }
            results.append(row)
            log(f"{shape} {name} ({time.time() - t0:.0f}s): sembed {row['sembed']}, ort {row['ort']}, "
                f"torch {row['torch']} ({best_t}) {row['unit'].split(' (')[0]}; "
                f"sembed/ort {row['sembed_vs_ort']}, sembed/torch {row['sembed_vs_torch']}; "
                f"other processes used {noise['other_cores']} cores meanwhile")
        info = {
            "sembed": {k: engines["sembed"].info.get(k) for k in ("version", "load_ms", "threads", "n_batch_tokens",
                                                                 "se_kernels_env") if k in engines["sembed"].info},
            "ort": {k: engines["ort"].info.get(k) for k in ("version", "load_ms", "intra_op_threads",
                                                           "inter_op_threads", "graph_optimization",
                                                           "optimized_ops")},
            "torch": {k: engines["torch"].info.get(k) for k in ("version", "load_ms", "blas_libraries",
                                                               "openblas_coretype")},
        }
        info["torch"]["blas"] = blas_note
        info["torch"]["threads_tried"] = torch_threads
        return results, agree, info
    finally:
        for eng in engines.values():
            eng.close()


def main():
    ap = argparse.ArgumentParser(description="sembed vs ONNX Runtime vs PyTorch, side by side")
    ap.add_argument("--shapes", default="minilm,bge-base",
                    help="comma-separated, of " + ", ".join(make_model.SHAPES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5, help="timed runs of 32x32 / 32x128 for minilm")
    ap.add_argument("--ragged-runs", type=int, default=5, help="timed runs of the ragged workload for minilm")
    ap.add_argument("--big-runs", type=int, default=5, help="timed runs of 32x32 / 32x128 for bge-base")
    ap.add_argument("--big-ragged-runs", type=int, default=3, help="timed runs of the ragged workload for bge-base")
    ap.add_argument("--calls", type=int, default=50, help="timed calls of the 1x16 latency workload")
    ap.add_argument("--ragged-n", type=int, default=2048)
    ap.add_argument("--torch-threads", default="1,2")
    ap.add_argument("--wait-quiet", type=float, default=60,
                    help="before each workload, wait up to this many seconds for other processes to use "
                         "< 0.25 cores (0: do not wait)")
    ap.add_argument("--torch-blas", choices=["openblas", "system"], default="openblas")
    ap.add_argument("--openblas-coretype", default=None)
    ap.add_argument("--cache", default=os.path.join(HERE, ".work"))
    ap.add_argument("--sembed-bin", default=os.path.join(HERE, ".work", "bench_sembed"))
    ap.add_argument("--sembed-cli", default=os.path.join(ROOT, "build", "sembed"))
    ap.add_argument("--node", default="node")
    ap.add_argument("--python", default="/usr/bin/python3")
    args = ap.parse_args()

    shapes = [s for s in args.shapes.split(",") if s]
    for s in shapes:
        if s not in make_model.SHAPES:
            raise SystemExit(f"unknown shape {s!r}")
    tmp = os.path.join(args.cache, "tmp")
    os.makedirs(tmp, exist_ok=True)
    load_start = os.getloadavg()
    inputs = {}

    def spec_of(folder, shape):
        arch = make_model.ARCH[shape]
        if arch not in inputs:  # the same texts for every shape; the ids per tokenizer (architecture)
            d = os.path.join(args.cache, "inputs" if arch == "bert" else f"inputs-{arch}")
            inputs[arch] = make_inputs(folder, args.sembed_cli, d, args.ragged_n, arch)
        return inputs[arch]

    results, agree, engines = [], {}, {}
    for shape in shapes:
        r, a, info = bench_shape(shape, args, spec_of, tmp)
        results += r
        agree[shape] = a
        engines[shape] = info
    flags = cpu_flags()
    out = {
        "bench": "compare",
        "machine": {"cpu": cpu_name(), "threads": args.threads, "online_cpus": os.cpu_count(),
                    "simd": sorted(f for f in flags if f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                                                             "avx512_vnni", "avx512_bf16", "amx_tile")),
                    "loadavg_start": [round(x, 2) for x in load_start],
                    "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"runs": args.runs, "ragged_runs": args.ragged_runs, "bge_base_runs": args.big_runs,
                     "bge_base_ragged_runs": args.big_ragged_runs,
                     "latency_calls": args.calls, "ragged_sentences": args.ragged_n, "batch_size_ort_torch": 32,
                     "interleaved": True, "wait_quiet_s": args.wait_quiet},
        "results": results,
        "agreement": dict(agree, all_pass=all(a["pass"] for a in agree.values())),
        "engines": engines,
        "elapsed_s": round(time.time() - T_START, 1),
    }
    print(json.dumps(out, indent=1))
    log("done")
    return 0 if out["agreement"]["all_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
