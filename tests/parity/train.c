/* train.c: three training steps through the library against PyTorch (scripts/gen-train-fixtures.py,
 * tests/fixtures/train/): the promise of lib/README.md ("The model") that with dropout 0 and one
 * batch per epoch a run equals the same steps in PyTorch.
 *
 * Per case the model is built the way af-train-adapter and af-fuse build it (model_new_adapter,
 * or model_load_adapters over the fixture's adapter files and model_new_fusion; train_add_heads;
 * model_finalize), the fixture's initial weights replace the random init (model_load_params), and
 *   1. one model_run at the initial weights: the loss, and the gradient of every trainable tensor
 *      (1e-3 relative L2, as tests/parity/kernels.c), which Adam's scale invariance and clipping
 *      would hide from the weights alone (a loss off by a constant factor trains the same);
 *   2. train_run with 3 epochs of one batch, dropout 0, then every tensor of the written file
 *      against PyTorch's after 3 steps, within 1e-4 absolute.
 * train_run shuffles the rows of its one batch each epoch; that changes only the order of float
 * sums.
 *
 * Entries whose gradient is zero in exact arithmetic (attention's and static's key.bias: q·bk is
 * the same for every adapter, so the softmax cancels it; the key rows of multihead's in_proj_bias
 * likewise) are the exception. Step 1 checks their gradient is zero up to rounding (below 1e-5 in
 * L2, via the floor). But Adam divides by the gradient's own size, so float32 rounding noise g
 * becomes a step of lr·g/(|g| + eps), up to lr: here they move by up to a few 1e-3 while
 * PyTorch's float64 noise (1e-17) leaves them in place, and PyTorch in float32 would move them by
 * its own noise. Their final values are therefore not compared; the report shows how far they
 * moved.
 *
 * The RoBERTa and DistilBERT fixtures (gen-arch-fixtures.py) are seeded so that every other
 * non-zero first gradient is at least 1e-7 in size (WELL_COND; step 2 checks it): there every entry
 * is compared, within 2e-5 (ARCH_FINAL_TOL, as issue 17 asks). BERT's fixtures predate that choice;
 * there an entry whose first gradient is below 1e-7 is counted, not compared (see check_output). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "jsonl.h"
#include "model.h"
#include "ops.h"
#include "tap.h"
#include "train.h"

#define FINAL_TOL 1e-4
#define ARCH_FINAL_TOL 2e-5
#define WELL_COND 1e-7
#define GRAD_TOL 1e-3
#define GRAD_FLOOR 1e-2
#define LOSS_TOL 1e-5

static const char *top(void) {
    const char *t = getenv("AF_TOP");
    return t && *t ? t : ".";
}

/* The fixture directory: BERT's, then each other architecture's (gen-arch-fixtures.py). */
static const char *FXDIR = "train";

/* The architecture fixtures: well-conditioned, every entry compared (see the top). */
static int arch_fixture(void) {
    return strncmp(FXDIR, "arch/", 5) == 0;
}

static char *path_of(const char *fmt, const char *arg) {
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ % 8], rel[512];
    snprintf(rel, sizeof rel, fmt, arg);
    snprintf(p, 1024, "%s/tests/fixtures/%s/%s", top(), FXDIR, rel);
    return p;
}

/* ---- the case's metadata (JSON-encoded values, strings as they are) ---- */

static const st_file *FX;

static cJSON *meta_json(const char *key) {
    const char *v = st_meta_get(FX, key);
    return v ? cJSON_Parse(v) : NULL;
}

static double meta_num(const char *key, double dflt) {
    cJSON *j = meta_json(key);
    double v = cJSON_IsNumber(j) ? j->valuedouble : dflt;
    cJSON_Delete(j);
    return v;
}

static int meta_bool(const char *key) {
    cJSON *j = meta_json(key);
    int v = cJSON_IsTrue(j);
    cJSON_Delete(j);
    return v;
}

static const char *meta_str(const char *key, const char *dflt) {
    const char *v = st_meta_get(FX, key);
    return v ? v : dflt;
}

/* ---- comparisons ---- */

