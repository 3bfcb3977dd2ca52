// The Hugging Face tokenizers oracle for tools/gen_sentencepiece_oracles.py.
//
//   NODE_PATH=/work/npm-oracles/node_modules node tools/sentencepiece_hf_oracle.js \
//       TOKENIZER_JSON CHARSMAP_BIN CORPUS_JSONL OUT_JSONL N_PAIRS
//
// Runs the real tokenizers library (npm @anush008/tokenizers, a prebuilt
// native addon around the Rust crate; install it once with
// `npm install @anush008/tokenizers` in a scratch folder outside the repo).
// CORPUS_JSONL has one JSON string per line. For each line OUT_JSONL gets
// {"ids": [...], "norm": S, "pre": S}: the ids of encode(text) with the
// post-processor's special tokens, the tokenizer's whole normalizer on the
// text, and the Precompiled normaliser alone (built from CHARSMAP_BIN, the
// raw precompiled_charsmap bytes). The first N_PAIRS lines also get
// "pair_ids": encode(line[i], line[i+1]).
const fs = require("fs");
const tk = require("@anush008/tokenizers");

async function main() {
  const [tokPath, charsmapPath, corpusPath, outPath, nPairsArg] = process.argv.slice(2);
  const tok = tk.Tokenizer.fromFile(tokPath);
  const norm = tok.getNormalizer();
  const pre = tk.precompiled(Array.from(fs.readFileSync(charsmapPath)));
  const lines = fs.readFileSync(corpusPath, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
  const nPairs = parseInt(nPairsArg || "0", 10);
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i];
    const enc = await tok.encode(text);
    const rec = { ids: enc.getIds(), norm: norm.normalizeString(text), pre: pre.normalizeString(text) };
    if (i < nPairs && i + 1 < lines.length) {
      const p = await tok.encode(text, lines[i + 1]);
      rec.pair_ids = p.getIds();
    }
    out.push(JSON.stringify(rec));
  }
  fs.writeFileSync(outPath, out.join("\n") + "\n");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
