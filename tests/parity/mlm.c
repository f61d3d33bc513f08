/* mlm.c: one MLM step of encoder + head against PyTorch (scripts/gen-mlm-fixtures.py,
 * tests/fixtures/mlm/; RoBERTa's and DistilBERT's heads from scripts/gen-arch-fixtures.py,
 * tests/fixtures/arch/A/mlm/): the loss, the argmax hits, and the gradient of every parameter,
 * the tied word embeddings included (they receive both the encoder's and the decoder's share). */
#include "mlm.h"
#include "pretrain.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

#define LOSS_TOL 1e-5 /* relative */
#define GRAD_TOL 1e-4 /* relative L2 error */
#define GRAD_ABS 1e-6 /* max abs error, for gradients that are zero in exact arithmetic */

static const char *DIR = "mlm"; /* under tests/fixtures */

static char *fixture(const char *rel) {
    static char buf[2][1024];
    static int k;
    const char *top = getenv("AF_TOP");
    char *p = buf[k++ % 2];
    snprintf(p, 1024, "%s/tests/fixtures/%s/%s", top ? top : ".", DIR, rel);
    return p;
}

static const int *ints(const st_file *f, const char *name, int64_t *rows, int64_t *cols) {
    const st_tensor *t = st_find(f, name);
    if (!t || t->dtype != ST_I32 || t->ndim < 1) return NULL;
    if (rows) *rows = t->shape[0];
    if (cols) *cols = t->ndim == 2 ? t->shape[1] : 1;
    return t->data;
}

static void run(void) {
    af_err e;
    bert m;
    st_file model, x;
    if (!ok(bert_load(&m, fixture("model"), &e) == 0, "load the tiny *ForMaskedLM")) {
        diag("%s", e.msg);
        return;
    }
    if (!ok(st_open(&model, fixture("model/model.safetensors"), &e) == 0 &&
                st_open(&x, fixture("expected.safetensors"), &e) == 0,
            "open the fixtures")) {
        diag("%s", e.msg);
        return;
    }
    mlm_head head;
    mlm_init(&head, &m.cfg, 1);
    int rc = mlm_load(&head, &model, &e);
    if (!ok(rc == 1, "the MLM head loaded")) diag("%s", rc < 0 ? e.msg : "absent");

    int64_t B = 0, S = 0;
    const int *ids = ints(&x, "input_ids", &B, &S), *tt = ints(&x, "token_type_ids", NULL, NULL);
    const int *am = ints(&x, "attention_mask", NULL, NULL), *lab = ints(&x, "labels", NULL, NULL);
    const int *want_correct = ints(&x, "correct", NULL, NULL);
    const st_tensor *lt = st_find(&x, "loss");
    if (!ok(ids && tt && am && lab && lt && want_correct, "inputs, labels, loss in the fixture"))
        return;
    float want_loss;
    st_to_f32(lt, &want_loss, 1, &e);

    pretrain p;
    pretrain_init(&p, &m, &head, NULL, (int)B, (int)S);
    p.B = (int)B, p.S = (int)S, p.n = 0;
    for (int i = 0; i < B * S; i++) {
        p.ids[i] = ids[i], p.types[i] = tt[i], p.mask[i] = am[i];
        if (lab[i] != -100) p.pos[p.n] = i, p.labels[p.n++] = lab[i];
    }
    double loss = 0;
    long correct = 0;
    af_rng rng;
    af_rng_seed(&rng, 1);
    rc = pretrain_run(&p, 1, 1.0f / p.n, &rng, &loss, &correct, &e);
    if (!ok(rc == 0, "pretrain_run")) diag("%s", e.msg);
    loss /= p.n;
    ok(fabs(loss - want_loss) < LOSS_TOL * fabs(want_loss), "MLM loss %.6f = PyTorch %.6f", loss,
       want_loss);
    ok(correct == want_correct[0], "argmax hits %ld = PyTorch %d", correct, want_correct[0]);

    int nt = pretrain_tensors(&m, &p.g, &head, NULL);
    pretrain_tensor *t = malloc(nt * sizeof *t);
    pretrain_tensors(&m, &p.g, &head, t);
    int good = 0, seen = 0;
    for (int i = 0; i < nt; i++) {
        char name[128];
        snprintf(name, sizeof name, "grad.%s", t[i].name);
        const st_tensor *g = st_find(&x, name);
        if (!g || (size_t)g->numel != t[i].n) {
            ok(0, "%s in the fixture with %zu values", name, t[i].n);
            continue;
        }
        float *want = malloc(t[i].n * sizeof(float));
        st_to_f32(g, want, g->numel, &e);
        double rel = tap_relerr(t[i].g, want, t[i].n), abs = tap_maxdiff(t[i].g, want, t[i].n);
        seen++;
        /* the key bias's true gradient is 0 (softmax ignores a per-query constant): both sides
         * hold rounding noise there, so an absolute bound decides */
        if (rel < GRAD_TOL || abs < GRAD_ABS)
            good++;
        else
            diag("%s: relative error %.3g, max abs %.3g", t[i].name, rel, abs);
        free(want);
    }
    ok(seen == nt && good == nt, "%d of %d parameter gradients equal PyTorch's (rel err < %g)",
       good, nt, GRAD_TOL);
    int fixture_grads = 0;
    for (int i = 0; i < x.ntensors; i++) fixture_grads += strncmp(x.tensors[i].name, "grad.", 5) == 0;
    ok(fixture_grads == nt, "every fixture gradient has a parameter (%d, %d)", fixture_grads, nt);

    free(t);
    pretrain_free(&p);
    mlm_free(&head);
    st_close(&model);
    st_close(&x);
    bert_free(&m);
}

int main(void) {
    static const char *dirs[] = {"mlm", "arch/roberta/mlm", "arch/distilbert/mlm"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        DIR = dirs[i];
        diag("fixtures: tests/fixtures/%s", DIR);
        run();
    }
    return done_testing();
}
