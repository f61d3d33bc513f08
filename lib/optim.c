/* optim.c: AdamW, the linear schedule, gradient clipping, optimizer state I/O (see optim.h).
 *
 * The update mirrors PyTorch 1.13's _single_tensor_adamw operation by operation, in float32 with
 * the scalars computed in double and rounded once, as torch does when it hands a Python float to
 * a float tensor op; the parity fixtures (scripts/gen-optim-fixtures.py) then match to ~1e-7. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void optim_init(optim *o) {
    memset(o, 0, sizeof *o);
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
}

void optim_free(optim *o) {
    for (int i = 0; i < o->nparams; i++) free(o->params[i].name);
    free(o->params);
    free(o->groups);
    free(o->state);
    memset(o, 0, sizeof *o);
}

int optim_add_group(optim *o, double lr, double weight_decay) {
    o->groups = af_realloc(o->groups, (size_t)(o->ngroups + 1) * sizeof *o->groups);
    o->groups[o->ngroups] = (optim_group){lr, weight_decay, o->nparams, 0};
    return o->ngroups++;
}

/* Misuse here is a bug in the calling program, not a condition of the input: abort loudly. */
static void optim_bug(const char *what) {
    fprintf(stderr, "optim: internal error: %s\n", what);
    abort();
}

void optim_add_param(optim *o, int g, const char *name, float *param, float *grad, size_t n,
                     int decay) {
    if (g != o->ngroups - 1) optim_bug("parameters must be added to the last group");
    if (o->state) optim_bug("parameter added after the moments were allocated");
    o->params = af_realloc(o->params, (size_t)(o->nparams + 1) * sizeof *o->params);
    o->params[o->nparams++] = (optim_param){af_strdup(name), param, grad, n, decay, NULL, NULL};
    o->groups[g].count++;
    o->total += n;
}

/* The moments are allocated once, when the parameter list is complete. */
static void optim_alloc(optim *o) {
    if (o->state) return;
    o->state = af_calloc(2 * o->total + 1, sizeof(float));
    size_t off = 0;
    for (int i = 0; i < o->nparams; i++) {
        o->params[i].exp_avg = o->state + off;
        o->params[i].exp_avg_sq = o->state + o->total + off;
        off += o->params[i].n;
    }
}

double optim_schedule_factor(long k, long T, long W) {
    if (T <= 0) return 1.0;
    if (k < W) return (double)k / (double)(W > 1 ? W : 1);
    double f = (double)(T - k) / (double)(T - W > 1 ? T - W : 1);
    return f > 0 ? f : 0.0;
}

void optim_schedule(optim *o, long total_steps, long warmup_steps) {
    o->total_steps = total_steps;
    o->warmup_steps = warmup_steps;
}

double optim_lr(const optim *o, int g) {
    return o->groups[g].lr * optim_schedule_factor((long)o->step, o->total_steps, o->warmup_steps);
}

double optim_clip_grad_norm(optim *o, double max_norm) {
    /* torch: total = ‖(‖g_1‖, ‖g_2‖, …)‖ with each norm a float32 tensor. */
    double sq = 0;
    for (int i = 0; i < o->nparams; i++) {
        const float *g = o->params[i].grad;
        double s = 0;
        for (size_t j = 0; j < o->params[i].n; j++) s += (double)g[j] * g[j];
        float norm_i = (float)sqrt(s);
        sq += (double)norm_i * norm_i;
    }
    float total = (float)sqrt(sq);
    if (max_norm <= 0 || !isfinite(total)) return total;
    float coef = (float)max_norm / (total + 1e-6f);
    if (coef < 1.0f) {
        for (int i = 0; i < o->nparams; i++) {
            float *g = o->params[i].grad;
            for (size_t j = 0; j < o->params[i].n; j++) g[j] *= coef;
        }
    }
    return total;
}

void optim_zero_grad(optim *o) {
    for (int i = 0; i < o->nparams; i++)
        memset(o->params[i].grad, 0, o->params[i].n * sizeof(float));
}

/* One parameter's update, over elements [lo, hi) in chunks of ADAM_CHUNK: elementwise, so any
 * split gives the same bits, and the pool runs the chunks of a large tensor in parallel. */
#define ADAM_CHUNK 16384

typedef struct {
    float *w, *m, *v;
    const float *gr;
    size_t n;
    float keep, b1, a1, b2, a2, eps, bc2s, neg_step;
} adam_job;

static void adam_part(void *vp, int lo, int hi) {
    const adam_job *a = vp;
    size_t end = (size_t)hi * ADAM_CHUNK < a->n ? (size_t)hi * ADAM_CHUNK : a->n;
    float *w = a->w, *m = a->m, *v = a->v;
    for (size_t j = (size_t)lo * ADAM_CHUNK; j < end; j++) {
        float x = a->gr[j];
        w[j] = w[j] * a->keep;
        m[j] = m[j] * a->b1;
        m[j] = m[j] + a->a1 * x;
        v[j] = v[j] * a->b2;
        v[j] = v[j] + a->a2 * x * x;
        float denom = sqrtf(v[j]) / a->bc2s + a->eps;
        w[j] = w[j] + a->neg_step * m[j] / denom;
    }
}

