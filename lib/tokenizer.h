/* tokenizer.h: text to BERT input ids, exactly as Hugging Face's (slow) BertTokenizer does it.
 *
 * A text goes through, in order (HF: PreTrainedTokenizer.tokenize, BasicTokenizer,
 * WordpieceTokenizer):
 *  1. special tokens ([CLS], [SEP], [UNK], [PAD], [MASK], those the vocabulary has) written in the
 *     text are cut out and kept as themselves; everything else is lower-cased one character at a
 *     time (Python's str.lower() per character: full mappings, so U+0130 becomes "i\u0307", and
 *     no final-sigma context) when do_lower_case;
 *  2. cleaning: NUL, U+FFFD and every character of category C* (but \t \n \r) are dropped;
 *     \t \n \r, Zs, and U+2028/U+2029 (which Python's str.split() splits on) separate words;
 *  3. each CJK ideograph (HF's _is_chinese_char blocks) becomes a word of its own;
 *  4. per word: NFC (as current HF; older versions skip it); a word equal to a special token is
 * kept whole; when strip_accents, NFD with every Mn dropped; then split around punctuation (ASCII
 * 33-47, 58-64, 91-96, 123-126 and every P* category), each mark a word;
 *  5. WordPiece: greedy longest match first, continuations prefixed "##"; a word becomes a
 *     single [UNK] when any part has no match or it has more than 100 code points.
 * Unicode properties (categories, lower case, NFC, NFD) come from utf8proc.
 *
 * Then [CLS] A [SEP] (or [CLS] A [SEP] B [SEP]), with HF's 'longest_first' truncation. */
#ifndef AF_TOKENIZER_H
#define AF_TOKENIZER_H

#include "af.h"

typedef struct {
    int lower;         /* do_lower_case (HF default: 1) */
    int strip_accents; /* -1: same as lower (HF's None), 0 or 1 */
    int chinese;       /* tokenize_chinese_chars (HF default: 1) */
    /* names of the special tokens; NULL means the BERT default ("[UNK]", ...) */
    const char *unk, *sep, *pad, *cls, *mask;
} tok_options;

void tok_options_default(tok_options *o);

/* A growing list of token ids. */
typedef struct {
    int *v;
    int n, cap;
} tok_ids;

void tok_ids_push(tok_ids *l, int id);
void tok_ids_free(tok_ids *l);

typedef struct tok_tokenizer tok_tokenizer;

/* Loads a vocabulary: one token per line, the id is the 0-based line number (\n, \r\n and \r end
 * lines, as Python's text mode reads them; a later duplicate overrides an earlier one, as HF's
 * load_vocab). [CLS], [SEP] and [UNK] (or the names in o) must be in it. */
int tok_open(tok_tokenizer **t, const char *vocab_path, const tok_options *o, af_err *e);
/* The same from a vocabulary in memory; name is used in messages. */
int tok_open_mem(tok_tokenizer **t, const char *data, size_t len, const char *name,
                 const tok_options *o, af_err *e);
void tok_close(tok_tokenizer *t);

int tok_vocab_size(const tok_tokenizer *t);                      /* lines in the file */
int tok_lookup(const tok_tokenizer *t, const char *s, size_t n); /* id, or -1 */
const char *tok_token(const tok_tokenizer *t, int id);           /* the line's text, or NULL */

enum { TOK_UNK, TOK_SEP, TOK_PAD, TOK_CLS, TOK_MASK, TOK_NSPECIAL };
int tok_special(const tok_tokenizer *t, int which); /* id, or -1 if not in the vocab */

/* Appends the word-piece ids of a UTF-8 text (no [CLS]/[SEP]) to out. Returns 0, or -1 when the
 * text is not valid UTF-8 (e says at which byte). */
int tok_encode(tok_tokenizer *t, const char *text, size_t len, tok_ids *out, af_err *e);

/* How many tokens of A and of B survive 'longest_first' truncation to max_tokens in all (HF
 * truncate_sequences: one token at a time from the end of the longer one; on a tie, from B).
 * nb < 0 means there is no B. */
void tok_truncate(int *na, int *nb, int max_tokens);

/* A model input: [CLS] A [SEP] (B [SEP]), truncated so it holds at most max_len ids (0: no
 * limit) and, when pad, filled up to max_len with [PAD] (attention_mask 0). */
typedef struct {
    tok_ids ids, types, mask;
} tok_input;

/* b == NULL for a single text. Returns -1 when max_len cannot hold the special tokens, or when
 * pad is asked for and the vocabulary has no [PAD]. */
int tok_assemble(const tok_tokenizer *t, const tok_ids *a, const tok_ids *b, int max_len, int pad,
                 tok_input *out, af_err *e);
void tok_input_free(tok_input *in);

/* ---- the basic tokenizer alone (steps 2-4), for vocabulary training ---------------------- */
typedef struct tok_basic tok_basic;
/* Called with each word: UTF-8 bytes, their length and their number of code points. A
 * non-zero return stops the run and is returned. */
typedef int (*tok_word_fn)(void *ctx, const char *word, size_t len, int nchars);

tok_basic *tok_basic_new(const tok_options *o);
void tok_basic_free(tok_basic *b);
/* Runs steps 1-4 (without special tokens) over a text. Returns 0, the callback's non-zero
 * value, or -1 on invalid UTF-8. */
int tok_basic_run(tok_basic *b, const char *text, size_t len, tok_word_fn fn, void *ctx, af_err *e);

/* The Unicode version of the tables in use, e.g. "15.0.0". */
const char *tok_unicode_version(void);

#endif
