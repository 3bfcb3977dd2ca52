#!/usr/bin/env python3
"""Writes the differential corpus for the sentencepiece Unigram tokenizer.

    /usr/bin/python3 tools/gen_sentencepiece_corpus.py [OUT]

OUT defaults to tests/fixtures/sentencepiece/corpus.jsonl.gz: one JSON string
per line (so tabs, CR and LF inside a case survive), gzip-compressed with a
fixed mtime, so a rerun is byte-identical.  The cases come from a seeded
random generator and the evaluation sets in ../shared/data/eval
(override with SEMBED_SHARED):

  en      STS-B sentences (stsbenchmark.tsv.gz)
  zh      zh-STS-B sentences
  ja      Japanese: hand-written sentences, and lines drawn from the hiragana,
          katakana, half-width katakana and common kanji ranges mixed with ASCII
  accent  Latin words with diacritics, each in NFC and NFD (and NFKD)
  emoji   single emoji, skin tones, ZWJ families/professions, flags, keycaps
  control zero-width and control characters (U+200B/C/D, U+FEFF, U+00AD,
          C0/C1 controls, bidi marks); never U+0000, which cannot cross a C
          string API
  space   runs of spaces, tabs, NBSP, ideographic spaces, leading/trailing
  long    very long words (100..3000 characters)
  compat  compatibility characters the NFKC charsmap rewrites (full-width,
          circled, ligatures, half-width kana + voicing marks, the literal
          U+2581 the tokenizers use as their space symbol), some followed by
          combining marks, and the special tokens' text (<s>, </s>, <mask>, <unk>,
          <pad>), which Hugging Face matches as added tokens and sentencepiece
          reads as text

Every section has a fixed count; the total is >= 10,000 lines.
"""
import gzip
import io
import json
import os
import random
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHARED = os.environ.get("SEMBED_SHARED", os.path.join(REPO, "..", "shared"))
EVAL = os.path.join(SHARED, "data", "eval")

JA_SENTENCES = [
    "今日はいい天気ですね。", "私は東京に住んでいます。", "日本語の文章を正しく分割できるか確かめます。",
    "この本はとても面白かったです。", "駅までどのくらいかかりますか？", "コーヒーを一杯ください。",
    "昨日、友達と映画を見に行きました。", "明日の会議は午後三時からです。", "ソフトウェアのテストは大切だ。",
    "ｶﾀｶﾅの半角文字も混ぜておく。", "ＡＢＣと全角数字１２３。", "「かぎかっこ」と『二重かぎ』。",
    "吾輩は猫である。名前はまだ無い。", "春はあけぼの。やうやう白くなりゆく山ぎは、すこしあかりて。",
    "機械学習モデルの埋め込みベクトルを計算する。", "富士山は日本で一番高い山です。",
    "㈱と㍿と①②③、そして㌔㍍。", "ひらがな、カタカナ、漢字。", "ｷﾞｬﾙﾊﾟﾝﾂ", "ヴァイオリンとヴィオラ",
]
KANJI = "日本語文章人大小中山川田口目耳手足上下左右年月火水木金土学校先生時間今何気電車駅東京都会社事業生活世界国家政治経済社会問題自分方法情報技術開発研究結果必要場合最近機械計算"


def read_sts():
    out = []
    with gzip.open(os.path.join(EVAL, "stsbenchmark.tsv.gz"), "rt", encoding="utf-8") as f:
        next(f)
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 8:
                out += [parts[6], parts[7]]
    return out


def read_zh():
    out = []
    with open(os.path.join(EVAL, "zh-STS-B.test.data"), encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2:
                out += [parts[0], parts[1]]
    return out


def gen_ja(rng, n):
    hira = [chr(c) for c in range(0x3041, 0x3097)]
    kata = [chr(c) for c in range(0x30A1, 0x30FB)]
    half = [chr(c) for c in range(0xFF66, 0xFF9F)]
    out = list(JA_SENTENCES)
    while len(out) < n:
        k = rng.random()
        if k < 0.3:
            s = rng.choice(JA_SENTENCES) + rng.choice(JA_SENTENCES)
        else:
            parts = []
            for _ in range(rng.randint(1, 8)):
                pool = rng.choice([hira, hira, kata, half, list(KANJI), list(KANJI), list("abcXYZ0123 、。")])
                parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 6))))
            s = rng.choice(["", " "]).join(parts)
        out.append(s)
    return out[:n]


ACCENT_WORDS = [
    "café", "naïve", "résumé", "Ångström", "façade", "jalapeño", "Zürich", "Ærøskøbing", "Đà Nẵng",
    "Tiếng Việt", "São Paulo", "Kraków", "Dvořák", "Łódź", "Gödel", "Ötzi", "crème brûlée", "piñata",
    "über", "Ελληνικά", "ﬁancé", "Ǆemal", "œuvre", "Ῥόδος", "ñandú", "İstanbul", "ŞIŞLI", "ǅ", "é",
]


def gen_accent(rng, n, en):
    out = []
    while len(out) < n:
        words = [rng.choice(ACCENT_WORDS) for _ in range(rng.randint(1, 5))]
        if rng.random() < 0.4:
            words.insert(rng.randint(0, len(words)), rng.choice(en).split(" ")[0])
        s = " ".join(words)
        form = ["NFC", "NFD", "NFC", "NFD", "NFKD"][len(out) % 5]
        out.append(unicodedata.normalize(form, s))
    return out


