/*
 * quickstart.c - the library in one page: load a model, encode three
 * sentences, print their dimension and pairwise similarities.
 *
 *   ./quickstart [MODEL_DIR]      (default models/use-lite)
 *
 * Every call's status is checked and its error message printed; the
 * embedding size comes from the model (se_encode_dim), never a constant.
 * Build it as the README's "The library" section shows.
 */
#include <sembed.h>
#include <stdio.h>
#include <stdlib.h>

/* Loads the model in argv[1], encodes three sentences and prints the
 * similarity of each pair. Returns 0, or 1 with the error on stderr. */
int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "models/use-lite";
    const char *texts[] = {"A man is playing a guitar.", "A man plays the guitar.", "The stock market fell sharply."};
    enum { N = 3 };
    se_error err;
    se_model *m = NULL;
    se_ctx *c = NULL;
    se_model_info info;
    float *emb = NULL, sim[N * N];
    size_t dim;
    int rc = 1;

    if (se_model_load(dir, NULL, &m, &err) != SE_OK) goto fail;
    if (se_ctx_new(m, NULL, &c, &err) != SE_OK) goto fail;
    if (se_model_get_info(m, &info, &err) != SE_OK) goto fail;
    dim = se_encode_dim(m, NULL); /* 512 for USE lite, 384 for MiniLM */
    emb = malloc(N * dim * sizeof *emb);
    if (!emb) { fputs("out of memory\n", stderr); goto done; }
    if (se_encode(c, texts, NULL, N, NULL, emb, N * dim, NULL, &err) != SE_OK) goto fail;
    if (se_similarity_matrix(info.similarity, emb, N, emb, N, dim, sim, &err) != SE_OK) goto fail;

    printf("dim %zu, similarity %s\n", dim, se_similarity_name(info.similarity));
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) printf("%.4f  %s | %s\n", sim[i * N + j], texts[i], texts[j]);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "%s: %s\n", se_status_str(err.code), err.msg);
done:
    free(emb);
    se_ctx_free(c);
    se_model_free(m);
    return rc;
}
