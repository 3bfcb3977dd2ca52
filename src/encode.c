/*
 * encode.c - the context (activation arena + thread pool; the struct is in
 * ctx.h, shared with rerank.c) and the encode calls:
 *   se_encode            text -> tokens -> transformer -> pooling -> Dense -> Normalize
 *   se_encode_ids        token ids -> transformer -> pooling -> Dense -> Normalize
 *   se_encode_tokens     text -> tokens -> transformer: every token's last hidden state
 *   se_encode_ids_tokens token ids -> transformer: the same
 *   se_encode_tokenize   text -> the ids se_encode would run, and the pooling start
 * Text preparation (prompt, strip, lowercase) and the prompt's pooling
 * start are one code path for se_encode, se_encode_tokens and
 * se_encode_tokenize; every call gathers its sequences into batches
 * through batch_add.
 *
 * Batching packs sentences back to back with no padding: a forward pass
 * takes sentences in input order until the ctx's token budget
 * (n_batch_tokens) or its sentence cap is reached. Each sentence attends
 * only to itself and every kernel computes each value with a fixed
 * operation order, so a sentence's embedding is bit-identical however the
 * input is batched. The arena is allocated once in se_ctx_new and carved
 * into named buffers; encoding allocates only when the tokenizer's scratch,
 * the text buffer or (se_encode_tokens) the ids of the call must grow.
 *
 * Each se_encode call first checks that no mapped weight file was
 * truncated or rewritten since load (one fstat per file), and refuses a
 * NaN or infinity in a sentence's hidden states or output (SE_E_RANGE
 * naming the text) rather than returning it.
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "ctx.h"
#include "error.h"
#include "kernels.h"
#include "model.h"
#include "model_gemm.h"
#include "model_weights.h"
#include "models/models.h"
#include "tokenizer.h"
#include "unicode.h"

se_ctx_params se_ctx_default_params(void) {
    se_ctx_params p;
    memset(&p, 0, sizeof p);
    p.n_threads = 0;
    p.n_batch_tokens = 4096;
    return p;
}

se_encode_params se_encode_default_params(void) {
    se_encode_params p;
    memset(&p, 0, sizeof p);
    return p;
}

size_t se_encode_dim(const se_model *m, const se_encode_params *p) {
    if (!m) return 0;
    size_t dim = (size_t)m->cfg.dim;
    if (p && p->truncate_dim) {
        if (p->truncate_dim < 0 || (size_t)p->truncate_dim > dim) return 0;
        return (size_t)p->truncate_dim;
    }
    return dim;
}

void se_ctx_free(se_ctx *c) {
    if (!c) return;
    se_threadpool_free(c->tp);
    se_free(c->arena);
    se_tok_session_free(&c->sess);
    se_i32vec_free(&c->tids);
    se_i32vec_free(&c->ttype);
    se_i32vec_free(&c->all_ids);
    se_i32vec_free(&c->all_types);
    se_free(c->text);
    se_free(c);
}

se_status se_ctx_new(const se_model *m, const se_ctx_params *params, se_ctx **out, se_error *err) {
    if (!m || !out) return se_err(err, SE_E_INVALID, "se_ctx_new: model and out must not be NULL");
    *out = NULL;
    se_ctx_params p = params ? *params : se_ctx_default_params();
    if (p.n_threads < 0 || p.n_threads > 256) return se_err(err, SE_E_INVALID, "n_threads %d is out of range", p.n_threads);
    if (p.n_batch_tokens < 0) return se_err(err, SE_E_INVALID, "n_batch_tokens %d is negative", p.n_batch_tokens);
    if (p.n_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        p.n_threads = n < 1 ? 1 : n > 8 ? 8 : (int32_t)n;
    }
    if (p.n_batch_tokens == 0) p.n_batch_tokens = 4096;
    if (p.n_batch_tokens < m->cfg.n_tokens_max) p.n_batch_tokens = m->cfg.n_tokens_max;
    if (p.n_batch_tokens > (1 << 20)) return se_err(err, SE_E_INVALID, "n_batch_tokens %d is too large", p.n_batch_tokens);
    se_ctx *c = se_calloc(1, sizeof *c);
    if (!c) return se_err(err, SE_E_NOMEM, "out of memory");
    c->m = m;
    c->p = p;
    size_t T = (size_t)p.n_batch_tokens, H = (size_t)m->cfg.n_embd, FF = (size_t)m->cfg.n_ff;
    size_t D = (size_t)m->max_stage_dim, P = (size_t)m->cfg.n_pos, NT = (size_t)p.n_threads;
    c->n_batch_tokens = T;
    /* arena layout, in floats; int and size_t arrays are carved at the end */
    size_t AS = se_attn_scratch(P, H / (size_t)m->cfg.n_head); /* per-thread attention scratch */
    size_t nf = 6 * T * H + T * FF + NT * AS + 2 * S_CAP * D;
    size_t QB = m->compute == SE_DTYPE_INT8 ? T * se_int8_kpad(se_model_k_max(m)) + 2 * T * sizeof(float) : 0; /* int8 activations */
    size_t XB = m->bf16dp ? T * se_bf16dp_kpad(se_model_k_max(m)) * sizeof(uint16_t) : 0; /* bf16 activations */
    size_t bytes = nf * sizeof(float) + 2 * T * sizeof(int32_t) + (3 * S_CAP + 1) * sizeof(size_t) + QB + XB + 192;
    c->arena = se_malloc(bytes);
    c->tp = se_threadpool_new(p.n_threads);
    if (!c->arena || !c->tp) {
        se_ctx_free(c);
        return se_err(err, SE_E_NOMEM, "out of memory allocating a %zu-byte activation arena", bytes);
    }
    float *f = c->arena;
    c->buf.x = f, f += T * H;
    c->buf.qkv = f, f += 3 * T * H;
    c->buf.ctx = f, f += T * H;
    c->buf.tmp = f, f += T * H;
    c->buf.ff = f, f += T * FF;
    c->buf.att = f, f += NT * AS;
    c->buf.att_stride = AS;
    c->pooled = f, f += S_CAP * D;
    c->stage = f, f += S_CAP * D;
    /* the size_t arrays start at the next 8-byte boundary and the bf16
     * activations at the next 64-byte one: the 192 spare bytes in `bytes`
     * cover both (at most 7 + 63) */
    size_t *z = (size_t *)(((uintptr_t)f + 7) & ~(uintptr_t)7);
    c->starts = z, z += S_CAP + 1;
    c->first = z, z += S_CAP;
    c->index = z, z += S_CAP;
    c->ids = (int32_t *)(void *)z;
    c->type_ids = c->ids + T;
    if (QB) {
        c->buf.xs = (float *)(void *)(c->type_ids + T);
        c->buf.xz = (int32_t *)(void *)(c->buf.xs + T);
        c->buf.xq = (uint8_t *)(void *)(c->buf.xz + T);
    }
    if (XB) c->buf.xb = (uint16_t *)(((uintptr_t)(c->type_ids + T) + 63) & ~(uintptr_t)63);
    *out = c;
    return SE_OK;
}

