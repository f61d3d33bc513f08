/* progress.c: the training progress line, evaluation summaries, the JSONL log (progress.h). */
#include "progress.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define TTY_REDRAW 0.1 /* seconds: fast enough to look live, rare enough to cost nothing */

void progress_init(progress *p, FILE *out, int quiet, int nepochs, long total_steps,
                   long done_steps) {
    memset(p, 0, sizeof *p);
    p->out = out;
    p->quiet = quiet;
    p->tty = out && isatty(fileno(out));
    struct winsize ws;
    if (p->tty && ioctl(fileno(out), TIOCGWINSZ, &ws) == 0) p->width = ws.ws_col;
    p->interval = 30;
    p->now = af_now;
    p->unit = "ex";
    p->nepochs = nepochs;
    p->total_steps = total_steps;
    p->step = p->first_step = done_steps;
    p->lr = NAN;
    p->t_start = p->t_last = p->now();
}

void progress_epoch(progress *p, int epoch) {
    p->epoch = epoch;
    p->loss_sum = 0;
    p->loss_n = 0;
}

double progress_mean_loss(const progress *p) {
    return p->loss_n ? p->loss_sum / p->loss_n : NAN;
}

double progress_elapsed(const progress *p) {
    return p->now() - p->t_start;
}

/* Seconds spent training in this process: pauses (and a pause still open) left out. */
static double train_time(const progress *p) {
    double t = p->now() - p->t_start - p->paused_total;
    if (p->paused) t -= p->now() - p->paused_at;
    return t;
}

void progress_format_duration(double s, char *buf, size_t size) {
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, size, "?");
        return;
    }
    long t = lround(s);
    if (t < 60)
        snprintf(buf, size, "%lds", t);
    else if (t < 3600)
        snprintf(buf, size, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, size, "%ldh%02ldm", t / 3600, t / 60 % 60);
}

void progress_format(const progress *p, char *buf, size_t size) {
    double t = train_time(p);
    long here = p->step - p->first_step;
    char rate[32], eta[32], loss[32], lr[32];
    if (t > 0 && p->examples > 0) {
        double r = p->examples / t;
        snprintf(rate, sizeof rate, r >= 10 ? "%.0f" : "%.1f", r);
    } else {
        snprintf(rate, sizeof rate, "-");
    }
    if (here > 0 && t > 0)
        progress_format_duration(t / here * (double)(p->total_steps - p->step), eta, sizeof eta);
    else
        snprintf(eta, sizeof eta, "?");
    double ml = progress_mean_loss(p);
    snprintf(loss, sizeof loss, isnan(ml) ? "-" : "%.4f", ml);
    snprintf(lr, sizeof lr, isnan(p->lr) ? "-" : "%.2e", p->lr);
    int pct = p->total_steps > 0 ? (int)(100.0 * p->step / p->total_steps) : 0;
    snprintf(buf, size, "epoch %d/%d  step %ld/%ld  %d%%  %s %s/s  loss %s  lr %s  ETA %s",
             p->epoch, p->nepochs, p->step, p->total_steps, pct, rate, p->unit, loss, lr, eta);
}

