/* lmtok.c: WordPiece or byte-level BPE behind one interface for pretraining (lmtok.h). */
#include "lmtok.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpe.h"
#include "sha256.h"

struct lmtok {
    int kind;
    tok_tokenizer *wp;
    bpe_tokenizer *bpe;
    char *vocab, *merges; /* the files, for the digest and the copies */
    int lower, add_prefix_space;
    int special[LMTOK_NROLES];
};

int lmtok_open(lmtok **out, const char *vocab, const char *merges, int lower, int add_prefix_space,
               af_err *e) {
    lmtok *t = af_calloc(1, sizeof *t);
    t->lower = lower, t->add_prefix_space = add_prefix_space;
    t->vocab = af_strdup(vocab);
    if (merges) {
        t->kind = LMTOK_BPE;
        t->merges = af_strdup(merges);
        bpe_options o;
        bpe_options_default(&o);
        o.add_prefix_space = add_prefix_space;
        if (bpe_open(&t->bpe, vocab, merges, &o, e)) goto fail;
        static const int role[LMTOK_NROLES] = {BPE_BOS, BPE_EOS, BPE_PAD, BPE_MASK, BPE_UNK};
        for (int i = 0; i < LMTOK_NROLES; i++) t->special[i] = bpe_special(t->bpe, role[i]);
    } else {
        t->kind = LMTOK_WORDPIECE;
        tok_options o;
        tok_options_default(&o);
        o.lower = lower;
        if (tok_open(&t->wp, vocab, &o, e)) goto fail;
        static const int role[LMTOK_NROLES] = {TOK_CLS, TOK_SEP, TOK_PAD, TOK_MASK, TOK_UNK};
        for (int i = 0; i < LMTOK_NROLES; i++) t->special[i] = tok_special(t->wp, role[i]);
    }
    *out = t;
    return 0;
fail:
    lmtok_close(t);
    return -1;
}

static char *join(const char *dir, const char *file) {
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = af_malloc(n);
    snprintf(p, n, "%s/%s", dir, file);
    return p;
}

/* RobertaTokenizer's add_prefix_space as the directory's tokenizer_config.json sets it. */
static int prefix_space(const char *dir, int *out, af_err *e) {
    char *path = join(dir, "tokenizer_config.json"), *text;
    size_t len;
    int rc = 0;
    *out = 0;
    if (access(path, F_OK) == 0) {
        if (af_read_file(path, &text, &len, e)) {
            free(path);
            return -1;
        }
        cJSON *o = cJSON_ParseWithLength(text, len);
        free(text);
        if (!o)
            rc = af_errf(e, "%s: not JSON", path);
        else {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "add_prefix_space");
            if (cJSON_IsBool(v)) *out = cJSON_IsTrue(v);
        }
        cJSON_Delete(o);
    }
    free(path);
    return rc;
}

int lmtok_open_dir(lmtok **t, const char *dir, int lower, af_err *e) {
    char *j = join(dir, "vocab.json"), *m = join(dir, "merges.txt"), *v = join(dir, "vocab.txt");
    int rc, aps = 0;
    /* access, not open: a FIFO must not block here (the open that follows refuses one) */
    if (access(j, F_OK) == 0 && access(m, F_OK) == 0)
        rc = prefix_space(dir, &aps, e) ? -1 : lmtok_open(t, j, m, lower, aps, e);
    else
        rc = lmtok_open(t, v, NULL, lower, 0, e);
    free(j), free(m), free(v);
    return rc;
}

void lmtok_close(lmtok *t) {
    if (!t) return;
    tok_close(t->wp);
    bpe_close(t->bpe);
    free(t->vocab), free(t->merges);
    free(t);
}

int lmtok_kind(const lmtok *t) {
    return t->kind;
}

int lmtok_size(const lmtok *t) {
    return t->kind == LMTOK_BPE ? bpe_vocab_size(t->bpe) : tok_vocab_size(t->wp);
}

const char *lmtok_token(const lmtok *t, int id) {
    return t->kind == LMTOK_BPE ? bpe_token(t->bpe, id) : tok_token(t->wp, id);
}

int lmtok_special(const lmtok *t, int role) {
    return role >= 0 && role < LMTOK_NROLES ? t->special[role] : -1;
}

int lmtok_encode(lmtok *t, const char *text, size_t len, tok_ids *out, af_err *e) {
    return t->kind == LMTOK_BPE ? bpe_encode(t->bpe, text, len, out, e)
                                : tok_encode(t->wp, text, len, out, e);
}

static int hash_file(sha256_ctx *c, const char *path, af_err *e) {
    char *data;
    size_t len;
    if (af_read_file(path, &data, &len, e)) return -1;
    sha256_update(c, data, len);
    free(data);
    return 0;
}

int lmtok_digest(const lmtok *t, char out[65], af_err *e) {
    /* WordPiece: the file's own sha256, as run records before BPE have it */
    sha256_ctx c;
    sha256_init(&c);
    if (hash_file(&c, t->vocab, e) || (t->merges && hash_file(&c, t->merges, e))) return -1;
    sha256_final(&c, out);
    return 0;
}

static int write_str(FILE *f, void *ctx, af_err *e) {
    if (fputs(ctx, f) < 0) return af_errf(e, "write failed: %s", strerror(errno));
    return 0;
}

static int copy_file(const char *from, const char *to, af_err *e) {
    char *data;
    size_t len;
    if (af_read_file(from, &data, &len, e)) return -1;
    FILE *f = fopen(to, "wb");
    int rc = 0;
    if (!f || fwrite(data, 1, len, f) != len || fflush(f) || fsync(fileno(f)))
        rc = af_errf(e, "%s: %s", to, strerror(errno));
    if (f && fclose(f) && rc == 0) rc = af_errf(e, "%s: %s", to, strerror(errno));
    free(data);
    return rc;
}

static const char *const files[] = {"vocab.txt", "vocab.json", "merges.txt",
                                    "tokenizer_config.json", NULL};

const char *lmtok_file(int i) {
    return i >= 0 && i < (int)(sizeof files / sizeof *files) ? files[i] : NULL;
}

int lmtok_save(const lmtok *t, const char *dir, int max_len, af_err *e) {
    int bpe = t->kind == LMTOK_BPE, rc;
    char *p = join(dir, bpe ? "vocab.json" : "vocab.txt");
    rc = copy_file(t->vocab, p, e);
    free(p);
    if (rc == 0 && bpe) {
        p = join(dir, "merges.txt");
        rc = copy_file(t->merges, p, e);
        free(p);
    }
    if (rc) return -1;
    /* the special tokens are RobertaTokenizer's and BertTokenizer's defaults, so need no entry */
    char js[256];
    if (bpe)
        snprintf(js, sizeof js,
                 "{\n  \"tokenizer_class\": \"RobertaTokenizer\",\n  \"add_prefix_space\": %s,\n"
                 "  \"model_max_length\": %d\n}\n",
                 t->add_prefix_space ? "true" : "false", max_len);
    else
        snprintf(js, sizeof js,
                 "{\n  \"tokenizer_class\": \"BertTokenizer\",\n  \"do_lower_case\": %s,\n"
                 "  \"model_max_length\": %d\n}\n",
                 t->lower ? "true" : "false", max_len);
    p = join(dir, "tokenizer_config.json");
    rc = af_write_atomic(p, write_str, js, e);
    free(p);
    return rc;
}