static float *tensor(const st_file *f, const char *name, size_t n) {
    const st_tensor *t = st_find(f, name);
    af_err e;
    if (!t || (size_t)t->numel != n) return NULL;
    float *x = malloc(n * sizeof(float));
    if (st_to_f32(t, x, (int64_t)n, &e)) {
        free(x);
        return NULL;
    }
    return x;
}

/* Zero in exact arithmetic: see the top of the file. */
static int structurally_zero(const model_param *p, const af_model *m) {
    size_t len = strlen(p->name);
    if (len > 9 && !strcmp(p->name + len - 9, ".key.bias")) return 1;
    return m->fused && m->fcfg.method == FUSION_MULTIHEAD && len > 13 &&
           !strcmp(p->name + len - 13, ".in_proj_bias");
}

/* The key rows of in_proj_bias are [H, 2H): only those are structurally zero. */
static size_t zero_from(const model_param *p, const af_model *m, size_t *to) {
    if (m->fcfg.method == FUSION_MULTIHEAD && strstr(p->name, ".in_proj_bias")) {
        *to = 2 * (size_t)m->H;
        return m->H;
    }
    *to = p->n;
    return 0;
}

static void check_gradients(const char *cs, af_model *m) {
    int n = 0, bad = 0, missing = 0;
    double worst = 0;
    const char *wname = "";
    for (int i = 0; i < m->nparams; i++) {
        model_param *p = &m->params[i];
        if (!p->grad) continue;
        char name[600];
        snprintf(name, sizeof name, "grad.%s", p->name);
        float *ref = tensor(FX, name, p->n);
        if (!ref) {
            diag("%s: %s missing from the fixture", cs, name);
            missing++;
            continue;
        }
        n++;
        double num = 0, den = 0;
        for (size_t k = 0; k < p->n; k++) {
            double d = (double)p->grad[k] - ref[k];
            num += d * d;
            den += (double)ref[k] * ref[k];
        }
        double rel = sqrt(num) / fmax(sqrt(den), GRAD_FLOOR);
        if (!(rel <= GRAD_TOL)) {
            diag("%s: %s: rel err %.2e", cs, p->name, rel);
            bad++;
        }
        if (!(rel <= worst)) worst = rel, wname = p->name;
        free(ref);
    }
    /* the fixture holds a gradient for exactly the trainable tensors */
    int want = (int)meta_num("trainable", -1);
    ok(!bad && !missing && n == want,
       "%s: gradients of %d trainable tensors at the initial weights (%d expected; worst rel err "
       "%.2e, %s)",
       cs, n, want, worst, wname);
}

