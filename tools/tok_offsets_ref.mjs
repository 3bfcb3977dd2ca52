// The Hugging Face tokenizers oracle for token offsets, decode and left
// truncation: writes tests/fixtures/tokenizers/offsets.jsonl.gz.
//
//   NODE_PATH=/work/npm-oracles/node_modules node tools/tok_offsets_ref.mjs
//
// Runs the real tokenizers library (npm @anush008/tokenizers: the Rust
// tokenizers 0.22 crate as a prebuilt addon; install it once with
// `npm install @anush008/tokenizers` in a scratch folder outside the repo)
// from the project root. Deterministic.
//
// Tokenizers: real tokenizer.json files (all-MiniLM-L6-v2 in
// tests/fixtures/models/en-mean-norm, the XLM-R converters' files of the
// sentencepiece test models, USE lite's), and the vocab.txt folders of
// tests/fixtures/tokenizers built here the way transformers' BertConverter /
// MPNetConverter writes them (BertNormalizer, BertPreTokenizer, WordPiece,
// the template, the WordPiece decoder with cleanup).
//
// One JSON object a line:
// The texts: tests/fixtures/models/sentences.jsonl, a few edge cases, one
// 24 KB text (Unigram files), lines of the sentencepiece corpus, the shared cases.
//
//   {"kind": "enc", "tok": T, "text": S, "pair": S|null, "max_length": N,
//    "left": bool, "ids", "type_ids", "special" (0/1: added by the template),
//    "seq" (0, 1, or -1 for a special token), "offsets" ([start, end] in
//    BYTES of the UTF-8 text or pair: the binding reports code points
//    (encode_char_offsets), converted here), "dec" (decode(ids, false)),
//    "dec_skip" (decode(ids, true))}
// T is a folder (holding the tokenizer) or a tokenizer.json path, relative
// to the project root; max_length 0 = no truncation.
import { createRequire } from "module";
import fs from "fs";
import zlib from "zlib";

const require = createRequire(import.meta.url);
const tk = require("@anush008/tokenizers");

const OUT = "tests/fixtures/tokenizers/offsets.jsonl.gz";

/* A BertTokenizerFast / MPNetTokenizerFast tokenizer.json for a vocab.txt
 * folder, as transformers' converters write it. */
function vocabTxtTokenizer(dir) {
  const lines = fs.readFileSync(dir + "/vocab.txt", "utf8").split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const vocab = {};
  lines.forEach((p, i) => { vocab[p.replace(/\r$/, "")] = i; });
  const cfg = JSON.parse(fs.readFileSync(dir + "/tokenizer_config.json", "utf8"));
  const mpnet = (cfg.tokenizer_class || "").startsWith("MPNet");
  const lower = cfg.do_lower_case !== undefined ? cfg.do_lower_case : true;
  const cls = mpnet ? "<s>" : "[CLS]", sep = mpnet ? "</s>" : "[SEP]";
  const specials = mpnet ? ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"] : ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
  const added = specials.filter((s) => s in vocab).map((s) => ({
    id: vocab[s], content: s, single_word: false, lstrip: s === "<mask>", rstrip: false, normalized: false, special: true,
  }));
  const tpl = mpnet
    ? {
        single: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } }],
        pair: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } },
               { SpecialToken: { id: sep, type_id: 0 } }, { Sequence: { id: "B", type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } }],
      }
    : {
        single: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } }],
        pair: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } },
               { Sequence: { id: "B", type_id: 1 } }, { SpecialToken: { id: sep, type_id: 1 } }],
      };
  tpl.type = "TemplateProcessing";
  tpl.special_tokens = {};
  tpl.special_tokens[cls] = { id: cls, ids: [vocab[cls]], tokens: [cls] };
  tpl.special_tokens[sep] = { id: sep, ids: [vocab[sep]], tokens: [sep] };
  const j = {
    version: "1.0", truncation: null, padding: null, added_tokens: added,
    normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: cfg.tokenize_chinese_chars !== false,
                  strip_accents: cfg.strip_accents === undefined ? null : cfg.strip_accents, lowercase: lower },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: tpl,
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: { type: "WordPiece", unk_token: "[UNK]", continuing_subword_prefix: "##", max_input_chars_per_word: 100, vocab },
  };
  return tk.Tokenizer.fromString(JSON.stringify(j));
}

/* The byte offset of every code point index of s (and of its end). */
function byteAt(s) {
  const at = [0];
  for (const c of Array.from(s)) at.push(at[at.length - 1] + Buffer.byteLength(c, "utf8"));
  return at;
}

async function record(tok, name, text, pair, maxLength, left) {
  if (maxLength) tok.setTruncation(maxLength, { direction: left ? "left" : "right", strategy: "LongestFirst" });
  else tok.disableTruncation();
  tok.disablePadding();
  const e = await tok.encode(text, pair);
  const seq = e.getSequenceIds().map((x) => (x === null || x === undefined ? -1 : x));
  const special = e.getSpecialTokensMask();
  const atText = byteAt(text), atPair = pair ? byteAt(pair) : null;
  const offs = e.getOffsets().map((o, i) => {
    if (special[i]) return [0, 0];
    const at = seq[i] === 1 ? atPair : atText;
    return [at[o[0]], at[o[1]]];
  });
  const ids = e.getIds();
  return {
    kind: "enc", tok: name, text, pair: pair ?? null, max_length: maxLength, left,
    ids, type_ids: e.getTypeIds(), special, seq, offsets: offs,
    dec: await tok.decode(ids, false), dec_skip: await tok.decode(ids, true),
  };
}

