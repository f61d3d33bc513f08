/* loop.c: the training loop's cadence with hooks that only record what they are asked: the steps
 * in order from where a run resumes, evaluations (every N steps, every epoch, at the end), early
 * stopping, --save-every checkpoints (not after the last step), a signal's checkpoint at the next
 * step boundary and its exit status, a non-finite loss named with its step, the divergence
 * warning, and the optimizer seeing the gradients the step hook made. */
#include "loop.h"
#include "signals.h"
#include "tap.h"

#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    float w, g;     /* one parameter, and its gradient */
    long steps[64]; /* the steps run, in order */
    int nsteps;
    long evals[64];
    int nevals;
    long ckpts[8];
    int nckpts;
    int stop_at_eval;     /* the evaluation (1-based) that asks to stop; 0: never */
    long signal_at;       /* raise SIGTERM inside this step; -1: never */
    long nan_at;          /* this step's loss is NaN; -1: never */
    double loss0, growth; /* loss of step k: loss0 · growth^k */
} rec;

static int step(void *ctx, long k, double *loss, double *weight, long *units, af_err *e) {
    rec *r = ctx;
    r->steps[r->nsteps++] = k;
    r->g = 1; /* d(loss)/dw */
    *loss = k == r->nan_at ? NAN : r->loss0 * pow(r->growth, (double)k);
    *weight = 1;
    *units = 4;
    if (k == r->signal_at) raise(SIGTERM);
    return 0;
}

static int evaluate(void *ctx, long done, int epoch, af_err *e) {
    rec *r = ctx;
    r->evals[r->nevals++] = done;
    return r->stop_at_eval && r->nevals == r->stop_at_eval;
}

static int checkpoint(void *ctx, long done, af_err *e) {
    rec *r = ctx;
    r->ckpts[r->nckpts++] = done;
    return 0;
}

static int run(rec *r, loop_opts *lo, long *k, int *stopped, af_err *e, FILE *out) {
    optim o;
    optim_init(&o);
    int g = optim_add_group(&o, 0.1, 0);
    optim_add_param(&o, g, "w", &r->w, &r->g, 1, 0);
    optim_schedule(&o, 0, 0);
    progress pr;
    progress_init(&pr, out, out == NULL, 1, lo->total_steps, *k);
    loop_hooks h = {r, step, evaluate, checkpoint};
    int rc = loop_run(&o, lo, &h, &pr, k, stopped, e);
    optim_free(&o);
    return rc;
}

static rec fresh(void) {
    rec r;
    memset(&r, 0, sizeof r);
    r.signal_at = r.nan_at = -1;
    r.loss0 = 0.7, r.growth = 0.99;
    return r;
}

static int list_is(const long *v, int n, const long *want, int nwant) {
    if (n != nwant) return 0;
    for (int i = 0; i < n; i++)
        if (v[i] != want[i]) return 0;
    return 1;
}

int main(void) {
    af_err e;
    /* 10 steps of 4 per epoch, evaluated every epoch and at the end, a checkpoint every 3 */
    rec r = fresh();
    loop_opts lo = {.total_steps = 10,
                    .steps_per_epoch = 4,
                    .eval_each_epoch = 1,
                    .eval_at_end = 1,
                    .save_every = 3};
    long k = 0;
    int stopped = -1;
    ok(run(&r, &lo, &k, &stopped, &e, NULL) == 0 && k == 10 && stopped == 0, "runs 10 steps");
    long s10[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    ok(list_is(r.steps, r.nsteps, s10, 10), "steps 0-9 in order");
    long ev[] = {4, 8, 10};
    ok(list_is(r.evals, r.nevals, ev, 3), "evaluated after each epoch and at the end (%d)",
       r.nevals);
    long ck[] = {3, 6, 9};
    ok(list_is(r.ckpts, r.nckpts, ck, 3), "a checkpoint every 3 steps, none after the last");
    ok(fabsf(r.w - (-1.0f)) < 1e-4, "the optimizer stepped on the hook's gradients (w = %g)", r.w);

    /* resumed at step 6, evaluated every 2 steps, stopped by the second evaluation */
    r = fresh();
    lo = (loop_opts){.total_steps = 10, .steps_per_epoch = 4, .eval_every = 2};
    r.stop_at_eval = 2;
    k = 6;
    ok(run(&r, &lo, &k, &stopped, &e, NULL) == 0 && stopped == 1 && k == 10,
       "early stop reported (at %ld)", k);
    long s6[] = {6, 7, 8, 9};
    long ev6[] = {8, 10};
    ok(list_is(r.steps, r.nsteps, s6, 4) && list_is(r.evals, r.nevals, ev6, 2),
       "a resumed run starts at its step; evaluations every 2");
    r = fresh();
    r.stop_at_eval = 1;
    k = 0;
    lo = (loop_opts){.total_steps = 10, .steps_per_epoch = 4, .eval_every = 2};
    ok(run(&r, &lo, &k, &stopped, &e, NULL) == 0 && stopped == 1 && k == 2 && r.nsteps == 2,
       "and stops at once when the evaluation says so");

    /* a signal during step 4: the step ends, the checkpoint is written at 5, status 143 */
    r = fresh();
    r.signal_at = 4;
    lo = (loop_opts){.total_steps = 10, .steps_per_epoch = 4};
    k = 0;
    if (signals_install(&e)) return 1;
    int rc = run(&r, &lo, &k, &stopped, &e, NULL);
    signals_restore();
    signals_install(&e), signals_restore(); /* clears the request for the cases below */
    ok(rc == 143 && k == 5 && r.nckpts == 1 && r.ckpts[0] == 5 && r.nsteps == 5,
       "SIGTERM: checkpoint after the step in flight, exit status 143 (rc %d, at %ld)", rc, k);

    /* a NaN loss is an error naming its step */
    r = fresh();
    r.nan_at = 2;
    k = 0;
    ok(run(&r, &lo, &k, &stopped, &e, NULL) == -1 && strstr(e.msg, "step 3: the loss is nan") &&
           k == 2,
       "%s", e.msg);

    /* a loss doubling every step: one warning */
    r = fresh();
    r.growth = 2;
    lo = (loop_opts){.total_steps = 30, .steps_per_epoch = 30};
    k = 0;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    run(&r, &lo, &k, &stopped, &e, out);
    fclose(out);
    int warnings = 0;
    for (char *p = buf; (p = strstr(p, "warning: the training loss grew")); p++) warnings++;
    ok(warnings == 1 && strstr(buf, "the run is diverging"), "diverging: one warning (%d)",
       warnings);
    free(buf);
    r = fresh();
    k = 0;
    out = open_memstream(&buf, &len);
    run(&r, &lo, &k, &stopped, &e, out);
    fclose(out);
    ok(!strstr(buf, "warning"), "a falling loss: none");
    free(buf);
    return done_testing();
}
