/*
 * tokenizer.c - loading tokenizers from a model folder, truncation,
 * post-processing templates and the public se_tokenize API.
 *
 * Two sources, as transformers' AutoTokenizer uses them:
 *   - tokenizer.json (the "fast" tokenizer): model WordPiece, normalizer
 *     BertNormalizer (or none), pre_tokenizer BertPreTokenizer,
 *     post_processor TemplateProcessing, BertProcessing or RobertaProcessing,
 *     added_tokens;
 *   - vocab.txt + tokenizer_config.json: BertTokenizer (do_lower_case,
 *     strip_accents, tokenize_chinese_chars, special token strings) or
 *     MPNetTokenizer (<s> A </s></s> B </s>).
 * Truncation follows HF fast tokenizers: the template's special tokens are
 * reserved first; for pairs, "longest_first" splits the budget so the
 * shorter sequence keeps as much as it can (utils/truncation.rs).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "alloc.h"
#include "error.h"
#include "json.h"
#include "model_folder.h"
#include "sentencepiece_model.h"
#include "tokenizer.h"
#include "unicode.h"

/* The vocabulary of the tokenizer's model. */
static const se_vocab *tok_vocab(const se_tokenizer *t) {
    return t->kind == SE_TOK_UNIGRAM ? &t->uni.vocab : &t->wp.vocab;
}

/* ==== Added tokens and templates ==== */

/* Adds an added token (a later one with the same content is ignored). */
static se_status add_added(se_tokenizer *t, const char *content, int32_t id, bool special, bool lstrip, bool rstrip,
                           se_error *err) {
    size_t len = strlen(content);
    if (len == 0) return SE_OK;
    for (size_t k = 0; k < t->n_added; k++)
        if (t->added[k].len == len && memcmp(t->added[k].content, content, len) == 0) return SE_OK;
    se_added_token *a = se_realloc(t->added, (t->n_added + 1) * sizeof *a);
    if (!a) return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
    t->added = a;
    char *c = se_strdup(content);
    if (!c) return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
    a[t->n_added++] = (se_added_token){c, len, id, special, lstrip, rstrip};
    t->added_first_byte[(uint8_t)content[0]] = true;
    return SE_OK;
}

static se_tpl_item tpl_special(int32_t id, int32_t type_id) {
    se_tpl_item it = {-1, type_id, 1, {id, 0, 0, 0}};
    return it;
}

static se_tpl_item tpl_seq(int32_t seq, int32_t type_id) {
    se_tpl_item it = {seq, type_id, 0, {0, 0, 0, 0}};
    return it;
}

/* Sets the [CLS] A [SEP] / [CLS] A [SEP] B [SEP] template. */
static void tpl_bert(se_tokenizer *t, int32_t cls, int32_t sep) {
    t->single[0] = tpl_special(cls, 0), t->single[1] = tpl_seq(0, 0), t->single[2] = tpl_special(sep, 0);
    t->n_single = 3;
    t->pair[0] = tpl_special(cls, 0), t->pair[1] = tpl_seq(0, 0), t->pair[2] = tpl_special(sep, 0);
    t->pair[3] = tpl_seq(1, 1), t->pair[4] = tpl_special(sep, 1);
    t->n_pair = 5;
}

/* Sets the <s> A </s> / <s> A </s></s> B </s> template (RoBERTa, MPNet);
 * all type ids are 0, as RobertaProcessing gives them. */
static void tpl_roberta(se_tokenizer *t, int32_t cls, int32_t sep) {
    t->single[0] = tpl_special(cls, 0), t->single[1] = tpl_seq(0, 0), t->single[2] = tpl_special(sep, 0);
    t->n_single = 3;
    t->pair[0] = tpl_special(cls, 0), t->pair[1] = tpl_seq(0, 0), t->pair[2] = tpl_special(sep, 0);
    t->pair[3] = tpl_special(sep, 0), t->pair[4] = tpl_seq(1, 0), t->pair[5] = tpl_special(sep, 0);
    t->n_pair = 6;
}

static void count_specials(se_tokenizer *t) {
    t->n_special_single = t->n_special_pair = 0;
    for (int i = 0; i < t->n_single; i++)
        if (t->single[i].seq < 0) t->n_special_single += t->single[i].n_ids;
    for (int i = 0; i < t->n_pair; i++)
        if (t->pair[i].seq < 0) t->n_special_pair += t->pair[i].n_ids;
}

/* Every special id a template adds must be in the vocabulary. */
static se_status check_template_ids(const se_tokenizer *t, se_error *err) {
    for (int w = 0; w < 2; w++) {
        const se_tpl_item *it = w ? t->pair : t->single;
        int n = w ? t->n_pair : t->n_single;
        for (int i = 0; i < n; i++)
            for (int k = 0; it[i].seq < 0 && k < it[i].n_ids; k++)
                if (it[i].ids[k] < 0 || (size_t)it[i].ids[k] >= tok_vocab(t)->n)
                    return se_err(err, SE_E_FORMAT, "%s: post_processor special token id %d is not in the vocabulary (%zu ids)",
                                  t->source, it[i].ids[k], tok_vocab(t)->n);
    }
    return SE_OK;
}

int se_tok_n_special(const se_tokenizer *tok, bool pair) {
    return pair ? tok->n_special_pair : tok->n_special_single;
}

/* ==== Files ==== */

/* Limits checked before a tokenizer file is parsed, so a hostile or
 * mistaken file is refused before jansson builds it in memory (about 100
 * bytes per JSON value). Real files are far below them: XLM-R's and
 * bge-m3's tokenizer.json are 17 MB with 250k pieces (about 750k JSON
 * values), LaBSE's vocabulary has 501k pieces. */
#define TOKENIZER_JSON_MAX_BYTES ((size_t)64 << 20)
#define TOKENIZER_JSON_MAX_VALUES ((size_t)4 << 20)
#define ADDED_TOKENS_MAX 16384

/* Looks at a tokenizer file without opening it (a FIFO would block):
 * *present is false when nothing is there, true for a regular file or a
 * symlink to one (Hugging Face's cache is symlinks). Anything else that
 * exists (a dangling symlink, a directory, a FIFO, a device) is refused
 * naming the file, rather than taken as absent. */
static se_status probe_file(const char *path, bool *present, se_error *err) {
    struct stat st;
    *present = false;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return SE_OK;
        return se_err(err, SE_E_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (stat(path, &st) != 0)
        return se_err(err, SE_E_IO, "%s: is a symlink to a missing file (%s)", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) {
        const char *what = S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO"
                         : S_ISSOCK(st.st_mode) ? "a socket" : "a device or special file";
        return se_err(err, SE_E_IO, "%s: is %s, not a regular file", path, what);
    }
    *present = true;
    return SE_OK;
}

/* Probes dir/name (see probe_file); *path gets the joined path (se_free)
 * whether or not the file is there. */
static se_status probe_in(const char *dir, const char *name, char **path, bool *present, se_error *err) {
    *present = false;
    *path = se_path_join(dir, name);
    if (!*path) return se_err(err, SE_E_NOMEM, "out of memory");
    return probe_file(*path, present, err);
}

/* Counts the JSON values of buf roughly but never below the truth (commas
 * and opening brackets outside strings, plus one), so a file with too many
 * can be refused before it is parsed. */
static size_t json_value_bound(const char *buf, size_t n) {
    size_t k = 1;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == ',' || c == '[' || c == '{') {
            k++;
        }
    }
    return k;
}

/* Reads and parses a tokenizer.json under the limits above; errors name
 * the file and the limit. */
static se_status load_json_capped(const char *path, json_t **root, se_error *err) {
    char *buf;
    size_t n;
    se_status s = se_file_read(path, TOKENIZER_JSON_MAX_BYTES, &buf, &n, err);
    if (s == SE_E_RANGE) {
        se_err(err, SE_E_RANGE, "%s: larger than the %zu MiB a tokenizer file may have", path, TOKENIZER_JSON_MAX_BYTES >> 20);
        return SE_E_RANGE;
    }
    if (s != SE_OK) return s;
    size_t nv = json_value_bound(buf, n);
    if (nv > TOKENIZER_JSON_MAX_VALUES) {
        se_free(buf);
        return se_err(err, SE_E_RANGE, "%s: about %zu JSON values, more than the limit of %zu for a tokenizer", path, nv,
                      TOKENIZER_JSON_MAX_VALUES);
    }
    s = se_json_load_buffer(buf, n, path, false, root, err);
    se_free(buf);
    return s;
}

/* ==== tokenizer.json ==== */

/* Reads a [token, id] pair as BertProcessing/RobertaProcessing store it. */
static se_status read_tok_id(const json_t *pp, const char *file, const char *key, int32_t *id, se_error *err) {
    json_t *a = json_object_get(pp, key);
    if (!json_is_array(a) || json_array_size(a) != 2 || !json_is_integer(json_array_get(a, 1)))
        return se_err(err, SE_E_FORMAT, "%s: post_processor.%s must be [token, id]", file, key);
    json_int_t v = json_integer_value(json_array_get(a, 1));
    if (v < 0 || v > INT32_MAX) return se_err(err, SE_E_FORMAT, "%s: post_processor.%s id out of range", file, key);
    *id = (int32_t)v;
    return SE_OK;
}

