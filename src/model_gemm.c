/*
 * model_gemm.c - the GEMM y = x w^T + b of every layer, across the thread
 * pool, and the weight packing it uses: the architectures register each
 * weight matrix at bind (se_model_add_gemm); se_model_pack repacks them
 * for the AVX-512 kernels (f32 or bf16 panels, or int8 with per-column
 * scales), per the model's compute dtype, and releases the mapped
 * originals' pages.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "kernels.h"
#include "model_gemm.h"

/* Frees one packed matrix (an se_int8_pack owns three buffers). */
static void free_pack(const se_model *m, void *p) {
    if (p && m->compute == SE_DTYPE_INT8) {
        se_int8_pack *q = p;
        se_free(q->w), se_free(q->scale), se_free(q->colsum);
    }
    se_free(p);
}


typedef struct gemm_job {
    const se_kernels *k;
    const float *x, *w, *b;
    const void *packed; /* f32 or bf16 panels, an se_int8_pack, or NULL */
    bool bf16, int8, bf16dp;
    se_fwd_buf *buf;
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

void se_par_gemm(se_threadpool *tp, const se_model *m, se_fwd_buf *buf, const float *x, size_t M, size_t K, const float *w,
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
    for (size_t i = 0; i < m->n_mats; i++)
        if (m->mats[i].K > k) k = m->mats[i].K;
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
    se_status s = SE_OK;
    for (size_t i = 0; i < m->n_mats && s == SE_OK; i++) s = pack_one(m, m->mats[i].w, m->mats[i].N, m->mats[i].K, err);
    /* the tensors the packed ones superseded (a fused q/k/v's parts) are
     * not read again either */
    for (size_t i = 0; i < m->n_spent && s == SE_OK; i++) release_pages(m, m->spent[i].w, m->spent[i].nbytes);
    return s;
}

se_status se_model_add_gemm(se_model *m, const float *w, size_t N, size_t K, se_error *err) {
    se_gemm_mat *a = se_realloc(m->mats, (m->n_mats + 1) * sizeof *a);
    if (!a) return se_err(err, SE_E_NOMEM, "out of memory");
    m->mats = a;
    m->mats[m->n_mats++] = (se_gemm_mat){w, N, K};
    return SE_OK;
}

se_status se_model_add_spent(se_model *m, const float *w, size_t nbytes, se_error *err) {
    se_spent *a = se_realloc(m->spent, (m->n_spent + 1) * sizeof *a);
    if (!a) return se_err(err, SE_E_NOMEM, "out of memory");
    m->spent = a;
    m->spent[m->n_spent++] = (se_spent){w, nbytes};
    return SE_OK;
}

void se_model_free_packs(se_model *m) {
    for (size_t i = 0; i < m->n_pack; i++) free_pack(m, m->pack_p[i]);
    se_free(m->pack_p);
    se_free(m->pack_w);
    se_free(m->mats);
    se_free(m->spent);
}
