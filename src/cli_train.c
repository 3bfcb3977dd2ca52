/*
 * cli_train.c - `sembed train`: fine-tune (or train from a random init) a
 * BERT-family sentence encoder with sentence-transformers' losses, on the
 * training engine of src/train/ (train.h), and write a
 * sentence-transformers folder that sembed and sentence-transformers load.
 *
 * The engine has no public API yet, so this file (alone of the CLI) is
 * built with -Isrc and includes train/train.h and train/train_data.h.
 *
 * The run, as Hugging Face's Trainer runs it:
 *   - each epoch visits the rows in a permutation drawn from the seed
 *     (Fisher-Yates over splitmix64 seeded with seed and the epoch), cut
 *     into micro-batches of --batch-size rows (the last one shorter);
 *     --grad-accum micro-batches make an optimiser step;
 *   - a micro-batch's sentences are its rows' columns, column after
 *     column (all anchors, then all positives, ...), as the losses take
 *     them; dropout (config.json's probabilities) is drawn from a key of
 *     the seed and the micro-batch's number, so a resumed run draws the
 *     same masks;
 *   - AdamW with linear warm-up (ceil(warmup_ratio * steps)) and linear
 *     decay to 0 at the last step, clipping at --max-grad-norm.
 * Checkpoints (--save-steps, Ctrl-C) go to OUT_DIR/checkpoint-STEP: model
 * folders that load as they stand, with the optimiser's state besides.
 * Evaluations (--eval-sts, --eval-ir: a BEIR folder, read here as `sembed
 * eval ir` reads it) run on the model being trained, in eval mode.
 *
 * --init random: a BERT is the engine's random model (se_tmodel_random);
 * XLM-R, MPNet and a Dense module are written as a folder with random
 * weights (BERT's init of the same shape, renamed, plus their own
 * tensors) and loaded back through the folder loader.
 */
#include <errno.h>
#include <dirent.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "cli_io.h"
#include "sembed.h"
#include "safetensors.h"
#include "train/train.h"
#include "train/train_data.h"

#define EXIT_USAGE 2

static const char train_usage[] =
    "usage: sembed train -m INIT_DIR --loss LOSS --data FILE -o OUT_DIR [options]\n"
    "       sembed train --init random [--arch A] --vocab vocab.txt | --spm FILE [--layers L --hidden H] ...\n"
    "\n"
    "Trains a sentence encoder with a sentence-transformers loss and writes a\n"
    "sentence-transformers folder (model.safetensors, configs, tokenizer) to OUT_DIR.\n"
    "\n"
    "model:\n"
    "  -m, --model DIR          the model to fine-tune (BERT, XLM-R or MPNet folder)\n"
    "      --init random        a new model from Hugging Face's random init instead\n"
    "      --arch A             its architecture: bert (default), xlmr (XLM-RoBERTa) or mpnet\n"
    "      --vocab FILE         bert, mpnet: a WordPiece vocab.txt (lowercasing tokenizer; mpnet's\n"
    "                           holds <s> <pad> </s> <mask>)\n"
    "      --spm FILE           xlmr: a sentencepiece model (sentencepiece.bpe.model, fairseq's ids)\n"
    "      --layers L --hidden H --heads A --intermediate FF   shape (4, 256, 4, 4*H)\n"
    "      --max-seq-length N   truncate texts to N tokens (default the model's; random: 128)\n"
    "      --dense D            --init random: a Dense module (hidden -> D, identity, as\n"
    "                           sentence-transformers' models.Dense) after pooling, in 2_Dense/\n"
    "data and loss:\n"
    "  -d, --data FILE          training rows: .jsonl, .tsv or .csv; columns anchor, positive[,\n"
    "                           negative...] or sentence1, sentence2 and score (or label)\n"
    "      --columns A,B,...    the columns' names: JSONL fields to take, or the positions of a\n"
    "                           TSV/CSV file that has no header row\n"
    "      --loss LOSS          mnrl (MultipleNegativesRankingLoss), mnrl-sym, cmnrl (Cached MNRL),\n"
    "                           cosent, cosine (CosineSimilarityLoss), triplet, mse (distillation)\n"
    "      --matryoshka D1,D2   MatryoshkaLoss over LOSS at these dimensions\n"
    "      --scale S            MNRL / CoSENT scale (20); --margin M: triplet margin (5)\n"
    "      --mini-batch-size N  cmnrl's mini-batches (32)\n"
    "      --teacher-vectors F  mse: a float32 .npy of (rows, dim), the teacher's vector of each row\n"
    "      --teacher DIR        mse: encode each row's first column with this sembed model\n"
    "optimisation:\n"
    "      --epochs N (1)  --batch-size B (16)  --lr R (5e-5)  --warmup-ratio R (0)\n"
    "      --weight-decay W (0)  --max-grad-norm N (1; 0: no clipping)  --grad-accum K (1)\n"
    "      --seed S (42)        the data order, dropout and a random init follow it\n"
    "  -t, --threads N          threads (default 1; the result is the same for every count)\n"
    "output:\n"
    "  -o, --output DIR         the trained model (new, or holding only checkpoints)\n"
    "      --save-steps N       a checkpoint every N steps in OUT_DIR/checkpoint-N (a model folder)\n"
    "      --resume DIR         continue from a checkpoint (same data and options)\n"
    "      --eval-sts FILE      STS pairs as `sembed eval sts` reads them (s1<TAB>s2<TAB>score lines, or\n"
    "                           the STS Benchmark's format, gzip or plain): Spearman x100 after each\n"
    "                           epoch and every --eval-steps N\n"
    "      --eval-split S       the STS Benchmark split to evaluate on (dev)\n"
    "      --eval-ir DIR        a BEIR folder (corpus.jsonl, queries.jsonl, qrels.tsv or qrels/test.tsv,\n"
    "                           as `sembed eval ir` reads it): nDCG@10, MRR@10 and Recall@10 of exact\n"
    "                           cosine search, when --eval-sts evaluates; the best nDCG@10 is\n"
    "                           trainer_state.json's best_metric\n"
    "      --logging-steps N    loss in trainer_state.json's log_history every N steps (10)\n"
    "  -q, --quiet              no progress line; --progress: one even when not on a terminal\n"
    "  -h, --help\n"
    "Ctrl-C saves a checkpoint and prints the command that resumes from it.\n";

int cmd_train(int argc, char **argv);

/* snprintf for paths: formats into buf (cap bytes); a path that does not
 * fit is cut (paths are checked to be short when the run starts). */
static void pathf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pathf(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

/* splitmix64: a stream of 64-bit values from *st. */
static uint64_t mix64(uint64_t *st) {
    uint64_t z = (*st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The row order of epoch ep: a Fisher-Yates permutation of n rows drawn
 * from splitmix64 seeded with seed and the epoch. */
static void epoch_order(size_t *perm, size_t n, uint64_t seed, size_t ep) {
    uint64_t st = seed ^ (0xD1B54A32D192ED03ull * (ep + 1));
    for (size_t i = 0; i < n; i++) perm[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(mix64(&st) % i);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j], perm[j] = t;
    }
}

/* Reads a little-endian float32 .npy of 2 dimensions (C order) into a
 * new array; *rows, *cols its shape. -1 with a message. */
static float *read_npy(const char *path, size_t *rows, size_t *cols) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "sembed: train: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    unsigned char h[12];
    float *out = NULL;
    char *hdr = NULL;
    if (fread(h, 1, 10, f) != 10 || memcmp(h, "\x93NUMPY", 6)) {
        fprintf(stderr, "sembed: train: %s: not an .npy file\n", path);
        goto done;
    }
    size_t hl = h[8] | (size_t)h[9] << 8;
    if (h[6] >= 2) {
        if (fread(h + 10, 1, 2, f) != 2) goto done;
        hl |= (size_t)h[10] << 16 | (size_t)h[11] << 24;
    }
    if (hl > 1 << 20 || !(hdr = calloc(hl + 1, 1)) || fread(hdr, 1, hl, f) != hl) {
        fprintf(stderr, "sembed: train: %s: a bad .npy header\n", path);
        goto done;
    }
    unsigned long long r = 0, c = 0;
    const char *sh = strstr(hdr, "'shape':");
    if (!strstr(hdr, "'descr': '<f4'") || !strstr(hdr, "'fortran_order': False") || !sh ||
        sscanf(sh, "'shape': (%llu, %llu)", &r, &c) != 2 || !r || !c || r > (1ull << 32) || c > 65536) {
        fprintf(stderr, "sembed: train: %s: expected a float32 ('<f4') array of 2 dimensions in C order; header %s\n",
                path, hdr);
        goto done;
    }
    out = malloc((size_t)r * (size_t)c * sizeof *out);
    if (!out || fread(out, sizeof *out, (size_t)(r * c), f) != (size_t)(r * c)) {
        fprintf(stderr, "sembed: train: %s: %s\n", path, out ? "shorter than its shape" : "out of memory");
        free(out);
        out = NULL;
        goto done;
    }
    for (size_t i = 0; i < (size_t)(r * c); i++)
        if (!isfinite(out[i])) {
            fprintf(stderr, "sembed: train: %s: row %zu: a value that is not finite\n", path, i / (size_t)c);
            free(out);
            out = NULL;
            goto done;
        }
    *rows = (size_t)r, *cols = (size_t)c;
done:
    free(hdr);
    fclose(f);
    return out;
}

/* Makes directory path (its parent must exist); 0, or -1 with a message. */
static int make_dir(const char *path) {
    if (mkdir(path, 0777) == 0 || errno == EEXIST) return 0;
    fprintf(stderr, "sembed: train: cannot make %s: %s\n", path, strerror(errno));
    return -1;
}

/* Copies file src to dst through cli_out (a temporary name renamed over
 * dst), only over a regular file: a checkpoint saved twice at one step
 * writes its folder again, a symlink or device there is refused (cli_out
 * would follow or write through it); 0 or -1 with a message. */
static int copy_file(const char *src, const char *dst) {
    struct stat st;
    if (lstat(dst, &st) == 0 && !S_ISREG(st.st_mode)) {
        fprintf(stderr, "sembed: train: %s exists and is not a regular file; not replaced\n", dst);
        return -1;
    }
    char msg[4400], buf[65536];
    cli_out o;
    FILE *a = fopen(src, "rb");
    if (!a) {
        fprintf(stderr, "sembed: train: cannot copy %s to %s: %s\n", src, dst, strerror(errno));
        return -1;
    }
    if (cli_out_open(&o, dst, msg, sizeof msg)) {
        fprintf(stderr, "sembed: train: %s\n", msg);
        fclose(a);
        return -1;
    }
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, n, o.f) != n) rc = -1;
    if (ferror(a)) rc = -1;
    fclose(a);
    if (rc) {
        fprintf(stderr, "sembed: train: cannot copy %s to %s: %s\n", src, dst, strerror(errno));
        cli_out_abort(&o);
        return -1;
    }
    if (cli_out_commit(&o, msg, sizeof msg)) {
        fprintf(stderr, "sembed: train: %s\n", msg);
        return -1;
    }
    return 0;
}

/* True for a file the output must not copy from the init folder: weights
 * of any format and shards (written anew as model.safetensors), the
 * shard index, and files that describe the old weights. */
