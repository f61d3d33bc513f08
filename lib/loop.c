/* loop.c: the training loop (loop.h). */
#include "loop.h"

#include <math.h>

#include "signals.h"

/* Whether an evaluation is due after `done` steps. */
static int eval_due(const loop_opts *lo, long done) {
    if (lo->eval_every > 0 && done % lo->eval_every == 0) return 1;
    if (lo->eval_each_epoch && done % lo->steps_per_epoch == 0) return 1;
    return lo->eval_at_end && done == lo->total_steps;
}

int loop_run(optim *o, const loop_opts *lo, const loop_hooks *h, progress *pr, long *step,
             int *stopped, af_err *e) {
    progress_watch watch;
    progress_watch_init(&watch);
    int stop = 0, rc = 0, ended = 0;
    while (rc == 0 && *step < lo->total_steps && !stop) {
        long k = *step;
        int epoch = (int)(k / lo->steps_per_epoch);
        if (pr->epoch != epoch + 1) progress_epoch(pr, epoch + 1);
        if (signals_pending()) {
            /* the line ends before the checkpoint's messages */
            progress_done(pr), ended = 1;
            rc = h->checkpoint(h->ctx, k, e) ? -1 : signals_exit_status();
            break;
        }
        optim_zero_grad(o);
        double loss = 0;
        long units = 0;
        if (h->step(h->ctx, k, &loss, &units, e)) {
            rc = -1;
            break;
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
        if (progress_watch_step(&watch, loss, why, sizeof why)) progress_warn(pr, "%s", why);
        if (h->evaluate && eval_due(lo, done)) {
            int r = h->evaluate(h->ctx, done, epoch, e);
            if (r < 0) rc = -1;
            else stop = r;
        }
        if (rc == 0 && lo->save_every > 0 && done % lo->save_every == 0 && done < lo->total_steps) {
            progress_pause(pr);
            if (h->checkpoint(h->ctx, done, e)) rc = -1;
            progress_resume(pr);
        }
    }
    if (!ended) progress_done(pr);
    if (stopped) *stopped = stop;
    return rc;
}
