/* progress.h: what training says on stderr, and the --log file (af-train-adapter(1), af-files(5)).
 *
 * One progress line: epoch, step, percent of the run, examples/s, loss (mean over the epoch so
 * far), lr, ETA:
 *     epoch 2/10  step 640/3000  21%  412 ex/s  loss 0.4821  lr 4.47e-05  ETA 5m42s
 * On a terminal it is rewritten in place (\r, clear to end of line) at most 10 times a second;
 * otherwise (a log file, a pipe) a plain line is written every `interval` seconds. --quiet turns
 * it off, and the evaluation summaries with it.
 *
 * Typical loop:
 *     progress_init(&pg, stderr, quiet, epochs, total_steps, resumed_steps);
 *     for each epoch: progress_epoch(&pg, epoch);
 *         for each step: ...; progress_step(&pg, batch_examples, loss, optim_lr(&o, 0));
 *         progress_pause(&pg); evaluate; progress_eval(&pg, &info);
 *         progress_log_write(log, &info, &e); progress_resume(&pg);
 *     progress_done(&pg);
 *
 * The library prints nothing else; this file exists for the programs' benefit and only writes to
 * the stream it is given. */
#ifndef AF_PROGRESS_H
#define AF_PROGRESS_H

#include "af.h"
#include "metrics.h"

typedef struct {
    FILE *out;
    int tty; /* rewrite in place; set from isatty(), may be overridden */
    int quiet;
    int width;           /* terminal columns (0: unknown); longer lines are cut */
    double interval;     /* seconds between plain lines when not a terminal (default 30) */
    double (*now)(void); /* the clock (af_now); tests substitute their own */
    const char *unit;    /* what progress_step counts, for the rate: "ex" (default), "tok" */

    int nepochs, epoch;
    long total_steps;
    long step;       /* optimizer steps done, counting those of a resumed run */
    long first_step; /* step when this process started */
    long examples;   /* examples trained on by this process */
    double loss_sum; /* this epoch's losses, for the running mean */
    long loss_n;
    double lr;
    double t_start, t_last, paused_at, paused_total;
    int paused;
    int shown; /* a line is on the terminal without its newline */
} progress;

/* done_steps: steps already taken when resuming (0 for a fresh run). */
void progress_init(progress *p, FILE *out, int quiet, int nepochs, long total_steps,
                   long done_steps);
/* Starts epoch (1-based); resets the running loss. */
void progress_epoch(progress *p, int epoch);
/* After each optimizer step: the batch's example count, its mean loss, the lr it used. */
void progress_step(progress *p, int batch_examples, double loss, double lr);
/* Time between pause and resume (evaluation, checkpoints) counts in neither ex/s nor ETA. */
void progress_pause(progress *p);
void progress_resume(progress *p);
/* One line of its own (no newline in fmt), unless quiet. */
void progress_note(progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A warning on a line of its own, "prog: warning: ...", shown even when quiet: it is about the
 * result, not the progress. */
void progress_warn(progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Divergence (a learning rate far too high): the loss growing by orders of magnitude instead of
 * falling. The reference is the first step's loss, taken before any update (about ln(labels)
 * for a classifier, ln(vocab) for MLM); each block of PROGRESS_WATCH_WINDOW steps is compared
 * with it, and the first block whose mean is PROGRESS_WATCH_FACTOR times larger (and larger by
 * at least 1, so a loss near 0 that merely wobbles does not count) is reported, once. */
#define PROGRESS_WATCH_WINDOW 10
#define PROGRESS_WATCH_FACTOR 10.0
typedef struct {
    double first, sum;
    long steps;
    int n, warned;
} progress_watch;
void progress_watch_init(progress_watch *w);
/* After each optimizer step with its loss: 1 (once) when the run diverges, with msg filled
 * ("the training loss grew from X at the first step to Y, the mean of steps A-B"). */
int progress_watch_step(progress_watch *w, double loss, char *msg, size_t size);

/* Prints the final state of the line and ends it. */
void progress_done(progress *p);

double progress_mean_loss(const progress *p); /* NAN before the first step of an epoch */
double progress_elapsed(const progress *p);   /* seconds since progress_init, pauses included */
/* The progress line as it would be shown (without \r or newline). */
void progress_format(const progress *p, char *buf, size_t size);
/* "45s", "2m13s", "1h02m" */
void progress_format_duration(double seconds, char *buf, size_t size);

/* One evaluation, for the summary line and the log. */
typedef struct {
    int epoch;
    long step;
    long examples;  /* training examples seen so far */
    double elapsed; /* seconds */
    double lr;
    double train_loss; /* running mean, NAN if none */
    const char *task;  /* NULL unless multi-task */
    double dev_loss;   /* NAN if not computed */
    metrics_result m;
    int best; /* the best evaluation so far (the checkpoint kept) */
} progress_eval_info;

/* Fills the training-side fields (epoch, step, examples, elapsed, lr, train_loss) from p. */
void progress_eval_fill(const progress *p, progress_eval_info *ev);
/* "dev epoch 2 step 640: loss 0.4123  accuracy 0.9123  f1 0.9100  mcc 0.8245  (best)" */
void progress_eval_format(const progress_eval_info *ev, char *buf, size_t size);
/* Prints the summary on its own line (clearing a progress line first). */
void progress_eval(progress *p, const progress_eval_info *ev);

/* --log FILE: one JSON object per evaluation, one per line, flushed as written:
 *   {"epoch":2,"step":640,"examples":20480,"elapsed":81.2,"lr":4.47e-05,"train_loss":0.48,
 *    "task":"sst2","n":872,"dev_loss":0.41,"accuracy":0.91,"f1":0.91,"mcc":0.82,"best":true}
 * Non-finite numbers are written as null (JSON has no NaN). "-" is stdout. append: keep what the
 * file holds (a resumed run). */
typedef struct progress_log progress_log;
int progress_log_open(progress_log **l, const char *path, int append, af_err *e);
int progress_log_write(progress_log *l, const progress_eval_info *ev, af_err *e);
/* Closes and reports a write error that stdio kept until now. l may be NULL. */
int progress_log_close(progress_log *l, af_err *e);
/* The JSON object for one evaluation, without newline. */
void progress_eval_json(const progress_eval_info *ev, char *buf, size_t size);

#endif
