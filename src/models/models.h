/*
 * models/models.h - the table of architectures: one row per model
 * architecture sembed runs, one file per architecture in src/models/.
 *
 * A row says everything that differs between architectures: the
 * config.json model_type it answers to, how to read the rest of
 * config.json, the checkpoint's tensor-name prefixes, how to bind the
 * tensors, the forward pass, and the modules of a folder that has no
 * modules.json. Everything the rows share lives below them: the folder's
 * files (model_folder.c), checkpoints and binding (model_weights.c), the
 * GEMM (model_gemm.c) and the encoder building blocks (model_blocks.c).
 * Adding an architecture is adding its file and its row.
 */
#ifndef SE_MODELS_H
#define SE_MODELS_H

#include <jansson.h>

#include "model.h"

/* The forward pass over S packed sentences. ids/type_ids: (T); starts:
 * (S + 1) token offsets of each sentence, starts[S] == T. Writes the last
 * hidden state, (T, H), into buf->x. An id outside the vocabulary or a
 * sentence longer than the positions is SE_E_RANGE naming it. */
typedef se_status (*se_forward_fn)(const se_model *m, se_fwd_buf *buf, se_threadpool *tp, const int32_t *ids,
                                   const int32_t *type_ids, const size_t *starts, size_t S, se_debug_fn dbg,
                                   void *dbg_user, se_error *err);

/* A sequence-classification head (model_head.c): logits =
 * out(tanh(dense(h[first token]))), dense (H, H), out (num_labels, H), each
 * with a bias. The tensor names are looked up like every other tensor
 * (bare, then with the row's prefixes). */
typedef struct se_head_names {
    const char *architecture;     /* config.json architectures: "BertForSequenceClassification" */
    const char *dense_w, *dense_b; /* "pooler.dense.weight" / XLM-R's "classifier.dense.weight" */
    const char *out_w, *out_b;     /* "classifier.weight" / XLM-R's "classifier.out_proj.weight" */
} se_head_names;

typedef struct se_arch {
    const char *model_type;       /* config.json model_type */
    const char *name;             /* what `sembed info` calls it */
    const char *const *prefixes;  /* tensor-name prefixes tried after the bare name (NULL-ended) */
    bool st_module;               /* may be a sentence-transformers Transformer module */
    bool strip_text;              /* strip texts as sentence-transformers does */
    /* Reads the architecture's fields of config.json (j; file names it in
     * messages) into c. */
    se_status (*read_config)(se_folder_cfg *c, const json_t *j, const char *file, se_error *err);
    /* The modules after mean pooling of a folder without modules.json, each
     * as wide as the hidden size (n_in/n_out are filled in). None means
     * sentence-transformers' fallback for a plain Hugging Face model: mean
     * pooling, with a notice. */
    const se_stage *plain_stages;
    int n_plain_stages;
    /* Binds the checkpoint's tensors into m (and registers the GEMM weights). */
    se_status (*bind)(se_model *m, se_error *err);
    se_forward_fn forward;
    /* The cross-encoder head a folder of this architecture may carry
     * (NULL: none is supported). */
    const se_head_names *head;
} se_arch;

/* The row for a config.json model_type, or NULL. */
const se_arch *se_arch_find(const char *model_type);

/* Writes the model_types of every row, comma-separated, into out (for
 * messages; truncated to cap). */
void se_arch_list(char *out, size_t cap);

/* The rows, defined one per file in src/models/. */
extern const se_arch se_arch_bert;
extern const se_arch se_arch_xlmr;
extern const se_arch se_arch_mpnet;
extern const se_arch se_arch_use_lite;

/* MPNet's relative position bucket of rel = key position - query
 * position (Hugging Face's MPNetEncoder.relative_position_bucket with 32
 * buckets and max distance 128, in torch's float32 arithmetic); for
 * tests. */
int se_mpnet_rel_bucket(int64_t rel);

#endif