/* Parses one TemplateProcessing list ("single" or "pair"). */
static se_status parse_template(const json_t *pp, const char *file, const char *key, se_tpl_item *items,
                                int *n_items, se_error *err) {
    json_t *list = json_object_get(pp, key);
    json_t *specials = json_object_get(pp, "special_tokens");
    if (!json_is_array(list)) return se_err(err, SE_E_FORMAT, "%s: post_processor.%s must be a list", file, key);
    if (json_array_size(list) > SE_TPL_MAX)
        return se_err(err, SE_E_UNSUPPORTED, "%s: post_processor.%s has more than %d items", file, key, SE_TPL_MAX);
    size_t i;
    json_t *it;
    *n_items = 0;
    json_array_foreach(list, i, it) {
        json_t *sp = json_object_get(it, "SpecialToken");
        json_t *sq = json_object_get(it, "Sequence");
        json_t *body = sp ? sp : sq;
        if (!json_is_object(body))
            return se_err(err, SE_E_FORMAT, "%s: post_processor.%s[%zu] must be SpecialToken or Sequence", file, key, i);
        const char *id;
        int64_t type_id;
        se_status s;
        if ((s = se_json_str(body, file, "id", NULL, &id, err)) != SE_OK) return s;
        if ((s = se_json_int(body, file, "type_id", 0, 255, 0, &type_id, err)) != SE_OK) return s;
        if (!id) return se_err(err, SE_E_FORMAT, "%s: post_processor.%s[%zu] has no id", file, key, i);
        se_tpl_item x;
        if (sq) {
            if (strcmp(id, "A") && strcmp(id, "B"))
                return se_err(err, SE_E_FORMAT, "%s: post_processor.%s[%zu]: sequence id '%s' is not A or B", file, key, i, id);
            x = tpl_seq(id[0] == 'A' ? 0 : 1, (int32_t)type_id);
        } else {
            json_t *spec = json_object_get(specials, id);
            json_t *ids = json_object_get(spec, "ids");
            if (!json_is_array(ids) || json_array_size(ids) < 1 || json_array_size(ids) > 4)
                return se_err(err, SE_E_FORMAT, "%s: post_processor.special_tokens['%s'].ids must list 1-4 ids", file, id);
            x = tpl_seq(-1, (int32_t)type_id);
            x.n_ids = (int32_t)json_array_size(ids);
            for (size_t k = 0; k < json_array_size(ids); k++) {
                json_t *v = json_array_get(ids, k);
                if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
                    return se_err(err, SE_E_FORMAT, "%s: post_processor.special_tokens['%s'].ids[%zu] is not a valid id", file, id, k);
                x.ids[k] = (int32_t)json_integer_value(v);
            }
        }
        items[(*n_items)++] = x;
    }
    return SE_OK;
}

/* Reads added_tokens (they may extend the id space beyond the model's
 * vocabulary: such ids are added to the vocabulary, hidden from a Unigram
 * model's Viterbi). */
static se_status parse_added_tokens(se_tokenizer *t, const json_t *root, long long id_limit, const char *path,
                                    se_error *err) {
    const char *file = "tokenizer.json";
    se_vocab *v = t->kind == SE_TOK_UNIGRAM ? &t->uni.vocab : &t->wp.vocab;
    json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_array(added)) return se_err(err, SE_E_FORMAT, "%s: added_tokens must be a list", path);
    /* each added token is compared with the others at load and tried at
     * every position of a text: real files have a few hundred */
    if (json_array_size(added) > ADDED_TOKENS_MAX)
        return se_err(err, SE_E_RANGE, "%s: %zu added_tokens, more than the limit of %d", path, json_array_size(added),
                      ADDED_TOKENS_MAX);
    size_t i;
    json_t *val;
    se_status s;
    json_array_foreach(added, i, val) {
        const char *content;
        int64_t id;
        bool special, lstrip, rstrip;
        if ((s = se_json_str(val, file, "content", NULL, &content, err)) != SE_OK) return s;
        if ((s = se_json_int(val, file, "id", 0, INT32_MAX - 1, -1, &id, err)) != SE_OK) return s;
        if ((s = se_json_bool(val, file, "special", false, &special, err)) != SE_OK) return s;
        if ((s = se_json_bool(val, file, "lstrip", false, &lstrip, err)) != SE_OK) return s;
        if ((s = se_json_bool(val, file, "rstrip", false, &rstrip, err)) != SE_OK) return s;
        if (!content || id < 0) return se_err(err, SE_E_FORMAT, "%s: added_tokens[%zu] needs content and id", path, i);
        if (id >= id_limit)
            return se_err(err, SE_E_FORMAT, "%s: added_tokens[%zu] id %lld is out of range (%lld entries)", path, i,
                          (long long)id, id_limit);
        if ((size_t)id >= v->n || v->offs[id] == UINT32_MAX) {
            if ((s = se_vocab_add(v, content, strlen(content), (size_t)id, path, err)) != SE_OK) return s;
            if (t->kind == SE_TOK_UNIGRAM && (s = se_vocab_hide(v, (size_t)id, err)) != SE_OK) return s;
        }
        if ((s = add_added(t, content, (int32_t)id, special, lstrip, rstrip, err)) != SE_OK) return s;
    }
    return SE_OK;
}

/* Reads a WordPiece tokenizer.json's normalizer (BertNormalizer or none)
 * and pre_tokenizer (BertPreTokenizer or none). */
static se_status parse_wordpiece_pipeline(se_tokenizer *t, const json_t *root, const char *path, se_error *err) {
    const char *file = "tokenizer.json";
    se_wordpiece *wp = &t->wp;
    se_status s;
    json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm)) {
        const char *nt;
        if ((s = se_json_str(norm, file, "type", "", &nt, err)) != SE_OK) return s;
        if (strcmp(nt, "BertNormalizer") != 0)
            return se_err(err, SE_E_UNSUPPORTED, "%s: normalizer type '%s' is not supported (BertNormalizer only)", path, nt);
        bool strip;
        wp->has_normalizer = true;
        if ((s = se_json_bool(norm, file, "clean_text", true, &wp->clean_text, err)) != SE_OK) return s;
        if ((s = se_json_bool(norm, file, "handle_chinese_chars", true, &wp->handle_chinese, err)) != SE_OK) return s;
        if ((s = se_json_bool(norm, file, "lowercase", true, &wp->lowercase, err)) != SE_OK) return s;
        if ((s = se_json_bool(norm, file, "strip_accents", wp->lowercase, &strip, err)) != SE_OK) return s;
        wp->strip_accents = strip;
        snprintf(t->normalizer, sizeof t->normalizer, "BertNormalizer%s%s", wp->lowercase ? " lowercase" : "",
                 wp->strip_accents ? " strip_accents" : "");
    }
    json_t *pre = json_object_get(root, "pre_tokenizer");
    if (pre && !json_is_null(pre)) {
        const char *pt;
        if ((s = se_json_str(pre, file, "type", "", &pt, err)) != SE_OK) return s;
        if (strcmp(pt, "BertPreTokenizer") != 0)
            return se_err(err, SE_E_UNSUPPORTED, "%s: pre_tokenizer type '%s' is not supported (BertPreTokenizer only)", path, pt);
    }
    return SE_OK;
}

/* Decodes standard base64 (padding optional, no whitespace) into a new
 * buffer *out (se_free), *n bytes. Returns false on a bad character or
 * length, or OOM (*out NULL then). */
static bool base64_decode(const char *in, size_t len, uint8_t **out, size_t *n) {
    *out = NULL;
    while (len && in[len - 1] == '=') len--;
    if (len % 4 == 1) return false;
    uint8_t *b = se_malloc(len / 4 * 3 + 3);
    if (!b) return false;
    uint32_t acc = 0;
    int bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        int v = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52
              : c == '+' ? 62 : c == '/' ? 63 : -1;
        if (v < 0) {
            se_free(b);
            return false;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            b[k++] = (uint8_t)(acc >> bits);
        }
    }
    *out = b;
    *n = k;
    return true;
}

/* Reads one normalizer of a Unigram tokenizer.json (field names it in
 * errors: "normalizer" or "normalizer.normalizers[2]") into the model's
 * steps. Accepted: what Hugging Face's converters write around a
 * sentencepiece model (Precompiled, Strip, Replace " {2,}", NFKC) and
 * Sequences of them; anything else is refused by name. */
