// ONNX Runtime engine of the side-by-side benchmark (driven by compare.py; see README.md).
//
//     node bench/compare/bench_ort.mjs --model DIR/onnx/model.onnx [--threads 2] [--pad-id 0]
//
// One InferenceSession on the CPU execution provider: intraOpNumThreads = threads (2),
// interOpNumThreads = 1, graphOptimizationLevel "all", sequential execution. Answers one JSON
// command per stdin line with one JSON line on stdout (same protocol as bench_torch.py):
//
//     {"op":"load","name":N,"texts":F,"ids":F[,"limit":K]}  read a workload; limit: only the
//                                                 first K sentences in encode order
//     {"op":"run","name":N,"calls":C}             C timed encodes: {"times":[seconds, ...]}
//     {"op":"embed","texts":F,"ids":F,"out":F}    encode once, write float32 rows to F
//     {"op":"quit"}
//
// Encoding is what sentence-transformers' encode() does with already-tokenized input: sort
// by text length (longest first), batches of 32 padded to their longest member, rows put back
// in input order, padding with --pad-id (the tokenizer's pad id: 0 for BERT, 1 for MPNet). The
// model's inputs are fed by name: input_ids, attention_mask, and token_type_ids (all 0) when
// the graph has it (MPNet's has not). The padded int64 tensors are built when the workload is
// loaded, so a timed call is session.run() only.
//
// At start-up the session is also created once with optimizedModelFilePath, and the op types
// of the optimized graph are counted (a few lines of protobuf decoding), so the report shows
// whether ORT fused the graph into its transformer kernels (Attention, SkipLayerNormalization,
// BiasGelu, ...).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import ort from 'onnxruntime-node';

const BATCH = 32;

function log(msg) {
  process.stderr.write(`[ort] ${msg}\n`);
}

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

function readJsonl(file) {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

// --- a minimal protobuf reader: the op types of ModelProto.graph.node -----------------
function varint(buf, pos) {
  let x = 0n;
  let shift = 0n;
  for (;;) {
    const b = buf[pos++];
    x |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) return [x, pos];
    shift += 7n;
  }
}

// Calls fn(field, wireType, start, end) for each field of the message in buf[start, end).
function fields(buf, start, end, fn) {
  let pos = start;
  while (pos < end) {
    let key;
    [key, pos] = varint(buf, pos);
    const field = Number(key >> 3n);
    const wt = Number(key & 7n);
    if (wt === 0) [, pos] = varint(buf, pos);
    else if (wt === 1) pos += 8;
    else if (wt === 5) pos += 4;
    else if (wt === 2) {
      let len;
      [len, pos] = varint(buf, pos);
      fn(field, wt, pos, pos + Number(len));
      pos += Number(len);
    } else throw new Error(`protobuf wire type ${wt}`);
  }
}

function countOps(file) {
  const buf = fs.readFileSync(file);
  const counts = {};
  fields(buf, 0, buf.length, (f, wt, s, e) => {
    if (f !== 7) return; // ModelProto.graph
    fields(buf, s, e, (gf, gwt, gs, ge) => {
      if (gf !== 1) return; // GraphProto.node
      let op = '';
      let domain = '';
      fields(buf, gs, ge, (nf, nwt, ns, ne) => {
        if (nf === 4) op = buf.toString('utf8', ns, ne); // NodeProto.op_type
        if (nf === 7) domain = buf.toString('utf8', ns, ne); // NodeProto.domain
      });
      const k = domain && domain !== 'ai.onnx' ? `${domain}.${op}` : op;
      counts[k] = (counts[k] || 0) + 1;
    });
  });
  return counts;
}