/* ==== text preparation: what se_encode feeds the tokenizer ==== */

/* Makes *buf (*cap bytes) hold n bytes. */
static bool text_reserve(char **buf, size_t *cap, size_t n) {
    if (n <= *cap) return true;
    size_t nc = *cap ? *cap : 256;
    while (nc < n) nc *= 2;
    char *t = se_realloc(*buf, nc);
    if (!t) return false;
    *buf = t, *cap = nc;
    return true;
}

void se_text_strip(const char *text, size_t n, size_t *begin, size_t *end) {
    const uint8_t *u = (const uint8_t *)text;
    size_t b = 0, e = n;
    while (b < e) {
        uint32_t cp;
        int k = se_utf8_decode(u + b, e - b, &cp);
        if (!k || !se_uc_is_py_space(cp)) break;
        b += (size_t)k;
    }
    while (e > b) { /* step back over one code point */
        size_t s = e - 1;
        while (s > b && (u[s] & 0xC0) == 0x80) s--;
        uint32_t cp;
        int k = se_utf8_decode(u + s, e - s, &cp);
        if (!k || !se_uc_is_py_space(cp)) break;
        e = s;
    }
    *begin = b, *end = e;
}

/* The scratch of text preparation: the ctx's for se_encode, a call's own
 * for se_encode_tokenize (which has no ctx). */
typedef struct prep {
    char **text;       /* prompt + text, stripped, maybe lowercased */
    size_t *text_cap;
    se_tok_session *sess;
    se_i32vec *ids, *types;
} prep;

