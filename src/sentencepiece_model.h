/*
 * sentencepiece_model.h - a validating reader of sentencepiece's model file
 * (the ModelProto protobuf of sentencepiece_model.proto: `*.model`,
 * `sentencepiece.bpe.model`).
 *
 * Only the fields a tokenizer needs are kept: the pieces (text, score,
 * type), the trainer spec's model type and special ids, and the normaliser
 * spec. Every other field is skipped by its wire type. The reader never
 * trusts a length: each varint and length is checked against the bytes
 * remaining in the enclosing message, counts and sizes are capped, and an
 * error names the field ("test.model: pieces[12].piece: length 4000000000
 * exceeds the 17 bytes left").
 */
#ifndef SE_SENTENCEPIECE_MODEL_H
#define SE_SENTENCEPIECE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sembed.h"

/* sentencepiece's ModelProto.SentencePiece.Type. */
typedef enum {
    SE_SPM_NORMAL = 1,
    SE_SPM_UNKNOWN = 2,
    SE_SPM_CONTROL = 3,
    SE_SPM_USER_DEFINED = 4,
    SE_SPM_UNUSED = 5,
    SE_SPM_BYTE = 6,
} se_spm_piece_type;

/* TrainerSpec.ModelType. */
typedef enum { SE_SPM_UNIGRAM = 1, SE_SPM_BPE = 2, SE_SPM_WORD = 3, SE_SPM_CHAR = 4 } se_spm_model_type;

/* Caps on what a file may claim (sentencepiece's own models stay far below:
 * XLM-R has 250,002 pieces and a 5 MB file). */
#define SE_SPM_MAX_FILE ((size_t)1 << 30)   /* 1 GiB */
#define SE_SPM_MAX_PIECES ((size_t)1 << 22) /* 4,194,304 pieces */
#define SE_SPM_MAX_PIECE_BYTES 4096         /* one piece's UTF-8 bytes */

typedef struct {
    const char *text; /* NUL-terminated UTF-8, points into se_spm_model.blob */
    uint32_t len;     /* bytes, excluding the NUL */
    float score;
    se_spm_piece_type type;
} se_spm_piece;

typedef struct {
    se_spm_piece *pieces; /* (n_pieces) */
    size_t n_pieces;
    char *blob; /* all piece texts, NUL-separated */
    struct {
        se_spm_model_type model_type; /* default UNIGRAM */
        int32_t vocab_size;           /* as recorded by the trainer (informational) */
        int32_t unk_id, bos_id, eos_id, pad_id; /* defaults 0, 1, 2, -1; -1 = none */
        bool byte_fallback;                     /* default false */
        bool treat_whitespace_as_suffix;        /* default false */
    } trainer;
    struct {
        char *name;         /* "nmt_nfkc", "identity", ...; "" when absent */
        uint8_t *charsmap;  /* precompiled_charsmap bytes (NULL when absent) */
        size_t charsmap_len;
        bool add_dummy_prefix;         /* default true */
        bool remove_extra_whitespaces; /* default true */
        bool escape_whitespaces;       /* default true */
    } normalizer;
    bool has_denormalizer; /* field 5 present (not applied by tokenisers) */
} se_spm_model;

/* Parses a ModelProto from data[0..len). `name` labels errors (a file
 * name). Validates: the wire format, piece texts (non-empty, valid UTF-8,
 * unique), piece types, exactly one UNKNOWN piece at trainer_spec.unk_id,
 * bos/eos/pad ids in range (or -1), BYTE pieces only with byte_fallback,
 * and the precompiled charsmap (built once with se_precompiled_new, which
 * checks its framing and walks its whole trie, then dropped). On success *out owns copies of everything (data may
 * be freed); free with se_spm_model_free. Thread-safe. */
se_status se_spm_model_parse(const uint8_t *data, size_t len, const char *name, se_spm_model **out,
                             se_error *err);

/* Reads and parses the file at path (capped at SE_SPM_MAX_FILE). */
se_status se_spm_model_load(const char *path, se_spm_model **out, se_error *err);

/* Frees a model from se_spm_model_parse/load; NULL is a no-op. */
void se_spm_model_free(se_spm_model *m);

/* The fairseq id layout XLMRobertaTokenizer puts over a sentencepiece
 * model (and XLMRobertaConverter writes into tokenizer.json): <s>=0,
 * <pad>=1, </s>=2, <unk>=3, then the model's pieces[3..] at their id + 1,
 * and <mask> last, n_pieces + 1: SE_SPM_FAIRSEQ_SIZE(m) entries. It assumes
 * the model's first three pieces are <unk> <s> </s> (as sentencepiece's
 * trainer writes them); se_spm_fairseq_check says whether they are. */
#define SE_SPM_FAIRSEQ_SIZE(m) ((m)->n_pieces + 2)

/* SE_OK when m fits the fairseq layout: at least 4 pieces, pieces 0..2 are
 * UNKNOWN, CONTROL, CONTROL (unk_id 0, bos_id 1, eos_id 2); else
 * SE_E_UNSUPPORTED naming what differs. */
se_status se_spm_fairseq_check(const se_spm_model *m, const char *name, se_error *err);

/* The fairseq id of a sentencepiece id as encode returns it: the UNKNOWN
 * piece -> 3, any other id -> id + 1. */
int32_t se_spm_fairseq_id(const se_spm_model *m, int32_t spm_id);

/* The text of fairseq id fid (0 <= fid < SE_SPM_FAIRSEQ_SIZE(m)): the four
 * specials and <mask> by name, else the piece's text (valid until
 * se_spm_model_free). */
const char *se_spm_fairseq_piece(const se_spm_model *m, int32_t fid);

/* Name of a piece type ("NORMAL", "BYTE", ...), "?" for others. */
const char *se_spm_piece_type_name(se_spm_piece_type t);

#endif
