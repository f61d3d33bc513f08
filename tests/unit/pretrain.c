/* pretrain.c: pretrain_save round trip against the HF-named fixture written by PyTorch
 * (tests/fixtures/mlm/model): same tensor names (no more, no fewer), same values, F16 within
 * rounding, config and tokenizer files, and an existing directory replaced whole; a RoBERTa
 * (tests/fixtures/arch/roberta/mlm/model) with a byte-level BPE tokenizer likewise, under
 * RobertaForMaskedLM's names with vocab.json, merges.txt and RobertaTokenizer. */
#include "lmtok.h"
#include "mlm.h"
#include "pretrain.h"
#include "tap.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *FX = "mlm"; /* under tests/fixtures */

static char *fixture(const char *rel) {
    static char buf[4][1024];
    static int k;
    const char *top = getenv("AF_TOP");
    char *p = buf[k++ % 4];
    snprintf(p, 1024, "%s/tests/fixtures/%s/%s", top ? top : ".", FX, rel);
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

static int has(const char *path, const char *what) {
    char *text;
    size_t len;
    af_err e;
    if (af_read_file(path, &text, &len, &e)) return 0;
    int r = strstr(text, what) != NULL;
    free(text);
    return r;
}

/* A RoBERTa fixture saved with a BPE tokenizer: RobertaForMaskedLM's names and files. */
static void roberta(const char *dir) {
    af_err e;
    bert m;
    mlm_head h;
    st_file ref, out;
    char why[256] = "", path[256], vj[192], mt[192], od[192];
    FX = "arch/roberta/mlm";
    if (!ok(bert_load(&m, fixture("model"), &e) == 0, "load the RoBERTa fixture")) {
        diag("%s", e.msg);
        return;
    }
    mlm_init(&h, &m.cfg, 1);
    st_open(&ref, fixture("model/model.safetensors"), &e);
    ok(mlm_load(&h, &ref, &e) == 1, "its lm_head");
    /* a vocabulary of the fixture's 40 ids: RoBERTa's specials 0-4, then byte-level entries */
    snprintf(vj, sizeof vj, "%s/vocab.json", dir);
    snprintf(mt, sizeof mt, "%s/merges.txt", dir);
    FILE *f = fopen(vj, "w");
    fprintf(f, "{\"<s>\": 0, \"<pad>\": 1, \"</s>\": 2, \"<unk>\": 3, \"<mask>\": 4");
    for (int i = 5; i < m.cfg.vocab_size; i++) fprintf(f, ", \"t%d\": %d", i, i);
    fprintf(f, "}\n");
    fclose(f);
    f = fopen(mt, "w");
    fprintf(f, "#version: 0.2\nt5 t6\n");
    fclose(f);
    lmtok *tok;
    if (!ok(lmtok_open(&tok, vj, mt, 0, 0, &e) == 0, "open the BPE vocabulary")) {
        diag("%s", e.msg);
        return;
    }
    snprintf(od, sizeof od, "%s/roberta", dir);
    st_meta meta[1] = {{"created_by", "af-pretrain (test)"}};
    ok(pretrain_save(od, &m, &h, tok, 0, meta, 1, NULL, &e) == 0, "save the RoBERTa");
    snprintf(path, sizeof path, "%s/model.safetensors", od);
    if (ok(st_open(&out, path, &e) == 0, "reopen")) {
        ok(same_tensors(&ref, &out, 0, why, sizeof why),
           "RoBERTa: the fixture's names (roberta.*, lm_head.*) and values %s", why);
        st_close(&out);
    }
    snprintf(path, sizeof path, "%s/config.json", od);
    ok(has(path, "\"RobertaForMaskedLM\"") && has(path, "\"roberta\""),
       "config.json: RobertaForMaskedLM, model_type roberta");
    snprintf(path, sizeof path, "%s/tokenizer_config.json", od);
    ok(has(path, "\"RobertaTokenizer\"") && has(path, "\"add_prefix_space\": false") &&
           has(path, "\"model_max_length\": 18"),
       "tokenizer_config.json: RobertaTokenizer, add_prefix_space, 18 tokens of 20 positions");
    char *a = NULL, *b = NULL;
    size_t la, lb;
    snprintf(path, sizeof path, "%s/vocab.json", od);
    int same = af_read_file(path, &a, &la, &e) == 0 && af_read_file(vj, &b, &lb, &e) == 0 &&
               la == lb && memcmp(a, b, la) == 0;
    ok(same, "vocab.json copied");
    free(a), free(b);
    snprintf(path, sizeof path, "%s/merges.txt", od);
    ok(has(path, "#version: 0.2\nt5 t6\n"), "merges.txt copied");
    snprintf(path, sizeof path, "%s/vocab.txt", od);
    ok(access(path, F_OK) != 0, "no vocab.txt");
    /* it reloads, as a base and as a tokenizer directory */
    bert m2;
    lmtok *t2;
    ok(bert_load(&m2, od, &e) == 0 && m2.cfg.arch == ARCH_ROBERTA, "bert_load: a RoBERTa");
    bert_free(&m2);
    ok(lmtok_open_dir(&t2, od, 1, &e) == 0 && lmtok_kind(t2) == LMTOK_BPE &&
           lmtok_size(t2) == m.cfg.vocab_size && lmtok_special(t2, LMTOK_MASK) == 4,
       "lmtok_open_dir: BPE, 40 ids, <mask> 4");
    lmtok_close(t2);
    lmtok_close(tok);
    st_close(&ref);
    mlm_free(&h);
    bert_free(&m);
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
    fprintf(f, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
    for (int i = 5; i < m.cfg.vocab_size; i++) fprintf(f, "t%d\n", i);
    fclose(f);
    lmtok *tok;
    ok(lmtok_open(&tok, vocab, NULL, 1, 0, &e) == 0 && lmtok_kind(tok) == LMTOK_WORDPIECE,
       "open the WordPiece vocabulary");
    st_meta meta[2] = {{"training", "{\"steps\":1}"}, {"created_by", "af-pretrain (test)"}};

    ok(pretrain_save(out_dir, &m, &h, tok, 0, meta, 2, NULL, &e) == 0, "save F32");
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
    ok(pretrain_save(out_dir, &m, &h, tok, 1, meta, 2, NULL, &e) == -1 &&
           strstr(e.msg, "holds mine.txt, which af-pretrain did not write") &&
           access(path, F_OK) == 0,
       "a directory holding another file is refused, the file kept: %s", e.msg);
    unlink(path);
    /* a model directory af-pretrain did not write (another created_by) is refused too */
    st_meta hf[1] = {{"created_by", "transformers"}};
    char other[160];
    snprintf(other, sizeof other, "%s/hf", dir);
    ok(pretrain_save(other, &m, &h, tok, 0, hf, 1, NULL, &e) == 0 &&
           pretrain_save(other, &m, &h, tok, 0, meta, 2, NULL, &e) == -1 &&
           strstr(e.msg, "a model af-pretrain did not write (created_by: transformers)"),
       "so is one with another model.safetensors: %s", e.msg);

    /* again, as F16, over its own directory: replaced whole, nothing left beside it */
    ok(pretrain_save(out_dir, &m, &h, tok, 1, meta, 2, NULL, &e) == 0, "save F16 over it");
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
    ok(pretrain_save("/nonexistent/dir/model", &m, &h, tok, 0, NULL, 0, NULL, &e) == -1 &&
           strstr(e.msg, "/nonexistent/dir/model"),
       "an unwritable place is an error naming it: %s", e.msg);

    snprintf(path, sizeof path, "%s/vocab.json", out_dir);
    ok(access(path, F_OK) != 0, "no vocab.json beside vocab.txt");
    roberta(dir);

    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) diag("could not remove %s", dir);
    st_close(&ref);
    mlm_free(&h);
    bert_free(&m);
    lmtok_close(tok);
    return done_testing();
}
