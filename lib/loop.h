/* loop.h: the one training loop. af-train-adapter and af-fuse (train.c) and af-pretrain drive it
 * with what differs between them: how a step's gradients are computed, how a run is evaluated,
 * how a checkpoint is written. The loop owns what they share: zeroing, clipping and the
 * optimizer step, the schedule's learning rate, the progress line, the divergence warning, the
 * evaluation and checkpoint cadence, early stopping, and Ctrl-C/SIGTERM (signals.h): a pending
 * signal ends the run at the next step boundary with a checkpoint.
 *
 * Under MPI (dist.h) the ranks agree, at every step boundary, on whether a signal arrived
 * anywhere, so they all stop at the same step; rank 0 evaluates and writes checkpoints, and its
 * outcome is broadcast.
 *
 * Steps are counted globally from 0 (the optimizer's step), so a resumed run derives its epoch
 * and batch from the step alone and takes exactly the steps the interrupted run would have. */
#ifndef AF_LOOP_H
#define AF_LOOP_H

#include "af.h"
#include "optim.h"
#include "progress.h"

typedef struct {
    void *ctx;
    /* Computes the gradients of step `step` (0-based; the loop has zeroed them): forward and
     * backward of its batch, or under MPI of this rank's share of it (dist.h). *loss: the mean
     * loss of what it ran; *weight: that share's weight in the global batch's mean (1 on one
     * rank; n_rank/n for a mean over examples; a step that normalises by the global batch
     * itself, as MLM's count of masked tokens, says 1); the loop scales the gradients and the
     * loss by it and sums them over the ranks. *units: what it processed (examples, tokens),
     * for the rate on the progress line. 0, or -1 with e. */
    int (*step)(void *ctx, long step, double *loss, double *weight, long *units, af_err *e);
    /* Evaluates after `done` steps (epoch: the 0-based epoch of the last step). 1: stop early,
     * 0: go on, -1: error. NULL: the run has no evaluation. Called on rank 0 only; its answer
     * is every rank's. */
    int (*evaluate)(void *ctx, long done, int epoch, af_err *e);
    /* Writes a resumable checkpoint after `done` steps (rank 0 only). */
    int (*checkpoint)(void *ctx, long done, af_err *e);
} loop_hooks;

typedef struct {
    long total_steps;     /* optimizer steps of the whole run */
    long steps_per_epoch; /* > 0 */
    long eval_every;      /* > 0: evaluate after every N steps */
    int eval_each_epoch;  /* evaluate after the last step of every epoch */
    int eval_at_end;      /* evaluate after the last step of the run */
    long save_every;      /* > 0: a checkpoint after every N steps (but the last) */
    double max_grad_norm; /* clipping of the global gradient norm; 0: none */
    int lr_group;         /* the optimizer group whose learning rate the progress line shows */
} loop_opts;

/* Runs steps *step .. total_steps − 1, advancing *step after each one. Returns 0 when the run is
 * complete or stopped early (*stopped set, when not NULL), the signal's exit status (130, 143)
 * after the checkpoint hook wrote a checkpoint at the step boundary where a signal was seen, or
 * -1 with e (a hook's error, or a non-finite loss or gradient norm, named with its step). */
int loop_run(optim *o, const loop_opts *lo, const loop_hooks *h, progress *pr, long *step,
             int *stopped, af_err *e);

#endif