void optim_step(optim *o) {
    optim_alloc(o);
    double t = (double)(o->step + 1);
    double bc1 = 1.0 - pow(o->beta1, t), bc2_sqrt = sqrt(1.0 - pow(o->beta2, t));
    double factor = optim_schedule_factor((long)o->step, o->total_steps, o->warmup_steps);
    adam_job a = {.b1 = (float)o->beta1, .a1 = (float)(1.0 - o->beta1),
                  .b2 = (float)o->beta2, .a2 = (float)(1.0 - o->beta2),
                  .eps = (float)o->eps, .bc2s = (float)bc2_sqrt};
    for (int gi = 0; gi < o->ngroups; gi++) {
        const optim_group *g = &o->groups[gi];
        double lr = g->lr * factor;
        a.neg_step = (float)(-(lr / bc1));
        for (int pi = g->first; pi < g->first + g->count; pi++) {
            optim_param *p = &o->params[pi];
            a.keep = (float)(1.0 - lr * (p->decay ? g->weight_decay : 0.0));
            a.w = p->param, a.m = p->exp_avg, a.v = p->exp_avg_sq, a.gr = p->grad, a.n = p->n;
            int chunks = (int)((p->n + ADAM_CHUNK - 1) / ADAM_CHUNK);
            if (chunks > 1) af_parallel(chunks, adam_part, &a);
            else adam_part(&a, 0, chunks);
        }
    }
    o->step++;
}

/* ---- checkpoint state ---- */

static char *state_name(const char *prefix, const char *what, const char *name) {
    size_t n = strlen(prefix) + strlen(what) + strlen(name) + 2;
    char *s = af_malloc(n);
    snprintf(s, n, "%s%s%s%s", prefix, what, *what ? "." : "", name);
    return s;
}

void optim_state_add(optim *o, st_writer *w, const char *prefix) {
    optim_alloc(o);
    int64_t one = 1;
    char *s = state_name(prefix, "", "step");
    st_writer_add(w, s, ST_I64, 1, &one, &o->step);
    free(s);
    for (int i = 0; i < o->nparams; i++) {
        int64_t n = (int64_t)o->params[i].n;
        s = state_name(prefix, "exp_avg", o->params[i].name);
        st_writer_add(w, s, ST_F32, 1, &n, o->params[i].exp_avg);
        free(s);
        s = state_name(prefix, "exp_avg_sq", o->params[i].name);
        st_writer_add(w, s, ST_F32, 1, &n, o->params[i].exp_avg_sq);
        free(s);
    }
}

static int load_moment(float *dst, size_t n, const st_file *f, const char *name, af_err *e) {
    const st_tensor *t = st_find(f, name);
    if (!t) return af_errf(e, "%s: optimizer state %s missing", f->path, name);
    if (t->dtype != ST_F32)
        return af_errf(e, "%s: %s: dtype F32 expected, %s found", f->path, name,
                       st_dtype_name(t->dtype));
    if (t->numel != (int64_t)n)
        return af_errf(e, "%s: %s: %zu elements expected, %lld found", f->path, name, n,
                       (long long)t->numel);
    memcpy(dst, t->data, n * sizeof(float));
    return 0;
}

int optim_state_load(optim *o, const st_file *f, const char *prefix, af_err *e) {
    optim_alloc(o);
    char *s = state_name(prefix, "", "step");
    const st_tensor *t = st_find(f, s);
    int rc = 0;
    if (!t)
        rc = af_errf(e, "%s: optimizer state %s missing", f->path, s);
    else if (t->dtype != ST_I64 || t->numel != 1)
        rc = af_errf(e, "%s: %s: one I64 expected, %lld of %s found", f->path, s,
                     (long long)t->numel, st_dtype_name(t->dtype));
    if (rc) {
        free(s);
        return rc;
    }
    int64_t step;
    memcpy(&step, t->data, sizeof step);
    if (step < 0) {
        rc = af_errf(e, "%s: %s: a count >= 0 expected, %lld found", f->path, s, (long long)step);
        free(s);
        return rc;
    }
    free(s);
    /* Load into a scratch copy so a failure leaves the optimizer as it was. */
    float *tmp = af_malloc((2 * o->total + 1) * sizeof(float));
    size_t off = 0;
    for (int i = 0; i < o->nparams && !rc; i++) {
        const optim_param *p = &o->params[i];
        s = state_name(prefix, "exp_avg", p->name);
        rc = load_moment(tmp + off, p->n, f, s, e);
        free(s);
        if (rc) break;
        s = state_name(prefix, "exp_avg_sq", p->name);
        rc = load_moment(tmp + o->total + off, p->n, f, s, e);
        free(s);
        off += p->n;
    }
    /* Anything else under the prefix means the checkpoint was made for other parameters. */
    size_t plen = strlen(prefix);
    for (int i = 0; i < f->ntensors && !rc; i++) {
        const char *name = f->tensors[i].name;
        if (strncmp(name, prefix, plen) != 0 || strcmp(name + plen, "step") == 0) continue;
        int known = 0;
        for (int j = 0; j < o->nparams && !known; j++) {
            const char *pn = o->params[j].name, *rest = name + plen;
            if (strncmp(rest, "exp_avg_sq.", 11) == 0)
                known = strcmp(rest + 11, pn) == 0;
            else if (strncmp(rest, "exp_avg.", 8) == 0)
                known = strcmp(rest + 8, pn) == 0;
        }
        if (!known)
            rc = af_errf(e, "%s: optimizer state %s belongs to no parameter being trained", f->path,
                         name);
    }
    if (!rc) {
        memcpy(o->state, tmp, 2 * o->total * sizeof(float));
        o->step = step;
    }
    free(tmp);
    return rc;
}
