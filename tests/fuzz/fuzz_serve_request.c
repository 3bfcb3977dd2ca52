/*
 * fuzz_serve_request.c - fuzz target for `sembed serve`'s request binding
 * (sv_request_parse, src/serve_req.c; STYLE rule 39): the JSON bodies of
 * POST /v1/embeddings, /embed, /tokenize, /rerank, /predict, /v1/rerank,
 * /similarity, /embed_all and /decode, the server's untrusted input after libmicrohttpd's HTTP
 * parsing.
 *
 * The first byte picks the route and the auto-truncate default (bit 2):
 * 0x70..0x73 TEI embed_all, 0x74..0x77 TEI decode; other bytes below 0x80,
 * byte % 3 (OpenAI embeddings, TEI embed, TEI tokenize: the corpus's first
 * seeds); from 0x80, 3 + byte % 4 (TEI rerank, TEI predict, Jina rerank,
 * TEI similarity). The rest is the body.
 * Beyond "never crash, never leak", the target checks what the binding
 * promises:
 *   - success: 1..max inputs, each a non-empty text (no NUL byte, as JSON
 *     strings with \u0000 are refused) or a non-empty list of ids in
 *     [0, 2^31); tokenize takes texts only; dimensions >= 0; decode
 *     takes id lists only, which may be empty;
 *     the rerank, predict and similarity routes take texts only; rerank
 *     has a non-empty query and is bound as TEI's or Jina's by its body;
 *     a /predict pair's second text is non-empty; similarity has the
 *     source sentence and at least one sentence;
 *   - failure: status 400, 422 or 503, a non-empty message, and the request
 *     left zeroed (nothing to free).
 * A broken promise calls __builtin_trap(). The response writers
 * (sv_buf_*) are run over what was bound, and base64 output is checked
 * for its length.
 *
 * Build modes: with -DSE_FUZZ_MAIN (libFuzzer) this file defines
 * LLVMFuzzerTestOneInput; always it defines se_fuzz_serve_request, which
 * tests/fuzz/replay.c links to replay the committed corpus
 * (tests/fuzz/corpus/fuzz_serve_request/).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

int se_fuzz_serve_request(const uint8_t *data, size_t size);

/* Traps (a fuzzer-visible crash) when cond is false. Harness only. */
#define FUZZ_REQUIRE(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

#define MAX_INPUTS 64

/* Binds one input and checks the promises above. */
static int fuzz_one(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    sv_route route = (sv_route)(data[0] >= 0x70 && data[0] < 0x74   ? SV_ROUTE_TEI_EMBED_ALL
                                : data[0] >= 0x74 && data[0] < 0x78 ? SV_ROUTE_TEI_DECODE
                                : data[0] < 0x80                    ? data[0] % 3
                                                                    : 3 + data[0] % 4);
    bool auto_truncate = data[0] & 4;
    sv_request q;
    sv_error e;
    memset(&e, 0, sizeof e);
    if (!sv_request_parse(route, (const char *)data + 1, size - 1, MAX_INPUTS, auto_truncate, &q, &e)) {
        FUZZ_REQUIRE(e.status == 400 || e.status == 422 || e.status == 503);
        FUZZ_REQUIRE(e.msg[0] != 0);
        FUZZ_REQUIRE(!q.root && !q.inputs && q.n_inputs == 0);
        return 0;
    }
    FUZZ_REQUIRE(q.root && q.n_inputs >= 1 && q.n_inputs <= MAX_INPUTS);
    FUZZ_REQUIRE(q.dimensions >= 0);
    sv_buf b = {0};
    /* the cross-encoder and similarity routes: texts only; rerank has a query, a
     * Jina body on /rerank is bound as Jina's; /predict pairs are non-empty */
    bool texts_only = route >= SV_ROUTE_TEI_RERANK && route <= SV_ROUTE_TEI_SIMILARITY;
    bool decode = route == SV_ROUTE_TEI_DECODE;
    bool rerank_route = route == SV_ROUTE_TEI_RERANK || route == SV_ROUTE_JINA_RERANK;
    FUZZ_REQUIRE(q.route == route || (rerank_route && (q.route == SV_ROUTE_TEI_RERANK || q.route == SV_ROUTE_JINA_RERANK)));
    bool rerank = q.route == SV_ROUTE_TEI_RERANK || q.route == SV_ROUTE_JINA_RERANK;
    FUZZ_REQUIRE(rerank == (q.query != NULL));
    if (rerank) FUZZ_REQUIRE(q.query_len >= 1 && !memchr(q.query, 0, q.query_len) && q.top_n >= 1);
    if (route == SV_ROUTE_TEI_SIMILARITY) FUZZ_REQUIRE(q.n_inputs >= 2);
    for (size_t i = 0; i < q.n_inputs; i++) {
        const sv_input *x = &q.inputs[i];
        FUZZ_REQUIRE(!texts_only || (!x->ids && x->text));
        FUZZ_REQUIRE(x->pair == NULL || (route == SV_ROUTE_TEI_PREDICT && x->pair_len >= 1 && !memchr(x->pair, 0, x->pair_len)));
        if (x->pair) sv_buf_json_str(&b, x->pair, x->pair_len);
    }
    for (size_t i = 0; i < q.n_inputs; i++) {
        const sv_input *x = &q.inputs[i];
        if (x->ids) {
            FUZZ_REQUIRE(route != SV_ROUTE_TEI_TOKENIZE);
            FUZZ_REQUIRE(!x->text && (x->n_ids >= 1 || decode));
            for (size_t t = 0; t < x->n_ids; t++) FUZZ_REQUIRE(x->ids[t] >= 0);
            /* the writers over float views of the ids (any bit pattern) */
            size_t nf = x->n_ids < 64 ? x->n_ids : 64;
            float v[64];
            memcpy(v, x->ids, nf * sizeof *v);
            size_t before = b.n;
            sv_buf_float_base64(&b, v, nf);
            FUZZ_REQUIRE(b.oom || b.n - before == (nf * 4 + 2) / 3 * 4 + 2);
            sv_buf_float_array(&b, v, nf);
        } else {
            FUZZ_REQUIRE(!decode);
            FUZZ_REQUIRE(x->text && x->text_len >= 1 && !memchr(x->text, 0, x->text_len));
            sv_buf_json_str(&b, x->text, x->text_len);
        }
    }
    sv_buf_free(&b);
    sv_request_free(&q);
    FUZZ_REQUIRE(!q.root && !q.inputs);
    return 0;
}

int se_fuzz_serve_request(const uint8_t *data, size_t size) { return fuzz_one(data, size); }

#ifdef SE_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_one(data, size); }
#endif