static se_status parse_unigram_normalizer(se_tokenizer *t, const json_t *norm, const char *field, const char *path,
                                          int depth, se_error *err) {
    const char *file = "tokenizer.json";
    se_unigram *u = &t->uni;
    se_status s;
    const char *nt;
    if (!json_is_object(norm)) return se_err(err, SE_E_FORMAT, "%s: %s must be an object", path, field);
    if ((s = se_json_str(norm, file, "type", "", &nt, err)) != SE_OK) return s;
    if (strcmp(nt, "Sequence") == 0) {
        json_t *list = json_object_get(norm, "normalizers");
        if (!json_is_array(list) || depth > 0)
            return se_err(err, SE_E_FORMAT, "%s: %s.normalizers must be a list (one level of Sequence)", path, field);
        size_t i;
        json_t *it;
        json_array_foreach(list, i, it) {
            char sub[96];
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", field, i);
            if ((s = parse_unigram_normalizer(t, it, sub, path, depth + 1, err)) != SE_OK) return s;
        }
        return SE_OK;
    }
    if (u->n_steps == SE_UNI_NORM_MAX)
        return se_err(err, SE_E_UNSUPPORTED, "%s: %s: more than %d normalizers", path, field, SE_UNI_NORM_MAX);
    se_uni_norm_step *st = &u->steps[u->n_steps];
    memset(st, 0, sizeof *st);
    const char *what = nt;
    if (strcmp(nt, "NFKC") == 0) {
        st->kind = SE_UNI_NORM_NFKC;
    } else if (strcmp(nt, "Precompiled") == 0) {
        json_t *cm = json_object_get(norm, "precompiled_charsmap");
        if (!json_is_string(cm) || json_string_length(cm) == 0)
            return se_err(err, SE_E_FORMAT, "%s: %s.precompiled_charsmap must be a non-empty base64 string", path, field);
        if (u->pc) return se_err(err, SE_E_UNSUPPORTED, "%s: %s: a second Precompiled normalizer", path, field);
        uint8_t *bytes;
        size_t nb;
        if (!base64_decode(json_string_value(cm), json_string_length(cm), &bytes, &nb))
            return bytes ? SE_E_INTERNAL
                         : se_err(err, SE_E_FORMAT, "%s: %s.precompiled_charsmap is not valid base64", path, field);
        char f2[160];
        snprintf(f2, sizeof f2, "%s: %s.precompiled_charsmap", path, field);
        s = se_precompiled_new(bytes, nb, f2, &u->pc, err);
        se_free(bytes);
        if (s != SE_OK) return s;
        st->kind = SE_UNI_NORM_PRECOMPILED;
    } else if (strcmp(nt, "Strip") == 0) {
        st->kind = SE_UNI_NORM_STRIP;
        if ((s = se_json_bool(norm, file, "strip_left", true, &st->left, err)) != SE_OK) return s;
        if ((s = se_json_bool(norm, file, "strip_right", true, &st->right, err)) != SE_OK) return s;
        what = st->left && st->right ? "Strip" : st->left ? "Strip(left)" : "Strip(right)";
    } else if (strcmp(nt, "Replace") == 0) {
        json_t *pat = json_object_get(norm, "pattern");
        json_t *rx = json_object_get(pat, "Regex");
        const char *content;
        if ((s = se_json_str(norm, file, "content", NULL, &content, err)) != SE_OK) return s;
        if (!json_is_string(rx) || strcmp(json_string_value(rx), " {2,}") != 0 || !content ||
            (strcmp(content, " ") != 0 && strcmp(content, "\xE2\x96\x81") != 0))
            return se_err(err, SE_E_UNSUPPORTED,
                          "%s: %s: only the Replace of Regex \" {2,}\" by \" \" or \"\xE2\x96\x81\" (Hugging Face's sentencepiece converters) is supported",
                          path, field);
        st->kind = SE_UNI_NORM_REPLACE;
        strcpy(st->content, content);
    } else {
        return se_err(err, SE_E_UNSUPPORTED,
                      "%s: %s type '%s' is not supported with Unigram (Precompiled, Strip, Replace, NFKC, Sequence)", path,
                      field, nt);
    }
    u->n_steps++;
    size_t l = strlen(t->normalizer);
    snprintf(t->normalizer + l, sizeof t->normalizer - l, "%s%s", l ? ", " : "", what);
    return SE_OK;
}

/* Reads a Unigram tokenizer.json's normalizer and pre_tokenizer into the
 * model's settings. Metaspace: replacement, prepend_scheme (always, first,
 * never; from the legacy add_prefix_space when absent), split. */
static se_status parse_unigram_pipeline(se_tokenizer *t, const json_t *root, const char *path, se_error *err) {
    const char *file = "tokenizer.json";
    se_unigram *u = &t->uni;
    se_status s;
    json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm) && (s = parse_unigram_normalizer(t, norm, "normalizer", path, 0, err)) != SE_OK)
        return s;
    json_t *pre = json_object_get(root, "pre_tokenizer");
    u->replacement = 0x2581;
    if (pre && !json_is_null(pre)) {
        const char *pt, *rep, *scheme;
        bool add_prefix;
        if ((s = se_json_str(pre, file, "type", "", &pt, err)) != SE_OK) return s;
        if (strcmp(pt, "Metaspace") != 0)
            return se_err(err, SE_E_UNSUPPORTED, "%s: pre_tokenizer type '%s' is not supported with Unigram (Metaspace only)", path, pt);
        if ((s = se_json_str(pre, file, "replacement", "\xE2\x96\x81", &rep, err)) != SE_OK) return s;
        if ((s = se_json_bool(pre, file, "add_prefix_space", true, &add_prefix, err)) != SE_OK) return s;
        if ((s = se_json_str(pre, file, "prepend_scheme", add_prefix ? "always" : "never", &scheme, err)) != SE_OK) return s;
        if ((s = se_json_bool(pre, file, "split", true, &u->split, err)) != SE_OK) return s;
        uint32_t cp;
        if (!*rep || se_utf8_decode((const uint8_t *)rep, strlen(rep), &cp) != (int)strlen(rep))
            return se_err(err, SE_E_FORMAT, "%s: pre_tokenizer.replacement must be one character", path);
        u->replacement = cp;
        u->metaspace = true;
        if (strcmp(scheme, "always") == 0) u->prepend = SE_PREPEND_ALWAYS;
        else if (strcmp(scheme, "first") == 0) u->prepend = SE_PREPEND_FIRST;
        else if (strcmp(scheme, "never") == 0) u->prepend = SE_PREPEND_NEVER;
        else return se_err(err, SE_E_FORMAT, "%s: pre_tokenizer.prepend_scheme '%s' is not always, first or never", path, scheme);
    }
    return SE_OK;
}

/* Reads post_processor: TemplateProcessing, BertProcessing,
 * RobertaProcessing, or none (the sequences alone, types 0 and 1). */
static se_status parse_post_processor(se_tokenizer *t, const json_t *root, const char *path, se_error *err) {
    const char *file = "tokenizer.json";
    se_status s;
    json_t *pp = json_object_get(root, "post_processor");
    if (pp && !json_is_null(pp)) {
        const char *ptype;
        if ((s = se_json_str(pp, file, "type", "", &ptype, err)) != SE_OK) return s;
        if (strcmp(ptype, "TemplateProcessing") == 0) {
            if ((s = parse_template(pp, path, "single", t->single, &t->n_single, err)) != SE_OK) return s;
            if ((s = parse_template(pp, path, "pair", t->pair, &t->n_pair, err)) != SE_OK) return s;
        } else if (strcmp(ptype, "BertProcessing") == 0 || strcmp(ptype, "RobertaProcessing") == 0) {
            int32_t cls, sep;
            if ((s = read_tok_id(pp, path, "cls", &cls, err)) != SE_OK) return s;
            if ((s = read_tok_id(pp, path, "sep", &sep, err)) != SE_OK) return s;
            if (ptype[0] == 'B') tpl_bert(t, cls, sep);
            else tpl_roberta(t, cls, sep);
        } else {
            return se_err(err, SE_E_UNSUPPORTED, "%s: post_processor type '%s' is not supported", path, ptype);
        }
    } else {
        t->single[0] = tpl_seq(0, 0);
        t->n_single = 1;
        t->pair[0] = tpl_seq(0, 0), t->pair[1] = tpl_seq(1, 1);
        t->n_pair = 2;
    }
    return SE_OK;
}

/* Reads the decoder se_detokenize applies: WordPiece (prefix, cleanup),
 * Metaspace (replacement, prepend_scheme or the legacy add_prefix_space),
 * or none; any other type loads (encoding does not need it) and is named
 * when se_detokenize is called. */
static se_status parse_decoder(se_tokenizer *t, const json_t *root, const char *path, se_error *err) {
    const char *file = "tokenizer.json";
    json_t *d = json_object_get(root, "decoder");
    se_status s;
    t->dec = SE_DEC_NONE;
    if (!d || json_is_null(d)) return SE_OK;
    const char *type;
    if ((s = se_json_str(d, file, "type", "", &type, err)) != SE_OK) return s;
    if (strcmp(type, "WordPiece") == 0) {
        const char *prefix;
        if ((s = se_json_str(d, file, "prefix", "##", &prefix, err)) != SE_OK) return s;
        if ((s = se_json_bool(d, file, "cleanup", true, &t->dec_cleanup, err)) != SE_OK) return s;
        if (strlen(prefix) >= sizeof t->dec_prefix) return se_err(err, SE_E_FORMAT, "%s: decoder.prefix is too long", path);
        strcpy(t->dec_prefix, prefix);
        t->dec = SE_DEC_WORDPIECE;
    } else if (strcmp(type, "Metaspace") == 0) {
        const char *rep, *scheme;
        bool add_prefix;
        uint32_t cp;
        if ((s = se_json_str(d, file, "replacement", "\xE2\x96\x81", &rep, err)) != SE_OK) return s;
        if ((s = se_json_bool(d, file, "add_prefix_space", true, &add_prefix, err)) != SE_OK) return s;
        if ((s = se_json_str(d, file, "prepend_scheme", add_prefix ? "always" : "never", &scheme, err)) != SE_OK) return s;
        if (!*rep || se_utf8_decode((const uint8_t *)rep, strlen(rep), &cp) != (int)strlen(rep))
            return se_err(err, SE_E_FORMAT, "%s: decoder.replacement must be one character", path);
        t->dec_replacement = cp;
        t->dec_strip_first = strcmp(scheme, "never") != 0;
        t->dec = SE_DEC_METASPACE;
    } else {
        snprintf(t->dec_name, sizeof t->dec_name, "%s", type);
        t->dec = SE_DEC_UNSUPPORTED;
    }
    return SE_OK;
}

