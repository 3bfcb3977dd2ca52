/*
 * model_folder.c - reads the JSON files of a sentence-transformers model
 * folder, as sentence-transformers writes them:
 *
 *   modules.json                       [{idx, name, path, type}, ...]
 *   config.json                        Hugging Face BertModel config
 *   sentence_bert_config.json          {max_seq_length, do_lower_case}
 *   1_Pooling/config.json              pooling_mode_* flags, include_prompt
 *   2_Dense/config.json                {in_features, out_features, bias, activation_function}
 *   config_sentence_transformers.json  {prompts, default_prompt_name, similarity_fn_name}
 *
 * A folder without modules.json is a plain Hugging Face model: like
 * sentence-transformers we then use mean pooling and say so in a notice;
 * or, when config.json's architectures names the architecture's
 * sequence-classification head, a cross-encoder (read_ce_config: labels,
 * activation), as sentence-transformers' CrossEncoder loads it.
 * Every field is type- and range-checked; an error names the file and the
 * field. A JSON null is an error (it must never become a zero), except in
 * the few fields where sentence-transformers itself writes null for "not
 * set" (max_seq_length, default_prompt_name, similarity_fn_name). A file
 * that exists but is not a regular file (a directory, a FIFO, a dangling
 * symlink) is an error naming it, never taken for absent. Weights are not
 * read here (see model_bert.c).
 *
 * The configuration files read are also hashed (XXH64, below) for the
 * model fingerprint, as are the tokenizer files (se_folder_tokenizer_hash).
 */
#include "model_folder.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "error.h"
#include "json.h"
#include "model_blocks.h"
#include "models/models.h"


/* Emits a notice through the caller's log callback, if any. */
static void notice(se_log_fn fn, void *user, se_log_level lvl, const char *fmt, const char *arg) {
    if (!fn) return;
    char buf[512];
    snprintf(buf, sizeof buf, fmt, arg);
    fn(lvl, buf, user);
}

/* Folds a configuration file into c->config_hash by its meaning, not its
 * bytes: the parsed JSON with sorted keys, compact, without the fields
 * that only record who saved it (transformers_version, _name_or_path,
 * sentence-transformers' __version__), so re-saving the same model with
 * other library versions or from another path keeps its fingerprint. */