/* Builds prompt + text, stripped of Python whitespace at both ends when
 * strip, and lowercased (Python str.lower, without the final-sigma rule)
 * when lower. Both inputs must be valid UTF-8. Result in
 * (*w->text)[0..*len). */
static se_status prepare_text(prep *w, const char *prompt, size_t plen, const char *text, size_t tlen, bool lower,
                              bool strip, size_t *len, se_error *err) {
    size_t n = plen + tlen;
    if (n < plen || !text_reserve(w->text, w->text_cap, (lower ? 2 * n : n) + 8))
        return se_err(err, SE_E_NOMEM, "out of memory");
    char *dst = *w->text;
    char *src = dst + (lower ? n : 0);
    /* with lowercasing, copy to the back half and lower into the front */
    memcpy(src, prompt, plen);
    if (tlen) memcpy(src + plen, text, tlen);
    const uint8_t *u = (const uint8_t *)src;
    size_t b = 0, e = n;
    if (strip) se_text_strip(src, n, &b, &e);
    if (!lower) {
        memmove(dst, src + b, e - b);
        *len = e - b;
        return SE_OK;
    }
    size_t o = 0;
    for (size_t i = b; i < e;) {
        uint32_t cp, lo[2];
        int k = se_utf8_decode(u + i, e - i, &cp);
        if (!k) return se_err(err, SE_E_INTERNAL, "prepare_text: invalid UTF-8 after validation");
        i += (size_t)k;
        int m = se_uc_lower(cp, lo);
        for (int t = 0; t < m; t++) o += (size_t)se_utf8_encode(lo[t], dst + o);
        /* lowercase never grows a code point's encoding beyond 2x; o stays behind i + n */
    }
    *len = o;
    return SE_OK;
}

/* The prompt se_encode prepends for params p: the explicit text, the
 * model's prompt named p->prompt_name, or the model's default prompt; ""
 * when none. Checked to be valid UTF-8. */
static se_status resolve_prompt(const se_model *m, const se_encode_params *p, const char **prompt, size_t *plen,
                                se_error *err) {
    const char *pr = p->prompt;
    if (p->prompt && p->prompt_name) return se_err(err, SE_E_INVALID, "give either a prompt or a prompt name, not both");
    if (p->prompt_name) {
        pr = se_model_prompt_find(m, p->prompt_name);
        if (!pr) return se_err(err, SE_E_INVALID, "the model has no prompt named '%s'", p->prompt_name);
    } else if (!pr && m->cfg.default_prompt_name) {
        pr = se_model_prompt_find(m, m->cfg.default_prompt_name);
    }
    if (!pr) pr = "";
    size_t bad;
    *plen = strlen(pr);
    if (!se_utf8_valid(pr, *plen, &bad)) return se_err(err, SE_E_UTF8, "prompt: invalid UTF-8 at byte %zu", bad);
    *prompt = pr;
    return SE_OK;
}

/* The number of leading tokens of every text that pooling leaves out:
 * with the model's include_prompt false, sentence-transformers'
 * prompt_length (the prompt prepared and tokenized alone, special tokens
 * included and truncated as a text, minus one: [CLS] and the prompt, not
 * the final [SEP]); 0 otherwise. Without specials (ids made with
 * add_special false) it is the prompt's own token count. */
static se_status prompt_pool_tokens(const se_model *m, const char *prompt, size_t plen, bool specials, prep *w, size_t *out,
                                    se_error *err) {
    const se_folder_cfg *cfg = &m->cfg;
    *out = 0;
    if (!plen || cfg->include_prompt) return SE_OK;
    size_t len;
    se_status s = prepare_text(w, prompt, plen, "", 0, cfg->do_lower_case, cfg->strip_text, &len, err);
    if (s != SE_OK) return s;
    if ((s = se_tok_encode(m->tok, *w->text, len, NULL, 0, (size_t)cfg->n_tokens_max, specials, w->sess, w->ids,
                           w->types, NULL, err)) != SE_OK) {
        se_err_prefix(err, "prompt");
        return s;
    }
    *out = w->ids->n && specials ? w->ids->n - 1 : w->ids->n;
    return SE_OK;
}