/* Loads a tokenizer.json: the model section by the model's loader, then
 * the added tokens, normalizer, pre_tokenizer and post_processor. */
static se_status load_tokenizer_json(se_tokenizer *t, const char *path, se_error *err) {
    json_t *root;
    se_status s = load_json_capped(path, &root, err);
    if (s != SE_OK) return s;
    const char *file = "tokenizer.json";
    json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) {
        s = se_err(err, SE_E_FORMAT, "%s: missing object 'model'", path);
        goto done;
    }
    const char *type;
    if ((s = se_json_str(model, file, "type", "WordPiece", &type, err)) != SE_OK) goto done;
    /* ids are dense: every id must be below the number of entries (vocab
     * plus added tokens), which also bounds the memory a file can ask for */
    json_t *added_list = json_object_get(root, "added_tokens");
    long long id_limit = (long long)json_object_size(json_object_get(model, "vocab")) +
                         (json_is_array(added_list) ? (long long)json_array_size(added_list) : 0);
    if (strcmp(type, "Unigram") == 0) {
        t->kind = SE_TOK_UNIGRAM;
        if ((s = se_unigram_load_json(&t->uni, model, path, err)) != SE_OK) goto done;
        id_limit = (long long)t->uni.vocab.n + (json_is_array(added_list) ? (long long)json_array_size(added_list) : 0);
        if ((s = parse_added_tokens(t, root, id_limit, path, err)) != SE_OK) goto done;
        if ((s = parse_unigram_pipeline(t, root, path, err)) != SE_OK) goto done;
        if ((s = se_unigram_finish(&t->uni, path, err)) != SE_OK) goto done;
        t->unk_id = t->uni.unk_id;
    } else if (strcmp(type, "WordPiece") == 0) {
        const char *unk;
        if ((s = se_wordpiece_load_json(&t->wp, model, id_limit, path, &unk, err)) != SE_OK) goto done;
        if ((s = parse_added_tokens(t, root, id_limit, path, err)) != SE_OK) goto done;
        if ((s = se_wordpiece_finish(&t->wp, unk, path, "model.unk_token", err)) != SE_OK) goto done;
        t->unk_id = t->wp.unk_id;
        if ((s = parse_wordpiece_pipeline(t, root, path, err)) != SE_OK) goto done;
    } else {
        s = se_err(err, SE_E_UNSUPPORTED, "%s: model type '%s' is not supported (WordPiece, Unigram)", path, type);
        goto done;
    }
    s = parse_post_processor(t, root, path, err);
    if (s == SE_OK) s = parse_decoder(t, root, path, err);
done:
    json_decref(root);
    return s;
}

/* ==== vocab.txt + tokenizer_config.json ==== */

/* Reads a special-token field that is either a string or an AddedToken
 * object {"content": ...}. */
static se_status special_field(const json_t *cfg, const char *key, const char *dflt, const char **out, se_error *err) {
    json_t *v = cfg ? json_object_get(cfg, key) : NULL;
    if (!v || json_is_null(v)) {
        *out = dflt;
        return SE_OK;
    }
    if (json_is_string(v)) {
        *out = json_string_value(v);
        return SE_OK;
    }
    if (json_is_object(v) && json_is_string(json_object_get(v, "content"))) {
        *out = json_string_value(json_object_get(v, "content"));
        return SE_OK;
    }
    return se_err(err, SE_E_FORMAT, "tokenizer_config.json: field '%s' must be a string or an AddedToken", key);
}

/* Loads vocab.txt with tokenizer_config.json: BertTokenizer (do_lower_case,
 * strip_accents, tokenize_chinese_chars, special token strings) or
 * MPNetTokenizer (<s> A </s></s> B </s>). */
static se_status load_vocab_txt(se_tokenizer *t, const char *dir, const char *vpath, se_error *err) {
    json_t *cfg = NULL;
    se_wordpiece *wp = &t->wp;
    se_status s = se_wordpiece_load_txt(wp, vpath, err);
    if (s != SE_OK) return s;
    char *cpath;
    bool have_cfg;
    s = probe_in(dir, "tokenizer_config.json", &cpath, &have_cfg, err);
    if (s == SE_OK && have_cfg) s = se_json_load_file(cpath, &cfg, err);
    se_free(cpath);
    if (s != SE_OK) goto done;
    const char *file = "tokenizer_config.json";
    const char *cls = "tokenizer_class";
    const char *klass = "BertTokenizer";
    if (cfg && (s = se_json_str(cfg, file, cls, "BertTokenizer", &klass, err)) != SE_OK) goto done;
    bool mpnet = strncmp(klass, "MPNetTokenizer", 14) == 0;
    if (!mpnet && strncmp(klass, "BertTokenizer", 13) != 0 && strncmp(klass, "DistilBertTokenizer", 19) != 0) {
        s = se_err(err, SE_E_UNSUPPORTED, "%s: tokenizer_class '%s' needs tokenizer.json (only BertTokenizer and MPNetTokenizer load from vocab.txt)", file, klass);
        goto done;
    }
    bool lower = true, chinese = true, strip;
    if (cfg) {
        if ((s = se_json_bool(cfg, file, "do_lower_case", true, &lower, err)) != SE_OK) goto done;
        if ((s = se_json_bool(cfg, file, "tokenize_chinese_chars", true, &chinese, err)) != SE_OK) goto done;
        if ((s = se_json_bool(cfg, file, "strip_accents", lower, &strip, err)) != SE_OK) goto done;
    } else {
        strip = lower;
    }
    t->dec = SE_DEC_WORDPIECE; /* BertTokenizerFast / MPNetTokenizerFast: WordPiece(prefix "##", cleanup) */
    strcpy(t->dec_prefix, "##");
    t->dec_cleanup = true;
    wp->clean_text = true;
    wp->handle_chinese = chinese;
    wp->lowercase = lower;
    wp->strip_accents = strip;
    snprintf(t->normalizer, sizeof t->normalizer, "BertNormalizer%s%s", lower ? " lowercase" : "", strip ? " strip_accents" : "");
    const char *unk, *clss, *sep, *pad, *mask;
    if ((s = special_field(cfg, "unk_token", "[UNK]", &unk, err)) != SE_OK) goto done;
    if ((s = special_field(cfg, "cls_token", mpnet ? "<s>" : "[CLS]", &clss, err)) != SE_OK) goto done;
    if ((s = special_field(cfg, "sep_token", mpnet ? "</s>" : "[SEP]", &sep, err)) != SE_OK) goto done;
    if ((s = special_field(cfg, "pad_token", mpnet ? "<pad>" : "[PAD]", &pad, err)) != SE_OK) goto done;
    if ((s = special_field(cfg, "mask_token", mpnet ? "<mask>" : "[MASK]", &mask, err)) != SE_OK) goto done;
    if ((s = se_wordpiece_finish(wp, unk, vpath, "the unknown token", err)) != SE_OK) goto done;
    t->unk_id = wp->unk_id;
    int32_t cls_id = se_vocab_find(&wp->vocab, clss, strlen(clss));
    int32_t sep_id = se_vocab_find(&wp->vocab, sep, strlen(sep));
    if (cls_id < 0 || sep_id < 0) {
        s = se_err(err, SE_E_FORMAT, "%s: special tokens '%s' and '%s' must be in the vocabulary", vpath, clss, sep);
        goto done;
    }
    const char *sp[5] = {unk, clss, sep, pad, mask};
    for (int k = 0; k < 5; k++) {
        int32_t sid = se_vocab_find(&wp->vocab, sp[k], strlen(sp[k]));
        /* MPNetTokenizer's mask token is AddedToken(lstrip=True): it takes
         * the whitespace before it (its offsets show it) */
        bool lstrip = mpnet && k == 4;
        if (sid >= 0 && (s = add_added(t, sp[k], sid, true, lstrip, false, err)) != SE_OK) goto done;
    }
    if (mpnet) {
        const char *bos, *eos;
        if ((s = special_field(cfg, "bos_token", "<s>", &bos, err)) != SE_OK) goto done;
        if ((s = special_field(cfg, "eos_token", "</s>", &eos, err)) != SE_OK) goto done;
        const char *more[2] = {bos, eos};
        for (int k = 0; k < 2; k++) {
            int32_t sid = se_vocab_find(&wp->vocab, more[k], strlen(more[k]));
            if (sid >= 0 && (s = add_added(t, more[k], sid, true, false, false, err)) != SE_OK) goto done;
        }
        tpl_roberta(t, cls_id, sep_id);
    } else {
        tpl_bert(t, cls_id, sep_id);
    }
    s = SE_OK;
done:
    json_decref(cfg);
    return s;
}

/* ==== sentencepiece.bpe.model ==== */

/* Loads a folder whose tokenizer is only sentencepiece.bpe.model, as
 * XLMRobertaTokenizer reads it: sentencepiece's segmentation in the
 * fairseq id layout, <s> A </s> / <s> A </s></s> B </s> (type ids 0), the
 * special token strings from tokenizer_config.json, else
 * special_tokens_map.json, else <s> and </s>. Text that spells a special
 * token is read as text (python3-sentencepiece's ids; see the README). */