static bool skip_copy(const char *name) {
    static const char *const skip[] = {"model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                                       "pytorch_model.bin.index.json", "expected.jsonl", "tf_model.h5",
                                       "flax_model.msgpack", "rust_model.ot", "README.md", NULL};
    for (int i = 0; skip[i]; i++)
        if (!strcmp(name, skip[i])) return true;
    static const char *const ext[] = {".safetensors", ".bin", ".onnx", ".h5", ".msgpack", ".ot", ".pt", ".pth", NULL};
    size_t n = strlen(name);
    for (int i = 0; ext[i]; i++) /* shards (model-00001-of-00002.safetensors) and other weight files */
        if (n >= strlen(ext[i]) && !strcmp(name + n - strlen(ext[i]), ext[i])) return true;
    return name[0] == '.' || !strncmp(name, "checkpoint-", 11);
}

/* Copies the files of folder src into dst (made), recursing into
 * subfolders, except skip_copy's. 0 or -1. */
static int copy_tree(const char *src, const char *dst) {
    DIR *d = opendir(src);
    if (!d) {
        fprintf(stderr, "sembed: train: cannot read %s: %s\n", src, strerror(errno));
        return -1;
    }
    int rc = make_dir(dst);
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (skip_copy(e->d_name)) continue;
        char a[4096], b[4096];
        pathf(a, sizeof a, "%s/%s", src, e->d_name);
        pathf(b, sizeof b, "%s/%s", dst, e->d_name);
        struct stat st;
        if (stat(a, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) rc = copy_tree(a, b);
        else if (S_ISREG(st.st_mode)) rc = copy_file(a, b);
    }
    closedir(d);
    return rc;
}

/* Removes the folder path and everything in it (our temporary folder). */
static void remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[4096];
            pathf(p, sizeof p, "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
            else remove(p);
        }
        closedir(d);
    }
    rmdir(path);
}

/* Writes text to the file name in dir; 0 or -1 with a message. */
static int write_text(const char *dir, const char *name, const char *text) {
    char path[4096];
    pathf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    int rc = f && fputs(text, f) >= 0 ? 0 : -1;
    if (f && fclose(f) != 0) rc = -1;
    if (rc) fprintf(stderr, "sembed: train: cannot write %s: %s\n", path, strerror(errno));
    return rc;
}

/* The architectures of --init random. */
typedef enum { ARCH_BERT, ARCH_XLMR, ARCH_MPNET } rarch;

/* Writes the tokenizer files of a --init random folder into dir: BERT's
 * (src a vocab.txt, copied; lowercasing WordPiece, [CLS] A [SEP]), XLM-R's
 * (src a sentencepiece model, copied as sentencepiece.bpe.model;
 * XLMRobertaTokenizer's fairseq ids, <s> A </s>) or MPNet's (src a
 * WordPiece vocab.txt holding <s>, <pad>, </s>, <mask>; lowercasing
 * MPNetTokenizer, <s> A </s>), each with tokenizer_config.json and
 * special_tokens_map.json; P the model_max_length. 0 or -1. */
static int write_random_tokenizer(const char *dir, rarch arch, const char *src, size_t P) {
    char p[4096], buf[4096];
    pathf(p, sizeof p, "%s/%s", dir, arch == ARCH_XLMR ? "sentencepiece.bpe.model" : "vocab.txt");
    if (copy_file(src, p)) return -1;
    if (arch == ARCH_BERT) {
        snprintf(buf, sizeof buf,
                 "{\n  \"do_lower_case\": true,\n  \"tokenize_chinese_chars\": true,\n  \"strip_accents\": null,\n"
                 "  \"model_max_length\": %zu,\n  \"tokenizer_class\": \"BertTokenizer\",\n  \"unk_token\": \"[UNK]\",\n"
                 "  \"sep_token\": \"[SEP]\",\n  \"pad_token\": \"[PAD]\",\n  \"cls_token\": \"[CLS]\",\n"
                 "  \"mask_token\": \"[MASK]\"\n}\n",
                 P);
        if (write_text(dir, "tokenizer_config.json", buf)) return -1;
        return write_text(dir, "special_tokens_map.json",
                          "{\"cls_token\": \"[CLS]\", \"mask_token\": \"[MASK]\", \"pad_token\": \"[PAD]\", "
                          "\"sep_token\": \"[SEP]\", \"unk_token\": \"[UNK]\"}\n");
    }
    const char *unk = arch == ARCH_XLMR ? "<unk>" : "[UNK]";
    snprintf(buf, sizeof buf,
             "{\n%s  \"model_max_length\": %zu,\n  \"tokenizer_class\": \"%s\",\n  \"bos_token\": \"<s>\",\n"
             "  \"eos_token\": \"</s>\",\n  \"unk_token\": \"%s\",\n  \"sep_token\": \"</s>\",\n  \"pad_token\": \"<pad>\",\n"
             "  \"cls_token\": \"<s>\",\n  \"mask_token\": \"<mask>\"\n}\n",
             arch == ARCH_MPNET ? "  \"do_lower_case\": true,\n  \"tokenize_chinese_chars\": true,\n  \"strip_accents\": null,\n" : "",
             P, arch == ARCH_XLMR ? "XLMRobertaTokenizer" : "MPNetTokenizer", unk);
    if (write_text(dir, "tokenizer_config.json", buf)) return -1;
    snprintf(buf, sizeof buf,
             "{\"bos_token\": \"<s>\", \"cls_token\": \"<s>\", \"eos_token\": \"</s>\", \"mask_token\": \"<mask>\", "
             "\"pad_token\": \"<pad>\", \"sep_token\": \"</s>\", \"unk_token\": \"%s\"}\n", unk);
    return write_text(dir, "special_tokens_map.json", buf);
}

/* Writes the other files of a sentence-transformers folder for --init
 * random into dir (made, the tokenizer's files in it):
 * config.json as Hugging Face writes a BertModel, XLMRobertaModel
 * (RoBERTa's positions: padding_idx 1, max_position_embeddings P holds
 * the two offsets; one token type) or MPNetModel (the same positions, no
 * token types, 32 relative position buckets), modules.json (Transformer,
 * mean Pooling, with dense > 0 a Dense module to dense dimensions in
 * 2_Dense, Normalize), 1_Pooling/config.json, 2_Dense/config.json and the
 * sentence-transformers configs. The weights are written after
 * (write_weights). 0 or -1. */
static int write_random_folder(const char *dir, rarch arch, const se_tmodel_random_params *rp, size_t dense) {
    char p[4096], buf[4096];
    if (arch == ARCH_BERT)
        snprintf(buf, sizeof buf,
                 "{\n  \"architectures\": [\"BertModel\"],\n  \"attention_probs_dropout_prob\": %.6g,\n"
                 "  \"hidden_act\": \"gelu\",\n  \"hidden_dropout_prob\": %.6g,\n  \"hidden_size\": %zu,\n"
                 "  \"initializer_range\": 0.02,\n  \"intermediate_size\": %zu,\n  \"layer_norm_eps\": 1e-12,\n"
                 "  \"max_position_embeddings\": %zu,\n  \"model_type\": \"bert\",\n  \"num_attention_heads\": %zu,\n"
                 "  \"num_hidden_layers\": %zu,\n  \"pad_token_id\": 0,\n  \"position_embedding_type\": \"absolute\",\n"
                 "  \"torch_dtype\": \"float32\",\n  \"type_vocab_size\": %zu,\n  \"vocab_size\": %zu\n}\n",
                 (double)rp->attn_dropout, (double)rp->hidden_dropout, rp->H, rp->FF, rp->P, rp->NH, rp->L, rp->n_type,
                 rp->V);
    else
        snprintf(buf, sizeof buf,
                 "{\n  \"architectures\": [\"%s\"],\n  \"attention_probs_dropout_prob\": %.6g,\n"
                 "  \"bos_token_id\": 0,\n  \"eos_token_id\": 2,\n"
                 "  \"hidden_act\": \"gelu\",\n  \"hidden_dropout_prob\": %.6g,\n  \"hidden_size\": %zu,\n"
                 "  \"initializer_range\": 0.02,\n  \"intermediate_size\": %zu,\n  \"layer_norm_eps\": 1e-05,\n"
                 "  \"max_position_embeddings\": %zu,\n  \"model_type\": \"%s\",\n  \"num_attention_heads\": %zu,\n"
                 "  \"num_hidden_layers\": %zu,\n  \"pad_token_id\": 1,\n%s"
                 "  \"torch_dtype\": \"float32\",\n%s  \"vocab_size\": %zu\n}\n",
                 arch == ARCH_XLMR ? "XLMRobertaModel" : "MPNetModel", (double)rp->attn_dropout,
                 (double)rp->hidden_dropout, rp->H, rp->FF, rp->P, arch == ARCH_XLMR ? "xlm-roberta" : "mpnet", rp->NH,
                 rp->L,
                 arch == ARCH_XLMR ? "  \"position_embedding_type\": \"absolute\",\n"
                                   : "  \"relative_attention_num_buckets\": 32,\n",
                 arch == ARCH_XLMR ? "  \"type_vocab_size\": 1,\n" : "", rp->V);
    if (write_text(dir, "config.json", buf)) return -1;
    int norm = dense ? 3 : 2; /* Normalize's module number */
    snprintf(buf, sizeof buf,
             "[\n  {\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"},\n"
             "  {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"},\n"
             "%s"
             "  {\"idx\": %d, \"name\": \"%d\", \"path\": \"%d_Normalize\", \"type\": \"sentence_transformers.models.Normalize\"}\n]\n",
             dense ? "  {\"idx\": 2, \"name\": \"2\", \"path\": \"2_Dense\", \"type\": \"sentence_transformers.models.Dense\"},\n" : "",
             norm, norm, norm);
    if (write_text(dir, "modules.json", buf)) return -1;
    snprintf(buf, sizeof buf, "{\n  \"max_seq_length\": %zu,\n  \"do_lower_case\": false\n}\n",
             rp->P - (arch == ARCH_BERT ? 0 : 2));
    if (write_text(dir, "sentence_bert_config.json", buf)) return -1;
    if (write_text(dir, "config_sentence_transformers.json",
                   "{\n  \"__version__\": {\"sentence_transformers\": \"3.0.1\"},\n  \"prompts\": {},\n"
                   "  \"default_prompt_name\": null,\n  \"similarity_fn_name\": \"cosine\"\n}\n"))
        return -1;
    pathf(p, sizeof p, "%s/1_Pooling", dir);
    if (make_dir(p)) return -1;
    snprintf(buf, sizeof buf,
             "{\n  \"word_embedding_dimension\": %zu,\n  \"pooling_mode_cls_token\": false,\n"
             "  \"pooling_mode_mean_tokens\": true,\n  \"pooling_mode_max_tokens\": false,\n"
             "  \"pooling_mode_mean_sqrt_len_tokens\": false,\n  \"pooling_mode_weightedmean_tokens\": false,\n"
             "  \"pooling_mode_lasttoken\": false,\n  \"include_prompt\": true\n}\n",
             rp->H);
    if (write_text(dir, "1_Pooling/config.json", buf)) return -1;
    if (dense) {
        pathf(p, sizeof p, "%s/2_Dense", dir);
        if (make_dir(p)) return -1;
        snprintf(buf, sizeof buf,
                 "{\n  \"in_features\": %zu,\n  \"out_features\": %zu,\n  \"bias\": true,\n"
                 "  \"activation_function\": \"torch.nn.modules.linear.Identity\"\n}\n",
                 rp->H, dense);
        if (write_text(dir, "2_Dense/config.json", buf)) return -1;
    }
    pathf(p, sizeof p, "%s/%d_Normalize", dir, norm);
    return make_dir(p);
}