static void check_output(const char *cs, af_model *m, const char *out, int groups) {
    st_file f;
    af_err e;
    if (!ok(st_open(&f, out, &e) == 0, "%s: train_run wrote %s", cs, out)) {
        diag("%s", e.msg);
        return;
    }
    int n = 0, bad = 0, zeros = 0, tiny = 0, illcond = 0;
    double worst = 0, zmoved = 0, tol = arch_fixture() ? ARCH_FINAL_TOL : FINAL_TOL;
    double gmin = INFINITY;
    const char *wname = "";
    for (int i = 0; i < m->nparams; i++) {
        model_param *p = &m->params[i];
        if (!(groups >> p->group & 1)) continue;
        n++;
        char name[600];
        snprintf(name, sizeof name, "final.%s", p->name);
        float *ref = tensor(FX, name, p->n), *got = tensor(&f, p->name, p->n);
        float *init = tensor(FX, p->name, p->n);
        snprintf(name, sizeof name, "grad.%s", p->name);
        float *g0 = p->grad ? tensor(FX, name, p->n) : NULL;
        if (!ref || !got || !init) {
            diag("%s: %s missing (fixture final %s, output %s)", cs, p->name, ref ? "ok" : "no",
                 got ? "ok" : "no");
            bad++;
        } else {
            size_t z1, z0 = zero_from(p, m, &z1);
            double d = 0, moved = 0;
            for (size_t k = 0; k < p->n; k++) {
                double x = fabs((double)got[k] - ref[k]);
                if (structurally_zero(p, m) && k >= z0 && k < z1) {
                    moved = fmax(moved, fabs((double)got[k] - init[k]));
                    continue;
                }
                /* an exact 0 (a ReLU unit dead on the whole batch) is 0 on both sides */
                if (g0 && g0[k] != 0)
                    gmin = fmin(gmin, fabs(g0[k])), illcond += fabs(g0[k]) < WELL_COND;
                /* AdamW's first step moves an entry by lr·g/(|g| + 1e-8): when the true g is
                 * below float32's rounding of the sums that make it (~1e-7 here), its sign and
                 * size, so the step, are noise; in BERT's fixtures such entries are counted, not
                 * compared */
                if (!arch_fixture() && g0 && g0[k] != 0 && fabs(g0[k]) < 1e-7)
                    tiny++;
                else if (!(x <= d))
                    d = x;
            }
            if (structurally_zero(p, m)) zeros++, zmoved = fmax(zmoved, moved);
            if (!(d <= tol)) {
                diag("%s: %s: max abs diff %.2e", cs, p->name, d);
                bad++;
            }
            if (!(d <= worst)) worst = d, wname = p->name;
        }
        free(ref), free(got), free(init), free(g0);
    }
    if (tiny) diag("%s: %d entries with a first gradient in (0, 1e-7) not compared", cs, tiny);
    if (arch_fixture())
        ok(illcond == 0,
           "%s: the fixture is well conditioned: every non-zero first gradient (but the "
           "structural zeros') is at least %g (smallest %.2e)",
           cs, WELL_COND, gmin);
    ok(!bad && n == f.ntensors,
       "%s: %d tensors after 3 steps within %g (file holds %d; worst max abs diff %.2e, %s)", cs, n,
       tol, f.ntensors, worst, wname);
    if (zeros)
        diag("%s: entries of %d tensors with a zero true gradient moved by up to %.2e (not "
             "compared)",
             cs, zeros, zmoved);
    /* the record says how many steps were taken */
    cJSON *tr = st_meta_get(&f, "training") ? cJSON_Parse(st_meta_get(&f, "training")) : NULL;
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(tr, "steps");
    ok(cJSON_IsNumber(steps) && steps->valueint == 3, "%s: training record: 3 steps", cs);
    cJSON_Delete(tr);
    if (m->fused) {
        /* Annealing moves T by only 0.1% in 3 steps, too little to show in the weights: the
         * temperature the file records (the one reached) shows the clock ran once per step. */
        double want = meta_bool("anneal") ? 50 - 0.05 * 3 : meta_num("temperature", 1);
        cJSON *c = st_meta_get(&f, "config") ? cJSON_Parse(st_meta_get(&f, "config")) : NULL;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "temperature");
        ok(cJSON_IsNumber(t) && fabs(t->valuedouble - want) < 1e-4,
           "%s: config.temperature %g recorded (%g expected)", cs,
           cJSON_IsNumber(t) ? t->valuedouble : NAN, want);
        cJSON_Delete(c);
    }
    st_close(&f);
}

/* ---- one case ---- */

static void dropout_off(af_model *m) {
    m->base->cfg.hidden_dropout = m->base->cfg.attn_dropout = 0;
    m->dropout = 0;
    m->fcfg.dropout = 0;
    for (int p = 0; m->fused && p < 2 * m->L; p++) m->fw[p].cfg.dropout = 0;
}

