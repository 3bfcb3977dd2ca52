/*
 * model_weights.c - a model's weights: the checkpoint files in the forms
 * Hugging Face writes them (safetensors or pytorch_model.bin, whole or
 * sharded), the Dense modules' files, and binding tensors by name to the
 * layer structures with their dtype and shape checked against config.json.
 *
 * F32 tensors are used in place from the mapping when aligned; F16, BF16
 * and unaligned F32 ones are converted to F32 once at load, into buffers
 * the model owns.
 */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "json.h"
#include "kernels.h"
#include "model_gemm.h"
#include "model_weights.h"
#include "models/models.h"
#include "torch_bin.h"

/* ==== Tensor binding ==== */

float *se_model_own(se_model *m, size_t n) {
    float *buf = se_malloc_array(n, sizeof(float));
    float **o = se_realloc(m->owned, (m->n_owned + 1) * sizeof *o);
    if (o) m->owned = o;
    if (!buf || !o) {
        se_free(buf);
        return NULL;
    }
    m->owned[m->n_owned++] = buf;
    return buf;
}

/* Finds a tensor by name across the checkpoint's shards: the bare name,
 * then with each of the architecture's prefixes ("bert.", "roberta."),
 * and LayerNorm weight/bias as gamma/beta (old TensorFlow conversions). */
const se_st_tensor *se_model_find(const se_model *m, const char *name, const se_st_file **file) {
    char alt[512], pre[4][512];
    const char *cands[8];
    int nc = 0;
    cands[nc++] = name;
    const char *const *px = m->cfg.arch ? m->cfg.arch->prefixes : NULL;
    for (int i = 0; px && px[i] && i < 4; i++) {
        snprintf(pre[i], sizeof pre[i], "%s%s", px[i], name);
        cands[nc++] = pre[i];
    }
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
se_status se_model_as_f32(se_model *m, const se_st_tensor *t, const char *file, const float **out, se_error *err) {
    if (t->dtype == SE_ST_F32 && ((uintptr_t)t->data & 3) == 0) {
        *out = (const float *)(const void *)t->data;
        return SE_OK;
    }
    if (t->dtype != SE_ST_F32 && t->dtype != SE_ST_F16 && t->dtype != SE_ST_BF16)
        return se_err(err, SE_E_UNSUPPORTED, "%s: tensor '%s' has dtype %s (F32, F16 or BF16 expected)", file,
                      t->name, se_st_dtype_name(t->dtype));
    float *buf = se_model_own(m, t->n_elem ? t->n_elem : 1);
    if (!buf) return se_err(err, SE_E_NOMEM, "%s: out of memory converting tensor '%s'", file, t->name);
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
    const se_st_tensor *t = se_model_find(m, name, &f);
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
    return se_model_as_f32(m, t, f->path, out, err);
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
se_status se_model_open_checkpoint(se_model *m, const char *dir, bool use_mmap, se_error *err) {
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

/* Binds the Dense modules' weights (each from its own safetensors). */
se_status se_model_bind_dense(se_model *m, bool use_mmap, se_error *err) {
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
            if (s == SE_OK) s = se_model_add_gemm(m, m->dense[i].w, (size_t)st->n_out, (size_t)st->n_in, err);
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
        if ((s = se_model_as_f32(m, w, f->path, &m->dense[i].w, err)) != SE_OK) return s;
        if (st->bias) {
            if (!b) return se_err(err, SE_E_FORMAT, "%s: missing tensor 'linear.bias' (config.json says bias: true)", f->path);
            if (b->n_dims != 1 || b->shape[0] != st->n_out)
                return se_err(err, SE_E_FORMAT, "%s: tensor 'linear.bias' shape does not match [%d]", f->path, st->n_out);
            if ((s = se_model_as_f32(m, b, f->path, &m->dense[i].b, err)) != SE_OK) return s;
        }
        if ((s = se_model_add_gemm(m, m->dense[i].w, (size_t)st->n_out, (size_t)st->n_in, err)) != SE_OK) return s;
    }
    return SE_OK;
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

