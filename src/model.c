/*
 * model.c - the model's public API: se_model_load (the folder's
 * configuration, the tokenizer, the checkpoint bound by the architecture's
 * row of the table in models/models.c, a cross-encoder's head, the Dense
 * modules, weight packing), se_model_free, se_model_get_info, the prompts and the
 * fingerprint.
 */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "model_gemm.h"
#include "model_head.h"
#include "model_weights.h"
#include "models/models.h"
#include "tokenizer.h"

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
    se_model_free_packs(m);
    se_free(m->layers);
    se_free(m->arch_w);
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
    if ((s = se_model_open_checkpoint(m, m->cfg.tf_dir, p.use_mmap, err)) != SE_OK) goto fail;
    if ((s = m->cfg.arch->bind(m, err)) != SE_OK) goto fail;
    if ((s = se_head_bind(m, err)) != SE_OK) goto fail;
    if ((s = se_model_bind_dense(m, p.use_mmap, err)) != SE_OK) goto fail;
    if ((s = se_model_pack(m, err)) != SE_OK) goto fail;
    *out = m;
    return SE_OK;
fail:
    se_model_free(m);
    return s;
}

const se_tokenizer *se_model_tokenizer(const se_model *m) { return m ? m->tok : NULL; }

se_status se_model_get_info(const se_model *m, se_model_info *o, se_error *err) {
    if (!m || !o) return se_err(err, SE_E_INVALID, "se_model_get_info: NULL argument");
    const se_folder_cfg *c = &m->cfg;
    memset(o, 0, sizeof *o);
    o->arch = c->model_type;
    o->arch_name = c->arch->name;
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
    if (c->cross_encoder) {
        o->head = c->head_name;
        o->n_labels = c->n_labels;
        o->labels = (const char *const *)c->labels;
        o->activation = se_score_act_name((se_score_act)c->ce_act);
    }
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

