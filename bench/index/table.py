#!/usr/bin/python3
"""bench/index/table.py - Markdown tables from a run.sh result.

  bench/index/table.py [result.json]     (default bench/index/.work/last-result.json)

Prints, per dataset, the summary (qps at the smallest ef with recall@k >= 0.95, build time,
memory) and the full recall / qps curves side by side, one column pair per engine.
"""
import json
import os
import sys


def fmt_qps(q):
    return "-" if q is None else f"{q:,.0f}"


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".work", "last-result.json")
    r = json.load(open(path))
    k = r["params"]["k"]
    for d, engines in r["datasets"].items():
        meta = r.get("data", {}).get(d, {})
        print(f"### {d}: n = {meta.get('n', '?'):,}, dim = {meta.get('dim', '?')}, {meta.get('nq', '?'):,} queries\n")
        print(f"| engine | ef at recall@{k} >= 0.95 | recall | qps | us/query (CPU) | build s (CPU) | RSS growth MiB |")
        print("|---|---|---|---|---|---|---|")
        for name, s in r["summary"][d].items():
            if "error" in s:
                print(f"| {name} | error: {s['error']} | | | | | |")
                continue
            ef = "exact" if s["ef"] is None and s["recall"] is not None else ("-" if s["ef"] is None else s["ef"])
            rec = "-" if s["recall"] is None else f"{s['recall']:.4f}"
            us = "-" if s["us_per_query"] is None else f"{s['us_per_query']:.1f}"
            if s.get("cpu_us_per_query") is not None:
                us += f" ({s['cpu_us_per_query']:.1f})"
            build = "-" if s.get("build_s") is None else f"{s['build_s']:.1f}"
            if s.get("build_cpu_s") is not None:
                build += f" ({s['build_cpu_s']:.1f})"
            mem = "-" if s.get("memory_mb") is None else f"{s['memory_mb']:.0f}"
            print(f"| {name} | {ef} | {rec} | {fmt_qps(s['qps'])} | {us} | {build} | {mem} |")
        hnsw = {n: e for n, e in engines.items() if "curve" in e and e["curve"] and e["curve"][0].get("ef")}
        if hnsw:
            efs = sorted({p["ef"] for e in hnsw.values() for p in e["curve"]})
            print(f"\nrecall@{k} / qps by ef:\n")
            print("| ef | " + " | ".join(hnsw) + " |")
            print("|---|" + "---|" * len(hnsw))
            for ef in efs:
                cells = []
                for e in hnsw.values():
                    p = next((p for p in e["curve"] if p["ef"] == ef), None)
                    cells.append("" if p is None else f"{p['recall']:.4f} / {fmt_qps(p['qps'])}")
                print(f"| {ef} | " + " | ".join(cells) + " |")
        print()


if __name__ == "__main__":
    main()