static se_status load_spm_folder(se_tokenizer *t, const char *dir, const char *path, se_error *err) {
    se_spm_model *m = NULL;
    json_t *cfg = NULL, *map = NULL;
    se_status s = se_spm_model_load(path, &m, err);
    if (s != SE_OK) return s;
    t->kind = SE_TOK_UNIGRAM;
    if ((s = se_unigram_load_spm(&t->uni, m, path, err)) != SE_OK) goto done;
    snprintf(t->normalizer, sizeof t->normalizer, "sentencepiece %s", m->normalizer.name[0] ? m->normalizer.name : "(unnamed)");
    if ((s = se_unigram_finish(&t->uni, path, err)) != SE_OK) goto done;
    t->unk_id = t->uni.unk_id;
    const char *names[2] = {"tokenizer_config.json", "special_tokens_map.json"};
    json_t **js[2] = {&cfg, &map};
    for (int k = 0; k < 2; k++) {
        char *p;
        bool present;
        s = probe_in(dir, names[k], &p, &present, err);
        if (s == SE_OK && present) s = se_json_load_file(p, js[k], err);
        se_free(p);
        if (s != SE_OK) goto done;
    }
    const char *klass = NULL;
    if (cfg && (s = se_json_str(cfg, names[0], "tokenizer_class", NULL, &klass, err)) != SE_OK) goto done;
    if (klass && strncmp(klass, "XLMRobertaTokenizer", 19) != 0) {
        s = se_err(err, SE_E_UNSUPPORTED,
                   "%s: tokenizer_class '%s' needs tokenizer.json (only XLMRobertaTokenizer loads from sentencepiece.bpe.model)",
                   names[0], klass);
        goto done;
    }
    const char *cls = NULL, *sep = NULL;
    if ((s = special_field(cfg, "cls_token", NULL, &cls, err)) != SE_OK) goto done;
    if (!cls && (s = special_field(map, "cls_token", NULL, &cls, err)) != SE_OK) goto done;
    if ((s = special_field(cfg, "sep_token", NULL, &sep, err)) != SE_OK) goto done;
    if (!sep && (s = special_field(map, "sep_token", NULL, &sep, err)) != SE_OK) goto done;
    if (!cls) cls = "<s>";
    if (!sep) sep = "</s>";
    int32_t cls_id = se_vocab_find_any(&t->uni.vocab, cls), sep_id = se_vocab_find_any(&t->uni.vocab, sep);
    if (cls_id < 0 || sep_id < 0) {
        s = se_err(err, SE_E_FORMAT, "%s: special tokens '%s' and '%s' must be in the vocabulary", path, cls, sep);
        goto done;
    }
    tpl_roberta(t, cls_id, sep_id);
    t->dec = SE_DEC_SPM;
    t->dec_replacement = 0x2581;
    t->dec_strip_first = t->uni.spm_opts.add_dummy_prefix;
    s = SE_OK;
done:
    json_decref(cfg);
    json_decref(map);
    se_spm_model_free(m);
    return s;
}

/* Reads tokenizer_config.json's "sembed_unigram_mode" (written by
 * sembed's USE lite converter) before a Unigram tokenizer.json is loaded. */
static se_status read_unigram_mode(se_tokenizer *t, const char *dir, se_error *err) {
    char *p;
    bool present;
    json_t *cfg = NULL;
    se_status s = probe_in(dir, "tokenizer_config.json", &p, &present, err);
    if (s == SE_OK && present) s = se_json_load_file(p, &cfg, err);
    se_free(p);
    if (s != SE_OK || !cfg) return s;
    const char *mode;
    s = se_json_str(cfg, "tokenizer_config.json", "sembed_unigram_mode", NULL, &mode, err);
    if (s == SE_OK && mode) {
        if (strcmp(mode, "energetic-ai") == 0) t->uni.energetic = true;
        else s = se_err(err, SE_E_UNSUPPORTED, "tokenizer_config.json: sembed_unigram_mode '%s' is unknown", mode);
    }
    json_decref(cfg);
    return s;
}

/* Appends a template as text ("<s> A </s>") to buf[0..cap): specials by
 * their pieces, glued when adjacent ("</s></s>"), A and B for the texts. */
static void template_text(const se_tokenizer *t, const se_tpl_item *it, int n, char *buf, size_t cap) {
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < (it[i].seq < 0 ? it[i].n_ids : 1); k++) {
            const char *p = it[i].seq < 0 ? se_vocab_piece(tok_vocab(t), it[i].ids[k]) : it[i].seq ? "B" : "A";
            bool glue = it[i].seq < 0 && (k > 0 || (i > 0 && it[i - 1].seq < 0));
            size_t l = strlen(buf);
            snprintf(buf + l, cap - l, "%s%s", l && !glue ? " " : "", p ? p : "?");
        }
    }
}

/* ==== Public API ==== */

se_status se_tokenizer_load(const char *dir, se_tokenizer **out, se_error *err) {
    if (!dir || !out) return se_err(err, SE_E_INVALID, "se_tokenizer_load: dir and out must not be NULL");
    *out = NULL;
    /* a missing folder is named as such, not as a missing tokenizer file */
    struct stat dst;
    if (stat(dir, &dst) != 0 && errno == ENOENT) return se_err(err, SE_E_IO, "model folder '%s': no such folder", dir);
    se_tokenizer *t = se_calloc(1, sizeof *t);
    if (!t) return se_err(err, SE_E_NOMEM, "out of memory");
    t->unk_id = -1;
    char *tj = NULL, *vt = NULL, *sm = NULL, *sp = NULL;
    bool has_tj = false, has_vt = false, has_sm, has_sp = false;
    /* every tokenizer file that is there must be a regular file, even one
     * that would not be read (special_tokens_map.json): a broken download
     * must not load as a different tokenizer */
    se_status s = probe_in(dir, "tokenizer.json", &tj, &has_tj, err);
    if (s == SE_OK) s = probe_in(dir, "vocab.txt", &vt, &has_vt, err);
    if (s == SE_OK) s = probe_in(dir, "special_tokens_map.json", &sm, &has_sm, err);
    if (s == SE_OK) s = probe_in(dir, "sentencepiece.bpe.model", &sp, &has_sp, err);
    if (s != SE_OK) {
        /* the message names the file */
    } else if (has_tj) {
        t->source = se_strdup("tokenizer.json");
        s = read_unigram_mode(t, dir, err);
        if (s == SE_OK) s = load_tokenizer_json(t, tj, err);
    } else if (has_vt) {
        t->source = se_strdup("vocab.txt");
        s = load_vocab_txt(t, dir, vt, err);
    } else if (has_sp) {
        t->source = se_strdup("sentencepiece.bpe.model");
        s = load_spm_folder(t, dir, sp, err);
    } else {
        s = se_err(err, SE_E_IO, "%s: no tokenizer.json, vocab.txt or sentencepiece.bpe.model", dir);
    }
    se_free(tj);
    se_free(vt);
    se_free(sm);
    se_free(sp);
    if (s == SE_OK && !t->source) s = se_err(err, SE_E_NOMEM, "out of memory");
    if (s == SE_OK) {
        count_specials(t);
        s = check_template_ids(t, err);
    }
    if (s == SE_OK) {
        template_text(t, t->single, t->n_single, t->post, sizeof t->post);
        size_t l = strlen(t->post);
        snprintf(t->post + l, sizeof t->post - l, " /");
        template_text(t, t->pair, t->n_pair, t->post, sizeof t->post);
    }
    if (s == SE_OK) s = se_folder_n_tokens_max(dir, &t->n_tokens_max, err);
    if (s != SE_OK) {
        se_tokenizer_free(t);
        return s;
    }
    *out = t;
    return SE_OK;
}

void se_tokenizer_free(se_tokenizer *t) {
    if (!t) return;
    se_wordpiece_free(&t->wp);
    se_unigram_free(&t->uni);
    for (size_t k = 0; k < t->n_added; k++) se_free(t->added[k].content);
    se_free(t->added);
    se_free(t->source);
    se_free(t);
}

size_t se_tokenizer_n_vocab(const se_tokenizer *tok) { return tok ? tok_vocab(tok)->n : 0; }

size_t se_tokenizer_n_tokens_max(const se_tokenizer *tok) { return tok ? tok->n_tokens_max : 0; }

/* Frees the session's buffers and zeroes it, ready for reuse. */
void se_tok_session_free(se_tok_session *s) {
    se_i32vec_free(&s->a);
    se_i32vec_free(&s->b);
    se_i32vec_free(&s->nch);
    se_i32vec_free(&s->oa);
    se_i32vec_free(&s->ob);
    se_wp_scratch_free(&s->wp);
    se_uni_scratch_free(&s->uni);
    memset(s, 0, sizeof *s);
}

/* Finds the leftmost added token in text[i..len), the longest one there
 * (HF's added-vocabulary matcher). Returns its index, with [*start, *end)
 * the bytes it takes: its content, widened over the whitespace before it
 * (lstrip, down to i) and after it (rstrip); -1 when there is none. */
static long find_added(const se_tokenizer *tok, const char *text, size_t len, size_t i, size_t *start, size_t *end) {
    for (size_t p = i; p < len; p++) {
        if (!tok->added_first_byte[(uint8_t)text[p]]) continue;
        long best = -1;
        size_t best_len = 0;
        for (size_t k = 0; k < tok->n_added; k++) {
            const se_added_token *a = &tok->added[k];
            if (a->len > best_len && a->len <= len - p && memcmp(text + p, a->content, a->len) == 0) {
                best = (long)k;
                best_len = a->len;
            }
        }
        if (best < 0) continue;
        const se_added_token *a = &tok->added[best];
        size_t b = p, e = p + a->len;
        uint32_t c;
        int m;
        while (a->lstrip && b > i) { /* step back one code point */
            size_t q = b - 1;
            while (q > i && ((uint8_t)text[q] & 0xC0) == 0x80) q--;
            if (!se_utf8_decode((const uint8_t *)text + q, b - q, &c) || !se_uc_is_whitespace(c)) break;
            b = q;
        }
        while (a->rstrip && e < len && (m = se_utf8_decode((const uint8_t *)text + e, len - e, &c)) > 0 &&
               se_uc_is_whitespace(c))
            e += (size_t)m;
        *start = b, *end = e;
        return best;
    }
    return -1;
}

