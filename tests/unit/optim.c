/* optim.c: AdamW, schedule and clipping against PyTorch trajectories
 * (tests/fixtures/optim, from scripts/gen-optim-fixtures.py), plus state save/load. */
#include "optim.h"
#include "tap.h"

#include <string.h>
#include <unistd.h>

/* The configuration of scripts/gen-optim-fixtures.py. */
static const struct {
    const char *name;
    int ndim;
    int64_t shape[2];
    int group, decay;
} P[] = {
    {"a.weight", 2, {4, 3}, 0, 1}, {"a.bias", 1, {3}, 0, 0}, {"ln.weight", 1, {5}, 0, 0},
    {"b.weight", 2, {2, 3}, 1, 1}, {"b.bias", 1, {2}, 1, 0},
};
enum { NP = 5, STEPS = 5 };
static const double LR[2] = {1e-3, 5e-4}, WD[2] = {0.01, 0.1};

typedef struct {
    optim o;
    float *w[NP], *g[NP];
    size_t n[NP];
} rig;

static const char *fixture(const char *name) {
    static char buf[4096];
    const char *top = getenv("AF_TOP");
    snprintf(buf, sizeof buf, "%s/tests/fixtures/optim/%s", top ? top : ".", name);
    return buf;
}

static const float *tensor(const st_file *f, const char *fmt, const char *a, int k) {
    char name[256];
    snprintf(name, sizeof name, fmt, a, k);
    const st_tensor *t = st_find(f, name);
    if (!t) {
        diag("fixture tensor %s missing", name);
        exit(1);
    }
    return t->data;
}

static void rig_init(rig *r, const st_file *f, const char *init_fmt, int k, long T, long W) {
    optim_init(&r->o);
    for (int i = 0; i < NP; i++) {
        r->n[i] = (size_t)(P[i].ndim == 2 ? P[i].shape[0] * P[i].shape[1] : P[i].shape[0]);
        r->w[i] = af_malloc(r->n[i] * sizeof(float));
        r->g[i] = af_calloc(r->n[i], sizeof(float));
        memcpy(r->w[i], tensor(f, init_fmt, P[i].name, k), r->n[i] * sizeof(float));
        if (i == 0 || P[i].group != P[i - 1].group)
            optim_add_group(&r->o, LR[P[i].group], WD[P[i].group]);
        optim_add_param(&r->o, P[i].group, P[i].name, r->w[i], r->g[i], r->n[i], P[i].decay);
    }
    optim_schedule(&r->o, T, W);
}

static void rig_free(rig *r) {
    for (int i = 0; i < NP; i++) {
        free(r->w[i]);
        free(r->g[i]);
    }
    optim_free(&r->o);
}