static se_status hash_config(se_folder_cfg *c, const char *rel, const json_t *doc, se_error *err) {
    static const char *provenance[] = {"transformers_version", "_name_or_path", "__version__"};
    json_t *copy = json_deep_copy(doc);
    if (!copy) return se_err(err, SE_E_NOMEM, "out of memory");
    if (json_is_object(copy))
        for (size_t i = 0; i < sizeof provenance / sizeof *provenance; i++) json_object_del(copy, provenance[i]);
    char *text = json_dumps(copy, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(copy);
    if (!text) return se_err(err, SE_E_NOMEM, "out of memory");
    se_hash_fold(&c->config_hash, rel, text, strlen(text));
    free(text);
    return SE_OK;
}

/* Loads dir/name when it exists: *out = NULL (and SE_OK) when absent.
 * Something there that is not a regular file (a directory, a FIFO, a
 * dangling symlink) is an error naming it, never "absent": dropping an
 * unreadable modules.json would silently drop Normalize. With hash_into,
 * the file is folded into hash_into->config_hash (hash_config) under its
 * path inside the model folder. */
static se_status load_optional_as(const char *dir, const char *name, bool want_object, se_folder_cfg *hash_into,
                                  json_t **out, se_error *err) {
    *out = NULL;
    char *p = se_path_join(dir, name);
    if (!p) return se_err(err, SE_E_NOMEM, "out of memory");
    bool exists;
    se_status s = se_file_probe(p, &exists, err);
    if (s == SE_OK && exists) {
        char *buf = NULL;
        size_t n = 0;
        s = se_file_read(p, SE_JSON_FILE_MAX, &buf, &n, err);
        if (s == SE_OK) s = se_json_load_buffer(buf, n, p, false, out, err);
        if (s == SE_OK && hash_into) s = hash_config(hash_into, se_folder_rel(hash_into, p), *out, err);
        se_free(buf);
        if (s == SE_OK && want_object && !json_is_object(*out)) {
            json_decref(*out);
            *out = NULL;
            s = se_err(err, SE_E_FORMAT, "%s: must be a JSON object", p);
        }
    }
    se_free(p);
    return s;
}

/* load_optional_as for the usual case of a JSON object, not hashed. */
static se_status load_optional(const char *dir, const char *name, json_t **out, se_error *err) {
    return load_optional_as(dir, name, true, NULL, out, err);
}

/* load_optional for a configuration file of the model: hashed into
 * c->config_hash. */
static se_status load_config(se_folder_cfg *c, const char *dir, const char *name, json_t **out, se_error *err) {
    return load_optional_as(dir, name, true, c, out, err);
}

/* tokenizer_config.json's model_max_length: -1 when absent or null;
 * INT64_MAX / 2 ("no limit") for the huge sentinel transformers writes
 * when a tokenizer has none (int(1e30), read as a double: see
 * se_json_load_buffer). Any other value must be a positive integer. */
static se_status read_model_max_length(const json_t *tc, int64_t *out, se_error *err) {
    json_t *v = json_object_get(tc, "model_max_length");
    if (json_is_real(v) && json_real_value(v) >= 9e15) {
        *out = INT64_MAX / 2;
        return SE_OK;
    }
    return se_json_int(tc, "tokenizer_config.json", "model_max_length", 1, INT64_MAX / 2, -1, out, err);
}

se_status se_folder_n_tokens_max(const char *dir, size_t *out, se_error *err) {
    json_t *sb = NULL, *tc = NULL, *cfg = NULL;
    se_status s;
    int64_t seq = -1, mml = -1, npos = -1;
    if ((s = load_optional(dir, "sentence_bert_config.json", &sb, err)) != SE_OK) goto done;
    if ((s = load_optional(dir, "tokenizer_config.json", &tc, err)) != SE_OK) goto done;
    if ((s = load_optional(dir, "config.json", &cfg, err)) != SE_OK) goto done;
    /* max_seq_length null is "derive it", as in sentence-transformers */
    if (sb && (s = se_json_int(sb, "sentence_bert_config.json", "max_seq_length", 1, 1 << 24, -1, &seq, err)) != SE_OK) goto done;
    if (tc && (s = read_model_max_length(tc, &mml, err)) != SE_OK) goto done;
    if (cfg && (s = se_json_int_strict(cfg, "config.json", "max_position_embeddings", 1, 1 << 24, -1, &npos, err)) != SE_OK) goto done;
    int64_t n = seq;
    if (n < 0) {
        n = mml;
        if (npos > 0 && (n < 0 || npos < n)) n = npos;
    }
    if (npos > 0 && n > npos) n = npos;
    if (n < 0) n = 512;
    *out = (size_t)n;
done:
    json_decref(sb);
    json_decref(tc);
    json_decref(cfg);
    return s;
}

void se_folder_free(se_folder_cfg *c) {
    if (!c) return;
    se_free(c->root);
    se_free(c->tf_dir);
    for (int i = 0; i < c->n_stages; i++) se_free(c->stages[i].dir);
    se_free(c->stages);
    for (size_t i = 0; i < c->n_prompts; i++) {
        se_free(c->prompt_names[i]);
        se_free(c->prompt_texts[i]);
    }
    se_free(c->prompt_names);
    se_free(c->prompt_texts);
    se_free(c->default_prompt_name);
    se_free(c->q_scales);
    for (int i = 0; c->labels && i < c->n_labels; i++) se_free(c->labels[i]);
    se_free(c->labels);
    memset(c, 0, sizeof *c);
}

/* ==== Hashing ==== */

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull

static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* Little-endian loads (memcpy: any alignment; x86 and ARM are LE). */
static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* One lane step: mix an 8-byte word into an accumulator. */
static uint64_t round64(uint64_t acc, uint64_t w) { return rotl64(acc + w * P2, 31) * P1; }

/* Merges a lane into the combined hash. */
static uint64_t merge64(uint64_t h, uint64_t v) { return (h ^ round64(0, v)) * P1 + P4; }

uint64_t se_hash64(const void *data, size_t n, uint64_t seed) {
    const uint8_t *p = data, *end = p + n;
    uint64_t h;
    if (n >= 32) {
        /* four independent lanes over 32-byte stripes: the multiplies of
         * one stripe overlap, so the loop runs near memory bandwidth */
        uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        const uint8_t *limit = end - 32;
        do {
            v1 = round64(v1, rd64(p));
            v2 = round64(v2, rd64(p + 8));
            v3 = round64(v3, rd64(p + 16));
            v4 = round64(v4, rd64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        h = merge64(h, v1), h = merge64(h, v2), h = merge64(h, v3), h = merge64(h, v4);
    } else {
        h = seed + P5;
    }
    h += (uint64_t)n;
    for (; p + 8 <= end; p += 8) h = rotl64(h ^ round64(0, rd64(p)), 27) * P1 + P4;
    if (p + 4 <= end) {
        h = rotl64(h ^ (uint64_t)rd32(p) * P1, 23) * P2 + P3;
        p += 4;
    }
    for (; p < end; p++) h = rotl64(h ^ (uint64_t)*p * P5, 11) * P1;
    h ^= h >> 33, h *= P2, h ^= h >> 29, h *= P3, h ^= h >> 32;
    return h;
}

void se_hash_fold(uint64_t *acc, const char *name, const void *data, size_t n) {
    /* record = hash(name) | hash(contents) | length, chained through the seed */
    uint64_t rec[3] = {se_hash64(name, strlen(name), 0), se_hash64(data, n, 0), (uint64_t)n};
    *acc = se_hash64(rec, sizeof rec, *acc);
}

const char *se_folder_rel(const se_folder_cfg *c, const char *path) {
    size_t r = strlen(c->root);
    if (strncmp(path, c->root, r) != 0) return path;
    /* every path under the root is se_path_join(root, ...) or the root:
     * what follows the root is the relative part, after any slashes */
    const char *rel = path + r;
    if (r && c->root[r - 1] != '/' && *rel && *rel != '/') return path;
    while (*rel == '/') rel++;
    return rel;
}

se_status se_folder_tokenizer_hash(const char *dir, uint64_t *out, se_error *err) {
    static const char *names[] = {"tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                                  "added_tokens.json", "sentencepiece.bpe.model", "spiece.model", "merges.txt",
                                  "vocab.json"};
    uint64_t acc = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char *p = se_path_join(dir, names[i]);
        if (!p) return se_err(err, SE_E_NOMEM, "out of memory");
        bool exists;
        char *buf = NULL;
        size_t n = 0;
        se_status s = se_file_probe(p, &exists, err);
        if (s == SE_OK && exists) s = se_file_read(p, SE_JSON_FILE_MAX, &buf, &n, err);
        se_free(p);
        if (s != SE_OK) return s;
        if (exists) se_hash_fold(&acc, names[i], buf, n);
        se_free(buf);
    }
    *out = acc;
    return SE_OK;
}

/* ==== config.json ==== */

/* ==== cross-encoders ==== */

/* The activations CrossEncoder takes by torch class name
 * (config.json sentence_transformers.activation_fn), as se_score_act. */
static const struct {
    const char *cls;
    se_score_act act;
} ce_acts[] = {
    {"torch.nn.modules.activation.Sigmoid", SE_SCORE_SIGMOID},
    {"torch.nn.modules.linear.Identity", SE_SCORE_IDENTITY},
    {"torch.nn.modules.activation.Tanh", SE_SCORE_TANH},
    {"torch.nn.modules.activation.Softmax", SE_SCORE_SOFTMAX},
};

/* id2label (an object "0".."n-1" -> name) into c->labels; *n is its size. */
static se_status read_id2label(se_folder_cfg *c, json_t *v, const char *f, int64_t *n, se_error *err) {
    if (!json_is_object(v) || json_object_size(v) == 0)
        return se_err(err, SE_E_FORMAT, "%s: field 'id2label' must be a non-empty object", f);
    size_t k = json_object_size(v);
    if (k > SE_MAX_DIM) return se_err(err, SE_E_FORMAT, "%s: id2label has %zu labels (at most %d)", f, k, SE_MAX_DIM);
    c->labels = se_calloc(k, sizeof *c->labels);
    if (!c->labels) return se_err(err, SE_E_NOMEM, "out of memory");
    c->n_labels = (int32_t)k;
    const char *key;
    json_t *name;
    json_object_foreach(v, key, name) {
        char *end;
        errno = 0;
        long i = strtol(key, &end, 10);
        if (!key[0] || *end || errno || i < 0 || (size_t)i >= k || (key[0] == '0' && key[1]))
            return se_err(err, SE_E_FORMAT, "%s: id2label key '%s' is not a label index in [0, %zu)", f, key, k);
        if (!json_is_string(name)) return se_err(err, SE_E_FORMAT, "%s: id2label['%s'] must be a string", f, key);
        if (c->labels[i]) return se_err(err, SE_E_FORMAT, "%s: id2label has label %ld twice", f, i);
        if (!(c->labels[i] = se_strdup(json_string_value(name)))) return se_err(err, SE_E_NOMEM, "out of memory");
    }
    *n = (int64_t)k;
    return SE_OK;
}

/* The cross-encoder fields of config.json (a folder without modules.json):
 * `architectures` names the architecture's sequence-classification head,
 * or the folder is an embedding model (a name ending in
 * ForSequenceClassification that the row has no head for is refused);
 * num_labels from id2label (which wins over a num_labels field, as in
 * transformers), else num_labels, else 2; the activation from
 * sentence_transformers.activation_fn (or the older
 * sbert_ce_default_activation_function), else CrossEncoder's default:
 * sigmoid for one label, identity for more. */
static se_status read_ce_config(se_folder_cfg *c, const json_t *j, const char *f, se_error *err) {
    json_t *archs = json_object_get(j, "architectures");
    if (!archs || json_is_null(archs)) return SE_OK;
    if (!json_is_array(archs)) return se_err(err, SE_E_FORMAT, "%s: field 'architectures' must be a list", f);
    const se_head_names *h = c->arch->head;
    const char *name = NULL;
    size_t i;
    json_t *a;
    json_array_foreach(archs, i, a) {
        if (!json_is_string(a)) return se_err(err, SE_E_FORMAT, "%s: architectures[%zu] must be a string", f, i);
        const char *s = json_string_value(a);
        size_t n = strlen(s), sl = strlen("ForSequenceClassification");
        if (n < sl || strcmp(s + n - sl, "ForSequenceClassification") != 0) continue;
        if (!h || strcmp(s, h->architecture) != 0)
            return se_err(err, SE_E_UNSUPPORTED,
                          "%s: architectures '%s' (a cross-encoder) is not supported for model_type '%s'%s%s%s", f, s,
                          c->model_type, h ? " (" : "", h ? h->architecture : "", h ? " is)" : "");
        name = s;
    }
    if (!name) return SE_OK;
    c->cross_encoder = true;
    snprintf(c->head_name, sizeof c->head_name, "%s", name);
    int64_t nl = -1, nl_field;
    se_status s;
    json_t *id2 = json_object_get(j, "id2label");
    if (id2 && !json_is_null(id2) && (s = read_id2label(c, id2, f, &nl, err)) != SE_OK) return s;
    if ((s = se_json_int_strict(j, f, "num_labels", 1, SE_MAX_DIM, -1, &nl_field, err)) != SE_OK) return s;
    if (nl < 0) {
        nl = nl_field > 0 ? nl_field : 2;
        c->labels = se_calloc((size_t)nl, sizeof *c->labels);
        if (!c->labels) return se_err(err, SE_E_NOMEM, "out of memory");
        c->n_labels = (int32_t)nl;
        for (int64_t k = 0; k < nl; k++) {
            char buf[32];
            snprintf(buf, sizeof buf, "LABEL_%lld", (long long)k);
            if (!(c->labels[k] = se_strdup(buf))) return se_err(err, SE_E_NOMEM, "out of memory");
        }
    }
    const char *act = NULL, *where = "sentence_transformers.activation_fn";
    json_t *st = json_object_get(j, "sentence_transformers");
    if (st && !json_is_null(st)) {
        if (!json_is_object(st)) return se_err(err, SE_E_FORMAT, "%s: field 'sentence_transformers' must be an object", f);
        if ((s = se_json_str(st, f, "activation_fn", NULL, &act, err)) != SE_OK) return s;
    }
    if (!act) {
        where = "sbert_ce_default_activation_function";
        if ((s = se_json_str(j, f, where, NULL, &act, err)) != SE_OK) return s;
    }
    c->ce_act = nl == 1 ? SE_SCORE_SIGMOID : SE_SCORE_IDENTITY;
    if (act) {
        bool known = false;
        for (size_t k = 0; k < sizeof ce_acts / sizeof *ce_acts; k++)
            if (strcmp(act, ce_acts[k].cls) == 0) c->ce_act = ce_acts[k].act, known = true;
        if (!known)
            return se_err(err, SE_E_UNSUPPORTED,
                          "%s: %s '%s' is not supported (torch.nn.modules.activation.Sigmoid, Tanh, Softmax or "
                          "torch.nn.modules.linear.Identity)",
                          f, where, act);
    }
    return SE_OK;
}

/* config.json: model_type picks the architecture's row (models/models.c),
 * whose reader takes the rest. For a folder without modules.json (plain),
 * also the cross-encoder fields (read_ce_config). */
static se_status read_config_json(se_folder_cfg *c, bool plain, se_error *err) {
    json_t *j = NULL;
    se_status s = load_config(c, c->tf_dir, "config.json", &j, err);
    if (s != SE_OK) return s;
    if (!j) return se_err(err, SE_E_IO, "%s: no config.json", c->tf_dir);
    const char *f = "config.json", *mt;
    if ((s = se_json_str_strict(j, f, "model_type", "bert", &mt, err)) == SE_OK) {
        const se_arch *a = se_arch_find(mt);
        if (!a) {
            char list[256];
            se_arch_list(list, sizeof list);
            s = se_err(err, SE_E_UNSUPPORTED, "config.json: model_type '%s' is not supported (%s)", mt, list);
        } else {
            c->arch = a;
            snprintf(c->model_type, sizeof c->model_type, "%s", mt);
            s = a->read_config(c, j, f, err);
            if (s == SE_OK && plain) s = read_ce_config(c, j, f, err);
        }
    }
    json_decref(j);
    return s;
}

/* ==== modules ==== */

static se_status read_pooling(se_folder_cfg *c, const char *dir, se_error *err) {
    json_t *j = NULL;
    se_status s = load_config(c, dir, "config.json", &j, err);
    if (s != SE_OK) return s;
    if (!j) return se_err(err, SE_E_IO, "%s: no config.json for the Pooling module", dir);
    const char *f = "1_Pooling/config.json";
    int64_t wdim;
    if ((s = se_json_int_strict(j, f, "word_embedding_dimension", 1, SE_MAX_DIM, c->n_embd, &wdim, err)) != SE_OK) goto done;
    if (wdim != c->n_embd) {
        s = se_err(err, SE_E_FORMAT, "%s: word_embedding_dimension %lld does not match hidden_size %d", f,
                   (long long)wdim, c->n_embd);
        goto done;
    }
    static const char *keys[] = {"pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_tokens",
                                 "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                                 "pooling_mode_lasttoken"};
    static const char *names[] = {"cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"};
    const char *mode;
    if ((s = se_json_str_strict(j, f, "pooling_mode", NULL, &mode, err)) != SE_OK) goto done;
    c->pooling = 0;
    if (mode) {
        for (int i = 0; i < 6; i++)
            if (strcmp(mode, names[i]) == 0) c->pooling = 1u << i;
        if (!c->pooling) {
            s = se_err(err, SE_E_UNSUPPORTED, "%s: pooling_mode '%s' is not supported", f, mode);
            goto done;
        }
    }
    for (int i = 0; i < 6; i++) {
        bool b;
        if ((s = se_json_bool_strict(j, f, keys[i], false, &b, err)) != SE_OK) goto done;
        if (b) c->pooling |= 1u << i;
    }
    if (!c->pooling) {
        s = se_err(err, SE_E_FORMAT, "%s: no pooling mode is enabled", f);
        goto done;
    }
    if ((s = se_json_bool_strict(j, f, "include_prompt", true, &c->include_prompt, err)) != SE_OK) goto done;
    int nm = 0;
    for (int i = 0; i < 6; i++) nm += (c->pooling >> i) & 1;
    c->pool_dim = c->n_embd * nm;
done:
    json_decref(j);
    return s;
}

static se_status add_stage(se_folder_cfg *c, se_stage st, se_error *err) {
    se_stage *a = se_realloc(c->stages, (size_t)(c->n_stages + 1) * sizeof *a);
    if (!a) {
        se_free(st.dir);
        return se_err(err, SE_E_NOMEM, "out of memory");
    }
    c->stages = a;
    a[c->n_stages++] = st;
    return SE_OK;
}

static se_status read_dense(se_folder_cfg *c, const char *dir, int32_t n_in, se_error *err) {
    json_t *j = NULL;
    se_status s = load_config(c, dir, "config.json", &j, err);
    if (s != SE_OK) return s;
    if (!j) return se_err(err, SE_E_IO, "%s: no config.json for the Dense module", dir);
    char f[300];
    snprintf(f, sizeof f, "%s/config.json", dir);
    int64_t in, out;
    bool bias;
    const char *act;
    se_stage st = {0};
    st.kind = SE_STAGE_DENSE;
    if ((s = se_json_int_strict(j, f, "in_features", 1, SE_MAX_DIM, -1, &in, err)) != SE_OK) goto done;
    if ((s = se_json_int_strict(j, f, "out_features", 1, SE_MAX_DIM, -1, &out, err)) != SE_OK) goto done;
    if (in < 0 || out < 0) {
        s = se_err(err, SE_E_FORMAT, "%s: in_features and out_features are required", f);
        goto done;
    }
    if (in != n_in) {
        s = se_err(err, SE_E_FORMAT, "%s: in_features %lld does not match the previous module's output %d", f,
                   (long long)in, n_in);
        goto done;
    }
    if ((s = se_json_bool_strict(j, f, "bias", true, &bias, err)) != SE_OK) goto done;
    if ((s = se_json_str_strict(j, f, "activation_function", "torch.nn.modules.activation.Tanh", &act, err)) != SE_OK) goto done;
    if (!se_act_parse(act, true, &st.act)) {
        s = se_err(err, SE_E_UNSUPPORTED, "%s: activation_function '%s' is not supported", f, act);
        goto done;
    }
    st.n_in = (int32_t)in, st.n_out = (int32_t)out, st.bias = bias;
    st.dir = se_strdup(dir);
    if (!st.dir) {
        s = se_err(err, SE_E_NOMEM, "out of memory");
        goto done;
    }
    s = add_stage(c, st, err);
done:
    json_decref(j);
    return s;
}

static se_status read_modules(se_folder_cfg *c, json_t *mods, se_log_fn log_fn, void *log_user, se_error *err) {
    if (!json_is_array(mods) || json_array_size(mods) == 0)
        return se_err(err, SE_E_FORMAT, "modules.json: must be a non-empty list");
    size_t i;
    json_t *m;
    bool have_tf = false, have_pool = false;
    int32_t cur = 0;
    se_status s;
    json_array_foreach(mods, i, m) {
        const char *type, *path;
        char fld[64];
        snprintf(fld, sizeof fld, "modules.json[%zu]", i);
        if (!json_is_object(m)) return se_err(err, SE_E_FORMAT, "%s: must be an object", fld);
        if ((s = se_json_str_strict(m, fld, "type", NULL, &type, err)) != SE_OK) return s;
        if ((s = se_json_str_strict(m, fld, "path", "", &path, err)) != SE_OK) return s;
        if (!type) return se_err(err, SE_E_FORMAT, "%s: missing field 'type'", fld);
        if (strstr(path, "..") || path[0] == '/')
            return se_err(err, SE_E_FORMAT, "%s: path '%s' leaves the model folder", fld, path);
        char *dir = path[0] ? se_path_join(c->root, path) : se_strdup(c->root);
        if (!dir) return se_err(err, SE_E_NOMEM, "out of memory");
        const char *short_type = strrchr(type, '.') ? strrchr(type, '.') + 1 : type;
        if (strcmp(type, "sentence_transformers.models.Transformer") == 0) {
            if (i != 0) {
                se_free(dir);
                return se_err(err, SE_E_UNSUPPORTED, "%s: the Transformer module must come first", fld);
            }
            c->tf_dir = dir;
            have_tf = true;
            if ((s = read_config_json(c, false, err)) != SE_OK) return s;
            if (!c->arch->st_module)
                return se_err(err, SE_E_UNSUPPORTED, "%s: model_type '%s' cannot be a sentence-transformers Transformer module",
                              fld, c->model_type);
            cur = c->n_embd;
        } else if (strcmp(type, "sentence_transformers.models.Pooling") == 0) {
            if (!have_tf || have_pool) {
                se_free(dir);
                return se_err(err, SE_E_UNSUPPORTED, "%s: Pooling must follow the Transformer module, once", fld);
            }
            have_pool = true;
            s = read_pooling(c, dir, err);
            se_free(dir);
            if (s != SE_OK) return s;
            cur = c->pool_dim;
        } else if (strcmp(type, "sentence_transformers.models.Dense") == 0) {
            if (!have_pool) {
                se_free(dir);
                return se_err(err, SE_E_UNSUPPORTED, "%s: Dense before Pooling is not supported", fld);
            }
            s = read_dense(c, dir, cur, err);
            se_free(dir);
            if (s != SE_OK) return s;
            cur = c->stages[c->n_stages - 1].n_out;
        } else if (strcmp(type, "sentence_transformers.models.Normalize") == 0) {
            se_free(dir);
            if (!have_pool) return se_err(err, SE_E_UNSUPPORTED, "%s: Normalize before Pooling is not supported", fld);
            se_stage st = {0};
            st.kind = SE_STAGE_NORMALIZE;
            st.n_in = st.n_out = cur;
            if ((s = add_stage(c, st, err)) != SE_OK) return s;
        } else {
            se_free(dir);
            return se_err(err, SE_E_UNSUPPORTED, "modules.json: module type '%s' (%s) is not supported", type, short_type);
        }
    }
    (void)log_fn, (void)log_user;
    if (!have_tf) return se_err(err, SE_E_FORMAT, "modules.json: no sentence_transformers.models.Transformer module");
    if (!have_pool) return se_err(err, SE_E_UNSUPPORTED, "modules.json: no Pooling module (token embeddings output is not supported)");
    c->dim = cur;
    return SE_OK;
}

/* ==== config_sentence_transformers.json ==== */

static se_status read_st_config(se_folder_cfg *c, se_error *err) {
    json_t *j = NULL;
    se_status s = load_config(c, c->root, "config_sentence_transformers.json", &j, err);
    if (s != SE_OK || !j) return s;
    const char *f = "config_sentence_transformers.json";
    json_t *prompts = json_object_get(j, "prompts");
    const char *dflt, *sim;
    if (prompts && !json_is_null(prompts)) {
        if (!json_is_object(prompts)) {
            s = se_err(err, SE_E_FORMAT, "%s: field 'prompts' must be an object", f);
            goto done;
        }
        size_t n = json_object_size(prompts);
        c->prompt_names = se_calloc(n ? n : 1, sizeof(char *));
        c->prompt_texts = se_calloc(n ? n : 1, sizeof(char *));
        if (!c->prompt_names || !c->prompt_texts) {
            s = se_err(err, SE_E_NOMEM, "out of memory");
            goto done;
        }
        const char *k;
        json_t *v;
        json_object_foreach(prompts, k, v) {
            if (!json_is_string(v)) {
                s = se_err(err, SE_E_FORMAT, "%s: prompts['%s'] must be a string", f, k);
                goto done;
            }
            c->prompt_names[c->n_prompts] = se_strdup(k);
            c->prompt_texts[c->n_prompts] = se_strdup(json_string_value(v));
            c->n_prompts++;
            if (!c->prompt_names[c->n_prompts - 1] || !c->prompt_texts[c->n_prompts - 1]) {
                s = se_err(err, SE_E_NOMEM, "out of memory");
                goto done;
            }
        }
    }
    /* sentence-transformers writes null for "no default prompt" and, in
     * some versions, for "no similarity function set" (cosine) */
    if ((s = se_json_str(j, f, "default_prompt_name", NULL, &dflt, err)) != SE_OK) goto done;
    if (dflt) {
        bool found = false;
        for (size_t i = 0; i < c->n_prompts; i++) found |= strcmp(c->prompt_names[i], dflt) == 0;
        if (!found) {
            s = se_err(err, SE_E_FORMAT, "%s: default_prompt_name '%s' is not in prompts", f, dflt);
            goto done;
        }
        c->default_prompt_name = se_strdup(dflt);
        if (!c->default_prompt_name) {
            s = se_err(err, SE_E_NOMEM, "out of memory");
            goto done;
        }
    }
    if ((s = se_json_str(j, f, "similarity_fn_name", "cosine", &sim, err)) != SE_OK) goto done;
    if (strcmp(sim, "cosine") == 0) c->similarity = SE_SIM_COSINE;
    else if (strcmp(sim, "dot") == 0 || strcmp(sim, "dot_product") == 0) c->similarity = SE_SIM_DOT;
    else if (strcmp(sim, "euclidean") == 0) c->similarity = SE_SIM_EUCLIDEAN;
    else if (strcmp(sim, "manhattan") == 0) c->similarity = SE_SIM_MANHATTAN;
    else s = se_err(err, SE_E_UNSUPPORTED, "%s: similarity_fn_name '%s' is not supported", f, sim);
done:
    json_decref(j);
    return s;
}

/* ==== entry point ==== */

se_status se_folder_load(const char *dir, se_log_fn log_fn, void *log_user, se_folder_cfg *c, se_error *err) {
    memset(c, 0, sizeof *c);
    struct stat st;
    if (stat(dir, &st) != 0)
        return errno == ENOENT ? se_err(err, SE_E_IO, "model folder '%s': no such folder", dir)
                               : se_err(err, SE_E_IO, "model folder '%s': %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return se_err(err, SE_E_IO, "model folder '%s': is not a folder", dir);
    c->include_prompt = true;
    c->root = se_strdup(dir);
    if (!c->root) return se_err(err, SE_E_NOMEM, "out of memory");
    json_t *mods = NULL, *sb = NULL;
    se_status s = load_optional_as(dir, "modules.json", false, c, &mods, err);
    if (s != SE_OK) goto fail;
    if (mods) {
        c->has_modules_json = true;
        s = read_modules(c, mods, log_fn, log_user, err);
        if (s != SE_OK) goto fail;
    } else {
        c->tf_dir = se_strdup(dir);
        if (!c->tf_dir) {
            s = se_err(err, SE_E_NOMEM, "out of memory");
            goto fail;
        }
        if ((s = read_config_json(c, true, err)) != SE_OK) goto fail;
        c->pooling = SE_POOL_MEAN;
        c->pool_dim = c->dim = c->n_embd;
        if (c->cross_encoder) {
            /* the head reads the first token's state ([CLS], <s>) and
             * gives n_labels scores (model_head.c) */
            c->pooling = SE_POOL_CLS;
            c->dim = c->n_labels;
        } else if (c->arch->n_plain_stages) {
            /* the architecture's own head (USE lite's: a tanh layer whose
             * weights are pooler.dense.* in the main checkpoint, then L2
             * normalisation), each stage as wide as the hidden size */
            for (int k = 0; k < c->arch->n_plain_stages; k++) {
                se_stage ps = c->arch->plain_stages[k];
                ps.n_in = ps.n_out = c->n_embd;
                if ((s = add_stage(c, ps, err)) != SE_OK) goto fail;
            }
        } else {
            notice(log_fn, log_user, SE_LOG_WARN,
                   "%s: no modules.json, so this is a plain Hugging Face model: using mean pooling, as sentence-transformers does",
                   dir);
        }
    }
    /* sentence-transformers strips texts; USE lite's own pipeline does not */
    c->strip_text = c->arch->strip_text;
    c->normalize = c->n_stages > 0 && c->stages[c->n_stages - 1].kind == SE_STAGE_NORMALIZE;
    /* sentence_bert_config.json lives with the Transformer module */
    if ((s = load_config(c, c->tf_dir, "sentence_bert_config.json", &sb, err)) != SE_OK) goto fail;
    if (sb) {
        const char *f = "sentence_bert_config.json";
        if ((s = se_json_bool_strict(sb, f, "do_lower_case", false, &c->do_lower_case, err)) != SE_OK) goto fail;
    }
    size_t nmax;
    if ((s = se_folder_n_tokens_max(c->tf_dir, &nmax, err)) != SE_OK) goto fail;
    if (nmax > (size_t)c->n_pos) {
        notice(log_fn, log_user, SE_LOG_WARN, "%s: max_seq_length exceeds max_position_embeddings; capped", dir);
        nmax = (size_t)c->n_pos;
    }
    /* RoBERTa's positions start at pad_token_id + 1: a folder that says
     * no length (the tokenizer's model_max_length unset) gets what the
     * positions hold, not max_position_embeddings */
    if (c->pos_offset > 0 && nmax > (size_t)(c->n_pos - c->pos_offset)) nmax = (size_t)(c->n_pos - c->pos_offset);
    c->n_tokens_max = (int32_t)nmax;
    if ((s = read_st_config(c, err)) != SE_OK) goto fail;
    json_decref(mods);
    json_decref(sb);
    return SE_OK;
fail:
    json_decref(mods);
    json_decref(sb);
    se_folder_free(c);
    return s;
}
