/*
 * test_threadpool.c - the ctx's thread pool runs every task exactly once,
 * across many runs, with any pool size.
 */
#include "test.h"
#include "threadpool.h"

typedef struct counts {
    int hits[1000];
    int threads_seen[16];
} counts;

static void task(void *arg, size_t t, int thread) {
    counts *c = arg;
    c->hits[t]++; /* each index is handed out once, so no race */
    if (thread >= 0 && thread < 16) __atomic_fetch_add(&c->threads_seen[thread], 1, __ATOMIC_RELAXED);
}

TEST(every_task_once) {
    for (int nt = 1; nt <= 4; nt++) {
        se_threadpool *tp = se_threadpool_new(nt);
        CHECK(tp != NULL && se_threadpool_n_threads(tp) == nt);
        for (int rep = 0; rep < 200; rep++) {
            counts c = {{0}, {0}};
            size_t n = (size_t)(rep * 7 % 1000);
            se_threadpool_run(tp, n, task, &c);
            int ok = 1;
            for (size_t i = 0; i < 1000; i++) ok &= c.hits[i] == (i < n ? 1 : 0);
            CHECK_MSG(ok, "pool %d run %d: a task ran twice or not at all", nt, rep);
            for (int t = nt; t < 16; t++) CHECK(c.threads_seen[t] == 0);
        }
        se_threadpool_free(tp);
    }
    se_threadpool_free(NULL);
}

int main(void) {
    RUN(every_task_once);
    return test_report("test_threadpool");
}
