/*
 * test_eval_ir_metrics.c - se_ir_evaluate against values computed by hand: equal
 * scores ranked by document id descending, graded and binary nDCG,
 * score-0 qrels non-relevant, queries without a relevant document skipped,
 * a query without a run counted as an empty ranking, the 100 cut-off, and
 * the errors that name the query.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sembed.h"
#include "test.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-9)

/* The shared example (hand computation in each comment; l2(x) = log2 x):
 *   q1: relevant d1, d3. hits d1 .5, d2 .9, d3 .9, d4 .1 rank as
 *       d3 d2 d1 d4 (the .9 tie: "d3" > "d2" first) -> relevant at 1, 3.
 *       nDCG = (1 + 1/l2 4) / (1 + 1/l2 3) = 0.91972078914818...
 *       MRR 1, R@1 1/2, R@10 1, AP (1/1 + 2/3) / 2, P@1 1, P@10 2/10.
 *   q2: qrels dA 2, dB 1, dC 0 (judged non-relevant), dD 1 (not found):
 *       3 relevant. hits dC .9, dB .8, dA .7, dX .6 -> relevant at 2, 3.
 *       graded nDCG = (1/l2 3 + 2/l2 4) / (2 + 1/l2 3 + 1/l2 4) = 0.52090908514030...
 *       binary nDCG = (1/l2 3 + 1/l2 4) / (1 + 1/l2 3 + 1/l2 4) = 0.53072127397724...
 *       MRR 1/2, R@1 0, R@10 2/3, AP (1/2 + 2/3) / 3, P@1 0, P@10 2/10.
 *   q3: only a score-0 qrel: not evaluated; its run is skipped.
 *   q4: relevant dQ, no run: zeros.
 *   Means over q1, q2, q4 (3 queries). */
static const se_ir_hit h1[] = {{"d1", .5f}, {"d2", .9f}, {"d3", .9f}, {"d4", .1f}};
static const se_ir_hit h2[] = {{"dC", .9f}, {"dB", .8f}, {"dA", .7f}, {"dX", .6f}};
static const se_ir_hit h3[] = {{"dZ", .9f}};
static const se_ir_run runs[] = {{"q1", h1, 4}, {"q2", h2, 4}, {"q3", h3, 1}};
static const se_ir_qrel qrels[] = {{"q1", "d1", 1}, {"q1", "d3", 1}, {"q2", "dA", 2}, {"q2", "dB", 1},
                                   {"q2", "dC", 0}, {"q2", "dD", 1}, {"q3", "dZ", 0}, {"q4", "dQ", 1}};

TEST(test_ir_graded_ties) {
    se_ir_metrics m;
    se_error err = {0};
    CHECK(se_ir_evaluate(runs, 3, qrels, 8, NULL, &m, &err) == SE_OK);
    CHECK(m.n_queries == 3 && m.n_no_run == 1 && m.n_skipped_runs == 1 && m.n_relevant == 6);
    CHECK_MSG(NEAR(m.ndcg_at_10, (0.9197207891481876 + 0.5209090851403014) / 3), "ndcg %.12f", m.ndcg_at_10);
    CHECK(NEAR(m.mrr_at_10, 1.5 / 3));
    CHECK(NEAR(m.recall_at_1, 0.5 / 3));
    CHECK(NEAR(m.recall_at_10, (1 + 2.0 / 3) / 3));
    CHECK(NEAR(m.recall_at_100, (1 + 2.0 / 3) / 3));
    CHECK_MSG(NEAR(m.map_at_100, ((1 + 2.0 / 3) / 2 + (0.5 + 2.0 / 3) / 3) / 3), "map %.12f", m.map_at_100);
    CHECK(NEAR(m.precision_at_1, 1.0 / 3));
    CHECK(NEAR(m.precision_at_10, 0.4 / 3));
    CHECK(NEAR(m.accuracy_at_1, 1.0 / 3));
    CHECK(NEAR(m.accuracy_at_3, 2.0 / 3) && NEAR(m.accuracy_at_5, 2.0 / 3) && NEAR(m.accuracy_at_10, 2.0 / 3));
}

TEST(test_ir_binary_ndcg) {
    se_ir_params p = se_ir_default_params();
    p.binary_ndcg = true;
    se_ir_metrics m;
    CHECK(se_ir_evaluate(runs, 3, qrels, 8, &p, &m, NULL) == SE_OK);
    CHECK_MSG(NEAR(m.ndcg_at_10, (0.9197207891481876 + 0.5307212739772434) / 3), "ndcg %.12f", m.ndcg_at_10);
    CHECK(NEAR(m.mrr_at_10, 1.5 / 3)); /* the rest does not depend on it */
}

