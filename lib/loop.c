/* loop.c: the training loop (loop.h). */
#include "loop.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "signals.h"

/* Whether an evaluation is due after `done` steps. */
static int eval_due(const loop_opts *lo, long done) {
    if (lo->eval_every > 0 && done % lo->eval_every == 0) return 1;
    if (lo->eval_each_epoch && done % lo->steps_per_epoch == 0) return 1;
    return lo->eval_at_end && done == lo->total_steps;
}

/* Rank 0's outcome r of something only it does, on every rank; another rank learns of a
 * failure only that it happened (rank 0 says what it was). */
static int rank0(int r, af_err *e) {
    int all = dist_bcast_int(r);
    if (all < 0 && dist_rank() != 0) af_errf(e, "rank 0 failed (its message says why)");
    return all;
}

/* Gradients are summed in buckets of this many floats (16 MiB): one MPI_Allreduce per bucket
 * rather than per tensor, since a model has 50-200 tensors and each call costs a latency that
 * grows with the number of ranks; a bucket, not the whole model, so pretraining does not hold a
 * second copy of every gradient. */
#define REDUCE_BUCKET ((size_t)4 << 20)

/* The global step from every rank's share: gradients and loss weighted by the share's part of
 * the batch, then summed (MPI_Allreduce) before clipping and the optimizer step. bucket:
 * REDUCE_BUCKET floats. */
static void reduce(optim *o, float *bucket, double *loss, double weight, long *units) {
    float w = (float)weight;
    size_t used = 0;
    int first = 0; /* the tensors [first, i) are in the bucket */
    for (int i = 0; i <= o->nparams; i++) {
        optim_param *p = i < o->nparams ? &o->params[i] : NULL;
        if (p && p->n > REDUCE_BUCKET) { /* too big for a bucket: on its own, in place */
            if (weight != 1)
                for (size_t j = 0; j < p->n; j++) p->grad[j] *= w;
            dist_sum_floats(p->grad, p->n);
            continue;
        }
        if (!p || used + p->n > REDUCE_BUCKET) { /* the bucket is full (or the last): sum it */
            dist_sum_floats(bucket, used);
            for (size_t at = 0; first < i; first++) {
                optim_param *q = &o->params[first];
                if (q->n > REDUCE_BUCKET) continue;
                memcpy(q->grad, bucket + at, q->n * sizeof(float));
                at += q->n;
            }
            used = 0;
            if (!p) break;
        }
        for (size_t j = 0; j < p->n; j++)
            bucket[used + j] = weight != 1 ? p->grad[j] * w : p->grad[j];
        used += p->n;
    }
    double v[2] = {*loss * weight, (double)*units};
    dist_sum_doubles(v, 2);
    *loss = v[0], *units = (long)v[1];
}

int loop_run(optim *o, const loop_opts *lo, const loop_hooks *h, progress *pr, long *step,
             int *stopped, af_err *e) {
    /* for the tests: a Ctrl-C that reaches rank 0 just before a given step, so an interrupted
     * run can be compared with an uninterrupted one exactly */
    const char *t = getenv("AF_TEST_INTERRUPT_AT");
    long interrupt_at = t ? atol(t) : -1;
    progress_watch watch;
    progress_watch_init(&watch);
    int stop = 0, rc = 0, ended = 0;
    long first = *step;
    double t_start = af_now(), t_reduce = 0; /* the allreduce's share of the steps, for MPI runs */
    float *bucket = NULL;
    while (rc == 0 && *step < lo->total_steps && !stop) {
        long k = *step;
        int epoch = (int)(k / lo->steps_per_epoch);
        if (pr->epoch != epoch + 1) progress_epoch(pr, epoch + 1);
        if (k == interrupt_at && dist_rank() == 0) raise(SIGINT);
        /* every rank stops at the same step, whichever of them saw the signal */
        int sig = dist_max_int(signals_pending());
        if (sig) {
            /* the line ends before the checkpoint's messages */
            progress_done(pr), ended = 1;
            rc = rank0(h->checkpoint(h->ctx, k, e) ? -1 : 0, e);
            if (rc == 0) rc = 128 + sig;
            break;
        }
        optim_zero_grad(o);
        double loss = 0, weight = 1;
        long units = 0;
        if (h->step(h->ctx, k, &loss, &weight, &units, e)) {
            rc = -1;
            break;
        }
        if (dist_size() > 1) {
            double t0 = af_now();
            if (!bucket) bucket = af_malloc(REDUCE_BUCKET * sizeof(float));
            reduce(o, bucket, &loss, weight, &units);
            t_reduce += af_now() - t0;
        }
        if (!isfinite(loss)) {
            rc = af_errf(e, "step %ld: the loss is %g; lower --lr?", k + 1, loss);
            break;
        }
        double norm = optim_clip_grad_norm(o, lo->max_grad_norm);
        if (!isfinite(norm)) {
            rc = af_errf(e, "step %ld: the gradient norm is %g; lower --lr?", k + 1, norm);
            break;
        }
        double lr = optim_lr(o, lo->lr_group);
        optim_step(o);
        long done = ++*step;
        progress_step(pr, (int)units, loss, lr);
        char why[256];
        if (progress_watch_step(&watch, loss, why, sizeof why) && dist_rank() == 0)
            progress_warn(pr, "%s", why);
        if (h->evaluate && eval_due(lo, done)) {
            int r = rank0(dist_rank() == 0 ? h->evaluate(h->ctx, done, epoch, e) : 0, e);
            if (r < 0)
                rc = -1;
            else
                stop = r;
        }
        if (rc == 0 && lo->save_every > 0 && done % lo->save_every == 0 && done < lo->total_steps) {
            progress_pause(pr);
            rc = rank0(dist_rank() == 0 && h->checkpoint(h->ctx, done, e) ? -1 : 0, e);
            progress_resume(pr);
        }
    }
    if (!ended) progress_done(pr);
    if (dist_size() > 1 && *step > first) {
        double per = (af_now() - t_start) / (double)(*step - first);
        progress_note(pr, "%s: %d ranks: %.1f ms a step, %.2f ms of it (%.1f%%) summing gradients",
                      program_invocation_short_name, dist_size(), 1e3 * per,
                      1e3 * t_reduce / (double)(*step - first),
                      100 * t_reduce / (af_now() - t_start));
    }
    if (stopped) *stopped = stop;
    free(bucket);
    return rc;
}