/* Checks text i (t, tl bytes; NULL only when empty) and prepares prompt +
 * text as se_encode reads it into (*w->text)[0..*len). */
static se_status prepare_input(const se_model *m, const char *prompt, size_t plen, const char *t, size_t tl, size_t i,
                               prep *w, size_t *len, se_error *err) {
    size_t bad;
    if (!t && tl) return se_err(err, SE_E_INVALID, "text %zu is NULL", i);
    if (!t) t = "";
    if (!se_utf8_valid(t, tl, &bad)) return se_err(err, SE_E_UTF8, "text %zu: invalid UTF-8 at byte %zu", i, bad);
    return prepare_text(w, prompt, plen, t, tl, m->cfg.do_lower_case, m->cfg.strip_text, len, err);
}

/* The ctx's preparation scratch. */
static prep ctx_prep(se_ctx *c) {
    prep w = {&c->text, &c->text_cap, &c->sess, &c->tids, &c->ttype};
    return w;
}

/* Prepares text i of a call as se_encode does (prepare_input) and
 * tokenizes it into the ctx's c->tids / c->ttype, truncated to
 * max_seq_length; *cut says whether tokens were cut. Errors name the
 * text. */
static se_status tokenize_input(se_ctx *c, const se_model *m, const char *prompt, size_t plen,
                                const char *const *texts, const size_t *lens, size_t i, prep *w, bool *cut,
                                se_error *err) {
    size_t len, tl = lens ? lens[i] : (texts[i] ? strlen(texts[i]) : 0);
    se_status s = prepare_input(m, prompt, plen, texts[i], tl, i, w, &len, err);
    if (s != SE_OK) return s;
    if ((s = se_tok_encode(m->tok, c->text, len, NULL, 0, (size_t)m->cfg.n_tokens_max, true, &c->sess, &c->tids,
                           &c->ttype, cut, err)) != SE_OK)
        se_err_prefix(err, "text %zu", i);
    return s;
}

/* ==== running batches ==== */

/* L2-normalises v in place: v / max(||v||, 1e-12), as F.normalize. */
static void l2_normalize(float *v, size_t n) {
    float ss = 0.0f;
    for (size_t i = 0; i < n; i++) ss += v[i] * v[i];
    float norm = sqrtf(ss);
    float d = norm > 1e-12f ? norm : 1e-12f;
    for (size_t i = 0; i < n; i++) v[i] /= d;
}

bool se_all_finite(const float *v, size_t n) {
    /* a branch-free OR over the exponent bits (all ones: NaN or infinity),
     * which compilers vectorise */
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &v[i], 4);
        bad |= (uint32_t)((b & 0x7F800000u) == 0x7F800000u);
    }
    return !bad;
}

/* The error for a non-finite value in input i's hidden states or output
 * (what: "text", "pair"). */
static se_status nonfinite(se_error *err, const char *what, size_t i, const char *where) {
    return se_err(err, SE_E_RANGE,
                  "%s %zu: the %s has a NaN or infinite value (the model's weights or config are broken)", what, i, where);
}

se_status se_ctx_forward(se_ctx *c, size_t S, size_t T, const char *what, se_error *err) {
    const se_model *m = c->m;
    const se_folder_cfg *cfg = &m->cfg;
    c->starts[S] = T;
    se_status s = cfg->arch->forward(m, &c->buf, c->tp, c->ids, c->type_ids, c->starts, S, c->p.debug_fn,
                                     c->p.debug_user, err);
    if (s != SE_OK) return s;
    size_t H = (size_t)cfg->n_embd;
    for (size_t i = 0; i < S; i++)
        if (!se_all_finite(c->buf.x + c->starts[i] * H, (c->starts[i + 1] - c->starts[i]) * H))
            return nonfinite(err, what, c->index[i], "transformer's output");
    return SE_OK;
}

/* Runs the S sentences gathered in the ctx and writes their rows of out.
 * A NaN or infinity in a sentence's last hidden states or in its output
 * row is SE_E_RANGE naming the text: the hidden states are checked too
 * because max pooling (x > max ? x : max) steps over NaN, and CLS pooling
 * reads one token only. With p->skip_normalize the pipeline's final
 * Normalize module is left out (one in the middle, before a Dense, stays). */
