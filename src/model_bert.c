/*
 * model_bert.c - the BERT encoder: binding checkpoint tensors to the
 * layer structure, and the forward pass.
 *
 * Forward pass (Hugging Face BertModel, post-LN), over T packed tokens of S
 * sentences with no padding (each sentence attends only to itself, which is
 * exactly what the padding mask achieves in a padded batch):
 *   x = LN_emb(word[id] + type[tt] + pos[p])                       "emb_norm"
 *   for each layer:
 *     q, k, v = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv
 *     ctx[h] = softmax(q[h] k[h]^T / sqrt(HD)) v[h]   per sentence, per head
 *     x = LN1(ctx Wo^T + bo + x)
 *     x = LN2(act(x W1^T + b1) W2^T + b2 + x)                       "layer_out"
 * Tensor names are those of BertModel, with or without the "bert." prefix
 * (BertForPreTraining and friends), and LayerNorm.gamma/beta from old
 * TensorFlow conversions. Every tensor's dtype and shape is checked against
 * config.json before use; F16 and BF16 weights are widened to F32 once at
 * load, F32 weights are used in place from the mapping.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "json.h"
#include "kernels.h"
#include "model.h"
#include "tokenizer.h"
#include "torch_bin.h"

/* ==== Tensor binding ==== */

/* Frees one packed matrix (an se_int8_pack owns three buffers). */
static void free_pack(const se_model *m, void *p) {
    if (p && m->compute == SE_DTYPE_INT8) {
        se_int8_pack *q = p;
        se_free(q->w), se_free(q->scale), se_free(q->colsum);
    }
    se_free(p);
}


/* Finds a tensor by name across the checkpoint's shards, trying the
 * "bert." prefix and gamma/beta spellings. */
static const se_st_tensor *find_any(const se_model *m, const char *name, const se_st_file **file) {
    char alt[512];
    const char *cands[4];
    int nc = 0;
    cands[nc++] = name;
    char pre[512];
    snprintf(pre, sizeof pre, "bert.%s", name);
    cands[nc++] = pre;
    size_t n = strlen(name);
    if (n > 7 && (strcmp(name + n - 7, ".weight") == 0 || strcmp(name + n - 5, ".bias") == 0) &&
        strstr(name, "LayerNorm")) {
        bool w = strcmp(name + n - 7, ".weight") == 0;
        snprintf(alt, sizeof alt, "%.*s.%s", (int)(n - (w ? 7 : 5)), name, w ? "gamma" : "beta");
        cands[nc++] = alt;
    }
    for (int c = 0; c < nc; c++)
        for (size_t i = 0; i < m->n_files; i++) {
            const se_st_tensor *t = se_st_find(&m->files[i], cands[c]);
            if (t) {
                *file = &m->files[i];
                return t;
            }
        }
    return NULL;
}

/* Returns the tensor's data as F32: in place when it is aligned F32,
 * otherwise a converted copy the model owns. */