static void draw(progress *p) {
    char line[512];
    progress_format(p, line, sizeof line);
    if (p->tty) {
        /* A line wider than the terminal would wrap, and \r would then redraw only its tail. */
        if (p->width > 1 && strlen(line) >= (size_t)p->width) line[p->width - 1] = 0;
        fprintf(p->out, "\r%s\033[K", line);
        p->shown = 1;
    } else {
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
    p->t_last = p->now();
}

void progress_step(progress *p, int batch_examples, double loss, double lr) {
    p->step++;
    p->examples += batch_examples;
    p->loss_sum += loss;
    p->loss_n++;
    p->lr = lr;
    if (p->quiet || !p->out) return;
    double since = p->now() - p->t_last;
    if (p->tty ? since >= TTY_REDRAW || p->step == p->total_steps : since >= p->interval) draw(p);
}

void progress_pause(progress *p) {
    if (p->paused) return;
    p->paused = 1;
    p->paused_at = p->now();
}

void progress_resume(progress *p) {
    if (!p->paused) return;
    p->paused_total += p->now() - p->paused_at;
    p->paused = 0;
}

void progress_done(progress *p) {
    if (p->quiet || !p->out) return;
    if (p->step > p->first_step || p->shown) draw(p);
    if (p->tty && p->shown) fputc('\n', p->out);
    p->shown = 0;
    fflush(p->out);
}

/* ---- evaluation summaries ---- */

void progress_eval_fill(const progress *p, progress_eval_info *ev) {
    ev->epoch = p->epoch;
    ev->step = p->step;
    ev->examples = p->examples;
    ev->elapsed = progress_elapsed(p);
    ev->lr = p->lr;
    ev->train_loss = progress_mean_loss(p);
}

/* Appends printf-style to buf at *at, never past size. */
static void add(char *buf, size_t size, size_t *at, const char *fmt, ...) {
    if (*at >= size) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *at, size - *at, fmt, ap);
    va_end(ap);
    if (n > 0) *at = *at + (size_t)n < size ? *at + (size_t)n : size - 1;
}

void progress_eval_format(const progress_eval_info *ev, char *buf, size_t size) {
    size_t at = 0;
    buf[0] = 0;
    add(buf, size, &at, "dev epoch %d step %ld", ev->epoch, ev->step);
    if (ev->task) add(buf, size, &at, " [%s]", ev->task);
    add(buf, size, &at, ":");
    if (!isnan(ev->dev_loss)) add(buf, size, &at, "  loss %.4f", ev->dev_loss);
    if (ev->m.kind == METRICS_REGRESSION)
        add(buf, size, &at, "  pearson %.4f  spearman %.4f  mse %.4f", ev->m.pearson,
            ev->m.spearman, ev->m.mse);
    else if (ev->m.kind == METRICS_MULTILABEL)
        add(buf, size, &at, "  micro_f1 %.4f  exact_match %.4f", ev->m.micro_f1, ev->m.exact_match);
    else
        add(buf, size, &at, "  accuracy %.4f  f1 %.4f  mcc %.4f", ev->m.accuracy, ev->m.f1,
            ev->m.mcc);
    add(buf, size, &at, "  (%ld examples)%s", ev->m.n, ev->best ? "  best" : "");
}

void progress_note(progress *p, const char *fmt, ...) {
    if (p->quiet || !p->out) return;
    if (p->tty && p->shown) fputs("\r\033[K", p->out);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    fflush(p->out);
    p->shown = 0;
}

void progress_warn(progress *p, const char *fmt, ...) {
    FILE *out = p->out ? p->out : stderr;
    if (p->tty && p->shown) fputs("\r\033[K", out);
    fprintf(out, "%s: warning: ", program_invocation_short_name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
    fflush(out);
    p->shown = 0;
    if (p->tty) p->t_last = -INFINITY;
}

void progress_watch_init(progress_watch *w) {
    memset(w, 0, sizeof *w);
}

int progress_watch_step(progress_watch *w, double loss, char *msg, size_t size) {
    if (w->steps++ == 0) {
        w->first = loss;
        return 0;
    }
    w->sum += loss, w->n++;
    if (w->n < PROGRESS_WATCH_WINDOW) return 0;
    double mean = w->sum / w->n;
    int n = w->n;
    w->sum = 0, w->n = 0;
    if (w->warned || !(mean > PROGRESS_WATCH_FACTOR * w->first && mean > w->first + 1)) return 0;
    w->warned = 1;
    snprintf(msg, size,
             "the training loss grew from %.4g at the first step to %.4g, the mean of steps "
             "%ld-%ld: the run is diverging (lower --lr?)",
             w->first, mean, w->steps - n + 1, w->steps);
    return 1;
}

void progress_eval(progress *p, const progress_eval_info *ev) {
    if (p->quiet || !p->out) return;
    char line[512];
    progress_eval_format(ev, line, sizeof line);
    if (p->tty && p->shown) fputs("\r\033[K", p->out);
    fprintf(p->out, "%s\n", line);
    fflush(p->out);
    p->shown = 0;
    if (p->tty) p->t_last = -INFINITY; /* bring the progress line back at the next step */
}

/* ---- JSONL log ---- */

struct progress_log {
    FILE *f;
    char *path;
};

/* The shortest %g form that reads back as the same double; null for inf and nan. */
static void add_num(char *buf, size_t size, size_t *at, const char *key, double v) {
    if (!isfinite(v)) {
        add(buf, size, at, ",\"%s\":null", key);
        return;
    }
    char num[32];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(num, sizeof num, "%.*g", prec, v);
        if (strtod(num, NULL) == v) break;
    }
    add(buf, size, at, ",\"%s\":%s", key, num);
}