function jsonl(path) {
  return fs.readFileSync(path, "utf8").split("\n").filter((l) => l.length).map((l) => JSON.parse(l));
}

async function main() {
  const out = [];
  const sentences = jsonl("tests/fixtures/models/sentences.jsonl");
  const shared = jsonl("tests/fixtures/tokenizers/tokenizer-cases.jsonl");
  const corpus = zlib.gunzipSync(fs.readFileSync("tests/fixtures/sentencepiece/corpus.jsonl.gz")).toString("utf8")
    .split("\n").filter((l) => l.length).map((l) => JSON.parse(l));
  const extra = [
    "  leading and trailing  ", "a  b   c\td\n\ne", "İstanbul ﬁne ﬂow Ⅻ ①\u0301", "e\u0301te\u0301 cafe\u0301 Ångström",
    "tab\there\u3000ideographic\u00a0nbsp", "zero\u200bwidth soft\u00adhyphen ctrl\u0001x", "[MASK] and [CLS] in text [SEP]",
    "<s> <mask> </s> <unk> literal", "don't I'm we're they've it's , . ? !", "Ｆｕｌｌｗｉｄｔｈ ｶﾀｶﾅ ｷﾞ", "a\u2581b \u2581 c",
    "😀👍🏽 🇫🇷 1️⃣", "x", "", " ", "UNwantéd,running", "hello world", "supercalifragilisticexpialidocious " + "z".repeat(120),
  ];
  const texts = [...sentences, ...extra];
  /* a 24 KB text for the Unigram files: they normalise it in chunks and emit at
   * sync points of the lattice */
  let long = "";
  for (let i = 0; long.length < 24000; i += 7) long += (long ? " " : "") + corpus[i % corpus.length];

  const xlmrCorpus = corpus.filter((_, i) => i % 20 === 0);

  const jsonToks = [
    ["tests/fixtures/models/en-mean-norm", "tests/fixtures/models/en-mean-norm/tokenizer.json", texts],
    ["tests/fixtures/models/xlmr-cls-norm-bin", "tests/fixtures/models/xlmr-cls-norm-bin/tokenizer.json", [...texts, long, ...xlmrCorpus]],
    ["tests/fixtures/models/xlmr-mean-norm-bf16", "tests/fixtures/models/xlmr-mean-norm-bf16/tokenizer.json", [...texts, long, ...xlmrCorpus]],
    ["tests/fixtures/sentencepiece/test_model.xlmr.tokenizer.json", "tests/fixtures/sentencepiece/test_model.xlmr.tokenizer.json",
     [...texts, ...xlmrCorpus]],
    ["models/use-lite", "models/use-lite/tokenizer.json", [...texts, long, ...corpus.filter((_, i) => i < 3000 && i % 20 === 0)]],
  ];
  for (const [name, file, list] of jsonToks) {
    const tok = tk.Tokenizer.fromFile(file);
    for (const t of list) out.push(await record(tok, name, t, null, 0, false));
    for (let i = 0; i + 1 < sentences.length; i += 2) out.push(await record(tok, name, sentences[i], sentences[i + 1], 0, false));
    /* left and right truncation, single texts and pairs */
    for (const ml of [5, 8, 13]) {
      for (let i = 0; i < 12; i++) out.push(await record(tok, name, sentences[i], null, ml, true));
      for (let i = 0; i + 1 < 14; i += 2) {
        out.push(await record(tok, name, sentences[i], sentences[i + 1], ml, true));
        out.push(await record(tok, name, sentences[i], sentences[i + 1], ml, false));
      }
    }
  }
  const dirs = ["bert-base-uncased", "bge-small-zh-v1.5", "bge-base-zh-v1.5", "all-mpnet-base-v2"];
  for (const d of dirs) {
    const name = "tests/fixtures/tokenizers/" + d;
    const tok = vocabTxtTokenizer(name);
    for (const c of shared.filter((c) => c.model === d)) out.push(await record(tok, name, c.text, c.text_pair, 0, false));
    for (const t of texts) out.push(await record(tok, name, t, null, 0, false));
    for (let i = 0; i + 1 < sentences.length; i += 2) out.push(await record(tok, name, sentences[i], sentences[i + 1], 0, false));
    for (const ml of [5, 8, 13]) {
      for (let i = 0; i < 12; i++) out.push(await record(tok, name, sentences[i], null, ml, true));
      for (let i = 0; i + 1 < 14; i += 2) out.push(await record(tok, name, sentences[i], sentences[i + 1], ml, true));
    }
  }
  fs.writeFileSync(OUT, zlib.gzipSync(Buffer.from(out.map((r) => JSON.stringify(r)).join("\n") + "\n"), { level: 9 }));
  console.log(`${OUT}: ${out.length} records`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