static se_status as_f32(se_model *m, const se_st_tensor *t, const char *file, const float **out, se_error *err) {
    if (t->dtype == SE_ST_F32 && ((uintptr_t)t->data & 3) == 0) {
        *out = (const float *)(const void *)t->data;
        return SE_OK;
    }
    if (t->dtype != SE_ST_F32 && t->dtype != SE_ST_F16 && t->dtype != SE_ST_BF16)
        return se_err(err, SE_E_UNSUPPORTED, "%s: tensor '%s' has dtype %s (F32, F16 or BF16 expected)", file,
                      t->name, se_st_dtype_name(t->dtype));
    float *buf = se_malloc_array(t->n_elem ? t->n_elem : 1, sizeof(float));
    float **o = se_realloc(m->owned, (m->n_owned + 1) * sizeof *o);
    if (!buf || !o) {
        se_free(buf);
        if (o) m->owned = o;
        return se_err(err, SE_E_NOMEM, "%s: out of memory converting tensor '%s'", file, t->name);
    }
    m->owned = o;
    m->owned[m->n_owned++] = buf;
    for (size_t i = 0; i < t->n_elem; i++) {
        if (t->dtype == SE_ST_F32) {
            memcpy(&buf[i], t->data + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            buf[i] = t->dtype == SE_ST_F16 ? se_f16_to_f32(h) : se_bf16_to_f32(h);
        }
    }
    *out = buf;
    return SE_OK;
}

/* Binds a tensor that must exist with shape (d0) or (d0, d1). */
se_status se_model_bind(se_model *m, const char *name, int64_t d0, int64_t d1, const float **out, se_error *err) {
    const se_st_file *f = NULL;
    const se_st_tensor *t = find_any(m, name, &f);
    if (!t) return se_err(err, SE_E_FORMAT, "%s: missing tensor '%s'", m->files[0].path, name);
    int nd = d1 > 0 ? 2 : 1;
    if (t->n_dims != nd || t->shape[0] != d0 || (nd == 2 && t->shape[1] != d1)) {
        char got[96] = "";
        size_t k = 0;
        for (int i = 0; i < t->n_dims && k < sizeof got - 24; i++)
            k += (size_t)snprintf(got + k, sizeof got - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (nd == 2)
            return se_err(err, SE_E_FORMAT, "%s: tensor '%s' has shape [%s], config.json implies [%lld, %lld]", f->path,
                          t->name, got, (long long)d0, (long long)d1);
        return se_err(err, SE_E_FORMAT, "%s: tensor '%s' has shape [%s], config.json implies [%lld]", f->path, t->name,
                      got, (long long)d0);
    }
    return as_f32(m, t, f->path, out, err);
}

/* Opens one weight file into f, by format. */
typedef se_status (*weight_open_fn)(const char *path, bool use_mmap, se_st_file *f, se_error *err);

/* pytorch_model.bin through the restricted unpickler (torch_bin.c). The
 * zip's CRCs are not checked, as torch.load does not check them and
 * safetensors has none: bytes are trusted once the structure is valid. */
static se_status open_torch(const char *path, bool use_mmap, se_st_file *f, se_error *err) {
    return se_torch_open(path, use_mmap, false, f, err);
}

/* The forms a checkpoint comes in, in the order sentence-transformers'
 * loader (transformers) prefers them: safetensors before pickles, a whole
 * file before shards. */
static const struct {
    const char *name;    /* the file, or the shard index */
    bool sharded;        /* name is an index.json with a weight_map */
    weight_open_fn open;
} checkpoint_forms[] = {
    {"model.safetensors", false, se_st_open},
    {"model.safetensors.index.json", true, se_st_open},
    {"pytorch_model.bin", false, open_torch},
    {"pytorch_model.bin.index.json", true, open_torch},
};

/* The basename of a weight file's path. */
static const char *file_base(const se_st_file *f) {
    const char *b = strrchr(f->path, '/');
    return b ? b + 1 : f->path;
}

/* Opens the shards a weight_map index names (each once, in first-seen
 * order) and checks that every tensor it lists is in its shard. */
static se_status open_shards(se_model *m, const char *dir, const char *index, weight_open_fn open_fn, bool use_mmap,
                             se_error *err) {
    json_t *j = NULL;
    se_status s = se_json_load_file(index, &j, err);
    if (s != SE_OK) return s;
    json_t *wm = json_object_get(j, "weight_map");
    const char *key;
    json_t *v;
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        s = se_err(err, SE_E_FORMAT, "%s: missing object 'weight_map'", index);
        goto done;
    }
    m->files = se_calloc(json_object_size(wm), sizeof *m->files);
    if (!m->files) {
        s = se_err(err, SE_E_NOMEM, "out of memory");
        goto done;
    }
    json_object_foreach(wm, key, v) {
        if (!json_is_string(v)) {
            s = se_err(err, SE_E_FORMAT, "%s: weight_map['%s'] must be a file name", index, key);
            goto done;
        }
        const char *fn = json_string_value(v);
        if (strchr(fn, '/') || strcmp(fn, "..") == 0 || !fn[0]) {
            s = se_err(err, SE_E_FORMAT, "%s: weight_map['%s'] = '%s' is not a plain file name", index, key, fn);
            goto done;
        }
        bool seen = false;
        for (size_t i = 0; i < m->n_files; i++) seen |= strcmp(file_base(&m->files[i]), fn) == 0;
        if (seen) continue;
        char *p = se_path_join(dir, fn);
        if (!p) {
            s = se_err(err, SE_E_NOMEM, "out of memory");
            goto done;
        }
        s = open_fn(p, use_mmap, &m->files[m->n_files], err);
        se_free(p);
        if (s != SE_OK) goto done;
        m->n_files++;
    }
    /* every mapped tensor must be in the shard the index names */
    json_object_foreach(wm, key, v) {
        const char *fn = json_string_value(v);
        bool ok = false;
        for (size_t i = 0; i < m->n_files && !ok; i++)
            if (strcmp(file_base(&m->files[i]), fn) == 0) ok = se_st_find(&m->files[i], key) != NULL;
        if (!ok) {
            s = se_err(err, SE_E_FORMAT, "%s: tensor '%s' is not in shard '%s'", index, key, fn);
            goto done;
        }
    }
done:
    json_decref(j);
    return s;
}

/* Opens the checkpoint in the first of checkpoint_forms the folder has:
 * model.safetensors, its shards, pytorch_model.bin, or its shards. */
static se_status open_checkpoint(se_model *m, const char *dir, bool use_mmap, se_error *err) {
    for (size_t k = 0; k < sizeof checkpoint_forms / sizeof *checkpoint_forms; k++) {
        char *p = se_path_join(dir, checkpoint_forms[k].name);
        if (!p) return se_err(err, SE_E_NOMEM, "out of memory");
        /* a directory, FIFO or dangling symlink under one of these names is
         * an error naming it, never a reason to look for the next form */
        bool exists = false;
        se_status s = se_file_probe(p, &exists, err);
        if (s == SE_OK && exists) {
            if (checkpoint_forms[k].sharded) {
                s = open_shards(m, dir, p, checkpoint_forms[k].open, use_mmap, err);
            } else if (!(m->files = se_calloc(1, sizeof *m->files))) {
                s = se_err(err, SE_E_NOMEM, "out of memory");
            } else if ((s = checkpoint_forms[k].open(p, use_mmap, &m->files[0], err)) == SE_OK) {
                m->n_files = 1;
            }
        }
        se_free(p);
        if (s != SE_OK || exists) return s;
    }
    return se_err(err, SE_E_IO, "%s: no model.safetensors, pytorch_model.bin or a shard index of either", dir);
}

/* Builds the fused (3H, H) query/key/value matrix and (3H) bias of a
 * layer, owned by the model: one GEMM instead of three. */
static se_status fuse_qkv(se_model *m, se_layer_w *w, size_t H, se_error *err) {
    float *fw = se_malloc_array(3 * H * H, sizeof *fw), *fb = se_malloc_array(3 * H, sizeof *fb);
    float **o = se_realloc(m->owned, (m->n_owned + 2) * sizeof *o);
    if (!fw || !fb || !o) {
        se_free(fw), se_free(fb);
        if (o) m->owned = o;
        return se_err(err, SE_E_NOMEM, "out of memory fusing query/key/value");
    }
    m->owned = o;
    m->owned[m->n_owned++] = fw;
    m->owned[m->n_owned++] = fb;
    const float *ws[3] = {w->q_w, w->k_w, w->v_w}, *bs[3] = {w->q_b, w->k_b, w->v_b};
    for (int i = 0; i < 3; i++) {
        memcpy(fw + (size_t)i * H * H, ws[i], H * H * sizeof *fw);
        memcpy(fb + (size_t)i * H, bs[i], H * sizeof *fb);
    }
    w->qkv_w = fw, w->qkv_b = fb;
    return SE_OK;
}

/* Binds every transformer tensor. */
static se_status bind_bert(se_model *m, se_error *err) {
    const se_folder_cfg *c = &m->cfg;
    int64_t H = c->n_embd, FF = c->n_ff;
    se_status s;
    const se_st_file *f;
    const se_st_tensor *we = find_any(m, "embeddings.word_embeddings.weight", &f);
    if (we) m->wdtype = we->dtype == SE_ST_F16 ? SE_DTYPE_F16 : we->dtype == SE_ST_BF16 ? SE_DTYPE_BF16 : SE_DTYPE_F32;
    if ((s = se_model_bind(m, "embeddings.word_embeddings.weight", c->n_vocab, H, &m->word_emb, err)) != SE_OK) return s;
    if ((s = se_model_bind(m, "embeddings.position_embeddings.weight", c->n_pos, H, &m->pos_emb, err)) != SE_OK) return s;
    if (c->n_type > 0 && (s = se_model_bind(m, "embeddings.token_type_embeddings.weight", c->n_type, H, &m->type_emb, err)) != SE_OK)
        return s;
    if ((s = se_model_bind(m, "embeddings.LayerNorm.weight", H, 0, &m->emb_ln_g, err)) != SE_OK) return s;
    if ((s = se_model_bind(m, "embeddings.LayerNorm.bias", H, 0, &m->emb_ln_b, err)) != SE_OK) return s;
    m->layers = se_calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) return se_err(err, SE_E_NOMEM, "out of memory");
    for (int l = 0; l < c->n_layer; l++) {
        se_layer_w *w = &m->layers[l];
        struct {
            const char *suffix;
            int64_t d0, d1;
            const float **dst;
        } spec[] = {
            {"attention.self.query.weight", H, H, &w->q_w},     {"attention.self.query.bias", H, 0, &w->q_b},
            {"attention.self.key.weight", H, H, &w->k_w},       {"attention.self.key.bias", H, 0, &w->k_b},
            {"attention.self.value.weight", H, H, &w->v_w},     {"attention.self.value.bias", H, 0, &w->v_b},
            {"attention.output.dense.weight", H, H, &w->o_w},   {"attention.output.dense.bias", H, 0, &w->o_b},
            {"attention.output.LayerNorm.weight", H, 0, &w->ln1_g}, {"attention.output.LayerNorm.bias", H, 0, &w->ln1_b},
            {"intermediate.dense.weight", FF, H, &w->ff1_w},    {"intermediate.dense.bias", FF, 0, &w->ff1_b},
            {"output.dense.weight", H, FF, &w->ff2_w},          {"output.dense.bias", H, 0, &w->ff2_b},
            {"output.LayerNorm.weight", H, 0, &w->ln2_g},       {"output.LayerNorm.bias", H, 0, &w->ln2_b},
        };
        for (size_t i = 0; i < sizeof spec / sizeof *spec; i++) {
            char name[256];
            snprintf(name, sizeof name, "encoder.layer.%d.%s", l, spec[i].suffix);
            if ((s = se_model_bind(m, name, spec[i].d0, spec[i].d1, spec[i].dst, err)) != SE_OK) return s;
        }
        if ((s = fuse_qkv(m, w, (size_t)H, err)) != SE_OK) return s;
    }
    /* a checkpoint with more layers than config.json says is inconsistent */
    char extra[64];
    snprintf(extra, sizeof extra, "encoder.layer.%d.output.dense.weight", c->n_layer);
    if (find_any(m, extra, &f))
        return se_err(err, SE_E_FORMAT, "%s: has tensor '%s' but config.json says num_hidden_layers = %d", f->path, extra,
                      c->n_layer);
    return SE_OK;
}