static se_status run_batch(se_ctx *c, size_t S, size_t T, const se_encode_params *p, float *out, size_t dim_out,
                           se_error *err) {
    const se_model *m = c->m;
    const se_folder_cfg *cfg = &m->cfg;
    se_status s = se_ctx_forward(c, S, T, "text", err);
    if (s != SE_OK) return s;
    size_t H = (size_t)cfg->n_embd, D = (size_t)m->max_stage_dim;
    for (size_t i = 0; i < S; i++)
        se_pool(cfg->pooling, c->buf.x + c->starts[i] * H, c->starts[i + 1] - c->starts[i], H, c->first[i],
                c->pooled + i * D);
    float *cur = c->pooled, *nxt = c->stage;
    size_t dim = (size_t)cfg->pool_dim;
    /* rows are D apart; the GEMM wants them dense, so compact first */
    for (size_t i = 1; i < S; i++) memmove(cur + i * dim, cur + i * D, dim * sizeof *cur);
    int n_stages = cfg->n_stages - (p->skip_normalize && cfg->normalize ? 1 : 0);
    for (int k = 0; k < n_stages; k++) {
        const se_stage *st = &cfg->stages[k];
        if (st->kind == SE_STAGE_DENSE) {
            se_par_gemm(c->tp, m, &c->buf, cur, S, dim, m->dense[k].w, m->dense[k].b, nxt, (size_t)st->n_out);
            dim = (size_t)st->n_out;
            for (size_t i = 0; i < S; i++) {
                float *v = nxt + i * dim;
                switch (st->act) {
                case SE_ACT_TANH: se_tanh(v, dim); break;
                case SE_ACT_RELU: se_relu(v, dim); break;
                case SE_ACT_SIGMOID: se_sigmoid(v, dim); break;
                case SE_ACT_GELU: se_gelu(v, dim); break;
                case SE_ACT_GELU_TANH: se_gelu_tanh(v, dim); break;
                case SE_ACT_IDENTITY: break;
                }
            }
            float *t = cur;
            cur = nxt, nxt = t;
        } else {
            for (size_t i = 0; i < S; i++) l2_normalize(cur + i * dim, dim);
        }
    }
    bool renorm = p->normalize || (cfg->normalize && !p->skip_normalize && dim_out != dim);
    for (size_t i = 0; i < S; i++) {
        float *o = out + c->index[i] * dim_out;
        memcpy(o, cur + i * dim, dim_out * sizeof *o);
        if (renorm) l2_normalize(o, dim_out);
        if (!se_all_finite(o, dim_out)) return nonfinite(err, "text", c->index[i], "embedding");
    }
    return SE_OK;
}

/* A batch being gathered in a ctx, and where its results go: pooled
 * vectors (rows of dim_out floats at each input's index) or, with tokens,
 * every token's last hidden state (the batch's sentences are consecutive
 * inputs, so their states are one block at out_pos). */
typedef struct batch {
    se_ctx *c;
    size_t S, T;                /* sentences and tokens gathered */
    const se_encode_params *p;  /* pooled output */
    size_t dim_out;
    bool tokens;                /* token states instead of pooled vectors */
    size_t out_pos;             /* token states: floats written so far */
    float *out;
} batch;

/* Runs the sentences gathered in b (if any) and empties it. */
static se_status batch_run(batch *b, se_error *err) {
    if (!b->S) return SE_OK;
    se_ctx *c = b->c;
    se_status s;
    if (b->tokens) {
        size_t n = b->T * (size_t)c->m->cfg.n_embd;
        if ((s = se_ctx_forward(c, b->S, b->T, "text", err)) == SE_OK && n) {
            memcpy(b->out + b->out_pos, c->buf.x, n * sizeof *b->out);
            b->out_pos += n;
        }
    } else {
        s = run_batch(c, b->S, b->T, b->p, b->out, b->dim_out, err);
    }
    b->S = b->T = 0;
    return s;
}

/* Adds input `index`'s nt ids (types NULL: all 0), pooled from token
 * `first` on, to the batch, first running the batch when the sequence
 * would overflow the ctx's token budget or sentence cap. nt never exceeds
 * the budget (se_ctx_new raises it to max_seq_length). */