EMOJI = ["😀", "😂", "👍", "❤️", "🔥", "🎉", "🙏", "🤖", "🇯🇵", "🇺🇸", "🏳️‍🌈", "👩‍💻", "👨‍👩‍👧‍👦",
         "🧑🏽‍🚀", "👋🏻", "👋🏿", "✋🏼", "1️⃣", "#️⃣", "©️", "™", "☺", "♥", "🫠", "🧬", "👁️‍🗨️", "🤷‍♀️", "💁🏾‍♂️"]


def gen_emoji(rng, n, en):
    out = []
    while len(out) < n:
        parts = []
        for _ in range(rng.randint(1, 6)):
            if rng.random() < 0.6:
                parts.append(rng.choice(EMOJI) * rng.randint(1, 2))
            else:
                parts.append(rng.choice(rng.choice(en).split(" ")))
        out.append(rng.choice(["", " "]).join(parts))
    return out


CONTROLS = ["\u200b", "\u200c", "\u200d", "\ufeff", "\u00ad", "\u200e", "\u200f", "\u2060", "\u202e",
            "\x01", "\x07", "\x08", "\x1b", "\x7f", "\x85", "\x9f", "\r", "\n", "\x0b", "\x0c", "\u2028",
            "\ufffd", "\ufff9", "\U000e0001", "\u180e", "\u034f"]


def gen_control(rng, n, en):
    out = []
    while len(out) < n:
        words = rng.choice(en).split(" ")
        s = ""
        for w in words:
            if rng.random() < 0.5:
                w = w[: len(w) // 2] + rng.choice(CONTROLS) + w[len(w) // 2:]
            s += w + rng.choice([" ", " ", rng.choice(CONTROLS), " " + rng.choice(CONTROLS)])
        out.append(s)
    return out


SPACES = [" ", "  ", "   ", "\t", "\u00a0", "\u3000", "\u2002", "\u2003", "\u2009", "\u202f", " \t ",
          "\u00a0\u00a0", "      "]


def gen_space(rng, n, en, zh):
    out = []
    while len(out) < n:
        words = rng.choice(en if rng.random() < 0.7 else zh)
        words = words.split(" ") if " " in words else list(words[:12])
        s = "".join(w + rng.choice(SPACES) for w in words)
        k = rng.random()
        if k < 0.3:
            s = rng.choice(SPACES) + s
        elif k < 0.6:
            s = s.rstrip()
        out.append(s)
    out[0:6] = [" ", "   ", "\t", "\u3000", "a  ", "  a"]
    return out


def gen_long(rng, n):
    out = []
    alphabets = ["abcdefghijklmnopqrstuvwxyz", "日本語文章人大小中山川", "αβγδεζηθ", "0123456789",
                 "abcdéèêëñ", "ア イ ウ"]
    while len(out) < n:
        a = rng.choice(alphabets).replace(" ", "")
        length = rng.choice([100, 200, 500, 1000, 3000])
        w = "".join(rng.choice(a) for _ in range(length))
        if rng.random() < 0.3:
            w = "prefix " + w + " suffix"
        out.append(w)
    out[0] = "a" * 3000
    out[1] = "supercalifragilisticexpialidocious" * 30
    return out


COMPAT = ["Ａ", "ｚ", "１", "①", "⑳", "ﬁ", "ﬂ", "Ⅳ", "ⅷ", "㍿", "㈱", "ｶﾞ", "ﾊﾟ", "ｳﾞ", "½", "²", "℃", "№",
          "…", "‥", "〜", "～", "▁", "▁▁", "_", "¨", "´", "ｰ", "・", "ﾟ", "ﾞ", "Ω", "Å", "ｱ", "㌔",
          "<s>", "</s>", "<mask>", "<unk>", "<pad>"]
COMBINING = ["\u0301", "\u0300", "\u0308", "\u0323", "\u3099", "\u309a", "\u20dd"]


def gen_compat(rng, n, en):
    out = []
    while len(out) < n:
        parts = []
        for _ in range(rng.randint(1, 6)):
            k = rng.random()
            if k < 0.5:
                c = rng.choice(COMPAT)
                if rng.random() < 0.3:
                    c += rng.choice(COMBINING)
                parts.append(c)
            else:
                parts.append(rng.choice(rng.choice(en).split(" ")))
        out.append(rng.choice(["", " "]).join(parts))
    return out


def build():
    rng = random.Random(20261129)
    en_all = read_sts()
    zh_all = read_zh()
    en = en_all[:3000]
    zh = zh_all[:2000]
    sections = [
        ("en", en), ("zh", zh), ("ja", gen_ja(rng, 1500)), ("accent", gen_accent(rng, 1000, en_all)),
        ("emoji", gen_emoji(rng, 800, en_all)), ("control", gen_control(rng, 800, en_all)),
        ("space", gen_space(rng, 800, en_all, zh_all)), ("long", gen_long(rng, 300)),
        ("compat", gen_compat(rng, 800, en_all)),
    ]
    lines = []
    for _, items in sections:
        for s in items:
            assert "\x00" not in s
            lines.append(s)
    return sections, lines


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "tests", "fixtures", "sentencepiece", "corpus.jsonl.gz")
    sections, lines = build()
    assert len(lines) >= 10000, len(lines)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as g:
        for s in lines:
            g.write((json.dumps(s, ensure_ascii=False) + "\n").encode("utf-8"))
    with open(out, "wb") as f:
        f.write(buf.getvalue())
    start = 0
    for name, items in sections:
        print(f"{name:8s} lines {start}..{start + len(items) - 1}")
        start += len(items)
    print(f"{len(lines)} lines -> {out}")


if __name__ == "__main__":
    main()