// --- workloads ---------------------------------------------------------------------------
function makeBatches(texts, ids, inputNames, padId, limit = 0) {
  if (texts.length !== ids.length) throw new Error(`${texts.length} texts but ${ids.length} id lists`);
  let order = texts.map((t, i) => i);
  // sentence-transformers: np.argsort([-len(text)]); Python's len counts code points
  const len = texts.map((t) => [...t].length);
  order.sort((a, b) => len[b] - len[a] || a - b);
  if (limit > 0) order = order.slice(0, limit); // a warm-up subset
  const batches = [];
  for (let s = 0; s < order.length; s += BATCH) {
    const rows = order.slice(s, s + BATCH);
    const T = Math.max(...rows.map((i) => ids[i].length));
    const a = new BigInt64Array(rows.length * T);
    const m = new BigInt64Array(rows.length * T);
    const t = new BigInt64Array(rows.length * T);
    if (padId) a.fill(BigInt(padId));
    rows.forEach((i, j) => {
      ids[i].forEach((id, k) => {
        a[j * T + k] = BigInt(id);
        m[j * T + k] = 1n;
      });
    });
    const dims = [rows.length, T];
    const feeds = {
      input_ids: new ort.Tensor('int64', a, dims),
      attention_mask: new ort.Tensor('int64', m, dims),
    };
    if (inputNames.includes('token_type_ids')) feeds.token_type_ids = new ort.Tensor('int64', t, dims);
    batches.push({ rows, feeds });
  }
  return batches;
}

async function encode(session, batches, n, out) {
  let dim = 0;
  for (const b of batches) {
    const r = await session.run(b.feeds);
    const y = r.sentence_embedding;
    dim = y.dims[1];
    if (out) b.rows.forEach((i, j) => out.set(y.data.subarray(j * dim, (j + 1) * dim), i * dim));
  }
  return dim;
}

async function main() {
  const model = arg('--model');
  const threads = Number(arg('--threads', '2'));
  const padId = Number(arg('--pad-id', '0'));
  if (!model) {
    process.stderr.write('usage: node bench_ort.mjs --model FILE.onnx [--threads N] [--pad-id N]\n');
    process.exit(2);
  }
  const opts = {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  };
  let t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(model, opts);
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;

  // The optimized graph, for the report (a second session, then thrown away).
  let optimizedOps = null;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sembed-ort-'));
  try {
    const opt = path.join(tmp, 'optimized.onnx');
    const s2 = await ort.InferenceSession.create(model, { ...opts, optimizedModelFilePath: opt });
    await s2.release();
    optimizedOps = countOps(opt);
  } catch (e) {
    log(`could not inspect the optimized graph: ${e.message}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  const work = new Map();
  process.stdout.write(JSON.stringify({
    ready: true, engine: 'ort', version: ort.env.versions.node ?? ort.env.versions.common, load_ms: loadMs,
    intra_op_threads: threads, inter_op_threads: 1, graph_optimization: 'all', optimized_ops: optimizedOps,
  }) + '\n');

  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const cmd = JSON.parse(line);
    let reply;
    if (cmd.op === 'load') {
      const texts = readJsonl(cmd.texts);
      const ids = readJsonl(cmd.ids);
      const batches = makeBatches(texts, ids, session.inputNames, padId, cmd.limit ?? 0);
      work.set(cmd.name, { batches, n: texts.length });
      const rows = batches.flatMap((b) => b.rows);
      reply = {
        ok: true, n: rows.length, tokens: rows.reduce((s, i) => s + ids[i].length, 0),
        padded_tokens: batches.reduce((s, b) => s + b.feeds.input_ids.size, 0), batches: batches.length,
      };
    } else if (cmd.op === 'run') {
      const w = work.get(cmd.name);
      const times = [];
      for (let c = 0; c < (cmd.calls ?? 1); c++) {
        t0 = process.hrtime.bigint();
        await encode(session, w.batches, w.n, null);
        times.push(Number(process.hrtime.bigint() - t0) / 1e9);
      }
      reply = { times };
    } else if (cmd.op === 'embed') {
      const texts = readJsonl(cmd.texts);
      const ids = readJsonl(cmd.ids);
      const batches = makeBatches(texts, ids, session.inputNames, padId);
      const probe = await session.run(batches[0].feeds);
      const dim = probe.sentence_embedding.dims[1];
      const out = new Float32Array(texts.length * dim);
      await encode(session, batches, texts.length, out);
      fs.writeFileSync(cmd.out, Buffer.from(out.buffer));
      reply = { ok: true, n: texts.length, dim };
    } else if (cmd.op === 'quit') {
      break;
    } else {
      reply = { error: `unknown op ${cmd.op}` };
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
  }
  await session.release();
  rl.close();
}

main().catch((e) => {
  log(e.stack || String(e));
  process.exit(1);
});
