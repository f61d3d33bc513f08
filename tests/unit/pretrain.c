/* pretrain.c: pretrain_save round trip against the HF-named fixture written by PyTorch
 * (tests/fixtures/mlm/model): same tensor names (no more, no fewer), same values, F16 within
 * rounding, config and tokenizer files, and an existing directory replaced whole. */
#include "mlm.h"
#include "pretrain.h"
#include "tap.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *fixture(const char *rel) {
    static char buf[4][1024];
    static int k;
    const char *top = getenv("AF_TOP");
    char *p = buf[k++ % 4];
    snprintf(p, 1024, "%s/tests/fixtures/mlm/%s", top ? top : ".", rel);
    return p;
}

/* Every tensor of a has a tensor of the same name and shape in b, equal within tol. */
static int same_tensors(const st_file *a, const st_file *b, double tol, char *why, size_t n) {
    if (a->ntensors != b->ntensors) {
        snprintf(why, n, "%d tensors against %d", a->ntensors, b->ntensors);
        return 0;
    }
    for (int i = 0; i < a->ntensors; i++) {
        const st_tensor *x = &a->tensors[i], *y = st_find(b, x->name);
        if (!y || y->numel != x->numel || y->ndim != x->ndim) {
            snprintf(why, n, "%s: %s", x->name, y ? "other shape" : "missing");
            return 0;
        }
        float *u = malloc(x->numel * sizeof(float)), *v = malloc(y->numel * sizeof(float));
        af_err e;
        st_to_f32(x, u, x->numel, &e), st_to_f32(y, v, y->numel, &e);
        double d = tap_maxdiff(u, v, x->numel);
        free(u), free(v);
        if (d > tol) {
            snprintf(why, n, "%s: max diff %g", x->name, d);
            return 0;
        }
    }
    return 1;
}

int main(void) {
    af_err e;
    bert m;
    mlm_head h;
    st_file ref, out;
    char why[256] = "";
    if (!ok(bert_load(&m, fixture("model"), &e) == 0, "load the fixture")) {
        diag("%s", e.msg);
        return done_testing();
    }
    mlm_init(&h, &m.cfg, 1);
    st_open(&ref, fixture("model/model.safetensors"), &e);
    ok(mlm_load(&h, &ref, &e) == 1, "its MLM head");

    char dir[] = "/tmp/af-pretrain-test.XXXXXX";
    if (!mkdtemp(dir)) return done_testing();
    char out_dir[128], path[192], vocab[192];
    snprintf(out_dir, sizeof out_dir, "%s/model", dir);
    snprintf(vocab, sizeof vocab, "%s/vocab.txt", dir);
    FILE *f = fopen(vocab, "w");
    for (int i = 0; i < m.cfg.vocab_size; i++) fprintf(f, "t%d\n", i);
    fclose(f);
    st_meta meta[2] = {{"training", "{\"steps\":1}"}, {"created_by", "af-pretrain (test)"}};

    ok(pretrain_save(out_dir, &m, &h, vocab, 1, 0, meta, 2, NULL, &e) == 0, "save F32");
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    if (ok(st_open(&out, path, &e) == 0, "reopen")) {
        ok(same_tensors(&ref, &out, 0, why, sizeof why), "F32: the fixture's HF names and values %s",
           why);
        const char *t = st_meta_get(&out, "training");
        ok(t && strcmp(t, "{\"steps\":1}") == 0, "metadata kept");
        st_close(&out);
    }
    char *text;
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    ok(af_read_file(path, &text, &len, &e) == 0 && strstr(text, "\"BertForMaskedLM\"") &&
           !strstr(text, "\"BertModel\""),
       "config.json: architectures BertForMaskedLM");
    free(text);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", out_dir);
    ok(af_read_file(path, &text, &len, &e) == 0 && strstr(text, "\"do_lower_case\": true"),
       "tokenizer_config.json: do_lower_case");
    free(text);

    /* a file af did not write there: the directory is not af's to replace (issue 19.7) */
    snprintf(path, sizeof path, "%s/mine.txt", out_dir);
    fclose(fopen(path, "w"));
    ok(pretrain_save(out_dir, &m, &h, vocab, 1, 1, meta, 2, NULL, &e) == -1 &&
           strstr(e.msg, "holds mine.txt, which af-pretrain did not write") &&
           access(path, F_OK) == 0,
       "a directory holding another file is refused, the file kept: %s", e.msg);
    unlink(path);
    /* a model directory af-pretrain did not write (another created_by) is refused too */
    st_meta hf[1] = {{"created_by", "transformers"}};
    char other[160];
    snprintf(other, sizeof other, "%s/hf", dir);
    ok(pretrain_save(other, &m, &h, vocab, 1, 0, hf, 1, NULL, &e) == 0 &&
           pretrain_save(other, &m, &h, vocab, 1, 0, meta, 2, NULL, &e) == -1 &&
           strstr(e.msg, "a model af-pretrain did not write (created_by: transformers)"),
       "so is one with another model.safetensors: %s", e.msg);

    /* again, as F16, over its own directory: replaced whole, nothing left beside it */
    ok(pretrain_save(out_dir, &m, &h, vocab, 1, 1, meta, 2, NULL, &e) == 0, "save F16 over it");
    {
        DIR *d = opendir(dir);
        struct dirent *de;
        int stray = 0;
        while (d && (de = readdir(d)))
            stray += strstr(de->d_name, ".old.") || strstr(de->d_name, ".tmp.");
        if (d) closedir(d);
        ok(stray == 0, "no .old or .tmp directory left (%d)", stray);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    if (ok(st_open(&out, path, &e) == 0, "reopen F16")) {
        int all16 = 1;
        for (int i = 0; i < out.ntensors; i++) all16 &= out.tensors[i].dtype == ST_F16;
        ok(all16, "every tensor F16");
        ok(same_tensors(&ref, &out, 2e-3, why, sizeof why), "F16: same names, values within rounding %s",
           why);
        st_close(&out);
    }
    /* and it loads back as a base with its head */
    bert m2;
    mlm_head h2;
    if (ok(bert_load(&m2, out_dir, &e) == 0, "bert_load reads it")) {
        mlm_init(&h2, &m2.cfg, 9);
        st_open(&out, path, &e);
        ok(mlm_load(&h2, &out, &e) == 1 && fabs(h2.w.bias[3] - h.w.bias[3]) < 1e-3,
           "mlm_load reads its head");
        st_close(&out);
        mlm_free(&h2);
        bert_free(&m2);
    }
    ok(pretrain_save("/nonexistent/dir/model", &m, &h, vocab, 1, 0, NULL, 0, NULL, &e) == -1 &&
           strstr(e.msg, "/nonexistent/dir/model"),
       "an unwritable place is an error naming it: %s", e.msg);

    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) diag("could not remove %s", dir);
    st_close(&ref);
    mlm_free(&h);
    bert_free(&m);
    return done_testing();
}
