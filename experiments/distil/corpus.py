#!/usr/bin/python3
"""English sentences found on this machine, for distilling the default model
(issue 15, experiment a). Writes one JSON object a line, {"sentence": ...},
deduplicated, in a fixed shuffled order, to the path given (default
sentences.jsonl), and prints how many each source gave.

Sources (nothing from an evaluation set's test or dev split):
  - STS Benchmark train sentences (../shared/data/eval/stsbenchmark.tsv.gz)
  - SciFact abstracts, split into sentences (../shared/.../beir-scifact/corpus.jsonl;
    its licence: evaluation use; this experiment is research, the student is not shipped)
  - WordNet 3.0 glosses and example sentences (Debian's wordnet-base)
  - Debian documentation: README/*.txt/*.md files in /usr/share/doc, man pages
    (roff stripped), info manuals, perl's pod
Run with Debian's python: /usr/bin/python3 experiments/distil/corpus.py OUT
"""
import glob, gzip, json, os, random, re, sys

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../shared/data/eval")
SENT_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
WS = re.compile(r"\s+")


def good(s):
    """A sentence worth a teacher vector: 4-60 words, mostly letters, not code."""
    s = s.strip()
    if any(ord(c) < 32 or 0x7f <= ord(c) < 0xa0 or c == "\ufffd" for c in s):  # control bytes, NUL, U+FFFD
        return False
    w = s.split()
    if not 4 <= len(w) <= 60 or len(s) > 400:
        return False
    letters = sum(c.isalpha() for c in s)
    if letters < 0.7 * len(s.replace(" ", "")):
        return False
    if any(t in s for t in ("{", "}", "==", "->", "://", "$(", "#include", "\\", "<", ">", "_")):
        return False
    return True


def sentences(text):
    """Splits running text into sentences (whitespace folded)."""
    for p in re.split(r"\n\s*\n", text):
        p = WS.sub(" ", p).strip()
        for s in SENT_END.split(p):
            yield s


def stsb():
    with gzip.open(os.path.join(SHARED, "stsbenchmark.tsv.gz"), "rt", encoding="utf-8") as f:
        for line in f:
            c = line.rstrip("\r\n").split("\t")
            if len(c) >= 8 and c[0] == "train":
                yield c[6]
                yield c[7]


def scifact():
    with open(os.path.join(SHARED, "beir-scifact/corpus.jsonl"), encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            yield d["title"]
            yield from sentences(d["text"])


def wordnet():
    for pos in ("noun", "verb", "adj", "adv"):
        path = f"/usr/share/wordnet/data.{pos}"
        if not os.path.exists(path):
            continue
        with open(path, encoding="latin-1") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue
                gloss = line.split("|", 1)[1].strip()
                for part in gloss.split(";"):
                    part = part.strip().strip('"').strip()
                    if part:
                        yield part[0].upper() + part[1:] + ("" if part.endswith((".", "!", "?")) else ".")


def read(path):
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
                return f.read(2_000_000)
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(2_000_000)
    except (OSError, EOFError):
        return ""


ROFF = re.compile(r"\\f[BIRP]|\\f\(..|\\\*\(..|\\-|\\&|\\e|\\\(..|\\s[-+]?\d")


def man():
    for path in sorted(glob.glob("/usr/share/man/man[1-8]/*.gz")):
        lines = []
        for line in read(path).splitlines():
            if line.startswith((".", "'")):
                if line.startswith((".PP", ".SH", ".TP", ".IP", ".LP", ".P ", ".sp")):
                    lines.append("")
                elif line.startswith((".B ", ".I ", ".BR ", ".IR ", ".RB ", ".RI ")):
                    lines.append(ROFF.sub("", re.sub(r'^\.\w+\s+', "", line).replace('"', "")))
                continue
            lines.append(ROFF.sub("", line))
        yield from sentences("\n".join(lines))


def docs():
    pats = ["/usr/share/doc/*/README*", "/usr/share/doc/*/*.txt*", "/usr/share/doc/*/*.md*",
            "/usr/share/info/*.info*", "/usr/share/perl/5.*/pod/*.pod"]
    for pat in pats:
        for path in sorted(glob.glob(pat)):
            text = read(path)
            if path.endswith((".pod", ".pod.gz")):
                text = re.sub(r"^=\w+.*$", "", text, flags=re.M)
                text = re.sub(r"[A-Z]<([^<>]*)>", r"\1", text)
            yield from sentences(text)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "sentences.jsonl"
    seen, rows = set(), []
    # the technical sources are capped (a deterministic sample) so that they do
    # not outweigh the general English of STS-B and WordNet
    caps = {"man": 120_000, "doc": 60_000}
    for name, src in (("stsb-train", stsb), ("scifact", scifact), ("wordnet", wordnet), ("man", man), ("doc", docs)):
        got = []
        for s in src():
            s = WS.sub(" ", s).strip()
            key = s.lower()
            if good(s) and key not in seen:
                seen.add(key)
                got.append(s)
        if name in caps and len(got) > caps[name]:
            got = random.Random(name).sample(got, caps[name])
        rows.extend(got)
        print(f"{name}: {len(got)}", file=sys.stderr)
    random.Random(15).shuffle(rows)
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        for s in rows:
            f.write(json.dumps({"sentence": s}, ensure_ascii=False) + "\n")
    os.replace(out + ".tmp", out)
    print(f"total: {len(rows)} -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