/* Binds the Dense modules' weights (each from its own safetensors). */
static se_status bind_dense(se_model *m, bool use_mmap, se_error *err) {
    const se_folder_cfg *c = &m->cfg;
    m->dense = se_calloc((size_t)(c->n_stages ? c->n_stages : 1), sizeof *m->dense);
    m->dense_files = se_calloc((size_t)(c->n_stages ? c->n_stages : 1), sizeof *m->dense_files);
    if (!m->dense || !m->dense_files) return se_err(err, SE_E_NOMEM, "out of memory");
    m->max_stage_dim = c->pool_dim;
    for (int i = 0; i < c->n_stages; i++) {
        const se_stage *st = &c->stages[i];
        if (st->n_out > m->max_stage_dim) m->max_stage_dim = st->n_out;
        if (st->kind != SE_STAGE_DENSE) continue;
        if (!st->dir) { /* weights in the main checkpoint (USE lite's tanh layer) */
            se_status s = se_model_bind(m, "pooler.dense.weight", st->n_out, st->n_in, &m->dense[i].w, err);
            if (s == SE_OK && st->bias) s = se_model_bind(m, "pooler.dense.bias", st->n_out, 0, &m->dense[i].b, err);
            if (s != SE_OK) return s;
            continue;
        }
        /* model.safetensors, or pytorch_model.bin (sentence-transformers
         * before 2.3 saved Dense modules that way) */
        se_status s = SE_OK;
        bool exists = false;
        for (size_t k = 0; k < sizeof checkpoint_forms / sizeof *checkpoint_forms && !exists && s == SE_OK; k++) {
            if (checkpoint_forms[k].sharded) continue;
            char *p = se_path_join(st->dir, checkpoint_forms[k].name);
            if (!p) return se_err(err, SE_E_NOMEM, "out of memory");
            s = se_file_probe(p, &exists, err);
            if (s == SE_OK && exists) s = checkpoint_forms[k].open(p, use_mmap, &m->dense_files[i], err);
            se_free(p);
        }
        if (s != SE_OK) return s;
        if (!exists) return se_err(err, SE_E_IO, "%s: no model.safetensors or pytorch_model.bin for the Dense module", st->dir);
        const se_st_file *f = &m->dense_files[i];
        const se_st_tensor *w = se_st_find(f, "linear.weight"), *b = se_st_find(f, "linear.bias");
        if (!w) return se_err(err, SE_E_FORMAT, "%s: missing tensor 'linear.weight'", f->path);
        if (w->n_dims != 2 || w->shape[0] != st->n_out || w->shape[1] != st->n_in)
            return se_err(err, SE_E_FORMAT, "%s: tensor 'linear.weight' shape does not match [%d, %d] from config.json",
                          f->path, st->n_out, st->n_in);
        if ((s = as_f32(m, w, f->path, &m->dense[i].w, err)) != SE_OK) return s;
        if (st->bias) {
            if (!b) return se_err(err, SE_E_FORMAT, "%s: missing tensor 'linear.bias' (config.json says bias: true)", f->path);
            if (b->n_dims != 1 || b->shape[0] != st->n_out)
                return se_err(err, SE_E_FORMAT, "%s: tensor 'linear.bias' shape does not match [%d]", f->path, st->n_out);
            if ((s = as_f32(m, b, f->path, &m->dense[i].b, err)) != SE_OK) return s;
        }
    }
    return SE_OK;
}

