/* runrec.h: the run record, what a checkpoint must share with the run that resumes it.
 *
 * A resumed run must compute what the interrupted one would have: the same options that change
 * the result (learning rate, seed, batch size, ...), the same base, adapters and label sets, the
 * same training and dev data. Each program writes those facts as one JSON object (keys named
 * for the options, e.g. "--lr", or for the facts, e.g. "training data") into the checkpoint, and
 * on --resume compares them with its own: a difference is refused, naming the key and both
 * values. What only changes how a run is carried out (threads, logging, the number of MPI
 * ranks) is left out of the record, so it may change. */
#ifndef AF_RUNREC_H
#define AF_RUNREC_H

#include "af.h"
#include "jsonl.h"

/* sha256 of examples as training reads them: ids, token types, mask, label, task, in order. */
void runrec_examples_digest(const jl_example *ex, int n, char out[65]);

/* Compares a checkpoint's record (was, NULL when it has none) with this run's (now). 0 when
 * equal; else -1 and e says "ckpt: a checkpoint of another run: KEY is WAS there, NOW here",
 * with KEY the first differing key (a path such as config.arch for nested objects), followed
 * by "; only <may_change> may differ on resume". */
int runrec_compare(const char *was, const char *now, const char *ckpt, const char *may_change,
                   af_err *e);

#endif
