/*
 * threadpool.c - a small fixed pthread pool.
 *
 * A run publishes (fn, arg, n_tasks) under the mutex and bumps a
 * generation counter; workers wake, take task indices from a shared
 * counter (under the same mutex: tasks are coarse, a GEMM column block or
 * an attention head, so the lock is not contended), and the last one to
 * finish signals the caller, which also takes tasks itself.
 *
 * A forward pass makes ~10 runs per layer, milliseconds apart or less, so
 * before sleeping on a condition variable a waiter (worker or caller) spins
 * for a few microseconds on an atomic mirror of the counter it waits for.
 * The mutex protocol is unchanged; the spin only saves futex sleeps and
 * wake-ups.
 */
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>

#include "alloc.h"

struct se_threadpool {
    int n_threads;
    pthread_t *threads;        /* (n_threads - 1) workers */
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    unsigned long generation;  /* bumped by each run */
    int stop;
    se_task_fn fn;
    void *arg;
    size_t n_tasks, next, finished;
    atomic_ulong gen_pub;      /* generation, published for spinners */
    atomic_size_t fin_pub;     /* finished, published for the spinning caller */
    atomic_int stop_pub;
};

/* Spin iterations before sleeping (each a CPU pause, ~20-50 ns). */
#define SPIN 2000

/* A polite busy-wait step. */
static inline void cpu_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

typedef struct worker_arg {
    se_threadpool *tp;
    int index;
} worker_arg;

/* Takes and runs tasks until none are left. Called with mu held; returns
 * with mu held. */
static void drain(se_threadpool *tp, int thread) {
    while (tp->next < tp->n_tasks) {
        size_t t = tp->next++;
        se_task_fn fn = tp->fn;
        void *arg = tp->arg;
        pthread_mutex_unlock(&tp->mu);
        fn(arg, t, thread);
        pthread_mutex_lock(&tp->mu);
        ++tp->finished;
        atomic_store_explicit(&tp->fin_pub, tp->finished, memory_order_release);
        if (tp->finished == tp->n_tasks) pthread_cond_broadcast(&tp->done);
    }
}

static void *worker(void *p) {
    se_threadpool *tp = ((worker_arg *)p)->tp;
    int index = ((worker_arg *)p)->index;
    se_free(p);
    pthread_mutex_lock(&tp->mu);
    unsigned long seen = tp->generation;
    for (;;) {
        while (!tp->stop && tp->generation == seen) {
            pthread_mutex_unlock(&tp->mu);
            for (int i = 0; i < SPIN; i++) {
                if (atomic_load_explicit(&tp->gen_pub, memory_order_acquire) != seen ||
                    atomic_load_explicit(&tp->stop_pub, memory_order_acquire))
                    break;
                cpu_pause();
            }
            pthread_mutex_lock(&tp->mu);
            if (!tp->stop && tp->generation == seen) pthread_cond_wait(&tp->wake, &tp->mu);
        }
        if (tp->stop) break;
        seen = tp->generation;
        drain(tp, index);
    }
    pthread_mutex_unlock(&tp->mu);
    return NULL;
}

se_threadpool *se_threadpool_new(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    se_threadpool *tp = se_calloc(1, sizeof *tp);
    if (!tp) return NULL;
    tp->n_threads = 1;
    pthread_mutex_init(&tp->mu, NULL);
    atomic_init(&tp->gen_pub, 0);
    atomic_init(&tp->fin_pub, 0);
    atomic_init(&tp->stop_pub, 0);
    pthread_cond_init(&tp->wake, NULL);
    pthread_cond_init(&tp->done, NULL);
    if (n_threads > 1) {
        tp->threads = se_calloc((size_t)n_threads - 1, sizeof *tp->threads);
        if (!tp->threads) {
            se_threadpool_free(tp);
            return NULL;
        }
        for (int i = 1; i < n_threads; i++) {
            worker_arg *wa = se_malloc(sizeof *wa);
            if (!wa) break;
            wa->tp = tp, wa->index = i;
            if (pthread_create(&tp->threads[i - 1], NULL, worker, wa) != 0) {
                se_free(wa);
                break;
            }
            tp->n_threads++;
        }
        if (tp->n_threads != n_threads) {
            se_threadpool_free(tp);
            return NULL;
        }
    }
    return tp;
}

void se_threadpool_free(se_threadpool *tp) {
    if (!tp) return;
    pthread_mutex_lock(&tp->mu);
    tp->stop = 1;
    atomic_store(&tp->stop_pub, 1);
    pthread_cond_broadcast(&tp->wake);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 0; i < tp->n_threads - 1; i++) pthread_join(tp->threads[i], NULL);
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->wake);
    pthread_cond_destroy(&tp->done);
    se_free(tp->threads);
    se_free(tp);
}

int se_threadpool_n_threads(const se_threadpool *tp) { return tp ? tp->n_threads : 1; }

void se_threadpool_run(se_threadpool *tp, size_t n_tasks, se_task_fn fn, void *arg) {
    if (n_tasks == 0) return;
    if (!tp || tp->n_threads == 1 || n_tasks == 1) {
        for (size_t t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&tp->mu);
    tp->fn = fn, tp->arg = arg;
    tp->n_tasks = n_tasks, tp->next = 0, tp->finished = 0;
    atomic_store_explicit(&tp->fin_pub, 0, memory_order_relaxed);
    tp->generation++;
    atomic_store_explicit(&tp->gen_pub, tp->generation, memory_order_release);
    pthread_cond_broadcast(&tp->wake);
    drain(tp, 0);
    while (tp->finished < tp->n_tasks) {
        pthread_mutex_unlock(&tp->mu);
        for (int i = 0; i < SPIN && atomic_load_explicit(&tp->fin_pub, memory_order_acquire) < n_tasks; i++) cpu_pause();
        pthread_mutex_lock(&tp->mu);
        if (tp->finished < tp->n_tasks) pthread_cond_wait(&tp->done, &tp->mu);
    }
    pthread_mutex_unlock(&tp->mu);
}