static int build(af_model *m, bert *base, jl_set *set, int *groups, af_err *e) {
    const char *kind = meta_str("kind", "?");
    int fusion = !strcmp(kind, "fusion"), unfreeze = meta_bool("unfreeze");
    model_init(m, base);
    if (!fusion) {
        adapter_spec spec = {site_arch_parse(meta_str("arch", "?")), 0,
                             (int)meta_num("bottleneck", 0), act_parse(meta_str("act", "?"))};
        if (model_new_adapter(m, "new", &spec, 1, e)) return -1;
    } else {
        cJSON *names = meta_json("adapters");
        int N = cJSON_GetArraySize(names);
        const char **paths = calloc(N ? N : 1, sizeof(char *));
        for (int i = 0; i < N; i++)
            paths[i] = strdup(
                path_of("adapters/%s.safetensors", cJSON_GetArrayItem(names, i)->valuestring));
        cJSON_Delete(names);
        const char *gate = meta_str("gate", "sigmoid");
        fusion_config fc = {fusion_method_parse(meta_str("method", "?")),
                            0,
                            0,
                            (int)meta_num("heads", 4),
                            !strcmp(gate, "softmax"),
                            meta_bool("fixed_weights"),
                            0};
        int rc = model_load_adapters(m, paths, N, e);
        for (int i = 0; i < N; i++) free((char *)paths[i]);
        free(paths);
        if (rc || model_new_fusion(m, &fc, meta_bool("anneal"), 1, e)) return -1;
        m->temperature = (float)meta_num("temperature", 1);
    }
    const char *data = meta_str("data", "?");
    char *tasks[] = {"a:0,1", "b:regression"};
    int rc = !strcmp(data, "cls")   ? train_add_heads(m, set, "t", "neg,neu,pos", NULL, 0, 0, 2, e)
             : !strcmp(data, "reg") ? train_add_heads(m, set, "t", NULL, NULL, 0, 1, 2, e)
                                    : train_add_heads(m, set, "t", NULL, tasks, 2, 0, 2, e);
    if (rc) return -1;
    m->train_adapters = !fusion || unfreeze;
    m->train_fusion = fusion;
    m->train_heads = 1;
    model_finalize(m);
    *groups = fusion ? 1 << PG_FUSION | 1 << PG_HEAD | (unfreeze ? 1 << PG_ADAPTER : 0)
                     : 1 << PG_ADAPTER | 1 << PG_HEAD;
    return model_load_params(m, FX, *groups, 1, e);
}