static se_status batch_add(batch *b, const int32_t *ids, const int32_t *types, size_t nt, size_t first, size_t index,
                           se_error *err) {
    se_ctx *c = b->c;
    if (b->S > 0 && (b->T + nt > c->n_batch_tokens || b->S == S_CAP)) {
        se_status s = batch_run(b, err);
        if (s != SE_OK) return s;
    }
    if (nt > 0) { /* a model without special tokens gives "" no ids (and no buffer) */
        memcpy(c->ids + b->T, ids, nt * sizeof *c->ids);
        if (types) memcpy(c->type_ids + b->T, types, nt * sizeof *c->type_ids);
        else memset(c->type_ids + b->T, 0, nt * sizeof *c->type_ids);
    }
    c->starts[b->S] = b->T;
    c->first[b->S] = first < nt ? first : nt;
    c->index[b->S] = index;
    b->S++;
    b->T += nt;
    return SE_OK;
}

/* ==== the public calls ==== */

/* The error for encoding with a cross-encoder, which scores pairs and has
 * no embeddings. */
static se_status not_embedding(const se_folder_cfg *cfg, const char *fn, se_error *err) {
    return se_err(err, SE_E_INVALID, "%s: %s is a cross-encoder (%s), which scores text pairs: use se_predict or se_rank",
                  fn, cfg->root, cfg->head_name);
}

/* Checks the params of a call that pools (se_encode, se_encode_ids) and
 * gives the output dimension. */
static se_status check_pooled_params(const se_model *m, const se_encode_params *p, size_t n, size_t out_cap,
                                     size_t *dim_out, se_error *err) {
    if (p->normalize && p->skip_normalize)
        return se_err(err, SE_E_INVALID, "normalize and skip_normalize contradict each other: give at most one");
    *dim_out = se_encode_dim(m, p);
    if (!*dim_out) return se_err(err, SE_E_RANGE, "truncate_dim %d is outside [1, %d]", p->truncate_dim, m->cfg.dim);
    if (n && out_cap / n < *dim_out)
        return se_err(err, SE_E_BUFFER, "output buffer of %zu floats is too small for %zu x %zu", out_cap, n, *dim_out);
    return SE_OK;
}

se_status se_encode(se_ctx *c, const char *const *texts, const size_t *lens, size_t n, const se_encode_params *params,
                    float *out, size_t out_cap, bool *truncated, se_error *err) {
    if (!c || (n && (!texts || !out))) return se_err(err, SE_E_INVALID, "se_encode: NULL argument");
    se_encode_params p = params ? *params : se_encode_default_params();
    const se_model *m = c->m;
    const se_folder_cfg *cfg = &m->cfg;
    if (cfg->cross_encoder) return not_embedding(cfg, "se_encode", err);
    if (p.pool_starts) return se_err(err, SE_E_INVALID, "se_encode: pool_starts applies to se_encode_ids only");
    /* a weight file truncated since load would SIGBUS through the mapping */
    se_status s = se_model_check_files(m, err);
    if (s != SE_OK) return s;
    size_t dim_out, plen, first;
    if ((s = check_pooled_params(m, &p, n, out_cap, &dim_out, err)) != SE_OK) return s;
    const char *prompt;
    prep w = ctx_prep(c);
    if ((s = resolve_prompt(m, &p, &prompt, &plen, err)) != SE_OK) return s;
    if ((s = prompt_pool_tokens(m, prompt, plen, true, &w, &first, err)) != SE_OK) return s;
    batch b = {c, 0, 0, &p, dim_out, false, 0, out};
    for (size_t i = 0; i < n; i++) {
        bool cut = false;
        if ((s = tokenize_input(c, m, prompt, plen, texts, lens, i, &w, &cut, err)) != SE_OK) return s;
        if (truncated) truncated[i] = cut;
        if ((s = batch_add(&b, c->tids.v, c->ttype.v, c->tids.n, first, i, err)) != SE_OK) return s;
    }
    return batch_run(&b, err);
}

/* Checks n token-id sequences before any is run (so an error leaves no
 * half-written output): each has ids (none only where the model's
 * template adds no special tokens, as se_encode gives such a model's empty
 * text), at most max_seq_length of them, all in the vocabulary, and a
 * pooling start (pool_starts, may be NULL) within it. */