static void add_str(char *buf, size_t size, size_t *at, const char *key, const char *s) {
    add(buf, size, at, ",\"%s\":\"", key);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            add(buf, size, at, "\\%c", *c);
        else if (*c == '\n' || *c == '\t' || *c == '\r')
            add(buf, size, at, "\\%c", *c == '\n' ? 'n' : *c == '\t' ? 't' : 'r');
        else if (*c < 0x20)
            add(buf, size, at, "\\u%04x", *c);
        else
            add(buf, size, at, "%c", *c);
    }
    add(buf, size, at, "\"");
}

void progress_eval_json(const progress_eval_info *ev, char *buf, size_t size) {
    size_t at = 0;
    buf[0] = 0;
    add(buf, size, &at, "{\"epoch\":%d,\"step\":%ld,\"examples\":%ld", ev->epoch, ev->step,
        ev->examples);
    add_num(buf, size, &at, "elapsed", ev->elapsed);
    add_num(buf, size, &at, "lr", ev->lr);
    add_num(buf, size, &at, "train_loss", ev->train_loss);
    if (ev->task) add_str(buf, size, &at, "task", ev->task);
    add(buf, size, &at, ",\"n\":%ld", ev->m.n);
    add_num(buf, size, &at, "dev_loss", ev->dev_loss);
    if (ev->m.kind == METRICS_REGRESSION) {
        add_num(buf, size, &at, "pearson", ev->m.pearson);
        add_num(buf, size, &at, "spearman", ev->m.spearman);
        add_num(buf, size, &at, "mse", ev->m.mse);
    } else if (ev->m.kind == METRICS_MULTILABEL) {
        add_num(buf, size, &at, "micro_f1", ev->m.micro_f1);
        add_num(buf, size, &at, "exact_match", ev->m.exact_match);
    } else {
        add_num(buf, size, &at, "accuracy", ev->m.accuracy);
        add_num(buf, size, &at, "f1", ev->m.f1);
        add_num(buf, size, &at, "mcc", ev->m.mcc);
    }
    add(buf, size, &at, ",\"best\":%s}", ev->best ? "true" : "false");
}

int progress_log_open(progress_log **l, const char *path, int append, af_err *e) {
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, append ? "a" : "w");
    if (!f) return af_errf(e, "%s: cannot open log: %s", path, strerror(errno));
    *l = af_calloc(1, sizeof **l);
    (*l)->f = f;
    (*l)->path = af_strdup(path);
    return 0;
}

int progress_log_write(progress_log *l, const progress_eval_info *ev, af_err *e) {
    char line[2048];
    progress_eval_json(ev, line, sizeof line);
    if (fprintf(l->f, "%s\n", line) < 0 || fflush(l->f) != 0)
        return af_errf(e, "%s: cannot write log: %s", l->path, strerror(errno));
    return 0;
}

int progress_log_close(progress_log *l, af_err *e) {
    if (!l) return 0;
    int rc = 0;
    if (l->f == stdout) {
        if (fflush(stdout) != 0 || ferror(stdout))
            rc = af_errf(e, "%s: cannot write log: %s", l->path, strerror(errno));
    } else if (ferror(l->f) | fclose(l->f)) { /* not ||: the file must be closed either way */
        rc = af_errf(e, "%s: cannot write log: %s", l->path, strerror(errno));
    }
    free(l->path);
    free(l);
    return rc;
}