/* ==== Fingerprint ==== */

/* Writes the fingerprint of m into out (see se_model_fingerprint): the
 * folder's config hash, the tokenizer hash and a hash of the raw bytes of
 * every checkpoint shard and Dense file. The weight files are first checked
 * to be unchanged since load (hashing a truncated mapping would fault).
 * Pages that se_model_pack released are read back from the file. */
static se_status make_fingerprint(const se_model *m, char *out, size_t cap, se_error *err) {
    se_status s = se_model_check_files(m, err);
    if (s != SE_OK) return s;
    const se_folder_cfg *c = &m->cfg;
    uint64_t w = 0;
    for (size_t i = 0; i < m->n_files; i++) {
        const char *b = strrchr(m->files[i].path, '/');
        se_hash_fold(&w, b ? b + 1 : m->files[i].path, m->files[i].base, m->files[i].size);
    }
    for (int i = 0; i < c->n_stages; i++) {
        const se_st_file *f = &m->dense_files[i];
        if (!f->base) continue; /* Normalize, or weights inside the main checkpoint */
        se_hash_fold(&w, se_folder_rel(c, f->path), f->base, f->size);
    }
    const char *dt = m->compute == SE_DTYPE_INT8 ? "int8" : m->compute == SE_DTYPE_BF16 ? "bf16" : "f32";
    snprintf(out, cap, "arch=%s dim=%d dtype=%s config=%016llx tokenizer=%016llx weights=%016llx", c->model_type, c->dim,
             dt, (unsigned long long)c->config_hash, (unsigned long long)m->tok_hash, (unsigned long long)w);
    return SE_OK;
}

se_status se_model_fingerprint(const se_model *m, char *out, size_t cap, se_error *err) {
    if (!m || !out) return se_err(err, SE_E_INVALID, "se_model_fingerprint: NULL argument");
    se_fingerprint_cache *fp = m->fp;
    se_status s = SE_OK;
    pthread_mutex_lock(&fp->lock);
    if (!fp->done && (s = make_fingerprint(m, fp->text, sizeof fp->text, err)) == SE_OK) fp->done = true;
    pthread_mutex_unlock(&fp->lock);
    if (s != SE_OK) return s;
    size_t n = strlen(fp->text);
    if (cap < n + 1) return se_err(err, SE_E_BUFFER, "fingerprint needs %zu bytes, the buffer has %zu", n + 1, cap);
    memcpy(out, fp->text, n + 1);
    return SE_OK;
}

/* ==== Public API: load, free, info ==== */

se_model_params se_model_default_params(void) {
    se_model_params p;
    memset(&p, 0, sizeof p);
    p.dtype = SE_DTYPE_F32;
    p.use_mmap = true;
    return p;
}

void se_model_free(se_model *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_files; i++) se_st_close(&m->files[i]);
    se_free(m->files);
    if (m->dense_files)
        for (int i = 0; i < m->cfg.n_stages; i++) se_st_close(&m->dense_files[i]);
    se_free(m->dense_files);
    for (size_t i = 0; i < m->n_owned; i++) se_free(m->owned[i]);
    se_free(m->owned);
    for (size_t i = 0; i < m->n_pack; i++) free_pack(m, m->pack_p[i]);
    se_free(m->pack_p);
    se_free(m->pack_w);
    se_free(m->layers);
    se_free(m->use_layers);
    se_free(m->dense);
    se_tokenizer_free(m->tok);
    se_folder_free(&m->cfg);
    if (m->fp) pthread_mutex_destroy(&m->fp->lock);
    se_free(m->fp);
    se_free(m);
}

