/*
 * model_folder.h - the configuration of a sentence-transformers model
 * folder, read from its JSON files before any weights are touched.
 */
#ifndef SE_MODEL_FOLDER_H
#define SE_MODEL_FOLDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sembed.h"

typedef enum se_act {
    SE_ACT_IDENTITY = 0,
    SE_ACT_GELU,      /* exact, erf-based */
    SE_ACT_GELU_TANH, /* gelu_new / gelu_pytorch_tanh */
    SE_ACT_RELU,
    SE_ACT_TANH,
    SE_ACT_SIGMOID
} se_act;

/* One module after pooling, applied in modules.json order. */
typedef struct se_stage {
    int kind;        /* SE_STAGE_DENSE or SE_STAGE_NORMALIZE */
    char *dir;       /* module folder (Dense) */
    int32_t n_in, n_out;
    bool bias;
    se_act act;
} se_stage;

enum { SE_STAGE_DENSE = 1, SE_STAGE_NORMALIZE = 2 };

struct se_arch; /* a row of the architecture table (models/models.h) */

#define SE_MAX_LAYERS 256
#define SE_MAX_DIM (1 << 16) /* the widest hidden size or Dense layer accepted */

typedef struct se_folder_cfg {
    char *root;              /* the model folder */
    const struct se_arch *arch; /* the architecture, by config.json model_type */
    int32_t n_embd_in;       /* USE: embedding_size (the first layer's input width) */
    float emb_scale;         /* USE: embedding_scale */
    float *q_scales;         /* USE: (n_layer) attention query scales */
    bool strip_text;         /* strip surrounding whitespace as sentence-transformers does */
    char *tf_dir;            /* the Transformer module's folder */
    bool has_modules_json;
    /* config.json */
    char model_type[32];
    char act_name[32];
    se_act act;
    int32_t n_vocab, n_embd, n_layer, n_head, n_ff, n_pos, n_type;
    float norm_eps;
    int32_t pos_offset;      /* position id of a sentence's first token (RoBERTa: pad_token_id + 1) */
    /* sentence_bert_config.json */
    int32_t n_tokens_max;
    bool do_lower_case;
    /* 1_Pooling */
    uint32_t pooling;
    bool include_prompt;
    int32_t pool_dim;        /* output of pooling: n_embd * number of modes */
    /* Dense / Normalize */
    se_stage *stages;
    int n_stages;
    int32_t dim;             /* final output dimension */
    bool normalize;          /* the last stage is Normalize */
    /* config_sentence_transformers.json */
    char **prompt_names, **prompt_texts;
    size_t n_prompts;
    char *default_prompt_name;
    se_similarity similarity;
    /* a cross-encoder: config.json architectures names the architecture's
     * sequence-classification head and the folder has no modules.json
     * (model_folder.c); then pooling is CLS, dim is n_labels */
    bool cross_encoder;
    char head_name[64];      /* config.json architectures: "BertForSequenceClassification" */
    int32_t n_labels;        /* id2label's size, else num_labels, else 2 (transformers' default) */
    char **labels;           /* (n_labels) id2label names, "LABEL_<i>" where not given */
    int ce_act;              /* the default activation, an se_score_act other than SE_SCORE_MODEL */
    /* the fingerprint's config part: every configuration file read above,
     * folded in reading order (se_hash_fold) with its path in the folder */
    uint64_t config_hash;
} se_folder_cfg;

/* Reads every JSON file of the folder into cfg (zero-initialised by the
 * callee). Notices go to log_fn. On failure cfg is freed. */
se_status se_folder_load(const char *dir, se_log_fn log_fn, void *log_user, se_folder_cfg *cfg,
                         se_error *err);
void se_folder_free(se_folder_cfg *cfg);

/* The truncation length sentence-transformers uses for the folder:
 * sentence_bert_config.json max_seq_length, else min(tokenizer
 * model_max_length, config.json max_position_embeddings), capped by
 * max_position_embeddings; 512 when nothing says. */
se_status se_folder_n_tokens_max(const char *dir, size_t *out, se_error *err);

/* ==== Hashing, for the model fingerprint ==== */

/* XXH64 of n bytes with a seed: a 64-bit non-cryptographic hash (four
 * lanes of multiply-rotate rounds over 8-byte words; as fast as the
 * reference xxHash, about memory speed: 400 MB in 0.2 s on the 2-core VM
 * sembed is developed on).
 * It is the published XXH64, so values can be checked against any xxHash
 * implementation (tests/test_model.c does). Thread-safe. */
uint64_t se_hash64(const void *data, size_t n, uint64_t seed);

/* Folds one named blob (a file's path inside the model folder and its
 * bytes) into a running digest: the same files with the same contents in
 * the same order give the same digest wherever the folder is. */
void se_hash_fold(uint64_t *acc, const char *name, const void *data, size_t n);

/* path's part inside the model folder (e.g. "2_Dense/model.safetensors"),
 * however the folder was spelt ("m", "m/", "./m//"); path itself when it
 * is not under c->root. Points into path. */
const char *se_folder_rel(const se_folder_cfg *c, const char *path);

/* The fingerprint's tokenizer part: the tokenizer files present in dir
 * (tokenizer.json, vocab.txt, tokenizer_config.json,
 * special_tokens_map.json, added_tokens.json, sentencepiece and BPE files)
 * folded in a fixed order; 0 when there are none. A name that exists but
 * is not a regular file is SE_E_IO. */
se_status se_folder_tokenizer_hash(const char *dir, uint64_t *out, se_error *err);

#endif