/* The input order of hits does not matter (the tie rule ranks them). */
TEST(test_ir_order_free) {
    const se_ir_hit r1[] = {{"d4", .1f}, {"d3", .9f}, {"d1", .5f}, {"d2", .9f}};
    const se_ir_run rr[] = {{"q1", r1, 4}, {"q2", h2, 4}, {"q3", h3, 1}};
    se_ir_metrics m;
    CHECK(se_ir_evaluate(rr, 3, qrels, 8, NULL, &m, NULL) == SE_OK);
    CHECK(NEAR(m.ndcg_at_10, (0.9197207891481876 + 0.5209090851403014) / 3));
}

/* 150 hits, all tied at 0: ranked by id descending, "h149" .. "h000" with
 * zero-padded ids; the relevant ones are h149 (rank 1), h140 (rank 10),
 * h050 (rank 100) and h049 (rank 101: past every cut-off).
 *   R@1 1/4, R@10 2/4, R@100 3/4, P@1 1, P@10 2/10, MRR 1,
 *   AP@100 = (1/1 + 2/10 + 3/100) / min(100, 4) = 1.23 / 4,
 *   nDCG@10 = (1 + 1/l2 11) / (1 + 1/l2 3 + 1/l2 4 + 1/l2 5). */
TEST(test_ir_cutoffs) {
    static char ids[150][16];
    se_ir_hit hits[150];
    for (int i = 0; i < 150; i++) snprintf(ids[i], sizeof ids[i], "h%03d", i), hits[i].doc_id = ids[i], hits[i].score = 0;
    const se_ir_run rr = {"q", hits, 150};
    const se_ir_qrel qq[] = {{"q", "h149", 1}, {"q", "h140", 1}, {"q", "h050", 1}, {"q", "h049", 1}};
    se_ir_metrics m;
    CHECK(se_ir_evaluate(&rr, 1, qq, 4, NULL, &m, NULL) == SE_OK);
    CHECK(NEAR(m.recall_at_1, .25) && NEAR(m.recall_at_10, .5) && NEAR(m.recall_at_100, .75));
    CHECK(NEAR(m.precision_at_1, 1) && NEAR(m.precision_at_10, .2) && NEAR(m.mrr_at_10, 1));
    CHECK_MSG(NEAR(m.map_at_100, 1.23 / 4), "map %.12f", m.map_at_100);
    double idcg = 1 + 1 / log2(3) + 1 / log2(4) + 1 / log2(5);
    CHECK_MSG(NEAR(m.ndcg_at_10, (1 + 1 / log2(11)) / idcg), "ndcg %.12f", m.ndcg_at_10);
}

/* Each bad input is SE_E_INVALID with a message naming the query. */
TEST(test_ir_errors) {
    se_ir_metrics m;
    se_error err = {0};
    const se_ir_qrel twice[] = {{"q1", "d1", 1}, {"q1", "d1", 2}};
    CHECK(se_ir_evaluate(runs, 1, twice, 2, NULL, &m, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "'q1'") && strstr(err.msg, "'d1'") && strstr(err.msg, "twice"), "%s", err.msg);
    const se_ir_hit dup[] = {{"d1", .5f}, {"d1", .4f}};
    const se_ir_run rdup = {"q1", dup, 2};
    CHECK(se_ir_evaluate(&rdup, 1, qrels, 8, NULL, &m, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "'q1'") && strstr(err.msg, "'d1'") && strstr(err.msg, "retrieved twice"), "%s", err.msg);
    const se_ir_run two[] = {{"q2", h2, 4}, {"q2", h2, 4}};
    CHECK(se_ir_evaluate(two, 2, qrels, 8, NULL, &m, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "'q2'") && strstr(err.msg, "two rankings"), "%s", err.msg);
    const se_ir_hit nan_hit[] = {{"d1", NAN}};
    const se_ir_run rnan = {"q1", nan_hit, 1};
    CHECK(se_ir_evaluate(&rnan, 1, qrels, 8, NULL, &m, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "'q1'") && strstr(err.msg, "NaN"), "%s", err.msg);
    const se_ir_qrel none[] = {{"q1", "d1", 0}};
    CHECK(se_ir_evaluate(runs, 1, none, 1, NULL, &m, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "no query has a relevant document"), "%s", err.msg);
    CHECK(se_ir_evaluate(NULL, 1, qrels, 8, NULL, &m, &err) == SE_E_INVALID);
    CHECK(se_ir_evaluate(runs, 3, qrels, 8, NULL, NULL, &err) == SE_E_INVALID);
}

int main(void) {
    RUN(test_ir_graded_ties);
    RUN(test_ir_binary_ndcg);
    RUN(test_ir_order_free);
    RUN(test_ir_cutoffs);
    RUN(test_ir_errors);
    return test_report("test_eval_ir_metrics");
}