se_status se_model_load(const char *dir, const se_model_params *params, se_model **out, se_error *err) {
    if (!dir || !out) return se_err(err, SE_E_INVALID, "se_model_load: dir and out must not be NULL");
    *out = NULL;
    se_model_params p = params ? *params : se_model_default_params();
    if (p.dtype != SE_DTYPE_F32 && p.dtype != SE_DTYPE_BF16 && p.dtype != SE_DTYPE_INT8)
        return se_err(err, SE_E_UNSUPPORTED, "dtype %d is not supported for computing (f32, bf16 or int8)", (int)p.dtype);
    se_model *m = se_calloc(1, sizeof *m);
    if (m && !(m->fp = se_calloc(1, sizeof *m->fp))) se_free(m), m = NULL;
    if (!m) return se_err(err, SE_E_NOMEM, "out of memory");
    pthread_mutex_init(&m->fp->lock, NULL);
    m->compute = p.dtype;
    se_status s = se_folder_load(dir, p.log_fn, p.log_user, &m->cfg, err);
    if (s != SE_OK) goto fail; /* se_model_free takes the zeroed cfg */
    /* the tokenizer files' hash, for the fingerprint; first, so that a
     * tokenizer file that is a directory, FIFO or dangling symlink is
     * refused by name rather than passed over for another form */
    if ((s = se_folder_tokenizer_hash(m->cfg.tf_dir, &m->tok_hash, err)) != SE_OK) goto fail;
    if ((s = se_tokenizer_load(m->cfg.tf_dir, &m->tok, err)) != SE_OK) goto fail;
    m->tok->n_tokens_max = (size_t)m->cfg.n_tokens_max;
    if (se_tokenizer_n_vocab(m->tok) > (size_t)m->cfg.n_vocab) {
        /* ids past vocab_size would index outside the embedding table */
        s = se_err(err, SE_E_FORMAT, "%s: tokenizer has %zu ids but config.json vocab_size is %d", dir,
                   se_tokenizer_n_vocab(m->tok), m->cfg.n_vocab);
        goto fail;
    }
    if ((s = open_checkpoint(m, m->cfg.tf_dir, p.use_mmap, err)) != SE_OK) goto fail;
    if ((s = (m->cfg.arch == SE_ARCH_USE ? se_use_bind(m, err) : bind_bert(m, err))) != SE_OK) goto fail;
    if ((s = bind_dense(m, p.use_mmap, err)) != SE_OK) goto fail;
    if ((s = se_model_pack(m, err)) != SE_OK) goto fail;
    *out = m;
    return SE_OK;
fail:
    se_model_free(m);
    return s;
}

se_status se_model_check_files(const se_model *m, se_error *err) {
    se_status s;
    for (size_t i = 0; i < m->n_files; i++)
        if ((s = se_st_check(&m->files[i], err)) != SE_OK) return s;
    if (m->dense_files)
        for (int i = 0; i < m->cfg.n_stages; i++)
            if ((s = se_st_check(&m->dense_files[i], err)) != SE_OK) return s;
    return SE_OK;
}

const se_tokenizer *se_model_tokenizer(const se_model *m) { return m ? m->tok : NULL; }

se_status se_model_get_info(const se_model *m, se_model_info *o, se_error *err) {
    if (!m || !o) return se_err(err, SE_E_INVALID, "se_model_get_info: NULL argument");
    const se_folder_cfg *c = &m->cfg;
    memset(o, 0, sizeof *o);
    o->arch = c->model_type;
    o->hidden_act = c->act_name;
    o->n_vocab = c->n_vocab, o->n_embd = c->n_embd, o->n_layer = c->n_layer, o->n_head = c->n_head;
    o->n_ff = c->n_ff, o->n_pos = c->n_pos, o->n_type = c->n_type, o->norm_eps = c->norm_eps;
    o->n_tokens_max = c->n_tokens_max;
    o->dim = c->dim;
    o->pooling = c->pooling;
    for (int i = 0; i < c->n_stages; i++) o->n_dense += c->stages[i].kind == SE_STAGE_DENSE;
    o->similarity = c->similarity;
    o->weight_dtype = m->wdtype;
    o->compute_dtype = m->compute;
    o->n_prompts = c->n_prompts;
    o->default_prompt_name = c->default_prompt_name;
    o->include_prompt = c->include_prompt;
    o->normalize = c->normalize;
    o->do_lower_case = c->do_lower_case;
    o->has_modules_json = c->has_modules_json;
    return SE_OK;
}

se_status se_model_prompt(const se_model *m, size_t i, const char **name, const char **text, se_error *err) {
    if (!m) return se_err(err, SE_E_INVALID, "se_model_prompt: NULL model");
    if (i >= m->cfg.n_prompts) return se_err(err, SE_E_RANGE, "prompt index %zu out of range (%zu prompts)", i, m->cfg.n_prompts);
    if (name) *name = m->cfg.prompt_names[i];
    if (text) *text = m->cfg.prompt_texts[i];
    return SE_OK;
}

const char *se_model_prompt_find(const se_model *m, const char *name) {
    if (!m || !name) return NULL;
    for (size_t i = 0; i < m->cfg.n_prompts; i++)
        if (strcmp(m->cfg.prompt_names[i], name) == 0) return m->cfg.prompt_texts[i];
    return NULL;
}

/* ==== Forward pass ==== */

typedef struct gemm_job {
    const se_kernels *k;
    const float *x, *w, *b;
    const void *packed; /* f32 or bf16 panels, an se_int8_pack, or NULL */
    bool bf16, int8, bf16dp;
    se_bert_buf *buf;
    float *y;
    size_t M, K, N, n_nblk;
} gemm_job;

enum { GEMM_MB = 192, GEMM_NB = 64 }; /* GEMM_NB is a multiple of the packed panel width (32) */