static se_status check_id_inputs(const se_model *m, const int32_t *const *ids, const size_t *lens, size_t n,
                                 const size_t *pool_starts, se_error *err) {
    const se_folder_cfg *cfg = &m->cfg;
    bool empty_ok = se_tok_n_special(m->tok, false) == 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] == 0 && !empty_ok) return se_err(err, SE_E_INVALID, "text %zu has no token ids", i);
        if (lens[i] && !ids[i]) return se_err(err, SE_E_INVALID, "text %zu: NULL ids", i);
        if (lens[i] > (size_t)cfg->n_tokens_max)
            return se_err(err, SE_E_RANGE, "text %zu has %zu token ids; the model reads at most %d (max_seq_length)", i, lens[i],
                          cfg->n_tokens_max);
        if (pool_starts && pool_starts[i] > lens[i])
            return se_err(err, SE_E_RANGE, "text %zu: pool_starts %zu is past its %zu token ids", i, pool_starts[i], lens[i]);
        for (size_t t = 0; t < lens[i]; t++)
            if (ids[i][t] < 0 || ids[i][t] >= cfg->n_vocab)
                return se_err(err, SE_E_RANGE, "text %zu: token id %d at position %zu is outside the vocabulary (%d)", i,
                              ids[i][t], t, cfg->n_vocab);
    }
    return SE_OK;
}

se_status se_encode_ids(se_ctx *c, const int32_t *const *ids, const size_t *lens, size_t n, const se_encode_params *params,
                        float *out, size_t out_cap, se_error *err) {
    if (!c || (n && (!ids || !lens || !out))) return se_err(err, SE_E_INVALID, "se_encode_ids: NULL argument");
    se_encode_params p = params ? *params : se_encode_default_params();
    if (p.prompt || p.prompt_name) return se_err(err, SE_E_INVALID, "se_encode_ids: a prompt does not apply to token ids");
    const se_model *m = c->m;
    const se_folder_cfg *cfg = &m->cfg;
    if (cfg->cross_encoder) return not_embedding(cfg, "se_encode_ids", err);
    se_status s = se_model_check_files(m, err);
    if (s != SE_OK) return s;
    size_t dim_out;
    if ((s = check_pooled_params(m, &p, n, out_cap, &dim_out, err)) != SE_OK) return s;
    if ((s = check_id_inputs(m, ids, lens, n, p.pool_starts, err)) != SE_OK) return s;
    batch b = {c, 0, 0, &p, dim_out, false, 0, out};
    for (size_t i = 0; i < n; i++)
        if ((s = batch_add(&b, ids[i], NULL, lens[i], p.pool_starts ? p.pool_starts[i] : 0, i, err)) != SE_OK) return s;
    return batch_run(&b, err);
}

se_status se_encode_tokenize(const se_model *m, const char *text, size_t len, const se_encode_params *params,
                             const se_tokenize_params *tparams, int32_t *ids, size_t cap, size_t *n_ids,
                             size_t *pool_start, bool *truncated, se_error *err) {
    if (!m || !n_ids || (cap && !ids)) return se_err(err, SE_E_INVALID, "se_encode_tokenize: NULL argument");
    se_encode_params p = params ? *params : se_encode_default_params();
    if (m->cfg.cross_encoder) return not_embedding(&m->cfg, "se_encode_tokenize", err);
    char *buf = NULL;
    size_t buf_cap = 0, plen, tlen, first = 0;
    se_tok_session sess = {0};
    se_i32vec vi = {0}, vt = {0};
    prep w = {&buf, &buf_cap, &sess, &vi, &vt};
    const char *prompt;
    se_status s = resolve_prompt(m, &p, &prompt, &plen, err);
    if (s == SE_OK) s = prompt_pool_tokens(m, prompt, plen, !tparams || tparams->add_special, &w, &first, err);
    if (s == SE_OK) s = prepare_input(m, prompt, plen, text, len, 0, &w, &tlen, err);
    /* the text through the public call, so that every tokenize param
     * (truncation length and side, special tokens) applies as it does there */
    if (s == SE_OK) s = se_tokenize(m->tok, buf ? buf : "", tlen, NULL, 0, tparams, ids, NULL, cap, n_ids, truncated, err);
    if (s == SE_OK && pool_start) *pool_start = first < *n_ids ? first : *n_ids;
    se_free(buf);
    se_tok_session_free(&sess);
    se_i32vec_free(&vi);
    se_i32vec_free(&vt);
    return s;
}

