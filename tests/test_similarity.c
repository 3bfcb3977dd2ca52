/*
 * test_similarity.c - the similarity matrix against hand-computed values
 * for each of sentence-transformers' similarity functions.
 */
#include "sembed.h"
#include "test.h"

TEST(matrix) {
    float a[2 * 3] = {1, 0, 0, 3, 4, 0};
    float b[3 * 3] = {1, 0, 0, 0, 2, 0, 0, 0, 0};
    float out[6];
    se_error err;
    CHECK(se_similarity_matrix(SE_SIM_COSINE, a, 2, b, 3, 3, out, &err) == SE_OK);
    float cos[6] = {1, 0, 0, 0.6f, 0.8f, 0};
    CHECK_CLOSE(out, cos, 6, 1e-6, 1e-6, "cosine");
    CHECK(se_similarity_matrix(SE_SIM_DOT, a, 2, b, 3, 3, out, &err) == SE_OK);
    float dot[6] = {1, 0, 0, 3, 8, 0};
    CHECK_CLOSE(out, dot, 6, 1e-6, 1e-6, "dot");
    CHECK(se_similarity_matrix(SE_SIM_EUCLIDEAN, a, 2, b, 3, 3, out, &err) == SE_OK);
    float euc[6] = {0, -2.2360680f, -1, -4.4721360f, -3.6055513f, -5};
    CHECK_CLOSE(out, euc, 6, 1e-6, 1e-6, "euclidean");
    CHECK(se_similarity_matrix(SE_SIM_MANHATTAN, a, 2, b, 3, 3, out, &err) == SE_OK);
    float man[6] = {0, -3, -1, -6, -5, -7};
    CHECK_CLOSE(out, man, 6, 1e-6, 1e-6, "manhattan");
    CHECK(se_similarity_matrix((se_similarity)9, a, 2, b, 3, 3, out, &err) == SE_E_INVALID);
    CHECK(!strcmp(se_similarity_name(SE_SIM_MANHATTAN), "manhattan"));
    CHECK(!strcmp(se_status_str(SE_E_UTF8), "SE_E_UTF8") && !strcmp(se_version(), SE_VERSION_STRING));
}

int main(void) {
    RUN(matrix);
    return test_report("test_similarity");
}