/* Runs the model on one section of text (no added tokens in it); with
 * offs, the spans it pushes are relative to the section. */
static se_status encode_section(const se_tokenizer *tok, const char *text, size_t len, bool at_start, size_t limit,
                                se_tok_session *s, se_i32vec *out, se_i32vec *nch, se_i32vec *offs, size_t *n_total,
                                se_error *err) {
    if (tok->kind == SE_TOK_UNIGRAM)
        return se_unigram_encode(&tok->uni, text, len, at_start, limit, &s->uni, out, nch, offs, n_total, err);
    return se_wordpiece_encode(&tok->wp, text, len, limit, &s->wp, out, nch, offs, n_total, err);
}

/* Number of non-whitespace code points in a valid UTF-8 string. */
static size_t count_visible(const char *p, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        int m = se_utf8_decode((const uint8_t *)p + i, n - i, &c);
        if (!m) break;
        i += (size_t)m;
        k += !se_uc_is_whitespace(c);
    }
    return k;
}

/* Tokenizes one text (no special tokens): the added tokens are split off
 * in the raw text, as Hugging Face's added vocabulary does, and the model
 * runs on each section between them. With n_total NULL, stops once out
 * holds more than `limit` ids from this call; with n_total set, reads the
 * whole text but keeps only limit + 1 ids and stores the whole count (see
 * se_wordpiece_encode). With s->stats, s->nch follows out. */
static se_status encode_one(const se_tokenizer *tok, const char *text, size_t len, size_t limit, se_tok_session *s,
                            se_i32vec *out, se_i32vec *offs, size_t *n_total, se_error *err) {
    se_i32vec *nch = s->stats ? &s->nch : NULL;
    if (!s->offsets) offs = NULL;
    size_t base = out->n, extra = 0, keep = limit == SIZE_MAX ? SIZE_MAX : limit + 1;
    se_status st;
    if (n_total) *n_total = 0;
    for (size_t i = 0; i < len;) {
        size_t have = out->n - base;
        if (have > limit && !n_total) break; /* enough to know the text is cut */
        size_t ms = len, me = len;
        long k = tok->n_added ? find_added(tok, text, len, i, &ms, &me) : -1;
        if (ms > i) {
            size_t sub_limit = have >= limit ? 0 : limit - have, sub_total = 0, before = out->n;
            size_t obefore = offs ? offs->n : 0;
            if ((st = encode_section(tok, text + i, ms - i, i == 0, sub_limit, s, out, nch, offs,
                                     n_total ? &sub_total : NULL, err)) != SE_OK)
                return st;
            if (n_total) extra += sub_total - (out->n - before);
            for (size_t q = obefore; offs && q < offs->n; q++) offs->v[q] += (int32_t)i; /* section -> text */
        }
        if (k >= 0) {
            const se_added_token *a = &tok->added[k];
            if (!se_i32vec_push(out, a->id) || (nch && !se_i32vec_push(nch, (int32_t)count_visible(a->content, a->len))))
                return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
            /* its span takes the whitespace lstrip / rstrip took */
            if (offs && (!se_i32vec_push(offs, (int32_t)ms) || !se_i32vec_push(offs, (int32_t)me)))
                return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
        }
        if (n_total && out->n - base > keep) { /* counting only from here */
            size_t drop = out->n - base - keep;
            extra += drop;
            out->n -= drop;
            if (nch) nch->n -= drop;
            if (offs) offs->n -= 2 * drop;
        }
        i = me;
    }
    if (n_total) *n_total = out->n - base + extra;
    return SE_OK;
}

int32_t se_tokenizer_unk_id(const se_tokenizer *tok) { return tok ? tok->unk_id : -1; }

/* Points the info at the tokenizer's own strings (see sembed.h). */
se_status se_tokenizer_describe(const se_tokenizer *tok, se_tokenizer_info *out, se_error *err) {
    if (!tok || !out) return se_err(err, SE_E_INVALID, "se_tokenizer_describe: tok and out must not be NULL");
    out->model = tok->kind == SE_TOK_UNIGRAM ? "Unigram" : "WordPiece";
    out->source = tok->source;
    out->normalizer = tok->normalizer;
    out->pre_tokenizer = tok->kind == SE_TOK_WORDPIECE ? "BertPreTokenizer" : tok->uni.metaspace ? "Metaspace" : "";
    out->post_processor = tok->post;
    out->byte_fallback = tok->kind == SE_TOK_UNIGRAM && tok->uni.byte_fallback;
    return SE_OK;
}

se_status se_tokenize_stats(const se_tokenizer *tok, const char *text, size_t len, se_token_stats *out,
                            se_error *err) {
    if (!tok || (!text && len) || !out) return se_err(err, SE_E_INVALID, "se_tokenize_stats: invalid arguments");
    memset(out, 0, sizeof *out);
    if (!text) text = "";
    size_t bad;
    if (!se_utf8_valid(text, len, &bad)) return se_err(err, SE_E_UTF8, "invalid UTF-8 at byte %zu", bad);
    /* the ids the model reads: the single-text budget of se_tokenize */
    size_t n_special = (size_t)se_tok_n_special(tok, false);
    size_t budget = SIZE_MAX;
    if (tok->n_tokens_max) budget = tok->n_tokens_max > n_special ? tok->n_tokens_max - n_special : 0;
    se_tok_session s = {0};
    s.stats = true;
    se_status st = encode_one(tok, text, len, budget, &s, &s.a, NULL, NULL, err);
    if (st == SE_OK && s.nch.n != s.a.n) st = se_err(err, SE_E_INTERNAL, "se_tokenize_stats: %zu counts for %zu ids", s.nch.n, s.a.n);
    if (st == SE_OK) {
        size_t n = s.a.n < budget ? s.a.n : budget;
        for (size_t i = 0; i < n; i++) {
            bool unk = s.a.v[i] == tok->unk_id;
            out->n_tokens++;
            out->n_unknown += unk;
            out->n_chars += (size_t)s.nch.v[i];
            if (unk) out->n_chars_unknown += (size_t)s.nch.v[i];
        }
        /* the counts are of the normalised text, which a normaliser may
         * lengthen (NFKC, a charsmap rule that writes several characters):
         * never more than the text has, the unknown share kept */
        size_t vis = count_visible(text, len);
        if (out->n_chars > vis) {
            out->n_chars_unknown = (size_t)((double)out->n_chars_unknown * (double)vis / (double)out->n_chars);
            out->n_chars = vis;
        }
    }
    se_tok_session_free(&s);
    return st;
}

/* ==== Scripts of the vocabulary ==== */

enum {
    SC_LATIN, SC_HAN, SC_KANA, SC_HANGUL, SC_CYRILLIC, SC_GREEK, SC_ARABIC, SC_HEBREW, SC_DEVANAGARI, SC_THAI,
    SC_OTHER, SC_NONE, SC_COUNT
};

static const char *const script_names[SC_COUNT] = {
    "Latin", "Han", "Kana", "Hangul", "Cyrillic", "Greek", "Arabic", "Hebrew", "Devanagari", "Thai",
    "other letters", "no letters"};

/* The script of a letter, by Unicode block (the blocks each script's
 * letters live in; a letter elsewhere is "other letters"). */
static int script_of(uint32_t c) {
    if (c < 0x250 || (c >= 0x1E00 && c < 0x1F00) || (c >= 0x2C60 && c < 0x2C80) || (c >= 0xA720 && c < 0xA800) ||
        (c >= 0xFF21 && c < 0xFF5B))
        return SC_LATIN;
    if ((c >= 0x2E80 && c < 0x2FE0) || c == 0x3005 || c == 0x3007 || (c >= 0x3021 && c < 0x302A) ||
        (c >= 0x3038 && c < 0x303C) || (c >= 0x3400 && c < 0x4DC0) || (c >= 0x4E00 && c < 0xA000) ||
        (c >= 0xF900 && c < 0xFB00) || (c >= 0x20000 && c < 0x32400))
        return SC_HAN;
    if ((c >= 0x3040 && c < 0x3100) || (c >= 0x31F0 && c < 0x3200) || (c >= 0xFF66 && c < 0xFFA0)) return SC_KANA;
    if ((c >= 0x1100 && c < 0x1200) || (c >= 0x3130 && c < 0x3190) || (c >= 0xA960 && c < 0xA980) ||
        (c >= 0xAC00 && c < 0xD800) || (c >= 0xFFA0 && c < 0xFFE0))
        return SC_HANGUL;
    if ((c >= 0x400 && c < 0x530) || (c >= 0x1C80 && c < 0x1C90) || (c >= 0x2DE0 && c < 0x2E00) ||
        (c >= 0xA640 && c < 0xA6A0))
        return SC_CYRILLIC;
    if ((c >= 0x370 && c < 0x400) || (c >= 0x1F00 && c < 0x2000)) return SC_GREEK;
    if ((c >= 0x600 && c < 0x700) || (c >= 0x750 && c < 0x780) || (c >= 0x8A0 && c < 0x900) ||
        (c >= 0xFB50 && c < 0xFE00) || (c >= 0xFE70 && c < 0xFF00))
        return SC_ARABIC;
    if ((c >= 0x590 && c < 0x600) || (c >= 0xFB1D && c < 0xFB50)) return SC_HEBREW;
    if ((c >= 0x900 && c < 0x980) || (c >= 0xA8E0 && c < 0xA900)) return SC_DEVANAGARI;
    if (c >= 0xE00 && c < 0xE80) return SC_THAI;
    return SC_OTHER;
}