/* Worst |a−b| / (1e-3 + |b|) over all parameters: relative, but not blown up near zero. */
static double worst_rel(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (1e-3 + fabs(b[i]));
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

/* Runs steps [from, to) of a fixture, checking the norm and every parameter after each step. */
static void run_steps(rig *r, const st_file *f, const char *label, int from, int to) {
    for (int k = from; k < to; k++) {
        for (int i = 0; i < NP; i++)
            memcpy(r->g[i], tensor(f, "%s.grad.%d", P[i].name, k), r->n[i] * sizeof(float));
        double norm = optim_clip_grad_norm(&r->o, 1.0);
        double ref = *tensor(f, "%s.%d", "norm", k);
        ok(fabs(norm - ref) <= 1e-6 * ref, "%s step %d: total grad norm %.7g (torch %.7g)", label,
           k, norm, ref);
        optim_step(&r->o);
        double worst = 0;
        for (int i = 0; i < NP; i++) {
            double d = worst_rel(r->w[i], tensor(f, "%s.after.%d", P[i].name, k), r->n[i]);
            if (d > worst) worst = d;
        }
        ok(worst < 1e-6, "%s step %d: parameters match torch.optim.AdamW (worst rel %.3g)", label,
           k, worst);
    }
}

static void check_moments(rig *r, const st_file *f, const char *label) {
    double worst = 0;
    for (int i = 0; i < NP; i++) {
        double d1 =
            worst_rel(r->o.params[i].exp_avg, tensor(f, "%s.exp_avg", P[i].name, 0), r->n[i]);
        double d2 =
            worst_rel(r->o.params[i].exp_avg_sq, tensor(f, "%s.exp_avg_sq", P[i].name, 0), r->n[i]);
        if (d1 > worst) worst = d1;
        if (d2 > worst) worst = d2;
    }
    ok(worst < 1e-5, "%s: moments match torch's exp_avg/exp_avg_sq (worst rel %.3g)", label, worst);
}

static void test_schedule(void) {
    static const struct {
        long k, T, W;
        double want;
    } c[] = {
        {0, 10, 0, 1.0}, {5, 10, 0, 0.5}, {9, 10, 0, 0.1}, {10, 10, 0, 0.0}, {0, 10, 2, 0.0},
        {1, 10, 2, 0.5}, {2, 10, 2, 1.0}, {6, 10, 2, 0.5}, {12, 10, 2, 0.0}, {3, 0, 0, 1.0},
        {0, 4, 4, 0.0},  {3, 4, 4, 0.75}, {4, 4, 4, 0.0},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        double f = optim_schedule_factor(c[i].k, c[i].T, c[i].W);
        ok(fabs(f - c[i].want) < 1e-12, "schedule factor k=%ld T=%ld W=%ld: %g (want %g)", c[i].k,
           c[i].T, c[i].W, f, c[i].want);
    }
}

static void test_fixture(const char *file, long T, long W) {
    st_file f;
    af_err e;
    if (st_open(&f, fixture(file), &e)) {
        ok(0, "open %s: %s", file, e.msg);
        return;
    }
    rig r;
    rig_init(&r, &f, "%s.init", 0, T, W);
    ok(fabs(optim_lr(&r.o, 1) - LR[1] * optim_schedule_factor(0, T, W)) < 1e-15,
       "%s: optim_lr reports the scheduled lr of group 1", file);
    run_steps(&r, &f, file, 0, STEPS);
    ok(r.o.step == STEPS, "%s: step count %lld", file, (long long)r.o.step);
    check_moments(&r, &f, file);
    rig_free(&r);
    st_close(&f);
}

/* 3 steps, checkpoint, a fresh optimizer resumes from the file, 2 more steps: same as 5 in one. */
static void test_resume(void) {
    st_file f, ck;
    af_err e;
    if (st_open(&f, fixture("warmup.safetensors"), &e)) {
        ok(0, "open: %s", e.msg);
        return;
    }
    char path[] = "/tmp/af-optim-test-XXXXXX";
    int fd = mkstemp(path);
    close(fd);

    rig a;
    rig_init(&a, &f, "%s.init", 0, 4, 2);
    run_steps(&a, &f, "before checkpoint", 0, 3);
    st_writer w;
    st_writer_init(&w);
    optim_state_add(&a.o, &w, "optim.");
    ok(st_writer_write(&w, path, &e) == 0, "checkpoint written");
    st_writer_free(&w);

    ok(st_open(&ck, path, &e) == 0, "checkpoint reopened");
    ok(st_find(&ck, "optim.exp_avg_sq.b.weight") && st_find(&ck, "optim.step"),
       "state tensors named optim.step, optim.exp_avg_sq.<param>");

    rig b;
    rig_init(&b, &f, "%s.after.%d", 2, 4, 2);
    int rc = optim_state_load(&b.o, &ck, "optim.", &e);
    ok(rc == 0 && b.o.step == 3, "state loaded, step count 3 (%lld)", (long long)b.o.step);
    run_steps(&b, &f, "resumed", 3, STEPS);
    check_moments(&b, &f, "resumed");
    rig_free(&b);

    /* Another parameter set must be refused with a message naming the tensor. */
    optim o;
    float x[3] = {0}, gx[3] = {0};
    optim_init(&o);
    optim_add_group(&o, 1e-3, 0);
    optim_add_param(&o, 0, "a.bias", x, gx, 3, 0);
    rc = optim_state_load(&o, &ck, "optim.", &e);
    ok(rc == -1 && strstr(e.msg, "belongs to no parameter"), "extra state refused: %s", e.msg);
    optim_free(&o);

    optim_init(&o);
    optim_add_group(&o, 1e-3, 0);
    optim_add_param(&o, 0, "a.bias", x, gx, 2, 0);
    rc = optim_state_load(&o, &ck, "optim.", &e);
    ok(rc == -1 && strstr(e.msg, "optim.exp_avg.a.bias") && strstr(e.msg, "2 elements expected"),
       "wrong size refused: %s", e.msg);
    ok(o.step == 0, "failed load leaves the step count alone");
    optim_free(&o);

    optim_init(&o);
    optim_add_group(&o, 1e-3, 0);
    optim_add_param(&o, 0, "c.weight", x, gx, 3, 0);
    rc = optim_state_load(&o, &ck, "optim.", &e);
    ok(rc == -1 && strstr(e.msg, "optim.exp_avg.c.weight missing"), "missing state refused: %s",
       e.msg);
    optim_free(&o);

    rig_free(&a);
    st_close(&ck);
    st_close(&f);
    unlink(path);
}

/* --lr 0 leaves every weight as initialised, weight decay or not, however large the gradients. */
static void test_lr_zero(void) {
    enum { N = 64 };
    float w[N], w0[N], g[N];
    af_rng rng;
    af_rng_seed(&rng, 7);
    for (int i = 0; i < N; i++) w0[i] = w[i] = af_rng_normal(&rng);
    optim o;
    optim_init(&o);
    optim_add_group(&o, 0.0, 0.5);
    optim_add_param(&o, 0, "w", w, g, N, 1);
    optim_schedule(&o, 10, 3);
    for (int k = 0; k < 10; k++) {
        for (int i = 0; i < N; i++) g[i] = 100 * af_rng_normal(&rng);
        optim_clip_grad_norm(&o, 1.0);
        optim_step(&o);
    }
    ok(memcmp(w, w0, sizeof w) == 0, "lr 0: weights bit-identical after 10 steps");
    optim_free(&o);
}

static void test_clip(void) {
    float w[4] = {0}, g[4] = {3, 4, 0, 0}, h[2] = {0}, gh[2] = {0, 12};
    optim o;
    optim_init(&o);
    optim_add_group(&o, 1e-3, 0);
    optim_add_param(&o, 0, "w", w, g, 4, 1);
    optim_add_group(&o, 1e-3, 0);
    optim_add_param(&o, 1, "h", h, gh, 2, 1);
    double n = optim_clip_grad_norm(&o, 100.0);
    ok(n == 13.0 && g[0] == 3 && gh[1] == 12, "norm over all groups is 13; below max, untouched");
    n = optim_clip_grad_norm(&o, 1.0);
    double after = sqrt((double)g[0] * g[0] + g[1] * g[1] + gh[1] * gh[1]);
    ok(fabs(after - 13.0 / (13.0 + 1e-6)) < 1e-6, "clipped to max_norm/(norm+1e-6): %.9f", after);
    /* The 1e-6 only shows on tiny norms: 1e-6 clipped to 1e-7 becomes 5e-8, not 1e-7. */
    memset(g, 0, sizeof g);
    memset(gh, 0, sizeof gh);
    g[2] = 1e-6f;
    optim_clip_grad_norm(&o, 1e-7);
    ok(fabs(g[2] - 5e-8) < 1e-12, "clip coefficient is max_norm/(norm+1e-6): %.3g", g[2]);
    optim_zero_grad(&o);
    ok(g[1] == 0 && gh[1] == 0, "zero_grad clears every group");
    g[0] = NAN;
    n = optim_clip_grad_norm(&o, 1.0);
    ok(isnan(n), "a NaN gradient gives a NaN norm for the caller to see");
    optim_free(&o);
}

int main(void) {
    test_schedule();
    test_clip();
    test_fixture("warmup.safetensors", 4, 2);
    test_fixture("nowarmup.safetensors", 5, 0);
    test_resume();
    test_lr_zero();
    return done_testing();
}