/* Checks the params of a token-state call: only prompts apply. */
static se_status check_token_params(const se_encode_params *p, const char *fn, se_error *err) {
    const char *f = p->truncate_dim ? "truncate_dim" : p->normalize ? "normalize" : p->skip_normalize ? "skip_normalize"
                    : p->pool_starts ? "pool_starts" : NULL;
    if (f) return se_err(err, SE_E_INVALID, "%s: %s does not apply to token embeddings (only pooled vectors have it)", fn, f);
    return SE_OK;
}

/* The error for token states that do not fit the caller's buffer:
 * n_tokens tokens of H floats. */
static se_status tokens_buffer(size_t n_tokens, size_t H, size_t out_cap, se_error *err) {
    return se_err(err, SE_E_BUFFER, "token embeddings need %zu floats (%zu tokens x %zu); the buffer has %zu", n_tokens * H,
                  n_tokens, H, out_cap);
}

se_status se_encode_tokens(se_ctx *c, const char *const *texts, const size_t *lens, size_t n, const se_encode_params *params,
                           float *out, size_t out_cap, size_t *n_tokens, bool *truncated, se_error *err) {
    if (!c || (n && (!texts || !n_tokens || (out_cap && !out))))
        return se_err(err, SE_E_INVALID, "se_encode_tokens: NULL argument");
    se_encode_params p = params ? *params : se_encode_default_params();
    const se_model *m = c->m;
    const se_folder_cfg *cfg = &m->cfg;
    if (cfg->cross_encoder) return not_embedding(cfg, "se_encode_tokens", err);
    se_status s = check_token_params(&p, "se_encode_tokens", err);
    if (s != SE_OK || (s = se_model_check_files(m, err)) != SE_OK) return s;
    size_t plen, H = (size_t)cfg->n_embd, total = 0;
    const char *prompt;
    prep w = ctx_prep(c);
    if ((s = resolve_prompt(m, &p, &prompt, &plen, err)) != SE_OK) return s;
    /* every text is tokenized before any is run, so the needed size is
     * known (and reported) before anything is written */
    c->all_ids.n = c->all_types.n = 0;
    for (size_t i = 0; i < n; i++) {
        bool cut = false;
        if ((s = tokenize_input(c, m, prompt, plen, texts, lens, i, &w, &cut, err)) != SE_OK) return s;
        if (truncated) truncated[i] = cut;
        n_tokens[i] = c->tids.n;
        total += c->tids.n;
        for (size_t k = 0; k < c->tids.n; k++)
            if (!se_i32vec_push(&c->all_ids, c->tids.v[k]) || !se_i32vec_push(&c->all_types, c->ttype.v[k]))
                return se_err(err, SE_E_NOMEM, "out of memory");
    }
    if (out_cap / H < total) return tokens_buffer(total, H, out_cap, err);
    batch b = {c, 0, 0, &p, 0, true, 0, out};
    for (size_t i = 0, off = 0; i < n; off += n_tokens[i], i++)
        if ((s = batch_add(&b, c->all_ids.v + off, c->all_types.v + off, n_tokens[i], 0, i, err)) != SE_OK) return s;
    return batch_run(&b, err);
}

se_status se_encode_ids_tokens(se_ctx *c, const int32_t *const *ids, const size_t *lens, size_t n, float *out, size_t out_cap,
                               se_error *err) {
    if (!c || (n && (!ids || !lens || (out_cap && !out)))) return se_err(err, SE_E_INVALID, "se_encode_ids_tokens: NULL argument");
    const se_model *m = c->m;
    const se_folder_cfg *cfg = &m->cfg;
    if (cfg->cross_encoder) return not_embedding(cfg, "se_encode_ids_tokens", err);
    se_status s = se_model_check_files(m, err);
    if (s != SE_OK || (s = check_id_inputs(m, ids, lens, n, NULL, err)) != SE_OK) return s;
    size_t H = (size_t)cfg->n_embd, total = 0;
    for (size_t i = 0; i < n; i++) total += lens[i];
    if (out_cap / H < total) return tokens_buffer(total, H, out_cap, err);
    batch b = {c, 0, 0, NULL, 0, true, 0, out};
    for (size_t i = 0; i < n; i++)
        if ((s = batch_add(&b, ids[i], NULL, lens[i], 0, i, err)) != SE_OK) return s;
    return batch_run(&b, err);
}
