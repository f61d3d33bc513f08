/* bpe.h: text to RoBERTa input ids, exactly as Hugging Face's (slow) RobertaTokenizer does it
 * (GPT-2's byte-level BPE; transformers 4.26 tokenization_roberta.py and tokenization_utils.py).
 *
 *  1. add_prefix_space: a space goes before a text whose first character is not Python-isspace;
 *  2. the special tokens (<s> </s> <unk> <pad> <mask>, or the names given) written in the text are
 *     cut out, longest first at each position, and kept as themselves; <mask> is lstrip: the
 *     whitespace before it goes (it "swallows the space");
 *  3. every other piece is split by GPT-2's pattern 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
 *     ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ (\s: Unicode White_Space, as the regex module has it);
 *  4. each part's UTF-8 bytes become bytes_to_unicode's characters, and pairs of adjacent symbols
 *     are merged, the lowest merges.txt rank first, every occurrence left to right, until no pair
 *     has a rank; each symbol is then looked up in vocab.json.
 * Special tokens missing from vocab.json get ids after it, in the order <s> </s> <pad> <mask>
 * (HF's add_tokens; <unk> never does). merges.txt: its first line is skipped (#version) and so is
 * what follows the last newline; a pair listed twice has its later rank.
 * Inputs: <s> A </s> or <s> A </s></s> B </s>, token types all 0, 'longest_first' truncation. */
#ifndef AF_BPE_H
#define AF_BPE_H

#include "af.h"
#include "tokenizer.h"

typedef struct {
    int add_prefix_space; /* HF default 0 */
    /* special tokens' names; NULL: RoBERTa's ("<s>", "</s>", ...) */
    const char *bos, *eos, *unk, *sep, *pad, *cls, *mask;
    int mask_lstrip; /* <mask> takes the whitespace before it (RoBERTa: 1) */
} bpe_options;

void bpe_options_default(bpe_options *o);

typedef struct bpe_tokenizer bpe_tokenizer;

int bpe_open(bpe_tokenizer **t, const char *vocab_json, const char *merges_txt,
             const bpe_options *o, af_err *e);
void bpe_close(bpe_tokenizer *t);

int bpe_vocab_size(const bpe_tokenizer *t);            /* vocab.json's entries + added tokens */
/* The special tokens' roles (bos and cls are <s>, eos and sep </s> by default). */
enum { BPE_BOS, BPE_EOS, BPE_UNK, BPE_SEP, BPE_PAD, BPE_CLS, BPE_MASK, BPE_NSPECIAL };
int bpe_special(const bpe_tokenizer *t, int which);    /* its id, or -1 (<unk> may have none) */
const char *bpe_token(const bpe_tokenizer *t, int id); /* the token's text, or NULL */

/* Appends the ids of a UTF-8 text (no <s>/</s>) to out. -1 on invalid UTF-8, or on a symbol
 * vocab.json lacks when <unk> has no id (HF would give None). */
int bpe_encode(bpe_tokenizer *t, const char *text, size_t len, tok_ids *out, af_err *e);

/* <s> A </s> (</s> B </s>), truncated to max_len ids (0: no limit), padded to it when pad. */
int bpe_assemble(const bpe_tokenizer *t, const tok_ids *a, const tok_ids *b, int max_len, int pad,
                 tok_input *out, af_err *e);

#endif
