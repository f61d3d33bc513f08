/* lmtok.h: the tokenizer of a model being pretrained (af-pretrain), whichever kind the model has:
 * WordPiece (vocab.txt, HF BertTokenizer: BERT, DistilBERT; tokenizer.h) or byte-level BPE
 * (vocab.json + merges.txt, HF RobertaTokenizer: RoBERTa; bpe.h). Pretraining needs the same few
 * things of both: text to ids, each entry's text, the ids of the special roles, a word
 * convention for whole-word masking, a digest for the run record, and the files that go with a
 * saved model.
 *
 * Roles: LMTOK_CLS opens a sequence and LMTOK_SEP closes it and separates documents ([CLS] and
 * [SEP], or <s> and </s>, RoBERTa's bos and eos); LMTOK_PAD, LMTOK_MASK, LMTOK_UNK. These five
 * are HF's all_special_ids, which DataCollatorForLanguageModeling never masks. */
#ifndef AF_LMTOK_H
#define AF_LMTOK_H

#include "af.h"
#include "tokenizer.h"

enum { LMTOK_WORDPIECE, LMTOK_BPE };
enum { LMTOK_CLS, LMTOK_SEP, LMTOK_PAD, LMTOK_MASK, LMTOK_UNK, LMTOK_NROLES };

typedef struct lmtok lmtok;

/* merges NULL: WordPiece from vocab (a vocab.txt; lower: do_lower_case). Else byte-level BPE
 * from vocab (vocab.json) and merges (merges.txt), RoBERTa's special tokens, add_prefix_space. */
int lmtok_open(lmtok **t, const char *vocab, const char *merges, int lower, int add_prefix_space,
               af_err *e);
/* A model directory's: BPE when it holds vocab.json and merges.txt (add_prefix_space from its
 * tokenizer_config.json, HF's default false otherwise), else WordPiece from its vocab.txt. */
int lmtok_open_dir(lmtok **t, const char *dir, int lower, af_err *e);
void lmtok_close(lmtok *t);

int lmtok_kind(const lmtok *t);
int lmtok_size(const lmtok *t);
const char *lmtok_token(const lmtok *t, int id); /* the entry's text (BPE: byte-level), or NULL */
int lmtok_special(const lmtok *t, int role);     /* its id, or -1 */
/* Appends a UTF-8 text's ids (no specials around it) to out. */
int lmtok_encode(lmtok *t, const char *text, size_t len, tok_ids *out, af_err *e);
/* sha256 of the vocabulary file (WordPiece), or of vocab.json's bytes then merges.txt's (BPE). */
int lmtok_digest(const lmtok *t, char out[65], af_err *e);
/* Writes the tokenizer's files into dir as Hugging Face reads them: a copy of vocab.txt, or of
 * vocab.json and merges.txt, and tokenizer_config.json (BertTokenizer with do_lower_case, or
 * RobertaTokenizer with add_prefix_space; model_max_length max_len). */
int lmtok_save(const lmtok *t, const char *dir, int max_len, af_err *e);
/* The names lmtok_save may write, of either kind; NULL after the last. */
const char *lmtok_file(int i);

#endif