static void run_case(const char *cs, const char *tmp) {
    st_file fx;
    af_err e;
    if (!ok(st_open(&fx, path_of("%s.safetensors", cs), &e) == 0, "%s: fixture opens", cs)) {
        diag("%s", e.msg);
        return;
    }
    FX = &fx;
    bert base;
    if (bert_load(&base, path_of("%s", "base"), &e)) {
        ok(0, "%s: base loads: %s", cs, e.msg);
        st_close(&fx);
        return;
    }
    jl_set set = {0};
    char data[64];
    snprintf(data, sizeof data, "%s.jsonl", meta_str("data", "?"));
    af_model m;
    int groups = 0, rc = jl_read_all(&set, path_of("%s", data), base.cfg.vocab_size, &e);
    if (!rc) rc = build(&m, &base, &set, &groups, &e);
    if (!ok(rc == 0, "%s: model built, initial weights loaded", cs)) {
        diag("%s", e.msg);
        goto out_set;
    }
    train_data tr;
    if (!ok(train_data_build(&tr, &m, &set, data, 128, 1, &e) == 0, "%s: data", cs)) {
        diag("%s", e.msg);
        goto out_model;
    }

    /* 1. the gradient at the initial weights, rows in file order */
    dropout_off(&m);
    int maxS = 0;
    for (int i = 0; i < tr.n; i++) maxS = tr.len[i] > maxS ? tr.len[i] : maxS;
    model_prepare(&m, tr.n, maxS, 1);
    batch_tokens bt;
    batch_tokens_init(&bt, tr.n, maxS);
    batch_tokens_fill(&bt, set.ex, NULL, tr.n, base.cfg.pad_id);
    bert_batch bb = {bt.B, bt.S, bt.input_ids, bt.token_type_ids, bt.attention_mask};
    for (int i = 0; i < m.nparams; i++)
        if (m.params[i].grad) memset(m.params[i].grad, 0, m.params[i].n * sizeof(float));
    double loss = model_run(&m, &bb, tr.head_of, tr.gold, tr.ldg, 1, NULL, 0);
    batch_tokens_free(&bt);
    float *losses = tensor(FX, "loss", 3);
    double want = losses ? losses[0] : NAN;
    ok(fabs(loss - want) <= LOSS_TOL * fmax(1, fabs(want)), "%s: loss %.7f (PyTorch %.7f)", cs,
       loss, want);
    free(losses);
    check_gradients(cs, &m);
    m.fusion_steps = 0; /* that forward was not a training step */

    /* 1b. the same batch in passes of 2 rows (activations prepared for 2): the same loss and
     * gradients, the fusion's annealing clock advanced once */
    batch_tokens_init(&bt, tr.n, maxS);
    batch_tokens_fill(&bt, set.ex, NULL, tr.n, base.cfg.pad_id);
    bb = (bert_batch){bt.B, bt.S, bt.input_ids, bt.token_type_ids, bt.attention_mask};
    size_t two = model_arena_bytes(&m, 2, maxS, 1), three = model_arena_bytes(&m, 3, maxS, 1);
    ok(two < three && model_pass_rows(&m, tr.n, maxS, (size_t)-1) == tr.n &&
           model_pass_rows(&m, tr.n, maxS, 0) == 1 &&
           model_pass_rows(&m, tr.n, maxS, two) == (tr.n + (tr.n + 1) / 2 - 1) / ((tr.n + 1) / 2),
       "%s: passes within a budget: %d rows, %zu bytes for 2", cs, tr.n, two);
    model_prepare(&m, 2, maxS, 1);
    for (int i = 0; i < m.nparams; i++)
        if (m.params[i].grad) memset(m.params[i].grad, 0, m.params[i].n * sizeof(float));
    ok(tr.n > 2, "%s: %d rows make passes of 2", cs, tr.n);
    loss = model_run(&m, &bb, tr.head_of, tr.gold, tr.ldg, 1, NULL, 0);
    batch_tokens_free(&bt);
    ok(fabs(loss - want) <= LOSS_TOL * fmax(1, fabs(want)), "%s: in passes of 2: loss %.7f", cs,
       loss);
    ok(m.fusion_steps == (m.fused ? 1 : 0), "%s: in passes: %ld annealing step(s)", cs,
       m.fusion_steps);
    check_gradients(cs, &m);
    m.fusion_steps = 0;

    /* 2. three steps through train_run */
    char out[1024], ckpt[1100];
    snprintf(out, sizeof out, "%s/%s.safetensors", tmp, cs);
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", out);
    train_opts o;
    train_opts_defaults(&o);
    o.epochs = 3;
    o.batch_size = tr.n;
    o.dropout = 0;
    o.lr = meta_num("lr", NAN);
    o.adapter_lr = meta_num("adapter_lr", NAN);
    o.weight_decay = meta_num("weight_decay", NAN);
    o.warmup_ratio = meta_num("warmup_ratio", NAN);
    o.quiet = 1;
    o.out_path = out;
    o.ckpt_path = ckpt;
    o.format = m.fused ? MODEL_FORMAT_FUSION : MODEL_FORMAT_ADAPTER;
    o.save_groups = groups;
    o.args_json = "[\"tests/parity/train\"]";
    rc = train_run(&m, &tr, NULL, &o, &e);
    if (ok(rc == 0, "%s: train_run", cs))
        check_output(cs, &m, out, groups);
    else
        diag("%s", e.msg);
    unlink(out);
    train_data_free(&tr);
out_model:
    model_free(&m);
out_set:
    jl_set_free(&set);
    bert_free(&base);
    st_close(&fx);
}

int main(void) {
    static const char *cases[] = {
        "pfeiffer",
        "houlsby",
        "regression",
        "multitask",
        "fuse_attention",
        "fuse_attention_anneal",
        "fuse_attention_unfreeze",
        "fuse_static",
        "fuse_multihead",
        "fuse_weighted",
        "fuse_weighted_fixed",
        "fuse_gating",
        "fuse_gating_softmax",
        "fuse_houlsby",
    };
    char tmp[] = "/tmp/af-parity-train.XXXXXX";
    if (!mkdtemp(tmp)) {
        ok(0, "mkdtemp");
        return done_testing();
    }
    af_set_threads(1);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(cases[i], tmp);
    /* RoBERTa and DistilBERT bases: an adapter of each kind and a fusion over each */
    static const char *arch_dirs[] = {"arch/roberta/train", "arch/distilbert/train"};
    static const char *arch_cases[] = {"pfeiffer", "houlsby", "fuse_attention", "fuse_houlsby"};
    for (size_t d = 0; d < 2; d++) {
        FXDIR = arch_dirs[d];
        diag("fixtures: tests/fixtures/%s", FXDIR);
        for (size_t i = 0; i < sizeof arch_cases / sizeof *arch_cases; i++)
            run_case(arch_cases[i], tmp);
    }
    rmdir(tmp);
    return done_testing();
}
