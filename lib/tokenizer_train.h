/* tokenizer_train.h: builds a WordPiece vocabulary from raw text, for projects without a
 * downloaded model.
 *
 * The trainer is BPE over word pieces (as Hugging Face's WordPieceTrainer): the text is split
 * into words by the same basic tokenizer the encoder uses (tokenizer.h steps 1-4); each word
 * starts as its characters, "c ##c ##c"; the most frequent adjacent pair of pieces (weighted by
 * word counts) is merged, again and again, each new piece becoming the next vocabulary entry
 * ("t" + "##h" = "th", "##e" + "##r" = "##er").
 *
 * The vocabulary is: [PAD] [UNK] [CLS] [SEP] [MASK]; then the characters seen, most frequent
 * first (ties by code point), each as "c" and then all as "##c" (when they do not all fit, the
 * rarest are left out, and words holding them become [UNK]); then the merged pieces in the order
 * they were made. Ties between pairs go to the pair whose pieces were made first, so the result
 * depends on nothing but the text and the options. Merging stops at the requested size or when
 * no pair occurs min_count times. */
#ifndef AF_TOKENIZER_TRAIN_H
#define AF_TOKENIZER_TRAIN_H

#include "tokenizer.h"

typedef struct tok_trainer tok_trainer;

tok_trainer *tok_train_new(const tok_options *o);
void tok_train_free(tok_trainer *t);
/* Counts the words of one text. -1 on invalid UTF-8. */
int tok_train_add(tok_trainer *t, const char *text, size_t len, af_err *e);
/* Builds the vocabulary (at most size entries; size >= 5). *tokens is an array of *n strings in
 * id order, owned by the trainer. */
int tok_train_build(tok_trainer *t, int size, long min_count, char ***tokens, int *n, af_err *e);
long tok_train_words(const tok_trainer *t); /* words counted so far */

#endif