static void gemm_task(void *arg, size_t t, int thread) {
    (void)thread;
    const gemm_job *j = arg;
    size_t mi = t / j->n_nblk, ni = t % j->n_nblk;
    size_t m0 = mi * GEMM_MB, n0 = ni * GEMM_NB;
    size_t m1 = m0 + GEMM_MB < j->M ? m0 + GEMM_MB : j->M;
    size_t n1 = n0 + GEMM_NB < j->N ? n0 + GEMM_NB : j->N;
    if (j->int8) {
        const se_int8_pack *q = j->packed;
        size_t Kp = se_int8_kpad(j->K);
        se_gemm_int8_avx512(j->buf->xq + m0 * Kp, j->buf->xs + m0, j->buf->xz + m0, m1 - m0, j->K, q->w, q->scale, q->colsum,
                            j->N, j->b, j->y + m0 * j->N, j->N, n0, n1);
    } else if (j->bf16dp) {
        se_gemm_bf16dp_avx512(j->buf->xb + m0 * se_bf16dp_kpad(j->K), m1 - m0, j->K, j->packed, j->N, j->b, j->y + m0 * j->N,
                              j->N, n0, n1);
    } else if (j->bf16)
        se_gemm_bf16_avx512(j->x + m0 * j->K, m1 - m0, j->K, j->K, j->packed, j->N, j->b, j->y + m0 * j->N, j->N, n0, n1);
    else if (j->packed)
        se_gemm_packed_avx512(j->x + m0 * j->K, m1 - m0, j->K, j->K, j->packed, j->N, j->b, j->y + m0 * j->N, j->N, n0, n1);
    else
        j->k->gemm(j->x + m0 * j->K, m1 - m0, j->K, j->K, j->w, j->b, j->y + m0 * j->N, j->N, n0, n1);
}

enum { QUANT_ROWS = 32 };

/* Quantises rows [32 t, 32 t + 32) of x to uint8 (int8 models). */
static void quant_task(void *arg, size_t t, int thread) {
    (void)thread;
    const gemm_job *j = arg;
    size_t m0 = t * QUANT_ROWS, m1 = m0 + QUANT_ROWS < j->M ? m0 + QUANT_ROWS : j->M;
    se_quantize_rows_u8(j->x + m0 * j->K, m1 - m0, j->K, j->K, j->buf->xq + m0 * se_int8_kpad(j->K), j->buf->xs + m0,
                        j->buf->xz + m0);
}

/* Rounds rows [32 t, 32 t + 32) of x to bf16 (bf16 models on AVX512-BF16). */
static void cvt_task(void *arg, size_t t, int thread) {
    (void)thread;
    const gemm_job *j = arg;
    size_t m0 = t * QUANT_ROWS, m1 = m0 + QUANT_ROWS < j->M ? m0 + QUANT_ROWS : j->M;
    se_rows_to_bf16(j->x + m0 * j->K, m1 - m0, j->K, j->K, j->buf->xb + m0 * se_bf16dp_kpad(j->K));
}

/* The packed copy of w, or NULL. */
static const void *packed_of(const se_model *m, const float *w) {
    for (size_t i = 0; i < m->n_pack; i++)
        if (m->pack_w[i] == w) return m->pack_p[i];
    return NULL;
}

void se_par_gemm(se_threadpool *tp, const se_model *m, se_bert_buf *buf, const float *x, size_t M, size_t K, const float *w,
                 const float *b, float *y, size_t N) {
    if (M == 0 || N == 0) return;
    gemm_job j = {se_kernels_get(), x, w, b, packed_of(m, w), false, false, false, buf, y, M, K, N, (N + GEMM_NB - 1) / GEMM_NB};
    j.bf16 = j.packed && m->compute == SE_DTYPE_BF16;
    j.bf16dp = j.bf16 && m->bf16dp;
    j.int8 = j.packed && m->compute == SE_DTYPE_INT8;
    if (j.int8) se_threadpool_run(tp, (M + QUANT_ROWS - 1) / QUANT_ROWS, quant_task, &j);
    if (j.bf16dp) se_threadpool_run(tp, (M + QUANT_ROWS - 1) / QUANT_ROWS, cvt_task, &j);
    size_t n_mblk = (M + GEMM_MB - 1) / GEMM_MB;
    se_threadpool_run(tp, n_mblk * j.n_nblk, gemm_task, &j);
}


/* Once a matrix mapped from a checkpoint is packed, the mapped original is
 * never read again: drop its pages (they come back from the file if ever
 * touched), so resident memory is the packed copy, not both. */
