/*
 * threadpool.h - the fixed thread pool an se_ctx owns for intra-op
 * parallelism (no OpenMP: a server with several ctxs must not
 * oversubscribe the machine).
 */
#ifndef SE_THREADPOOL_H
#define SE_THREADPOOL_H

#include <stddef.h>

typedef struct se_threadpool se_threadpool;

/* A task: called as fn(arg, task_index, thread_index) for every task index
 * in [0, n_tasks); thread_index is in [0, n_threads). */
typedef void (*se_task_fn)(void *arg, size_t task, int thread);

/* Creates a pool of n_threads (the calling thread counts as one, so
 * n_threads - 1 workers are started). Returns NULL on failure. */
se_threadpool *se_threadpool_new(int n_threads);

/* Joins the workers and frees the pool. NULL is a no-op. */
void se_threadpool_free(se_threadpool *tp);

int se_threadpool_n_threads(const se_threadpool *tp);

/* Runs n_tasks tasks across the pool and the caller; returns when all are
 * done. Tasks are handed out dynamically, so each task must write disjoint
 * outputs. Not reentrant: one caller at a time (the ctx's thread). */
void se_threadpool_run(se_threadpool *tp, size_t n_tasks, se_task_fn fn, void *arg);

#endif
