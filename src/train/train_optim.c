/*
 * train/train_optim.c - AdamW (torch.optim.AdamW, amsgrad off) with Hugging
 * Face's linear warm-up and decay schedule and global-norm gradient
 * clipping, in the order Trainer runs them each step:
 *
 *   clip_grad_norm_:  n = ||all gradients||; g *= min(1, max / (n + 1e-6))
 *   AdamW.step, at lr = peak * schedule(step), t = step + 1:
 *     w *= 1 - lr * weight_decay           (not for no_decay parameters)
 *     m = beta1 m + (1 - beta1) g
 *     v = beta2 v + (1 - beta2) g^2
 *     w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *   scheduler.step:   schedule(s) = s / warmup while s < warmup, then
 *                     max(0, (total - s) / (total - warmup))
 *
 * Element-wise in float32 in torch's operation order, so a step matches
 * PyTorch's to rounding; on the model's threads in chunks of the arenas
 * (the same bits for every thread count), 8 lanes at a time where the
 * CPU has AVX2 (se_tk_adamw_update_avx2: the same bits as the scalar).
 */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "kernels.h"
#include "threadpool.h"
#include "train/train_adamw.h"
#include "train/train_kernels.h"

se_adamw_params se_adamw_default_params(void) {
    return (se_adamw_params){.lr = 5e-5f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .max_grad_norm = 1.0f};
}

se_status se_adamw_new(const se_tmodel *m, const se_adamw_params *p, se_adamw **out, se_error *err) {
    if (!m || !p || !out) return se_err(err, SE_E_INVALID, "se_adamw_new: NULL argument");
    *out = NULL;
    if (!(p->lr > 0.0f) || !isfinite(p->lr)) return se_err(err, SE_E_INVALID, "AdamW: lr %g is not > 0", (double)p->lr);
    if (!(p->beta1 >= 0.0f && p->beta1 < 1.0f))
        return se_err(err, SE_E_INVALID, "AdamW: beta1 %g outside [0, 1)", (double)p->beta1);
    if (!(p->beta2 >= 0.0f && p->beta2 < 1.0f))
        return se_err(err, SE_E_INVALID, "AdamW: beta2 %g outside [0, 1)", (double)p->beta2);
    if (!(p->eps > 0.0f)) return se_err(err, SE_E_INVALID, "AdamW: eps %g is not > 0", (double)p->eps);
    if (!(p->weight_decay >= 0.0f))
        return se_err(err, SE_E_INVALID, "AdamW: weight_decay %g is negative", (double)p->weight_decay);
    if (p->total_steps && p->warmup_steps > p->total_steps)
        return se_err(err, SE_E_INVALID, "AdamW: warmup_steps %zu past total_steps %zu", p->warmup_steps, p->total_steps);
    se_adamw *o = se_calloc(1, sizeof *o);
    if (o) {
        o->m = se_calloc(m->n_floats ? m->n_floats : 1, sizeof *o->m);
        o->v = se_calloc(m->n_floats ? m->n_floats : 1, sizeof *o->v);
    }
    if (!o || !o->m || !o->v) {
        se_adamw_free(o);
        return se_err(err, SE_E_NOMEM, "AdamW: out of memory for the moments of %zu parameters", m->n_floats);
    }
    o->p = *p, o->n = m->n_floats;
    *out = o;
    return SE_OK;
}

double se_adamw_lr(const se_adamw *o) {
    const se_adamw_params *p = &o->p;
    double s = (double)o->step, f;
    if (o->step < p->warmup_steps) f = s / (double)(p->warmup_steps ? p->warmup_steps : 1);
    else if (!p->total_steps) f = 1.0;
    else {
        double d = (double)(p->total_steps > p->warmup_steps ? p->total_steps - p->warmup_steps : 1);
        f = ((double)p->total_steps - s) / d;
        f = f > 0.0 ? f : 0.0;
    }
    return p->lr * f;
}

size_t se_adamw_steps(const se_adamw *o) {
    return o->step;
}

#define OPT_CHUNK 65536 /* floats of one task of the step (the norm's partial sums follow it) */

/* One step's work on the pool: chunks of OPT_CHUNK floats of the arenas. */
typedef struct step_job {
    se_adamw *o;
    se_tmodel *m;
    double *part; /* per chunk: its sum of squared gradients */
    se_tk_adamw_consts c;
    bool avx2;
} step_job;