/* The script of a piece: that of its first letter after the continuation
 * prefix or the metaspace marker, SC_NONE when it has no letter. */
static int piece_script(const se_tokenizer *tok, const char *p, size_t n) {
    size_t i = 0, pl = tok->kind == SE_TOK_WORDPIECE ? tok->wp.cont_prefix_len : 0;
    if (pl && n >= pl && memcmp(p, tok->wp.cont_prefix, pl) == 0) i = pl;
    while (i < n) {
        uint32_t c;
        int m = se_utf8_decode((const uint8_t *)p + i, n - i, &c);
        if (!m) return SC_NONE;
        i += (size_t)m;
        utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
        if (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) return script_of(c);
    }
    return SC_NONE;
}

se_status se_tokenizer_scripts(const se_tokenizer *tok, se_script_count *out, size_t cap, size_t *n,
                               se_error *err) {
    if (!tok || !n || (cap && !out)) return se_err(err, SE_E_INVALID, "se_tokenizer_scripts: invalid arguments");
    size_t count[SC_COUNT] = {0};
    const se_vocab *v = tok_vocab(tok);
    for (size_t id = 0; id < v->n; id++) {
        if (v->offs[id] == UINT32_MAX) continue;
        count[piece_script(tok, v->blob + v->offs[id], v->lens[id])]++;
    }
    /* most pieces first; ties keep the order of script_names */
    int order[SC_COUNT], k = 0;
    for (int sc = 0; sc < SC_COUNT; sc++)
        if (count[sc]) order[k++] = sc;
    for (int i = 1; i < k; i++)
        for (int j = i; j > 0 && count[order[j]] > count[order[j - 1]]; j--) {
            int x = order[j];
            order[j] = order[j - 1], order[j - 1] = x;
        }
    *n = (size_t)k;
    for (int i = 0; i < k && (size_t)i < cap; i++) out[i] = (se_script_count){script_names[order[i]], count[order[i]]};
    if ((size_t)k > cap) return se_err(err, SE_E_BUFFER, "se_tokenizer_scripts: %d scripts do not fit in %zu", k, cap);
    return SE_OK;
}

const char *se_tokenizer_piece(const se_tokenizer *tok, int32_t id) {
    return tok ? se_vocab_piece(tok_vocab(tok), id) : NULL;
}

se_tokenize_params se_tokenize_default_params(const se_tokenizer *tok) {
    se_tokenize_params p;
    p.n_tokens_max = tok ? tok->n_tokens_max : 0;
    p.add_special = true;
    p.truncate_left = false;
    return p;
}

se_status se_tok_encode(const se_tokenizer *tok, const char *text, size_t len, const char *pair,
                        size_t pair_len, size_t n_tokens_max, bool add_special, se_tok_session *s,
                        se_i32vec *ids, se_i32vec *type_ids, bool *truncated, se_error *err) {
    return se_tok_encode_ex(tok, text, len, pair, pair_len, n_tokens_max, add_special, false, s, ids, type_ids, NULL,
                            truncated, err);
}

/* Drops the first `drop` ids of v (and their spans in o, two each). */
static void drop_front(se_i32vec *v, se_i32vec *o, size_t drop) {
    if (!drop) return;
    memmove(v->v, v->v + drop, (v->n - drop) * sizeof *v->v);
    v->n -= drop;
    if (o) {
        memmove(o->v, o->v + 2 * drop, (o->n - 2 * drop) * sizeof *o->v);
        o->n -= 2 * drop;
    }
}

se_status se_tok_encode_ex(const se_tokenizer *tok, const char *text, size_t len, const char *pair, size_t pair_len,
                           size_t n_tokens_max, bool add_special, bool left, se_tok_session *s, se_i32vec *ids,
                           se_i32vec *type_ids, se_i32vec *spans, bool *truncated, se_error *err) {
    bool is_pair = pair != NULL;
    size_t n_special = add_special ? (size_t)se_tok_n_special(tok, is_pair) : 0;
    size_t budget = SIZE_MAX; /* content tokens allowed */
    if (n_tokens_max) budget = n_tokens_max > n_special ? n_tokens_max - n_special : 0;
    s->a.n = s->b.n = s->oa.n = s->ob.n = 0;
    s->stats = false;
    s->offsets = spans != NULL;
    se_status st;
    /* validate all of the input first: the early stop below must not hide
     * invalid UTF-8 past the truncation point */
    size_t bad;
    if (!se_utf8_valid(text, len, &bad)) return se_err(err, SE_E_UTF8, "invalid UTF-8 at byte %zu", bad);
    if (pair && !se_utf8_valid(pair, pair_len, &bad)) return se_err(err, SE_E_UTF8, "text_pair: invalid UTF-8 at byte %zu", bad);
    /* Each side stops early: past budget + 1 ids it is cut anyway, and
     * longest_first compares a side's length with the budget only... With
     * left truncation the last ids are kept: read each side whole. */
    size_t limit = left ? SIZE_MAX : budget;
    if ((st = encode_one(tok, text, len, limit, s, &s->a, &s->oa, NULL, err)) != SE_OK) return st;
    size_t la = s->a.n, lb = 0; /* the lengths longest_first decides on */
    if (is_pair) {
        if ((st = encode_one(tok, pair, pair_len, limit, s, &s->b, &s->ob, NULL, err)) != SE_OK) {
            se_err_prefix(err, "text_pair");
            return st;
        }
        lb = s->b.n;
        /* ...except when both sides are over an odd budget: then the longer
         * one keeps the odd token, so count both to their end (the memory
         * stays bounded: only budget + 1 ids of each are kept) */
        if (!left && budget != SIZE_MAX && la > budget && lb > budget && budget % 2) {
            s->a.n = s->b.n = s->oa.n = s->ob.n = 0;
            if ((st = encode_one(tok, text, len, budget, s, &s->a, &s->oa, &la, err)) != SE_OK) return st;
            if ((st = encode_one(tok, pair, pair_len, budget, s, &s->b, &s->ob, &lb, err)) != SE_OK) {
                se_err_prefix(err, "text_pair");
                return st;
            }
        }
    }
    bool cut = false;
    size_t n1 = la, n2 = lb; /* what each side keeps */
    if (!is_pair) {
        if (la > budget) n1 = budget, cut = true;
    } else if (la + lb > budget) {
        /* HF LongestFirst: n1 <= n2 after a swap; the longer side gives
         * way first, and if both must shrink they split the budget, the
         * longer one getting the odd token. */
        bool swap = n1 > n2;
        if (swap) {
            size_t x = n1;
            n1 = n2, n2 = x;
        }
        if (n1 > budget) n2 = n1;
        else n2 = (budget - n1) > n1 ? budget - n1 : n1;
        if (n1 + n2 > budget) {
            n1 = budget / 2;
            n2 = n1 + budget % 2;
        }
        if (swap) {
            size_t x = n1;
            n1 = n2, n2 = x;
        }
        cut = true;
    }
    se_i32vec *oa = spans ? &s->oa : NULL, *ob = spans ? &s->ob : NULL;
    if (left) {
        if (s->a.n > n1) drop_front(&s->a, oa, s->a.n - n1);
        if (s->b.n > n2) drop_front(&s->b, ob, s->b.n - n2);
    } else {
        if (s->a.n > n1) s->a.n = n1;
        if (s->b.n > n2) s->b.n = n2;
        if (spans) s->oa.n = 2 * s->a.n, s->ob.n = 2 * s->b.n;
    }
    if (spans && (s->oa.n != 2 * s->a.n || s->ob.n != 2 * s->b.n))
        return se_err(err, SE_E_INTERNAL, "tokenizer: %zu offsets for %zu ids", s->oa.n / 2, s->a.n);
    ids->n = 0;
    if (type_ids) type_ids->n = 0;
    if (spans) spans->n = 0;
    const se_tpl_item *tpl = is_pair ? tok->pair : tok->single;
    int n_tpl = is_pair ? tok->n_pair : tok->n_single;
    for (int i = 0; i < n_tpl; i++) {
        const se_tpl_item *it = &tpl[i];
        if (it->seq < 0) {
            if (!add_special) continue;
            for (int k = 0; k < it->n_ids; k++) {
                if (!se_i32vec_push(ids, it->ids[k])) goto oom;
                if (type_ids && !se_i32vec_push(type_ids, it->type_id)) goto oom;
                if (spans && (!se_i32vec_push(spans, 0) || !se_i32vec_push(spans, 0) || !se_i32vec_push(spans, -1)))
                    goto oom;
            }
        } else {
            const se_i32vec *src = it->seq == 0 ? &s->a : &s->b;
            const se_i32vec *so = it->seq == 0 ? &s->oa : &s->ob;
            for (size_t k = 0; k < src->n; k++) {
                if (!se_i32vec_push(ids, src->v[k])) goto oom;
                if (type_ids && !se_i32vec_push(type_ids, it->type_id)) goto oom;
                if (spans && (!se_i32vec_push(spans, so->v[2 * k]) || !se_i32vec_push(spans, so->v[2 * k + 1]) ||
                              !se_i32vec_push(spans, it->seq)))
                    goto oom;
            }
        }
    }
    if (truncated) *truncated = cut;
    return SE_OK;
oom:
    return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
}