/* Writes the random Dense module of --init random --dense: dir/2_Dense/
 * model.safetensors with torch.nn.Linear's init (weight (out, in) and
 * bias uniform in +-1/sqrt(in)), drawn from splitmix64 seeded with the
 * seed (another stream than the encoder's). 0 or -1 with a message. */
static int write_random_dense(const char *dir, size_t in, size_t out, uint64_t seed) {
    float *w = malloc((out * in + out) * sizeof *w);
    if (!w) {
        fprintf(stderr, "sembed: train: out of memory\n");
        return -1;
    }
    uint64_t st = seed ^ 0x6A09E667F3BCC909ull;
    double bound = 1.0 / sqrt((double)in);
    for (size_t i = 0; i < out * in + out; i++)
        w[i] = (float)(bound * (2.0 * ((double)(mix64(&st) >> 11) / 9007199254740992.0) - 1.0));
    se_st_out t[2] = {{.name = "linear.weight", .n_dims = 2, .data = w},
                      {.name = "linear.bias", .n_dims = 1, .data = w + out * in}};
    t[0].shape[0] = (int64_t)out, t[0].shape[1] = (int64_t)in, t[1].shape[0] = (int64_t)out;
    char p[4096];
    se_error err = {0};
    pathf(p, sizeof p, "%s/2_Dense/model.safetensors", dir);
    int rc = se_st_write(p, t, 2, &err) == SE_OK ? 0 : -1;
    if (rc) fprintf(stderr, "sembed: train: %s\n", err.msg);
    free(w);
    return rc;
}

/* The Transformer module's subfolder of a sentence-transformers folder
 * (modules.json's path; "" when at the top or with no modules.json). */
static void transformer_path(const char *dir, char *out, size_t cap) {
    char p[4096];
    pathf(p, sizeof p, "%s/modules.json", dir);
    out[0] = 0;
    json_t *j = json_load_file(p, 0, NULL), *m;
    size_t i;
    json_array_foreach(j, i, m) {
        const char *t = json_string_value(json_object_get(m, "type")), *path = json_string_value(json_object_get(m, "path"));
        if (t && path && strstr(t, "Transformer")) snprintf(out, cap, "%s", path);
    }
    json_decref(j);
}

/* Writes m's weights into the folder dir (its other files in place):
 * the encoder's to TF/model.safetensors under their Hugging Face names
 * (unless !encoder: a checkpoint writes a top one of its own), each Dense
 * module's to N_Dense/model.safetensors as linear.weight and linear.bias;
 * config.json's torch_dtype becomes float32. 0 or -1. */