/* The sum of squares of chunk task's gradients, in double (se_tk_sumsq's
 * order). */
static void norm_task(void *arg, size_t task, int thread) {
    (void)thread;
    const step_job *j = arg;
    size_t a = task * OPT_CHUNK, b = a + OPT_CHUNK < j->m->n_floats ? a + OPT_CHUNK : j->m->n_floats;
    const float *g = j->m->g_arena + a;
    j->part[task] = j->avx2 ? se_tk_sumsq_avx2(g, b - a) : se_tk_sumsq_ref(g, b - a);
}

/* The update of chunk task, tensor by tensor (their weight decay differs). */
static void update_task(void *arg, size_t task, int thread) {
    (void)thread;
    const step_job *j = arg;
    const se_tmodel *m = j->m;
    size_t a = task * OPT_CHUNK, b = a + OPT_CHUNK < m->n_floats ? a + OPT_CHUNK : m->n_floats, off = 0;
    for (size_t i = 0; i < m->n_p && off < b; off += m->p[i].n, i++) {
        size_t s = off > a ? off : a, e = off + m->p[i].n < b ? off + m->p[i].n : b;
        if (s >= e) continue;
        se_tk_adamw_consts c = j->c;
        c.decay_on = !m->p[i].no_decay;
        (j->avx2 ? se_tk_adamw_update_avx2 : se_tk_adamw_update_ref)(m->w_arena + s, m->g_arena + s, j->o->m + s,
                                                                     j->o->v + s, e - s, &c);
    }
}

se_status se_adamw_step(se_adamw *o, se_tmodel *m, double *grad_norm, se_error *err) {
    if (!o || !m) return se_err(err, SE_E_INVALID, "se_adamw_step: NULL argument");
    if (m->n_floats != o->n) return se_err(err, SE_E_INVALID, "se_adamw_step: the optimiser is another model's");
    /* the global norm: the square root of the sum of squares, summed in
     * chunks of OPT_CHUNK (in double), then the chunks in order, so any
     * thread count gives the same bits (clip_grad_norm_ takes the norm of
     * the per-tensor norms: the same number to double rounding) */
    size_t n_chunks = (m->n_floats + OPT_CHUNK - 1) / OPT_CHUNK;
    step_job j = {.o = o, .m = m, .avx2 = se_kernels_get()->gemm != se_gemm_ref};
    j.part = se_malloc((n_chunks ? n_chunks : 1) * sizeof *j.part);
    if (!j.part) return se_err(err, SE_E_NOMEM, "AdamW: out of memory");
    se_threadpool_run(m->pool, n_chunks, norm_task, &j);
    double ss = 0.0;
    for (size_t k = 0; k < n_chunks; k++) ss += j.part[k];
    se_free(j.part);
    if (!isfinite(ss))
        for (size_t i = 0; i < m->n_p; i++) {
            const se_tparam *t = &m->p[i];
            double s = 0.0;
            for (size_t k = 0; k < t->n; k++) s += (double)t->g[k] * t->g[k];
            if (!isfinite(s)) return se_err(err, SE_E_RANGE, "AdamW: the gradient of %s is not finite", t->name);
        }
    double norm = sqrt(ss);
    if (grad_norm) *grad_norm = norm;
    float coef = 1.0f;
    if (o->p.max_grad_norm > 0.0f) {
        coef = (float)(o->p.max_grad_norm / (norm + 1e-6));
        coef = coef < 1.0f ? coef : 1.0f;
    }
    float lr = (float)se_adamw_lr(o), b1 = o->p.beta1, b2 = o->p.beta2;
    o->step++;
    double bc1 = 1.0 - pow((double)b1, (double)o->step), bc2 = 1.0 - pow((double)b2, (double)o->step);
    j.c = (se_tk_adamw_consts){.coef = coef, .decay = 1.0f - lr * o->p.weight_decay, .b1 = b1, .omb1 = 1.0f - b1,
                               .b2 = b2, .omb2 = 1.0f - b2, .bc2_sqrt = (float)sqrt(bc2), .eps = o->p.eps,
                               .neg_step = -(float)(lr / bc1)};
    se_threadpool_run(m->pool, n_chunks, update_task, &j);
    return SE_OK;
}

void se_adamw_free(se_adamw *o) {
    if (!o) return;
    se_free(o->m);
    se_free(o->v);
    se_free(o);
}