static void release_pages(const se_model *m, const float *w, size_t nbytes) {
    const uint8_t *p = (const uint8_t *)w;
    for (size_t i = 0; i < m->n_files; i++) {
        const se_st_file *f = &m->files[i];
        if (!f->mapped || p < f->base || p + nbytes > f->base + f->size) continue;
        long pg = sysconf(_SC_PAGESIZE);
        uintptr_t a = ((uintptr_t)p + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
        uintptr_t e = ((uintptr_t)p + nbytes) & ~((uintptr_t)pg - 1);
        if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
    }
}

size_t se_model_k_max(const se_model *m) {
    const se_folder_cfg *c = &m->cfg;
    size_t k = (size_t)c->n_embd;
    if ((size_t)c->n_ff > k) k = (size_t)c->n_ff;
    if ((size_t)m->max_stage_dim > k) k = (size_t)m->max_stage_dim;
    return k;
}

/* Packs one (N, K) matrix (f32 or bf16 panels, per the model's compute
 * dtype); no-op when already packed. */
static se_status pack_one(se_model *m, const float *w, size_t N, size_t K, se_error *err) {
    if (!w || packed_of(m, w)) return SE_OK;
    bool bf = m->compute == SE_DTYPE_BF16, i8 = m->compute == SE_DTYPE_INT8;
    void *p;
    if (i8) {
        se_int8_pack *q = se_calloc(1, sizeof *q);
        size_t Np = (N + 31) / 32 * 32;
        if (q) {
            q->w = se_malloc(se_pack_int8_size(N, K));
            q->scale = se_malloc_array(Np, sizeof *q->scale);
            q->colsum = se_malloc_array(Np, sizeof *q->colsum);
            if (!q->w || !q->scale || !q->colsum) {
                se_free(q->w), se_free(q->scale), se_free(q->colsum), se_free(q);
                q = NULL;
            }
        }
        p = q;
    } else {
        p = bf ? se_malloc_array(m->bf16dp ? se_pack_bf16dp_size(N, K) : se_pack_bf16_size(N, K), sizeof(uint16_t))
               : se_malloc_array(se_pack_size(N, K), sizeof(float));
    }
    const float **pw = se_realloc(m->pack_w, (m->n_pack + 1) * sizeof *pw);
    if (pw) m->pack_w = pw;
    void **pp = pw ? se_realloc(m->pack_p, (m->n_pack + 1) * sizeof *pp) : NULL;
    if (pp) m->pack_p = pp;
    if (!p || !pw || !pp) {
        free_pack(m, p);
        return se_err(err, SE_E_NOMEM, "out of memory packing weights");
    }
    if (i8) {
        se_int8_pack *q = p;
        se_pack_weights_int8(w, N, K, q->w, q->scale, q->colsum);
    } else if (bf && m->bf16dp) {
        se_pack_weights_bf16dp(w, N, K, p);
    } else if (bf) {
        se_pack_weights_bf16(w, N, K, p);
    } else {
        se_pack_weights(w, N, K, p);
    }
    m->pack_w[m->n_pack] = w;
    m->pack_p[m->n_pack++] = p;
    release_pages(m, w, N * K * sizeof(float));
    return SE_OK;
}

se_status se_model_pack(se_model *m, se_error *err) {
    if (m->compute == SE_DTYPE_INT8) {
        if (!se_cpu_has_vnni())
            return se_err(err, SE_E_UNSUPPORTED, "dtype int8 needs a CPU with AVX512-VNNI (and SE_KERNELS unset)");
    } else if (m->compute == SE_DTYPE_BF16) {
        if (!se_cpu_has_avx512())
            return se_err(err, SE_E_UNSUPPORTED, "dtype bf16 needs a CPU with AVX-512 (and SE_KERNELS unset)");
        m->bf16dp = se_cpu_has_avx512bf16();
    } else if (!se_kernels_get()->packed) {
        return SE_OK;
    }
    const se_folder_cfg *c = &m->cfg;
    size_t H = (size_t)c->n_embd, FF = (size_t)c->n_ff;
    se_status s = SE_OK;
    for (int l = 0; l < c->n_layer && s == SE_OK; l++) {
        if (c->arch == SE_ARCH_USE) {
            const se_use_layer_w *w = &m->use_layers[l];
            size_t din = (size_t)w->din;
            if (s == SE_OK) s = pack_one(m, w->res_w, H, din, err);
            if (s == SE_OK) s = pack_one(m, w->qkv_w, 3 * din, din, err);
            if (s == SE_OK) s = pack_one(m, w->o_w, H, din, err);
            if (s == SE_OK) s = pack_one(m, w->ff1_w, FF, H, err);
            if (s == SE_OK) s = pack_one(m, w->ff2_w, H, FF, err);
        } else {
            const se_layer_w *w = &m->layers[l];
            s = pack_one(m, w->qkv_w, 3 * H, H, err);
            if (s == SE_OK) s = pack_one(m, w->o_w, H, H, err);
            /* the separate q/k/v matrices are not read again once fused */
            release_pages(m, w->q_w, H * H * sizeof(float));
            release_pages(m, w->k_w, H * H * sizeof(float));
            release_pages(m, w->v_w, H * H * sizeof(float));
            if (s == SE_OK) s = pack_one(m, w->ff1_w, FF, H, err);
            if (s == SE_OK) s = pack_one(m, w->ff2_w, H, FF, err);
        }
    }
    for (int i = 0; i < c->n_stages && s == SE_OK; i++)
        if (c->stages[i].kind == SE_STAGE_DENSE)
            s = pack_one(m, m->dense[i].w, (size_t)c->stages[i].n_out, (size_t)c->stages[i].n_in, err);
    return s;
}

typedef struct row_job {
    const se_model *m;
    const se_layer_w *w;
    se_bert_buf *buf;
    const int32_t *ids, *type_ids;
    const size_t *starts;
    size_t S, T;
    int stage; /* which row-wise step */
} row_job;

enum { ROWS_PER_TASK = 16 };

/* Applies the activation of config.json's hidden_act in place. */
static void activate(se_act a, float *x, size_t n) {
    switch (a) {
    case SE_ACT_GELU: se_kernels_get()->gelu(x, n); break;
    case SE_ACT_GELU_TANH: se_gelu_tanh(x, n); break;
    case SE_ACT_RELU: se_relu(x, n); break;
    case SE_ACT_TANH: se_tanh(x, n); break;
    case SE_ACT_SIGMOID: se_sigmoid(x, n); break;
    case SE_ACT_IDENTITY: break;
    }
}

/* Row-wise steps over tokens [t0, t1): embeddings, residual + LayerNorm,
 * activation. */
static void row_task(void *arg, size_t task, int thread) {
    (void)thread;
    const row_job *j = arg;
    const se_model *m = j->m;
    size_t H = (size_t)m->cfg.n_embd, FF = (size_t)m->cfg.n_ff;
    size_t t0 = task * ROWS_PER_TASK, t1 = t0 + ROWS_PER_TASK < j->T ? t0 + ROWS_PER_TASK : j->T;
    se_bert_buf *b = j->buf;
    if (j->stage == 0) { /* embeddings: (word + type) + pos, then LN */
        size_t s = 0;
        while (j->starts[s + 1] <= t0) s++;
        for (size_t t = t0; t < t1; t++) {
            while (j->starts[s + 1] <= t) s++;
            size_t pos = t - j->starts[s];
            const float *we = m->word_emb + (size_t)j->ids[t] * H;
            const float *te = m->type_emb ? m->type_emb + (size_t)j->type_ids[t] * H : NULL;
            const float *pe = m->pos_emb + pos * H;
            float *x = b->x + t * H;
            for (size_t i = 0; i < H; i++) x[i] = (we[i] + (te ? te[i] : 0.0f)) + pe[i];
            se_kernels_get()->layernorm(x, H, m->emb_ln_g, m->emb_ln_b, m->cfg.norm_eps);
        }
    } else if (j->stage == 1) { /* x = LN1(tmp + x) */
        for (size_t t = t0; t < t1; t++) {
            float *x = b->x + t * H, *y = b->tmp + t * H;
            se_kernels_get()->add(x, y, H);
            se_kernels_get()->layernorm(x, H, j->w->ln1_g, j->w->ln1_b, m->cfg.norm_eps);
        }
    } else if (j->stage == 2) { /* ff = act(ff) */
        activate(m->cfg.act, b->ff + t0 * FF, (t1 - t0) * FF);
    } else { /* x = LN2(tmp + x) */
        for (size_t t = t0; t < t1; t++) {
            float *x = b->x + t * H, *y = b->tmp + t * H;
            se_kernels_get()->add(x, y, H);
            se_kernels_get()->layernorm(x, H, j->w->ln2_g, j->w->ln2_b, m->cfg.norm_eps);
        }
    }
}

static void run_rows(se_threadpool *tp, row_job *j, int stage) {
    j->stage = stage;
    se_threadpool_run(tp, (j->T + ROWS_PER_TASK - 1) / ROWS_PER_TASK, row_task, j);
}

/* Attention for one (sentence, head) pair (the dispatched kernel). */
static void attn_task(void *arg, size_t task, int thread) {
    const row_job *j = arg;
    const se_model *m = j->m;
    size_t NH = (size_t)m->cfg.n_head, H = (size_t)m->cfg.n_embd, HD = H / NH;
    size_t s = task / NH, h = task % NH;
    size_t a = j->starts[s], T = j->starts[s + 1] - a;
    se_bert_buf *b = j->buf;
    const float *q = b->qkv + a * 3 * H + h * HD; /* rows of the fused (T, 3H) q|k|v */
    se_kernels_get()->attn(q, q + H, q + 2 * H, 3 * H, b->ctx + a * H + h * HD, H, T, HD, 1.0f / sqrtf((float)HD), false,
                           b->att + (size_t)thread * b->att_stride);
}

se_status se_bert_forward(const se_model *m, se_bert_buf *buf, se_threadpool *tp, const int32_t *ids,
                          const int32_t *type_ids, const size_t *starts, size_t S, se_debug_fn dbg, void *dbg_user,
                          se_error *err) {
    const se_folder_cfg *c = &m->cfg;
    size_t T = starts[S], H = (size_t)c->n_embd, FF = (size_t)c->n_ff;
    for (size_t t = 0; t < T; t++) {
        if (ids[t] < 0 || ids[t] >= c->n_vocab)
            return se_err(err, SE_E_RANGE, "token id %d at position %zu is outside the vocabulary (%d)", ids[t], t, c->n_vocab);
        if (m->type_emb && (type_ids[t] < 0 || type_ids[t] >= c->n_type))
            return se_err(err, SE_E_RANGE, "token type id %d at position %zu is outside type_vocab_size %d", type_ids[t], t,
                          c->n_type);
    }
    for (size_t s = 0; s < S; s++)
        if (starts[s + 1] - starts[s] > (size_t)c->n_pos)
            return se_err(err, SE_E_RANGE, "sentence %zu has %zu tokens, more than max_position_embeddings %d", s,
                          starts[s + 1] - starts[s], c->n_pos);
    if (T == 0) return SE_OK;
    row_job j = {m, NULL, buf, ids, type_ids, starts, S, T, 0};
    run_rows(tp, &j, 0);
    if (dbg) dbg("emb_norm", -1, buf->x, T, H, dbg_user);
    for (int l = 0; l < c->n_layer; l++) {
        const se_layer_w *w = &m->layers[l];
        j.w = w;
        se_par_gemm(tp, m, buf, buf->x, T, H, w->qkv_w, w->qkv_b, buf->qkv, 3 * H); /* (T, 3H) */
        se_threadpool_run(tp, S * (size_t)c->n_head, attn_task, &j);
        se_par_gemm(tp, m, buf, buf->ctx, T, H, w->o_w, w->o_b, buf->tmp, H);
        run_rows(tp, &j, 1);
        se_par_gemm(tp, m, buf, buf->x, T, H, w->ff1_w, w->ff1_b, buf->ff, FF);
        run_rows(tp, &j, 2);
        se_par_gemm(tp, m, buf, buf->ff, T, FF, w->ff2_w, w->ff2_b, buf->tmp, H);
        run_rows(tp, &j, 3);
        if (dbg) dbg("layer_out", l, buf->x, T, H, dbg_user);
    }
    return SE_OK;
}
