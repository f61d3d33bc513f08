/* trainopts.h: the options af-train-adapter and af-fuse share (af-train-adapter(1), af-fuse(1)):
 * the training machinery, the data, the heads. Each program adds its own options to the table. */
#ifndef AF_CMD_TRAINOPTS_H
#define AF_CMD_TRAINOPTS_H

#include <getopt.h>

#include "pathguard.h"
#include "train.h"

typedef struct {
    train_opts t;
    const char *base, *name, *out, *dev, *input;
    const char *labels;
    char **tasks;
    int ntasks;
    int head_kind; /* every task's head_kind unless --task says: --regression, --multilabel */
    int threads;
    int eval_batch;
    int drop_layers;               /* --drop-layers K */
    char *owned_ckpt, *owned_args; /* freed by common_opts_free */
    pathguard guard;               /* every file read and written; a program adds its own inputs */
} common_opts;

/* Long options shared by the training programs (terminated by a zero entry); values >= 1000. */
extern const struct option train_long_options[];
#define TRAIN_OPTSTRING "o:qhV"
#define TRAIN_MAX_OPTIONS 64

/* out = the shared long options followed by a program's own (own ends with a zero entry). */
void train_options_merge(struct option out[TRAIN_MAX_OPTIONS], const struct option *own);

void common_opts_init(common_opts *c);
/* Handles a shared option; returns 1 when it was one. */
int common_opts_handle(common_opts *c, int opt, const char *arg);
/* Checks required options and the positional argument, and that no output is an input; exits 2
 * on misuse. */
void common_opts_finish(common_opts *c, int argc, char **argv);
void common_opts_free(common_opts *c);
/* Text of the shared options for --help. */
extern const char train_options_help[];
/* The command line as JSON (for the training record), without --resume. */
char *common_args_json(const common_opts *c, int argc, char **argv);

/* --drop-layers: leaves layers 0 .. K - 1 of m without adapters (before a new adapter, or after
 * loading the adapters to fuse); exits 2 when the base has no more than K layers. */
void common_drop_layers(const common_opts *c, af_model *m);
/* Loads the base, reads train (and dev) data, applies --threads; exits 1 with a message on error. */
void common_load(common_opts *c, bert *base, jl_set *train, jl_set *dev);
/* Builds data, trains, reports; returns the exit status. */
int common_train(common_opts *c, af_model *m, jl_set *train, jl_set *dev);

#endif