se_status se_tokenize(const se_tokenizer *tok, const char *text, size_t text_len, const char *pair,
                      size_t pair_len, const se_tokenize_params *params, int32_t *ids, int32_t *type_ids,
                      size_t cap, size_t *n_ids, bool *truncated, se_error *err) {
    if (!tok || (!text && text_len) || !n_ids || (cap && !ids))
        return se_err(err, SE_E_INVALID, "se_tokenize: invalid arguments");
    se_tokenize_params p = params ? *params : se_tokenize_default_params(tok);
    se_tok_session s = {0};
    se_i32vec vi = {0}, vt = {0};
    se_status st = se_tok_encode_ex(tok, text ? text : "", text_len, pair, pair ? pair_len : 0, p.n_tokens_max,
                                    p.add_special, p.truncate_left, &s, &vi, &vt, NULL, truncated, err);
    if (st == SE_OK) {
        *n_ids = vi.n;
        if (vi.n > cap) {
            st = se_err(err, SE_E_BUFFER, "se_tokenize: %zu ids do not fit in %zu", vi.n, cap);
        } else {
            if (vi.n) memcpy(ids, vi.v, vi.n * sizeof *ids);
            if (type_ids && vi.n) memcpy(type_ids, vt.v, vi.n * sizeof *type_ids);
        }
    }
    se_i32vec_free(&vi);
    se_i32vec_free(&vt);
    se_tok_session_free(&s);
    return st;
}

se_status se_tokenize_offsets(const se_tokenizer *tok, const char *text, size_t text_len, const char *pair,
                              size_t pair_len, const se_tokenize_params *params, se_token *out, size_t cap, size_t *n,
                              bool *truncated, se_error *err) {
    if (!tok || (!text && text_len) || (pair == NULL && pair_len) || !n || (cap && !out))
        return se_err(err, SE_E_INVALID, "se_tokenize_offsets: invalid arguments");
    if (text_len > INT32_MAX || pair_len > INT32_MAX)
        return se_err(err, SE_E_RANGE, "se_tokenize_offsets: a text of more than 2 GiB has offsets we do not report");
    se_tokenize_params p = params ? *params : se_tokenize_default_params(tok);
    se_tok_session s = {0};
    se_i32vec vi = {0}, vt = {0}, sp = {0};
    se_status st = se_tok_encode_ex(tok, text ? text : "", text_len, pair, pair ? pair_len : 0, p.n_tokens_max,
                                    p.add_special, p.truncate_left, &s, &vi, &vt, &sp, truncated, err);
    if (st == SE_OK) {
        *n = vi.n;
        if (vi.n > cap) {
            st = se_err(err, SE_E_BUFFER, "se_tokenize_offsets: %zu tokens do not fit in %zu", vi.n, cap);
        } else {
            for (size_t i = 0; i < vi.n; i++) {
                int32_t seq = sp.v[3 * i + 2];
                out[i] = (se_token){.id = vi.v[i], .type_id = vt.v[i], .start = (uint32_t)sp.v[3 * i],
                                    .end = (uint32_t)sp.v[3 * i + 1], .special = seq < 0,
                                    .seq = seq < 0 ? SE_SEQ_NONE : (uint8_t)seq};
            }
        }
    }
    se_i32vec_free(&vi);
    se_i32vec_free(&vt);
    se_i32vec_free(&sp);
    se_tok_session_free(&s);
    return st;
}

/* ==== Decoding ==== */

/* A growable byte string for se_detokenize. */
typedef struct dbuf {
    char *p;
    size_t n, cap;
    bool oom;
} dbuf;

/* Appends s[0..n). */
static void db_put(dbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = se_realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

/* The added token with this id, or NULL. */
static const se_added_token *added_by_id(const se_tokenizer *tok, int32_t id) {
    for (size_t k = 0; k < tok->n_added; k++)
        if (tok->added[k].id == id) return &tok->added[k];
    return NULL;
}

/* tokenizers' WordPiece decoder cleanup, on one token: each pattern is
 * replaced everywhere, in this order. */
static void wp_cleanup(dbuf *tmp) {
    static const char *const pat[][2] = {{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
                                         {" n't", "n't"}, {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"},
                                         {" 've", "'ve"}, {" 're", "'re"}};
    for (size_t k = 0; k < sizeof pat / sizeof pat[0]; k++) {
        size_t pl = strlen(pat[k][0]), rl = strlen(pat[k][1]), w = 0;
        if (tmp->n < pl) continue;
        /* in place: every replacement is no longer than its pattern */
        for (size_t i = 0; i < tmp->n;) {
            if (i + pl <= tmp->n && memcmp(tmp->p + i, pat[k][0], pl) == 0) {
                memmove(tmp->p + w, pat[k][1], rl);
                w += rl, i += pl;
            } else {
                tmp->p[w++] = tmp->p[i++];
            }
        }
        tmp->n = w;
    }
}

/* Appends piece p (n bytes) with every code point `from` replaced by ' ',
 * or dropped when drop is set. */
static void put_replaced(dbuf *b, const char *p, size_t n, uint32_t from, bool drop) {
    for (size_t i = 0; i < n;) {
        uint32_t c;
        int m = se_utf8_decode((const uint8_t *)p + i, n - i, &c);
        if (m <= 0) { /* pieces are valid UTF-8; copy a stray byte as it is */
            db_put(b, p + i, 1);
            i++;
            continue;
        }
        if (c == from) {
            if (!drop) db_put(b, " ", 1);
        } else {
            db_put(b, p + i, (size_t)m);
        }
        i += (size_t)m;
    }
}

se_status se_detokenize(const se_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special, char *out,
                        size_t cap, size_t *len, se_error *err) {
    if (!tok || (n && !ids) || !len || (cap && !out)) return se_err(err, SE_E_INVALID, "se_detokenize: invalid arguments");
    if (tok->dec == SE_DEC_UNSUPPORTED)
        return se_err(err, SE_E_UNSUPPORTED, "se_detokenize: %s: decoder type '%s' is not supported (WordPiece, Metaspace)",
                      tok->source, tok->dec_name);
    const se_vocab *v = tok_vocab(tok);
    dbuf b = {0}, tmp = {0};
    size_t i_tok = 0; /* index among the tokens kept */
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        const char *piece = se_vocab_piece(v, id);
        if (!piece) {
            se_free(b.p), se_free(tmp.p);
            return se_err(err, SE_E_INVALID, "se_detokenize: ids[%zu] = %d is not in the vocabulary (%zu ids)", i, id, v->n);
        }
        const se_added_token *a = added_by_id(tok, id);
        size_t pl = strlen(piece);
        if (a) piece = a->content, pl = a->len;
        bool special = a ? a->special : false;
        if (tok->dec == SE_DEC_SPM && !a) /* the fairseq specials, control and unused pieces */
            special = v->hidden && v->hidden[id] && id != tok->unk_id;
        if (skip_special && special) continue;
        switch (tok->dec) {
        case SE_DEC_NONE:
            if (i_tok) db_put(&b, " ", 1);
            db_put(&b, piece, pl);
            break;
        case SE_DEC_WORDPIECE: {
            size_t fl = strlen(tok->dec_prefix);
            tmp.n = 0;
            if (i_tok) {
                if (fl && pl >= fl && memcmp(piece, tok->dec_prefix, fl) == 0) {
                    db_put(&tmp, piece + fl, pl - fl);
                } else {
                    db_put(&tmp, " ", 1);
                    db_put(&tmp, piece, pl);
                }
            } else {
                db_put(&tmp, piece, pl);
            }
            if (tok->dec_cleanup && !tmp.oom) wp_cleanup(&tmp);
            if (!tmp.oom) db_put(&b, tmp.p, tmp.n);
            b.oom |= tmp.oom;
            break;
        }
        case SE_DEC_METASPACE:
            put_replaced(&b, piece, pl, tok->dec_replacement, i_tok == 0 && tok->dec_strip_first);
            break;
        case SE_DEC_SPM:
            /* sentencepiece: the unknown piece reads " \u2047 ", the
             * first piece's leading U+2581 (the dummy prefix) goes */
            if (id == tok->unk_id) {
                db_put(&b, " \xE2\x81\x87 ", 5);
            } else {
                size_t skip = 0;
                if (b.n == 0 && tok->dec_strip_first && pl >= 3 && memcmp(piece, "\xE2\x96\x81", 3) == 0) skip = 3;
                put_replaced(&b, piece + skip, pl - skip, tok->dec_replacement, false);
            }
            break;
        }
        i_tok++;
    }
    se_free(tmp.p);
    if (b.oom) {
        se_free(b.p);
        return se_err(err, SE_E_NOMEM, "se_detokenize: out of memory");
    }
    *len = b.n;
    se_status st = SE_OK;
    if (b.n >= cap) {
        st = se_err(err, SE_E_BUFFER, "se_detokenize: %zu bytes and a NUL do not fit in %zu", b.n, cap);
    } else {
        if (b.n) memcpy(out, b.p, b.n);
        out[b.n] = '\0';
    }
    se_free(b.p);
    return st;
}