static int write_weights(const char *dir, const char *tf, const se_tmodel *m, bool encoder) {
    se_st_out *enc = calloc(m->n_p + 1, sizeof *enc), *den = calloc(m->n_p + 1, sizeof *den);
    size_t ne = 0;
    int rc = enc && den ? 0 : -1;
    char p[4096];
    for (size_t i = 0; rc == 0 && i < m->n_p; i++) {
        const se_tparam *t = &m->p[i];
        if (strchr(t->name, '/')) continue;
        enc[ne] = (se_st_out){.name = t->name, .n_dims = t->cols > 1 ? 2 : 1, .data = t->w};
        enc[ne].shape[0] = (int64_t)t->rows, enc[ne].shape[1] = (int64_t)t->cols;
        ne++;
    }
    se_error err = {0};
    pathf(p, sizeof p, "%s%s%s/model.safetensors", dir, tf[0] ? "/" : "", tf);
    if (rc == 0 && encoder && se_st_write(p, enc, ne, &err) != SE_OK) {
        fprintf(stderr, "sembed: train: %s\n", err.msg);
        rc = -1;
    }
    for (int s = 0; rc == 0 && s < m->n_stages; s++) {
        const se_tstage *st = &m->stages[s];
        if (st->kind != SE_STAGE_DENSE) continue;
        size_t nd = 0;
        int idx[2] = {st->w_idx, st->b_idx};
        for (int k = 0; k < 2; k++) {
            if (idx[k] < 0) continue;
            const se_tparam *t = &m->p[idx[k]];
            den[nd] = (se_st_out){.name = k ? "linear.bias" : "linear.weight", .n_dims = t->cols > 1 ? 2 : 1, .data = t->w};
            den[nd].shape[0] = (int64_t)t->rows, den[nd].shape[1] = (int64_t)t->cols;
            nd++;
        }
        const char *slash = strchr(m->p[st->w_idx].name, '/');
        pathf(p, sizeof p, "%s/%.*s", dir, (int)(slash - m->p[st->w_idx].name), m->p[st->w_idx].name);
        if (make_dir(p)) rc = -1;
        snprintf(p + strlen(p), sizeof p - strlen(p), "/model.safetensors");
        if (rc == 0 && se_st_write(p, den, nd, &err) != SE_OK) {
            fprintf(stderr, "sembed: train: %s\n", err.msg);
            rc = -1;
        }
        pathf(p, sizeof p, "%s/%.*s/pytorch_model.bin", dir, (int)(slash - m->p[st->w_idx].name), m->p[st->w_idx].name);
        remove(p);
    }
    pathf(p, sizeof p, "%s%s%s/config.json", dir, tf[0] ? "/" : "", tf);
    json_t *c = json_load_file(p, 0, NULL);
    if (rc == 0 && json_is_object(c)) {
        json_object_set_new(c, "torch_dtype", json_string("float32"));
        if (json_dump_file(c, p, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) rc = -1;
    }
    json_decref(c);
    free(enc);
    free(den);
    return rc;
}

/* The names of an MPNet layer's parameters, in se_tmodel.layer's slot
 * order (after "encoder.layer.N."; MPNetLayer's names). */
static const char *const mpnet_slot[SE_TL_N] = {
    "attention.attn.q.weight", "attention.attn.q.bias", "attention.attn.k.weight", "attention.attn.k.bias",
    "attention.attn.v.weight", "attention.attn.v.bias", "attention.attn.o.weight", "attention.attn.o.bias",
    "attention.LayerNorm.weight", "attention.LayerNorm.bias", "intermediate.dense.weight", "intermediate.dense.bias",
    "output.dense.weight", "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias"};

/* Writes dir/model.safetensors for --init random --arch xlmr or mpnet from
 * m, a random BERT of the same shape (BERT's init is theirs: normal(0,
 * 0.02), LayerNorm 1 / 0, biases 0), as Hugging Face initialises them:
 * the padding_idx (1) rows of the word and position embeddings zero;
 * MPNet's layers under MPNetLayer's names and its relative position bias
 * (32 buckets x heads) drawn from the seed. m's names are changed.
 * 0 or -1 with a message. */
static int write_random_encoder(const char *dir, rarch arch, se_tmodel *m, uint64_t seed) {
    size_t H = m->cfg.H, NH = m->cfg.NH;
    memset(m->p[m->word].w + 1 * H, 0, H * sizeof(float));
    memset(m->p[m->pos].w + 1 * H, 0, H * sizeof(float));
    float *rel = NULL;
    if (arch == ARCH_MPNET) {
        for (size_t i = 0; i < m->cfg.L; i++)
            for (int k = 0; k < SE_TL_N; k++)
                snprintf(m->p[m->layer[i][k]].name, sizeof m->p[0].name, "encoder.layer.%zu.%s", i, mpnet_slot[k]);
        if (!(rel = malloc(SE_T_BUCKETS * NH * sizeof *rel))) return -1;
        uint64_t st = seed ^ 0xBB67AE8584CAA73Bull;
        for (size_t i = 0; i < SE_T_BUCKETS * NH; i++) { /* normal(0, 0.02), Box-Muller */
            double u1 = ((double)(mix64(&st) >> 11) + 0.5) / 9007199254740992.0;
            double u2 = ((double)(mix64(&st) >> 11) + 0.5) / 9007199254740992.0;
            rel[i] = (float)(0.02 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
        }
    }
    int rc = write_weights(dir, "", m, true);
    if (rc == 0 && rel) { /* the bias table: the encoder's tensors again, with it */
        se_st_out *t = calloc(m->n_p + 1, sizeof *t);
        size_t n = 0;
        for (size_t i = 0; t && i < m->n_p; i++) {
            if (strchr(m->p[i].name, '/')) continue;
            t[n] = (se_st_out){.name = m->p[i].name, .n_dims = m->p[i].cols > 1 ? 2 : 1, .data = m->p[i].w};
            t[n].shape[0] = (int64_t)m->p[i].rows, t[n].shape[1] = (int64_t)m->p[i].cols;
            n++;
        }
        if (t) {
            t[n] = (se_st_out){.name = "encoder.relative_attention_bias.weight", .n_dims = 2, .data = rel};
            t[n].shape[0] = SE_T_BUCKETS, t[n].shape[1] = (int64_t)NH;
            n++;
        }
        char p[4096];
        se_error err = {0};
        pathf(p, sizeof p, "%s/model.safetensors", dir);
        if (!t || se_st_write(p, t, n, &err) != SE_OK) {
            fprintf(stderr, "sembed: train: %s\n", t ? err.msg : "out of memory");
            rc = -1;
        }
        free(t);
    }
    free(rel);
    return rc;
}

/* Spearman's rank correlation of a and b (n values; ties take their mean
 * rank), as scipy.stats.spearmanr. */
static double spearman(const double *a, const double *b, size_t n) {
    double *r[2] = {malloc(n * sizeof(double)), malloc(n * sizeof(double))};
    size_t *idx = malloc(n * sizeof *idx);
    const double *v[2] = {a, b};
    double res = 0.0;
    if (r[0] && r[1] && idx && n > 1) {
        for (int k = 0; k < 2; k++) {
            for (size_t i = 0; i < n; i++) idx[i] = i;
            for (size_t i = 1; i < n; i++) { /* insertion sort by value: n is an eval set's size */
                size_t x = idx[i], j = i;
                while (j > 0 && v[k][idx[j - 1]] > v[k][x]) idx[j] = idx[j - 1], j--;
                idx[j] = x;
            }
            for (size_t i = 0; i < n;) {
                size_t j = i;
                while (j + 1 < n && v[k][idx[j + 1]] == v[k][idx[i]]) j++;
                for (size_t q = i; q <= j; q++) r[k][idx[q]] = (double)(i + j) / 2.0 + 1.0;
                i = j + 1;
            }
        }
        double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
        for (size_t i = 0; i < n; i++) ma += r[0][i], mb += r[1][i];
        ma /= (double)n, mb /= (double)n;
        for (size_t i = 0; i < n; i++) {
            double x = r[0][i] - ma, y = r[1][i] - mb;
            sab += x * y, saa += x * x, sbb += y * y;
        }
        res = saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0.0;
    }
    free(r[0]), free(r[1]), free(idx);
    return res;
}

/* Embeds tokenised texts first .. first + n (text i is ids[off[i] ..
 * off[i + 1])) in eval mode (no dropout) into emb (n, dim), 32 at a
 * time. 0 or -1 with a message. */
static int embed_texts(se_tmodel *m, const int32_t *ids, const size_t *off, size_t first, size_t n, float *emb) {
    se_ttape *tape = NULL;
    size_t starts[33];
    se_error err = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i += 32) {
        size_t k = n - i < 32 ? n - i : 32;
        for (size_t s = 0; s <= k; s++) starts[s] = off[first + i + s] - off[first + i];
        se_tbatch b = {.ids = ids + off[first + i], .starts = starts, .S = k};
        if (se_ttape_forward(m, &b, &tape, emb + i * m->cfg.dim, &err) != SE_OK) {
            fprintf(stderr, "sembed: train: %s\n", err.msg);
            rc = -1;
        }
    }
    se_ttape_free(tape);
    return rc;
}

/* The evaluation set's Spearman x100 of cosine against the gold scores
 * (sentence-transformers' EmbeddingSimilarityEvaluator); NAN on error. */
static double eval_sts(se_tmodel *m, const se_tdata *ev) {
    size_t n = ev->n_rows, dim = m->cfg.dim;
    float *e = malloc(2 * n * dim * sizeof *e);
    double *cs = malloc(n * sizeof *cs), *gold = malloc(n * sizeof *gold), r = NAN;
    if (e && cs && gold && embed_texts(m, ev->ids, ev->off, 0, 2 * n, e) == 0) { /* rows are (s1, s2): texts 2i, 2i + 1 */
        for (size_t i = 0; i < n; i++) {
            const float *a = e + 2 * i * dim, *b = a + dim;
            double ab = 0, aa = 0, bb = 0;
            for (size_t k = 0; k < dim; k++) ab += (double)a[k] * b[k], aa += (double)a[k] * a[k], bb += (double)b[k] * b[k];
            cs[i] = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
            gold[i] = ev->label[i];
        }
        r = 100.0 * spearman(cs, gold, n);
    }
    free(e), free(cs), free(gold);
    return r;
}

/* An IR evaluation set (--eval-ir DIR), BEIR's layout as `sembed eval ir`
 * reads it: corpus.jsonl ({"_id", "title", "text"}: a document is (title
 * + " " + text) stripped), queries.jsonl ({"_id", "text"}), qrels.tsv or
 * qrels/test.tsv ("query-id corpus-id score", a header line, or TREC's
 * "qid 0 docid score"); each may be gzipped (.gz). Only the queries with
 * a judgement are kept (the others are not evaluated). The texts are
 * tokenised once, documents then queries. */
typedef struct irset {
    char name[256];       /* the folder's base name, in the metrics' names */
    size_t nd, nq, cap_d, cap_q;
    char **doc_id, **doc, **q_id, **q;
    int32_t *ids;         /* every text's tokens: the documents', then the queries' */
    size_t *off;          /* (nd + nq + 1) */
    se_ir_qrel *qrels;    /* ids owned (qstr) */
    char **qstr;
    size_t n_qrels, cap_qrels;
} irset;

/* Frees an IR set; NULL is a no-op. */
static void irset_free(irset *s) {
    if (!s) return;
    for (size_t i = 0; i < s->nd; i++) free(s->doc_id[i]), free(s->doc[i]);
    for (size_t i = 0; i < s->nq; i++) free(s->q_id[i]), free(s->q[i]);
    for (size_t i = 0; i < 2 * s->n_qrels; i++) free(s->qstr[i]);
    free(s->doc_id), free(s->doc), free(s->q_id), free(s->q), free(s->ids), free(s->off), free(s->qrels), free(s->qstr);
    free(s);
}

/* Reads the next line of g into *buf (grown, *cap its size) without its
 * line break, its length in *len; 1, 0 at the end of the file. */
static int gz_line(gzFile g, char **buf, size_t *cap, size_t *len) {
    *len = 0;
    for (;;) {
        if (*cap - *len < 2) {
            size_t c = *cap ? 2 * *cap : 4096;
            char *b = realloc(*buf, c);
            if (!b) return -1;
            *buf = b, *cap = c;
        }
        if (!gzgets(g, *buf + *len, (int)(*cap - *len > 1 << 30 ? 1 << 30 : *cap - *len))) return *len > 0;
        *len += strlen(*buf + *len);
        if (*len && (*buf)[*len - 1] == '\n') {
            (*buf)[--*len] = 0;
            if (*len && (*buf)[*len - 1] == '\r') (*buf)[--*len] = 0;
            return 1;
        }
    }
}

/* The path of file name in dir, or of name.gz; false when neither exists. */
static bool find_beir(const char *dir, const char *name, char *out, size_t cap) {
    struct stat st;
    pathf(out, cap, "%s/%s", dir, name);
    if (stat(out, &st) == 0) return true;
    pathf(out, cap, "%s/%s.gz", dir, name);
    return stat(out, &st) == 0;
}

/* A JSON id: a string, or an integer written as text; NULL otherwise. */
static char *json_id_str(json_t *v) {
    char b[32];
    if (json_is_string(v)) return strdup(json_string_value(v));
    if (!json_is_integer(v)) return NULL;
    snprintf(b, sizeof b, "%lld", (long long)json_integer_value(v));
    return strdup(b);
}

/* Appends the records of corpus.jsonl (docs: title + " " + text, stripped)
 * or queries.jsonl to ids / texts (*n of *cap). 0, or -1 with a message
 * naming the file and line. */
static int read_beir_texts(const char *path, bool docs, char ***ids, char ***texts, size_t *n, size_t *cap) {
    gzFile g = gzopen(path, "rb");
    if (!g) {
        fprintf(stderr, "sembed: train: --eval-ir: %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t bcap = 0, len, line = 0;
    int rc = 0, r;
    while (rc == 0 && (r = gz_line(g, &buf, &bcap, &len)) == 1) {
        line++;
        if (!len) continue;
        json_error_t je;
        json_t *j = json_loadb(buf, len, 0, &je), *tx = json_object_get(j, "text"), *ti = json_object_get(j, "title");
        char *id = json_id_str(json_object_get(j, "_id"));
        if (!json_is_object(j) || !id || !json_is_string(tx) || (ti && !json_is_null(ti) && !json_is_string(ti))) {
            fprintf(stderr, "sembed: train: --eval-ir: %s:%zu: %s\n", path, line,
                    !j ? je.text : !json_is_object(j) ? "not a JSON object" : !id ? "\"_id\" missing (a string or an integer)"
                    : !json_is_string(tx) ? "\"text\" missing or not a string" : "\"title\" is not a string");
            rc = -1;
        }
        if (rc == 0 && *n == *cap) {
            size_t c = *cap ? 2 * *cap : 1024;
            char **a = realloc(*ids, c * sizeof *a), **b = a ? realloc(*texts, c * sizeof *b) : NULL;
            if (a) *ids = a;
            if (b) *texts = b, *cap = c;
            else rc = -1;
        }
        const char *title = docs && json_is_string(ti) ? json_string_value(ti) : "", *text = json_string_value(tx);
        char *t = rc == 0 ? malloc(strlen(title) + strlen(text) + 2) : NULL;
        if (rc == 0 && !t) rc = -1;
        if (rc == 0) { /* (title + " " + text).strip(), as BEIR joins them */
            sprintf(t, "%s %s", title, text);
            char *a = t, *e = t + strlen(t);
            while (*a == ' ' || *a == '\t' || *a == '\n' || *a == '\r') a++;
            while (e > a && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) e--;
            memmove(t, a, (size_t)(e - a));
            t[e - a] = 0;
            (*ids)[*n] = id, (*texts)[*n] = t, ++*n;
            id = NULL;
        }
        free(id);
        json_decref(j);
    }
    if (rc == 0 && r < 0) fprintf(stderr, "sembed: train: --eval-ir: %s: out of memory\n", path), rc = -1;
    free(buf);
    gzclose(g);
    return rc;
}

/* The index of string id in the sorted array v (n), or SIZE_MAX. */
static size_t find_sorted(char *const *v, size_t n, const char *id) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v[mid], id);
        if (!c) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return SIZE_MAX;
}

/* qsort order of strings. */
static int by_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads the qrels: "qid docid score" (tab or blank separated) or TREC's
 * "qid 0 docid score"; a first line whose score is not a number is the
 * header. 0, or -1 with a message naming the file and line. */
static int read_beir_qrels(const char *path, irset *s) {
    gzFile g = gzopen(path, "rb");
    if (!g) {
        fprintf(stderr, "sembed: train: --eval-ir: %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t bcap = 0, len, line = 0;
    int rc = 0, r;
    while (rc == 0 && (r = gz_line(g, &buf, &bcap, &len)) == 1) {
        line++;
        char *f[5], *save = NULL;
        int nf = 0;
        for (char *t = strtok_r(buf, " \t", &save); t && nf < 5; t = strtok_r(NULL, " \t", &save)) f[nf++] = t;
        if (!nf) continue;
        char *end = NULL;
        long sc = nf == 3 || nf == 4 ? strtol(f[nf - 1], &end, 10) : 0;
        if ((nf != 3 && nf != 4) || !end || *end || end == f[nf - 1]) {
            if (line == 1 && (nf == 3 || nf == 4)) continue; /* the header */
            fprintf(stderr, "sembed: train: --eval-ir: %s:%zu: expected query-id, corpus-id, score (3 fields, or TREC's 4)\n",
                    path, line);
            rc = -1;
            break;
        }
        if (s->n_qrels == s->cap_qrels) {
            size_t c = s->cap_qrels ? 2 * s->cap_qrels : 256;
            se_ir_qrel *a = realloc(s->qrels, c * sizeof *a);
            char **b = a ? realloc(s->qstr, 2 * c * sizeof *b) : NULL;
            if (a) s->qrels = a;
            if (!b) {
                rc = -1;
                break;
            }
            s->qstr = b, s->cap_qrels = c;
        }
        char *q = strdup(f[0]), *d = strdup(f[nf - 2]);
        s->qstr[2 * s->n_qrels] = q, s->qstr[2 * s->n_qrels + 1] = d;
        s->qrels[s->n_qrels++] = (se_ir_qrel){.query_id = q, .doc_id = d, .score = (int32_t)sc};
        if (!q || !d) rc = -1;
    }
    if (rc == 0 && r < 0) rc = -1;
    if (rc && r != 1) fprintf(stderr, "sembed: train: --eval-ir: %s: out of memory\n", path);
    free(buf);
    gzclose(g);
    return rc;
}

/* Reads the BEIR folder dir and tokenises its texts with tok (truncated to
 * max_len tokens). NULL with a message on error. */
static irset *irset_read(const char *dir, const se_tokenizer *tok, size_t max_len) {
    irset *s = calloc(1, sizeof *s);
    char cp[4200], qp[4200], rp[4200];
    if (!s) return NULL;
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--; /* the base name, trailing slashes aside */
    size_t b0 = dl;
    while (b0 > 0 && dir[b0 - 1] != '/') b0--;
    snprintf(s->name, sizeof s->name, "%.*s", (int)(dl - b0), dir + b0);
    if (!find_beir(dir, "corpus.jsonl", cp, sizeof cp) || !find_beir(dir, "queries.jsonl", qp, sizeof qp) ||
        (!find_beir(dir, "qrels.tsv", rp, sizeof rp) && !find_beir(dir, "qrels/test.tsv", rp, sizeof rp))) {
        fprintf(stderr, "sembed: train: --eval-ir %s: expected corpus.jsonl, queries.jsonl and qrels.tsv (or qrels/test.tsv), "
                "each may be gzipped\n", dir);
        irset_free(s);
        return NULL;
    }
    char **aq = NULL, **at = NULL;
    size_t na = 0, ca = 0;
    if (read_beir_texts(cp, true, &s->doc_id, &s->doc, &s->nd, &s->cap_d) || read_beir_qrels(rp, s) ||
        read_beir_texts(qp, false, &aq, &at, &na, &ca)) {
        for (size_t i = 0; i < na; i++) free(aq[i]), free(at[i]);
        free(aq), free(at);
        irset_free(s);
        return NULL;
    }
    /* keep the queries that have a judgement */
    char **judged = malloc((s->n_qrels ? s->n_qrels : 1) * sizeof *judged);
    size_t nj = 0;
    for (size_t i = 0; judged && i < s->n_qrels; i++) judged[nj++] = s->qstr[2 * i];
    if (judged) qsort(judged, nj, sizeof *judged, by_str);
    s->q_id = malloc((na ? na : 1) * sizeof *s->q_id), s->q = malloc((na ? na : 1) * sizeof *s->q);
    for (size_t i = 0; i < na; i++) {
        if (judged && s->q_id && s->q && find_sorted(judged, nj, aq[i]) != SIZE_MAX)
            s->q_id[s->nq] = aq[i], s->q[s->nq++] = at[i];
        else free(aq[i]), free(at[i]);
    }
    free(aq), free(at), free(judged);
    if (!s->q_id || !s->q || !s->nd || !s->nq) {
        fprintf(stderr, "sembed: train: --eval-ir %s: %s\n", dir,
                !s->q_id || !s->q ? "out of memory" : !s->nd ? "no documents" : "no query of queries.jsonl is in the qrels");
        irset_free(s);
        return NULL;
    }
    /* tokenise: documents, then queries */
    size_t n = s->nd + s->nq, cap = 4096, used = 0;
    se_tokenize_params tp = se_tokenize_default_params(tok);
    tp.n_tokens_max = max_len;
    s->ids = malloc(cap * sizeof *s->ids), s->off = malloc((n + 1) * sizeof *s->off);
    if (!s->ids || !s->off) {
        fprintf(stderr, "sembed: train: --eval-ir: out of memory\n");
        irset_free(s);
        return NULL;
    }
    s->off[0] = 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = i < s->nd ? s->doc[i] : s->q[i - s->nd];
        size_t got = 0;
        se_error err = {0};
        se_status st;
        while ((st = se_tokenize(tok, t, strlen(t), NULL, 0, &tp, s->ids + used, NULL, cap - used, &got, NULL, &err)) ==
               SE_E_BUFFER) {
            size_t c = 2 * cap > used + got ? 2 * cap : used + got + 1024;
            int32_t *g = realloc(s->ids, c * sizeof *g);
            if (!g) break;
            s->ids = g, cap = c;
        }
        if (st != SE_OK) {
            fprintf(stderr, "sembed: train: --eval-ir: %s '%s': %s\n", i < s->nd ? "document" : "query",
                    i < s->nd ? s->doc_id[i] : s->q_id[i - s->nd], st == SE_E_BUFFER ? "out of memory" : err.msg);
            irset_free(s);
            return NULL;
        }
        used += got;
        s->off[i + 1] = used;
    }
    return s;
}

/* True when document a ranks above b for one query: the higher score, on
 * equal scores the larger id (sentence-transformers' heap, trec_eval). */
static bool ranks_above(const float *sc, char *const *id, size_t a, size_t b) {
    return sc[a] != sc[b] ? sc[a] > sc[b] : strcmp(id[a], id[b]) > 0;
}

/* The IR metrics of the model on the set (exact search by cosine, the top
 * 100 documents of each query, se_ir_evaluate's graded nDCG as `sembed
 * eval ir`): 0, or -1 with a message. */
static int eval_ir(se_tmodel *m, const irset *s, se_ir_metrics *met) {
    size_t dim = m->cfg.dim, nd = s->nd, nq = s->nq, K = nd < 100 ? nd : 100;
    float *e = malloc((nd + nq) * dim * sizeof *e), *sc = malloc(nd * sizeof *sc);
    size_t *top = malloc(K * sizeof *top);
    se_ir_hit *hits = malloc(nq * K * sizeof *hits);
    se_ir_run *runs = malloc(nq * sizeof *runs);
    int rc = -1;
    if (!e || !sc || !top || !hits || !runs) fprintf(stderr, "sembed: train: --eval-ir: out of memory\n");
    else if (embed_texts(m, s->ids, s->off, 0, nd + nq, e) == 0) {
        for (size_t i = 0; i < nd + nq; i++) { /* unit rows: cosine is the dot product */
            float *r = e + i * dim;
            double ss = 0.0;
            for (size_t k = 0; k < dim; k++) ss += (double)r[k] * r[k];
            float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
            for (size_t k = 0; k < dim; k++) r[k] *= inv;
        }
        for (size_t q = 0; q < nq; q++) {
            const float *qe = e + (nd + q) * dim;
            size_t nt = 0;
            for (size_t d = 0; d < nd; d++) {
                const float *de = e + d * dim;
                float dot = 0.0f;
                for (size_t k = 0; k < dim; k++) dot += qe[k] * de[k];
                sc[d] = dot;
                if (nt == K && !ranks_above(sc, s->doc_id, d, top[K - 1])) continue;
                size_t j = nt < K ? nt++ : K - 1; /* insert into the sorted top K */
                while (j > 0 && ranks_above(sc, s->doc_id, d, top[j - 1])) top[j] = top[j - 1], j--;
                top[j] = d;
            }
            for (size_t i = 0; i < nt; i++) hits[q * K + i] = (se_ir_hit){.doc_id = s->doc_id[top[i]], .score = sc[top[i]]};
            runs[q] = (se_ir_run){.query_id = s->q_id[q], .hits = hits + q * K, .n_hits = nt};
        }
        se_error err = {0};
        if (se_ir_evaluate(runs, nq, s->qrels, s->n_qrels, NULL, met, &err) != SE_OK)
            fprintf(stderr, "sembed: train: --eval-ir: %s\n", err.msg);
        else rc = 0;
    }
    free(e), free(sc), free(top), free(hits), free(runs);
    return rc;
}

/* The parsed options. */
typedef struct topts {
    const char *model, *init, *arch, *vocab, *spm, *data, *columns, *loss, *matryoshka, *teacher_vectors, *teacher;
    const char *out, *resume, *eval_sts, *eval_split, *eval_ir;
    long layers, hidden, heads, ff, dense, max_len, epochs, batch, accum, threads, save_steps, eval_steps, log_steps, mini;
    long seed;
    float lr, warmup, wd, max_norm, scale, margin;
    double warmup_ratio; /* --warmup-ratio as a double: ceil(0.1 * 50) is 5 (as Python computes it), not 6 */
} topts;

/* Formats seconds as H:MM:SS or M:SS. */
static void fmt_time(char *buf, size_t cap, double s) {
    long t = s > 0 && s < 1e8 ? (long)(s + 0.5) : 0;
    if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

/* One training run (everything after option parsing). Returns the exit
 * code. */
static int run(const topts *o, int argc, char **argv);

int cmd_train(int argc, char **argv) {
    topts o = {.arch = "bert", .layers = 4, .hidden = 256, .heads = 4, .epochs = 1, .batch = 16, .accum = 1,
               .threads = 1, .log_steps = 10, .mini = 32, .eval_split = "dev", .seed = 42, .lr = 5e-5f, .max_norm = 1.0f};
    enum { O_INIT = 256, O_ARCH, O_VOCAB, O_LAYERS, O_HIDDEN, O_HEADS, O_FF, O_MAXLEN, O_COLUMNS, O_LOSS, O_MATRY,
           O_SCALE, O_MARGIN, O_MINI, O_TVEC, O_TEACHER, O_EPOCHS, O_BATCH, O_LR, O_WARM, O_WD, O_NORM, O_ACCUM,
           O_SEED, O_SAVE, O_RESUME, O_EVAL, O_EVALSTEPS, O_LOG, O_PROGRESS, O_SPLIT, O_DENSE, O_EVALIR, O_SPM };
    static const struct option lo[] = {
        {"model", 1, 0, 'm'}, {"init", 1, 0, O_INIT}, {"arch", 1, 0, O_ARCH}, {"vocab", 1, 0, O_VOCAB}, {"spm", 1, 0, O_SPM},
        {"layers", 1, 0, O_LAYERS}, {"hidden", 1, 0, O_HIDDEN}, {"heads", 1, 0, O_HEADS}, {"intermediate", 1, 0, O_FF}, {"dense", 1, 0, O_DENSE},
        {"max-seq-length", 1, 0, O_MAXLEN}, {"data", 1, 0, 'd'}, {"columns", 1, 0, O_COLUMNS}, {"loss", 1, 0, O_LOSS},
        {"matryoshka", 1, 0, O_MATRY}, {"scale", 1, 0, O_SCALE}, {"margin", 1, 0, O_MARGIN},
        {"mini-batch-size", 1, 0, O_MINI}, {"teacher-vectors", 1, 0, O_TVEC}, {"teacher", 1, 0, O_TEACHER},
        {"epochs", 1, 0, O_EPOCHS}, {"batch-size", 1, 0, O_BATCH}, {"lr", 1, 0, O_LR}, {"warmup-ratio", 1, 0, O_WARM},
        {"weight-decay", 1, 0, O_WD}, {"max-grad-norm", 1, 0, O_NORM}, {"grad-accum", 1, 0, O_ACCUM},
        {"seed", 1, 0, O_SEED}, {"threads", 1, 0, 't'}, {"output", 1, 0, 'o'}, {"save-steps", 1, 0, O_SAVE},
        {"resume", 1, 0, O_RESUME}, {"eval-sts", 1, 0, O_EVAL}, {"eval-steps", 1, 0, O_EVALSTEPS}, {"eval-split", 1, 0, O_SPLIT}, {"eval-ir", 1, 0, O_EVALIR},
        {"logging-steps", 1, 0, O_LOG}, {"quiet", 0, 0, 'q'}, {"progress", 0, 0, O_PROGRESS}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    const char *c = "train";
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "m:d:t:o:qh", lo, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'm': o.model = optarg; break;
        case O_INIT: o.init = optarg; break;
        case O_ARCH: o.arch = optarg; break;
        case O_VOCAB: o.vocab = optarg; break;
        case O_SPM: o.spm = optarg; break;
        case O_LAYERS: bad = cli_opt_long(c, "--layers", optarg, 0, 48, &o.layers); break;
        case O_HIDDEN: bad = cli_opt_long(c, "--hidden", optarg, 1, 4096, &o.hidden); break;
        case O_HEADS: bad = cli_opt_long(c, "--heads", optarg, 1, 256, &o.heads); break;
        case O_FF: bad = cli_opt_long(c, "--intermediate", optarg, 1, 16384, &o.ff); break;
        case O_DENSE: bad = cli_opt_long(c, "--dense", optarg, 1, 4096, &o.dense); break;
        case O_MAXLEN: bad = cli_opt_long(c, "--max-seq-length", optarg, 2, 8192, &o.max_len); break;
        case 'd': o.data = optarg; break;
        case O_COLUMNS: o.columns = optarg; break;
        case O_LOSS: o.loss = optarg; break;
        case O_MATRY: o.matryoshka = optarg; break;
        case O_SCALE: bad = cli_opt_float(c, "--scale", optarg, 1e-3, 1e4, &o.scale); break;
        case O_MARGIN: bad = cli_opt_float(c, "--margin", optarg, 1e-6, 1e4, &o.margin); break;
        case O_MINI: bad = cli_opt_long(c, "--mini-batch-size", optarg, 1, 1 << 20, &o.mini); break;
        case O_TVEC: o.teacher_vectors = optarg; break;
        case O_TEACHER: o.teacher = optarg; break;
        case O_EPOCHS: bad = cli_opt_long(c, "--epochs", optarg, 1, 100000, &o.epochs); break;
        case O_BATCH: bad = cli_opt_long(c, "--batch-size", optarg, 1, 1 << 20, &o.batch); break;
        case O_LR: bad = cli_opt_float(c, "--lr", optarg, 1e-12, 10, &o.lr); break;
        case O_WARM:
            bad = cli_opt_float(c, "--warmup-ratio", optarg, 0, 1, &o.warmup);
            o.warmup_ratio = strtod(optarg, NULL);
            break;
        case O_WD: bad = cli_opt_float(c, "--weight-decay", optarg, 0, 10, &o.wd); break;
        case O_NORM: bad = cli_opt_float(c, "--max-grad-norm", optarg, 0, 1e30, &o.max_norm); break;
        case O_ACCUM: bad = cli_opt_long(c, "--grad-accum", optarg, 1, 1 << 20, &o.accum); break;
        case O_SEED: bad = cli_opt_long(c, "--seed", optarg, 0, 2147483647L, &o.seed); break;
        case 't': bad = cli_opt_long(c, "--threads", optarg, 1, 256, &o.threads); break;
        case 'o': o.out = optarg; break;
        case O_SAVE: bad = cli_opt_long(c, "--save-steps", optarg, 0, 1L << 40, &o.save_steps); break;
        case O_RESUME: o.resume = optarg; break;
        case O_EVAL: o.eval_sts = optarg; break;
        case O_SPLIT: o.eval_split = optarg; break;
        case O_EVALIR: o.eval_ir = optarg; break;
        case O_EVALSTEPS: bad = cli_opt_long(c, "--eval-steps", optarg, 0, 1L << 40, &o.eval_steps); break;
        case O_LOG: bad = cli_opt_long(c, "--logging-steps", optarg, 1, 1L << 40, &o.log_steps); break;
        case 'q': cli_quiet = 1; break;
        case O_PROGRESS: cli_progress_force = 1; break;
        case 'h': fputs(train_usage, stdout); return 0;
        default: return cli_usage_error(train_usage, "train: bad option");
        }
        if (bad) return EXIT_USAGE;
    }
    if (optind < argc) return cli_usage_error(train_usage, "train: unexpected argument '%s'", argv[optind]);
    if (!o.model == !o.init) return cli_usage_error(train_usage, "train: give -m INIT_DIR or --init random (one of them)");
    if (o.init && strcmp(o.init, "random")) return cli_usage_error(train_usage, "train: --init %s: random is the one there is", o.init);
    bool xlmr = !strcmp(o.arch, "xlmr");
    if (strcmp(o.arch, "bert") && !xlmr && strcmp(o.arch, "mpnet"))
        return cli_usage_error(train_usage, "train: --arch %s: one of bert, xlmr, mpnet", o.arch);
    if (o.init && xlmr && (!o.spm || o.vocab))
        return cli_usage_error(train_usage, "train: --init random --arch xlmr needs --spm FILE (a sentencepiece model), not --vocab");
    if (o.init && !xlmr && (!o.vocab || o.spm))
        return cli_usage_error(train_usage, "train: --init random --arch %s needs --vocab vocab.txt%s", o.arch,
                               o.spm ? " (--spm goes with --arch xlmr)" : "");
    if (!o.init && (o.spm || o.vocab || strcmp(o.arch, "bert")))
        return cli_usage_error(train_usage, "train: --arch, --vocab and --spm go with --init random");
    if (o.dense && !o.init) return cli_usage_error(train_usage, "train: --dense goes with --init random (-m keeps the model's modules)");
    if (!o.data) return cli_usage_error(train_usage, "train: missing --data FILE");
    if (!o.loss) return cli_usage_error(train_usage, "train: missing --loss");
    if (!o.out) return cli_usage_error(train_usage, "train: missing -o OUT_DIR");
    return run(&o, argc, argv);
}

/* Moves every entry of folder tmp into folder out (made when absent),
 * then removes tmp. out holds no model (checked before training), so
 * nothing is replaced but checkpoint-* folders' names never clash. 0 or
 * -1. */
static int move_into(const char *tmp, const char *out) {
    if (rename(tmp, out) == 0) return 0;
    if (errno != EEXIST && errno != ENOTEMPTY) {
        fprintf(stderr, "sembed: train: cannot rename %s to %s: %s\n", tmp, out, strerror(errno));
        return -1;
    }
    DIR *d = opendir(tmp);
    if (!d) return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char a[4096], b[4096];
        pathf(a, sizeof a, "%s/%s", tmp, e->d_name);
        pathf(b, sizeof b, "%s/%s", out, e->d_name);
        if (rename(a, b) != 0) {
            fprintf(stderr, "sembed: train: cannot move %s to %s: %s\n", a, b, strerror(errno));
            rc = -1;
        }
    }
    closedir(d);
    rmdir(tmp);
    return rc;
}

/* True when folder out already holds a model (modules.json or
 * config.json). */
static bool holds_model(const char *out) {
    char p[4096];
    struct stat st;
    pathf(p, sizeof p, "%s/modules.json", out);
    if (stat(p, &st) == 0) return true;
    pathf(p, sizeof p, "%s/config.json", out);
    return stat(p, &st) == 0;
}

/* The number of lines of a file (a vocab.txt's size); 0 when unreadable. */
static size_t count_lines(const char *path) {
    FILE *f = fopen(path, "rb");
    size_t n = 0, len = 0;
    int ch, last = '\n';
    if (!f) return 0;
    while ((ch = getc(f)) != EOF) {
        n += ch == '\n';
        last = ch, len++;
    }
    fclose(f);
    return n + (len && last != '\n');
}

/* Saves a checkpoint into OUT_DIR/checkpoint-STEP, as Hugging Face's
 * trainer does a model folder that loads as it stands: src's configs and
 * tokenizer (the init folder, or the random init's files) and the
 * weights as the output has them (write_weights; TF the Transformer's
 * subfolder), then the engine's checkpoint over them (every parameter in
 * the top model.safetensors, a Dense module's there too as
 * "N_Dense/linear.*", which loaders of the Transformer ignore; AdamW's
 * moments; trainer_state.json), and the logged losses and evaluations so
 * far in its sembed_log.json (so that a resumed run's trainer_state.json
 * has the whole history); writes its path to buf. 0 or -1 with a
 * message. */
static int save_checkpoint(const char *out, const char *src, const char *tf, se_tmodel *m, se_adamw *opt, json_t *log,
                           json_t *evals, char *buf, size_t cap) {
    se_error err = {0};
    if (make_dir(out)) return -1;
    snprintf(buf, cap, "%s/checkpoint-%zu", out, se_adamw_steps(opt));
    /* the Transformer's own file only when it sits in a subfolder: at the
     * top, the checkpoint's model.safetensors (written next) serves */
    if (copy_tree(src, buf) || write_weights(buf, tf, m, tf[0] != '\0')) return -1;
    if (se_train_checkpoint_save(buf, m, opt, &err) != SE_OK) {
        fprintf(stderr, "sembed: train: %s\n", err.msg);
        return -1;
    }
    char p[4200];
    pathf(p, sizeof p, "%s/sembed_log.json", buf);
    json_t *j = json_pack("{s:O, s:O}", "log_history", log, "eval_history", evals);
    int rc = j && json_dump_file(j, p, JSON_INDENT(2)) == 0 ? 0 : -1;
    json_decref(j);
    if (rc) fprintf(stderr, "sembed: train: cannot write %s\n", p);
    return rc;
}

/* Appends the histories of a checkpoint's sembed_log.json (when it has
 * one: absent, the history starts at the checkpoint) to log and evals. */
static void load_log(const char *ckpt, json_t *log, json_t *evals) {
    char p[4200];
    pathf(p, sizeof p, "%s/sembed_log.json", ckpt);
    json_t *j = json_load_file(p, 0, NULL);
    json_t *l = json_object_get(j, "log_history"), *e = json_object_get(j, "eval_history");
    if (json_is_array(l)) json_array_extend(log, l);
    if (json_is_array(e)) json_array_extend(evals, e);
    json_decref(j);
}

/* The folder of a -m (or --teacher) argument: a folder that exists as it
 * is, else a hub name ORG/NAME resolved through the hub cache (as every
 * command's -m). 0, or -1 with a message. */
static int model_folder(const char *arg, char *dir, size_t cap) {
    struct stat st;
    if (stat(arg, &st) == 0 || !se_hub_is_repo_id(arg)) {
        pathf(dir, cap, "%s", arg);
        return 0;
    }
    se_hub_params hp = se_hub_default_params();
    se_error err = {0};
    if (se_hub_resolve(arg, &hp, dir, cap, &err) != SE_OK) {
        fprintf(stderr, "sembed: train: model folder '%s': no such folder; as a hub model: %s\n", arg, err.msg);
        return -1;
    }
    return 0;
}

static int run(const topts *o, int argc, char **argv) {
    se_error err = {0};
    int rc = 1;
    se_loss_spec spec = {.scale = o->scale, .margin = o->margin};
    bool cached = false;
    const char *L = o->loss;
    if (!strcmp(L, "mnrl")) spec.kind = SE_LOSS_MNRL;
    else if (!strcmp(L, "cmnrl")) spec.kind = SE_LOSS_MNRL, cached = true;
    else if (!strcmp(L, "mnrl-sym")) spec.kind = SE_LOSS_MNRL_SYM;
    else if (!strcmp(L, "cosent")) spec.kind = SE_LOSS_COSENT;
    else if (!strcmp(L, "cosine")) spec.kind = SE_LOSS_COSINE;
    else if (!strcmp(L, "triplet")) spec.kind = SE_LOSS_TRIPLET;
    else if (!strcmp(L, "mse")) spec.kind = SE_LOSS_MSE;
    else return cli_usage_error(train_usage, "train: --loss %s: one of mnrl, mnrl-sym, cmnrl, cosent, cosine, triplet, mse", L);
    if (spec.kind == SE_LOSS_MSE && !o->teacher_vectors == !o->teacher)
        return cli_usage_error(train_usage, "train: --loss mse needs --teacher-vectors FILE.npy or --teacher DIR (one)");
    size_t mdims[16], n_mdims = 0;
    if (o->matryoshka) {
        for (const char *s = o->matryoshka; *s;) {
            char *e;
            long v = strtol(s, &e, 10);
            if (e == s || v <= 0 || n_mdims == 16 || (*e && *e != ','))
                return cli_usage_error(train_usage, "train: --matryoshka %s: a list of up to 16 positive dimensions", o->matryoshka);
            mdims[n_mdims++] = (size_t)v;
            s = *e ? e + 1 : e;
        }
        spec.dims = mdims, spec.n_dims = n_mdims;
    }
    if (strlen(o->out) > 3000) {
        fprintf(stderr, "sembed: train: -o: the path is too long\n");
        return 1;
    }
    if (holds_model(o->out)) {
        fprintf(stderr, "sembed: train: %s already holds a model; choose another -o (a folder that is new or holds only checkpoints)\n", o->out);
        return 1;
    }
    char tmp[4096];
    pathf(tmp, sizeof tmp, "%s.tmp.%ld", o->out, (long)getpid());
    se_tmodel *m = NULL;
    se_tokenizer *tok = NULL;
    se_tdata *d = NULL, *ev = NULL;
    irset *ir = NULL;
    se_adamw *opt = NULL;
    se_ttape *tape = NULL;
    float *teacher = NULL, *emb = NULL, *demb = NULL, *labels = NULL, *tbuf = NULL;
    double *loss_scratch = NULL;
    size_t t_rows = 0, t_dim = 0, *perm = NULL, *starts = NULL, *sub = NULL;
    int32_t *ids = NULL;
    json_t *log = json_array(), *evals = json_array();
    size_t nc = 0, n = 0;
    bool tmp_made = false;
    char tf[1024] = "", init_dir[4096] = "", teacher_dir[4096] = "";
    /* the data */
    if (se_tdata_read(o->data, o->columns, &d, &err) != SE_OK) {
        fprintf(stderr, "sembed: train: %s\n", err.msg);
        goto done;
    }
    nc = d->n_cols, n = d->n_rows;
    const char *need = NULL;
    if ((spec.kind == SE_LOSS_COSENT || spec.kind == SE_LOSS_COSINE) && (nc != 2 || !d->label))
        need = "two text columns (sentence1, sentence2) and a score (or label) column";
    else if ((spec.kind == SE_LOSS_MNRL || spec.kind == SE_LOSS_MNRL_SYM) && nc < 2)
        need = "at least two text columns (anchor, positive[, negative...])";
    else if (spec.kind == SE_LOSS_MNRL_SYM && nc != 2)
        need = "two text columns (anchor, positive)";
    else if (spec.kind == SE_LOSS_TRIPLET && nc != 3)
        need = "three text columns (anchor, positive, negative)";
    if (need) {
        fprintf(stderr, "sembed: train: %s: --loss %s takes %s; the file has %zu text column%s%s\n", o->data, L, need,
                nc, nc == 1 ? "" : "s", d->label ? " and a label" : "");
        goto done;
    }
    tmp_made = true; /* the output's temporary folder, now: a -o that cannot be written fails before training */
    if (make_dir(tmp)) {
        tmp_made = false;
        goto done;
    }
    cli_catch_stop_signals(); /* before the slow parts: Ctrl-C while loading ends with 130, no checkpoint */
    /* the model and its tokenizer */
    if (o->init) {
        rarch arch = !strcmp(o->arch, "xlmr") ? ARCH_XLMR : !strcmp(o->arch, "mpnet") ? ARCH_MPNET : ARCH_BERT;
        size_t len = (size_t)(o->max_len ? o->max_len : 128);
        if (o->hidden % o->heads) {
            fprintf(stderr, "sembed: train: --hidden %ld is not a multiple of --heads %ld\n", o->hidden, o->heads);
            goto done;
        }
        if (write_random_tokenizer(tmp, arch, arch == ARCH_XLMR ? o->spm : o->vocab, len)) goto done;
        if (se_tokenizer_load(tmp, &tok, &err) != SE_OK) {
            fprintf(stderr, "sembed: train: %s: %s\n", arch == ARCH_XLMR ? o->spm : o->vocab, err.msg);
            goto done;
        }
        /* the vocabulary: vocab.txt's lines; XLM-R's fairseq ids (the pieces, <pad> and <mask>) */
        size_t V = arch == ARCH_XLMR ? se_tokenizer_n_vocab(tok) : count_lines(o->vocab);
        if (!V) {
            fprintf(stderr, "sembed: train: %s: cannot read or empty\n", o->vocab);
            goto done;
        }
        se_tmodel_random_params rp = {.V = V, .H = (size_t)o->hidden, .NH = (size_t)o->heads,
                                      .FF = (size_t)(o->ff ? o->ff : 4 * o->hidden), .L = (size_t)o->layers,
                                      .P = arch == ARCH_BERT ? len : len + 2, .n_type = arch == ARCH_BERT ? 2 : arch == ARCH_XLMR,
                                      .eps = arch == ARCH_BERT ? 1e-12f : 1e-5f,
                                      .hidden_dropout = 0.1f, .attn_dropout = 0.1f, .act = SE_ACT_GELU,
                                      .pooling = SE_POOL_MEAN, .normalize = true, .seed = (uint64_t)o->seed};
        if (write_random_folder(tmp, arch, &rp, (size_t)o->dense)) goto done;
        if (se_tmodel_random(&rp, &m, &err) != SE_OK) {
            fprintf(stderr, "sembed: train: %s\n", err.msg);
            goto done;
        }
        if (arch != ARCH_BERT || o->dense) { /* the folder with its random weights, loaded back: XLM-R's positions,
                                                MPNet's bias, the Dense module are the folder loader's */
            if ((arch == ARCH_BERT ? write_weights(tmp, "", m, true) : write_random_encoder(tmp, arch, m, rp.seed)) ||
                (o->dense && write_random_dense(tmp, rp.H, (size_t)o->dense, rp.seed)))
                goto done;
            se_tmodel_free(m);
            m = NULL;
            if (se_tmodel_from_folder(tmp, &m, &err) != SE_OK) {
                fprintf(stderr, "sembed: train: %s\n", err.msg);
                goto done;
            }
        }
    } else {
        if (model_folder(o->model, init_dir, sizeof init_dir)) goto done;
        if (se_tmodel_from_folder(init_dir, &m, &err) != SE_OK || se_tokenizer_load(init_dir, &tok, &err) != SE_OK) {
            fprintf(stderr, "sembed: train: %s\n", err.msg);
            goto done;
        }
        transformer_path(init_dir, tf, sizeof tf);
    }
    if (se_tmodel_set_threads(m, (int)o->threads, &err) != SE_OK) {
        fprintf(stderr, "sembed: train: %s\n", err.msg);
        goto done;
    }
    size_t dim = m->cfg.dim, max_len = o->max_len ? (size_t)o->max_len : se_tokenizer_n_tokens_max(tok);
    if (!max_len || max_len > m->cfg.P) max_len = m->cfg.P;
    for (size_t i = 0; i < n_mdims; i++)
        if (mdims[i] > dim) {
            fprintf(stderr, "sembed: train: --matryoshka %zu: wider than the model's %zu dimensions\n", mdims[i], dim);
            goto done;
        }
    if (se_tdata_tokenize(d, tok, max_len, &err) != SE_OK) {
        fprintf(stderr, "sembed: train: %s: %s\n", o->data, err.msg);
        goto done;
    }
    if (o->teacher_vectors) {
        if (!(teacher = read_npy(o->teacher_vectors, &t_rows, &t_dim))) goto done;
        if (t_rows != n || t_dim < dim) {
            fprintf(stderr, "sembed: train: %s: %zu x %zu vectors; the data has %zu rows and the model %zu dimensions "
                    "(one vector per row, at least as wide)\n", o->teacher_vectors, t_rows, t_dim, n, dim);
            goto done;
        }
    } else if (o->teacher) { /* encode every row's first column with the teacher */
        se_model *tm = NULL;
        se_ctx *ctx = NULL;
        if (model_folder(o->teacher, teacher_dir, sizeof teacher_dir)) goto done;
        if (se_model_load(teacher_dir, NULL, &tm, &err) != SE_OK || se_ctx_new(tm, NULL, &ctx, &err) != SE_OK) {
            fprintf(stderr, "sembed: train: --teacher: %s\n", err.msg);
            se_model_free(tm);
            goto done;
        }
        t_rows = n, t_dim = se_encode_dim(tm, NULL);
        teacher = malloc(n * t_dim * sizeof *teacher);
        const char **tx = malloc(64 * sizeof *tx);
        int bad = !teacher || !tx || t_dim < dim;
        if (t_dim < dim) fprintf(stderr, "sembed: train: --teacher: %zu dimensions, fewer than the student's %zu\n", t_dim, dim);
        for (size_t i = 0; !bad && i < n; i += 64) {
            size_t k = n - i < 64 ? n - i : 64;
            for (size_t j = 0; j < k; j++) tx[j] = d->text[(i + j) * nc];
            if (se_encode(ctx, tx, NULL, k, NULL, teacher + i * t_dim, k * t_dim, NULL, &err) != SE_OK) {
                fprintf(stderr, "sembed: train: --teacher: %s\n", err.msg);
                bad = 1;
            }
        }
        free(tx);
        se_ctx_free(ctx);
        se_model_free(tm);
        if (bad) goto done;
    }
    if (o->eval_sts) {
        if (se_tdata_read_sts(o->eval_sts, o->eval_split, &ev, &err) != SE_OK ||
            se_tdata_tokenize(ev, tok, max_len, &err) != SE_OK) {
            fprintf(stderr, "sembed: train: --eval-sts: %s\n", err.msg);
            goto done;
        }
    }
    if (o->eval_ir && !(ir = irset_read(o->eval_ir, tok, max_len))) goto done;
    /* the schedule */
    size_t B = (size_t)o->batch, K = (size_t)o->accum, nb = (n + B - 1) / B, spe = (nb + K - 1) / K;
    size_t total = spe * (size_t)o->epochs;
    se_adamw_params ap = se_adamw_default_params();
    ap.lr = o->lr, ap.weight_decay = o->wd, ap.max_grad_norm = o->max_norm, ap.total_steps = total;
    ap.warmup_steps = (size_t)ceil(o->warmup_ratio * (double)total); /* transformers' get_warmup_steps */
    if (se_adamw_new(m, &ap, &opt, &err) != SE_OK) {
        fprintf(stderr, "sembed: train: %s\n", err.msg);
        goto done;
    }
    if (o->resume) {
        if (se_train_checkpoint_load(o->resume, m, opt, &err) != SE_OK) {
            fprintf(stderr, "sembed: train: --resume: %s\n", err.msg);
            goto done;
        }
        load_log(o->resume, log, evals);
        if (se_adamw_steps(opt) > total) {
            fprintf(stderr, "sembed: train: --resume %s: step %zu, past this run's %zu steps\n", o->resume,
                    se_adamw_steps(opt), total);
            goto done;
        }
    }
    size_t S_max = (B < n ? B : n) * nc; /* a batch is at most the data */
    perm = malloc(n * sizeof *perm);
    starts = malloc((S_max + 1) * sizeof *starts);
    sub = malloc((S_max + 1) * sizeof *sub);
    emb = malloc(S_max * dim * sizeof *emb);
    demb = malloc(S_max * dim * sizeof *demb);
    loss_scratch = malloc(se_loss_scratch_size(B < n ? B : n, nc, dim) * sizeof *loss_scratch);
    spec.scratch = loss_scratch; /* kept across the steps: no allocation per step */
    labels = malloc((B < n ? B : n) * sizeof *labels);
    tbuf = teacher ? malloc((B < n ? B : n) * t_dim * sizeof *tbuf) : NULL;
    size_t ids_cap = 0;
    if (!perm || !starts || !sub || !emb || !demb || !loss_scratch || !labels || (teacher && !tbuf)) {
        fprintf(stderr, "sembed: train: out of memory\n");
        goto done;
    }
    bool tty = isatty(2), show = (!cli_quiet && tty) || cli_progress_force;
    double t0 = cli_now(), last_print = 0.0, win_loss = 0.0;
    size_t win_n = 0, sentences = 0, step0 = se_adamw_steps(opt), cur_epoch = (size_t)-1;
    if (!cli_quiet) { /* the columns in use: an unintended extra field would be an extra negative */
        fprintf(stderr, "sembed: train: %s: text columns", o->data);
        for (size_t c = 0; c < nc; c++) fprintf(stderr, "%s %s", c ? "," : "", d->col[c]);
        fprintf(stderr, "%s%s\n", d->label_col ? "; label " : "", d->label_col ? d->label_col : "");
    }
    if (!cli_quiet)
        fprintf(stderr, "sembed: train: %zu rows x %zu columns, %zu steps (%ld epochs of %zu), batch %zu x %zu, %zu warm-up steps%s\n",
                n, nc, total, o->epochs, spe, B, K, ap.warmup_steps, step0 ? " (resumed)" : "");
    if (cli_stop) { /* before the first step: nothing to save */
        rc = 128 + (int)cli_stop;
        goto done;
    }
    se_tmodel_zero_grad(m); /* once: each step's se_adamw_step leaves them zero for the next */
    for (size_t step = step0; step < total; step++) {
        size_t ep = step / spe;
        if (ep != cur_epoch) epoch_order(perm, n, (uint64_t)o->seed, ep), cur_epoch = ep;
        double step_loss = 0.0;
        size_t n_micro = 0;
        for (size_t k = 0; k < K; k++) {
            size_t mb = (step % spe) * K + k;
            if (mb >= nb) break;
            size_t r0 = mb * B, Bk = n - r0 < B ? n - r0 : B, S = Bk * nc, T = 0;
            for (size_t c = 0; c < nc; c++)
                for (size_t r = 0; r < Bk; r++) {
                    size_t ti = perm[r0 + r] * nc + c;
                    T += d->off[ti + 1] - d->off[ti];
                }
            if (T > ids_cap) {
                int32_t *g = realloc(ids, T * sizeof *g);
                if (!g) {
                    fprintf(stderr, "sembed: train: out of memory\n");
                    goto done;
                }
                ids = g, ids_cap = T;
            }
            T = 0, starts[0] = 0;
            for (size_t c = 0; c < nc; c++)
                for (size_t r = 0; r < Bk; r++) {
                    size_t ti = perm[r0 + r] * nc + c, len = d->off[ti + 1] - d->off[ti];
                    memcpy(ids + T, d->ids + d->off[ti], len * sizeof *ids);
                    T += len;
                    starts[c * Bk + r + 1] = T;
                }
            for (size_t r = 0; r < Bk; r++) {
                size_t row = perm[r0 + r];
                labels[r] = d->label ? d->label[row] : 0.0f;
                if (tbuf) memcpy(tbuf + r * t_dim, teacher + row * t_dim, t_dim * sizeof *tbuf);
            }
            uint64_t kst = (uint64_t)o->seed * 0x9E3779B97F4A7C15ull + ep * nb + mb + 1;
            uint64_t key = mix64(&kst);
            size_t chunk = cached ? (size_t)o->mini : S;
            double loss = 0.0;
            /* forward (cmnrl: by mini-batch, no tape kept but the last), the loss on the whole batch */
            for (size_t s0 = 0; s0 < S; s0 += chunk) {
                size_t k2 = S - s0 < chunk ? S - s0 : chunk, *st2 = sub;
                for (size_t q = 0; q <= k2; q++) st2[q] = starts[s0 + q] - starts[s0];
                se_tbatch b = {.ids = ids + starts[s0], .starts = st2, .S = k2, .train = true, .dropout_key = key + s0};
                if (se_ttape_forward(m, &b, &tape, emb + s0 * dim, &err) != SE_OK) {
                    fprintf(stderr, "sembed: train: %s\n", err.msg);
                    goto done;
                }
            }
            if (se_loss_eval(&spec, emb, Bk, nc, dim, d->label ? labels : NULL, tbuf, t_dim, &loss, demb, &err) != SE_OK) {
                fprintf(stderr, "sembed: train: %s\n", err.msg);
                goto done;
            }
            if (K > 1)
                for (size_t q = 0; q < S * dim; q++) demb[q] /= (float)K;
            for (size_t s0 = 0; s0 < S; s0 += chunk) {
                size_t k2 = S - s0 < chunk ? S - s0 : chunk, *st2 = sub;
                for (size_t q = 0; q <= k2; q++) st2[q] = starts[s0 + q] - starts[s0];
                se_tbatch b = {.ids = ids + starts[s0], .starts = st2, .S = k2, .train = true, .dropout_key = key + s0};
                if ((cached && se_ttape_forward(m, &b, &tape, emb + s0 * dim, &err) != SE_OK) ||
                    se_ttape_backward(m, tape, demb + s0 * dim, &err) != SE_OK) {
                    fprintf(stderr, "sembed: train: %s\n", err.msg);
                    goto done;
                }
            }
            step_loss += loss, n_micro++, sentences += S;
        }
        double lr = se_adamw_lr(opt), gn = 0.0;
        if (se_adamw_step(opt, m, &gn, &err) != SE_OK) {
            fprintf(stderr, "sembed: train: step %zu: %s\n", step + 1, err.msg);
            goto done;
        }
        step_loss /= (double)(n_micro ? n_micro : 1);
        win_loss += step_loss, win_n++;
        size_t done_steps = step + 1;
        bool epoch_end = done_steps % spe == 0;
        if (done_steps % (size_t)o->log_steps == 0 || done_steps == total) {
            json_t *e = json_pack("{s:I, s:f, s:f, s:f, s:f}", "step", (json_int_t)done_steps, "epoch",
                                  (double)done_steps / (double)spe, "loss", win_loss / (double)win_n, "learning_rate", lr,
                                  "grad_norm", gn);
            json_array_append_new(log, e);
        }
        if ((ev || ir) && ((o->eval_steps && done_steps % (size_t)o->eval_steps == 0) || epoch_end)) {
            json_t *e = json_pack("{s:I, s:f}", "step", (json_int_t)done_steps, "epoch", (double)done_steps / (double)spe);
            if (!cli_quiet && tty && show) fputc('\n', stderr);
            if (ev) {
                double sp = eval_sts(m, ev);
                json_object_set_new(e, "eval_sts_spearman", json_real(sp));
                if (!cli_quiet)
                    fprintf(stderr, "sembed: train: step %zu (epoch %.2f): STS Spearman %.2f on %s\n", done_steps,
                            (double)done_steps / (double)spe, sp, o->eval_sts);
            }
            if (ir) {
                se_ir_metrics met;
                if (eval_ir(m, ir, &met)) {
                    json_decref(e);
                    goto done;
                }
                char k[300];
                const char *const nm[3] = {"ndcg@10", "mrr@10", "recall@10"};
                const double v[3] = {met.ndcg_at_10, met.mrr_at_10, met.recall_at_10};
                for (int i = 0; i < 3; i++) { /* sentence-transformers' names: eval_{name}_cosine_ndcg@10 */
                    snprintf(k, sizeof k, "eval_%s_cosine_%s", ir->name, nm[i]);
                    json_object_set_new(e, k, json_real(v[i]));
                }
                if (!cli_quiet)
                    fprintf(stderr, "sembed: train: step %zu (epoch %.2f): nDCG@10 %.4f  MRR@10 %.4f  Recall@10 %.4f "
                            "(%zu queries) on %s\n", done_steps, (double)done_steps / (double)spe, met.ndcg_at_10,
                            met.mrr_at_10, met.recall_at_10, met.n_queries, o->eval_ir);
            }
            json_array_append_new(evals, e);
        }
        double now = cli_now();
        if (show && ((tty ? now - last_print >= 0.25 : done_steps % (size_t)o->log_steps == 0) || done_steps == total)) {
            char eta[32];
            double el = now - t0, rate = el > 0 ? (double)sentences / el : 0.0;
            fmt_time(eta, sizeof eta, el / (double)(done_steps - step0) * (double)(total - done_steps));
            fprintf(stderr, "%ssembed: train: step %zu/%zu  epoch %.2f  loss %.4f  lr %.3g  %.0f sentences/s  ETA %s%s",
                    tty ? "\r" : "", done_steps, total, (double)done_steps / (double)spe, win_loss / (double)win_n, lr,
                    rate, eta, tty ? "   " : "\n");
            last_print = now;
        }
        if (done_steps % (size_t)o->log_steps == 0) win_loss = 0.0, win_n = 0;
        char ck[4200];
        if (o->save_steps && done_steps % (size_t)o->save_steps == 0 && done_steps < total &&
            save_checkpoint(o->out, o->init ? tmp : init_dir, tf, m, opt, log, evals, ck, sizeof ck))
            goto done;
        if (cli_stop && done_steps < total) {
            if (tty && show) fputc('\n', stderr);
            if (save_checkpoint(o->out, o->init ? tmp : init_dir, tf, m, opt, log, evals, ck, sizeof ck)) goto done;
            fprintf(stderr, "sembed: train: stopped at step %zu of %zu; checkpoint %s\nresume with: sembed", done_steps,
                    total, ck);
            for (int i = 0; i < argc; i++)
                if (strcmp(argv[i], "--resume")) fprintf(stderr, " %s", argv[i]);
                else i++;
            fprintf(stderr, " --resume %s\n", ck);
            rc = 128 + (int)cli_stop;
            goto done;
        }
    }
    if (tty && show) fputc('\n', stderr);
    /* the output folder */
    if (!o->init && copy_tree(init_dir, tmp)) goto done;
    if (write_weights(tmp, tf, m, true)) goto done;
    {
        char p[4200];
        pathf(p, sizeof p, "%s/trainer_state.json", tmp);
        json_t *st = json_pack("{s:I, s:I, s:I, s:s, s:I, s:I, s:I, s:o, s:o}", "global_step", (json_int_t)se_adamw_steps(opt),
                               "max_steps", (json_int_t)total, "num_train_epochs", (json_int_t)o->epochs, "loss", L,
                               "train_rows", (json_int_t)n, "train_batch_size", (json_int_t)B, "seed", (json_int_t)o->seed,
                               "log_history", json_incref(log), "eval_history", json_incref(evals));
        char best[300] = "";
        if (ir) snprintf(best, sizeof best, "eval_%s_cosine_ndcg@10", ir->name);
        else if (ev) snprintf(best, sizeof best, "eval_sts_spearman");
        if (st && best[0]) { /* the best evaluation, as Trainer's metric_for_best_model / best_metric */
            size_t i, at = 0;
            json_t *e, *bv = NULL;
            json_array_foreach(evals, i, e) {
                json_t *v = json_object_get(e, best);
                if (json_is_number(v) && (!bv || json_number_value(v) > json_number_value(bv)))
                    bv = v, at = (size_t)json_integer_value(json_object_get(e, "step"));
            }
            json_object_set_new(st, "metric_for_best_model", json_string(best));
            json_object_set_new(st, "best_metric", bv ? json_real(json_number_value(bv)) : json_null());
            json_object_set_new(st, "best_global_step", bv ? json_integer((json_int_t)at) : json_null());
        }
        int bad = !st || json_dump_file(st, p, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0;
        json_decref(st);
        if (bad) {
            fprintf(stderr, "sembed: train: cannot write %s\n", p);
            goto done;
        }
    }
    if (move_into(tmp, o->out)) goto done;
    tmp_made = false;
    if (!cli_quiet) fprintf(stderr, "sembed: train: wrote %s (%zu steps)\n", o->out, se_adamw_steps(opt));
    rc = 0;
done:
    if (tmp_made) remove_tree(tmp);
    json_decref(log), json_decref(evals);
    se_ttape_free(tape);
    se_adamw_free(opt);
    se_tdata_free(d), se_tdata_free(ev);
    irset_free(ir);
    se_tokenizer_free(tok);
    se_tmodel_free(m);
    free(teacher), free(emb), free(demb), free(labels), free(tbuf), free(perm), free(starts), free(sub), free(ids);
    free(loss_scratch);
    return rc;
}
