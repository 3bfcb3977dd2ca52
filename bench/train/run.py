#!/usr/bin/python3
"""run.py - sembed's training step against PyTorch 1.13's, side by side (bench/train/README.md).

For each shape, runs build/bench/bench_train (sembed's engine) and torch_train.py with OpenBLAS
(LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp, OMP_NUM_THREADS=2, the fair peer)
interleaved, --rounds times (A B A B ...), each a fresh process of --steps steps; then, for the
record, torch with the machine's default libblas (the reference BLAS here) for a few steps.
Prints one JSON object: every run, per shape the median step time, CPU seconds per step and
sentences per second of each implementation (the median over rounds of each run's median), peak RSS (the largest over
rounds), the ratios (wall: the goal's; CPU: what a loaded machine hides), and `uptime` before and after.

    /usr/bin/python3 bench/train/run.py [--rounds 2] [--steps 13] [--warmup 3] [--only NAME]
        [--default-blas-steps 2] [--no-default-blas] [--sembed-exe PATH] > bench/train/result-DATE.json
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-openmp"

MINILM = ["--layers", "6", "--hidden", "384", "--heads", "12", "--ff", "1536", "--vocab", "30522"]
STUDENT = ["--layers", "4", "--hidden", "256", "--heads", "4", "--ff", "1024", "--vocab", "30522"]
SHAPES = [
    ("minilm-l6-b32-t32-mnrl", MINILM + ["--batch", "32", "--seq", "32", "--loss", "mnrl"]),
    ("minilm-l6-b32-t128-mnrl", MINILM + ["--batch", "32", "--seq", "128", "--loss", "mnrl"]),
    ("student-4x256-b64-t16-mse", STUDENT + ["--batch", "64", "--seq", "16", "--loss", "mse", "--teacher-dim", "512"]),
    # real text: STS-B train pairs' token counts (make_lengths.py); sembed packs them, PyTorch pads
    # each column to its longest as sentence-transformers does (not the fixed-shape goal's comparison)
    ("minilm-l6-b32-stsb-pairs-mnrl", MINILM + ["--batch", "32", "--lengths",
                                                os.path.join(ROOT, "bench", "train", "lengths-stsb-train.txt"),
                                                "--loss", "mnrl"]),
]


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def run(cmd, env=None, timeout=None):
    """One process; its JSON line, or an error record."""
    e = dict(os.environ)
    e.update(env or {})
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "timeout after %d s" % timeout, "cmd": " ".join(cmd)}
    if p.returncode != 0:
        return {"error": p.stderr.strip()[-500:], "cmd": " ".join(cmd)}
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["wall_s"] = round(time.time() - t0, 1)
    r["uptime_after"] = uptime()
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=13)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--only", default="")
    ap.add_argument("--default-blas-steps", type=int, default=2)
    ap.add_argument("--no-default-blas", action="store_true")
    ap.add_argument("--default-blas-timeout", type=int, default=240)
    ap.add_argument("--sembed-exe", default=os.path.join(ROOT, "build", "bench", "bench_train"),
                    help="the driver to time (another build, e.g. of the baseline commit)")
    a = ap.parse_args()
    exe = a.sembed_exe
    tpy = os.path.join(ROOT, "bench", "train", "torch_train.py")
    if not os.path.exists(exe):
        sys.exit("run.py: %s is missing (make build/bench/bench_train)" % exe)
    common = ["--threads", "2", "--steps", str(a.steps), "--warmup", str(a.warmup)]
    ob = {"LD_LIBRARY_PATH": OPENBLAS, "OMP_NUM_THREADS": "2"}
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "uptime_before": uptime(),
           "nproc": os.cpu_count(), "threads": 2, "steps": a.steps, "warmup": a.warmup, "rounds": a.rounds,
           "sembed": exe + " (the engine, no CLI data reading)",
           "torch_openblas": "torch_train.py, LD_LIBRARY_PATH=" + OPENBLAS + ", OMP_NUM_THREADS=2",
           "torch_default_blas": "torch_train.py with the machine's libblas.so.3 (reference BLAS), "
                                 "%d steps, the first a warm-up" % a.default_blas_steps,
           "shapes": {}}
    for name, args in SHAPES:
        if a.only and a.only not in name:
            continue
        runs = {"sembed": [], "torch_openblas": []}
        for _ in range(a.rounds):
            runs["sembed"].append(run([exe] + args + common))
            runs["torch_openblas"].append(run(["/usr/bin/python3", tpy] + args + common, ob))
            print(name, json.dumps({k: v[-1].get("median_step_s", v[-1].get("error")) for k, v in runs.items()}),
                  file=sys.stderr)
        if not a.no_default_blas:
            runs["torch_default_blas"] = [run(["/usr/bin/python3", tpy] + args +
                                              ["--threads", "2", "--steps", str(a.default_blas_steps), "--warmup", "1"],
                                              {"OMP_NUM_THREADS": "2"}, a.default_blas_timeout)]
        summ = {}
        for k, rs in runs.items():
            ok = [r for r in rs if "error" not in r]
            if not ok:
                summ[k] = {"error": rs[0].get("error")}
                continue
            med = statistics.median(r["median_step_s"] for r in ok)
            summ[k] = {"median_step_s": round(med, 4), "sentences_per_s": round(ok[0]["columns"] * ok[0]["batch"] / med, 2),
                       "peak_rss_mb": max(r["peak_rss_mb"] for r in ok)}
            for f in ("tokens_per_step", "padded_tokens_per_step"):
                if f in ok[0]:
                    summ[k][f] = ok[0][f]
            if all("median_cpu_s" in r for r in ok):
                summ[k]["median_cpu_s"] = round(statistics.median(r["median_cpu_s"] for r in ok), 4)
        s, t = summ.get("sembed", {}), summ.get("torch_openblas", {})
        if "median_step_s" in s and "median_step_s" in t:
            summ["speed_ratio_vs_openblas"] = round(t["median_step_s"] / s["median_step_s"], 3)
            summ["rss_ratio_vs_openblas"] = round(s["peak_rss_mb"] / t["peak_rss_mb"], 3)
            if "--lengths" not in args:  # the goal is stated for one fixed shape on both sides
                summ["speed_goal_met"] = summ["speed_ratio_vs_openblas"] >= 1.5
            summ["memory_goal_met"] = s["peak_rss_mb"] <= t["peak_rss_mb"]
            if "median_cpu_s" in s and "median_cpu_s" in t:
                summ["cpu_ratio_vs_openblas"] = round(t["median_cpu_s"] / s["median_cpu_s"], 3)
            # each round's torch run against the sembed run just before it: the ratio of runs
            # seconds apart, which the machine's slow and fast stretches move less
            pairs = [(a, b) for a, b in zip(runs["sembed"], runs["torch_openblas"])
                     if "median_step_s" in a and "median_step_s" in b]
            summ["round_ratios_vs_openblas"] = [round(b["median_step_s"] / a["median_step_s"], 3) for a, b in pairs]
            summ["rounds_meeting_speed_goal"] = sum(r >= 1.5 for r in summ["round_ratios_vs_openblas"])
        d = summ.get("torch_default_blas", {})
        if "median_step_s" in s and "median_step_s" in d:
            summ["speed_ratio_vs_default_blas"] = round(d["median_step_s"] / s["median_step_s"], 3)
        out["shapes"][name] = {"args": " ".join(args), "summary": summ, "runs": runs}
    out["uptime_after"] = uptime()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
