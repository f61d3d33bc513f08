/* pretrain.c: an MLM step over encoder + head, and the HF names of every tensor (pretrain.h). */
#include "pretrain.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsonl.h"
#include "lmtok.h"
#include "sha256.h"

static void put(pretrain_tensor *t, int *k, const char *name, float *w, float *g, int64_t d0,
                int64_t d1, int decay) {
    if (t) {
        pretrain_tensor *x = &t[*k];
        snprintf(x->name, sizeof x->name, "%s", name);
        x->w = w, x->g = g;
        x->ndim = d1 ? 2 : 1;
        x->shape[0] = d0, x->shape[1] = d1;
        x->n = (size_t)d0 * (d1 ? d1 : 1);
        x->decay = decay;
    }
    (*k)++;
}

/* g may be NULL (names and weights only). */
#define GP(field) (g ? g->g.field : NULL)
#define GL(l, field) (g ? g->g.layer[l].field : NULL)

/* Names from the architecture's table (arch.h), prefixed as *ForMaskedLM stores them. */
int pretrain_tensors(const bert *m, const bert_grads *g, const mlm_head *h, pretrain_tensor *t) {
    const bert_config *c = &m->cfg;
    const af_arch *a = arch_get(c->arch);
    const bert_weights *w = &m->w;
    int64_t V = c->vocab_size, H = c->hidden, F = c->ffn;
    int k = 0;
    char name[96];
#define NAME(id, l) (arch_tensor_name(name, sizeof name, a, id, l, 1), name)
    put(t, &k, NAME(AT_WORD, 0), w->word_emb, GP(word_emb), V, H, 1);
    put(t, &k, NAME(AT_POS, 0), w->pos_emb, GP(pos_emb), c->max_pos, H, 1);
    if (c->type_vocab) put(t, &k, NAME(AT_TYPE, 0), w->type_emb, GP(type_emb), c->type_vocab, H, 1);
    put(t, &k, NAME(AT_EMB_LN_W, 0), w->emb_ln_w, GP(emb_ln_w), H, 0, 0);
    put(t, &k, NAME(AT_EMB_LN_B, 0), w->emb_ln_b, GP(emb_ln_b), H, 0, 0);
    for (int l = 0; l < c->layers; l++) {
        const bert_layer *L = &w->layer[l];
        for (int j = 0; j < 3; j++) {
            put(t, &k, NAME(AT_Q_W + 2 * j, l), L->qkv_w + j * H * H,
                g ? GL(l, qkv_w) + j * H * H : NULL, H, H, 1);
            put(t, &k, NAME(AT_Q_B + 2 * j, l), L->qkv_b + j * H, g ? GL(l, qkv_b) + j * H : NULL,
                H, 0, 0);
        }
        put(t, &k, NAME(AT_AO_W, l), L->ao_w, GL(l, ao_w), H, H, 1);
        put(t, &k, NAME(AT_AO_B, l), L->ao_b, GL(l, ao_b), H, 0, 0);
        put(t, &k, NAME(AT_LN1_W, l), L->ln1_w, GL(l, ln1_w), H, 0, 0);
        put(t, &k, NAME(AT_LN1_B, l), L->ln1_b, GL(l, ln1_b), H, 0, 0);
        put(t, &k, NAME(AT_FF1_W, l), L->ff1_w, GL(l, ff1_w), F, H, 1);
        put(t, &k, NAME(AT_FF1_B, l), L->ff1_b, GL(l, ff1_b), F, 0, 0);
        put(t, &k, NAME(AT_FF2_W, l), L->ff2_w, GL(l, ff2_w), H, F, 1);
        put(t, &k, NAME(AT_FF2_B, l), L->ff2_b, GL(l, ff2_b), H, 0, 0);
        put(t, &k, NAME(AT_LN2_W, l), L->ln2_w, GL(l, ln2_w), H, 0, 0);
        put(t, &k, NAME(AT_LN2_B, l), L->ln2_b, GL(l, ln2_b), H, 0, 0);
    }
#undef NAME
    if (h) {
        put(t, &k, a->mlm[AM_DENSE_W], h->w.dense_w, h->g.dense_w, H, H, 1);
        put(t, &k, a->mlm[AM_DENSE_B], h->w.dense_b, h->g.dense_b, H, 0, 0);
        put(t, &k, a->mlm[AM_LN_W], h->w.ln_w, h->g.ln_w, H, 0, 0);
        put(t, &k, a->mlm[AM_LN_B], h->w.ln_b, h->g.ln_b, H, 0, 0);
        put(t, &k, a->mlm[AM_BIAS], h->w.bias, h->g.bias, V, 0, 0);
    }
    return k;
}

void pretrain_init(pretrain *p, bert *m, mlm_head *head, mlm_masker *masker, int maxB, int maxS) {
    memset(p, 0, sizeof *p);
    p->m = m, p->head = head, p->masker = masker, p->maxB = maxB, p->maxS = maxS;
    bert_grads_init(&p->g, &m->cfg);
    af_arena_init(&p->arena, bert_acts_bytes(&m->cfg, maxB, maxS, 1));
    p->acts = bert_acts_new(&p->arena, &m->cfg, maxB, maxS, 1);
    /* 15% of the tokens on average; mlm_forward grows the work space for unlucky batches */
    mlm_acts_init(&p->ha, head, maxB * maxS / 5 + 16);
    size_t cells = (size_t)maxB * maxS;
    p->ids = af_malloc(5 * cells * sizeof(int));
    p->types = p->ids + cells, p->mask = p->ids + 2 * cells;
    p->pos = p->ids + 3 * cells, p->labels = p->ids + 4 * cells;
    p->dhidden = af_malloc(cells * m->cfg.hidden * sizeof(float));
}

void pretrain_free(pretrain *p) {
    bert_grads_free(&p->g);
    af_arena_free(&p->arena);
    mlm_acts_free(&p->ha);
    free(p->ids);
    free(p->dhidden);
    memset(p, 0, sizeof *p);
}

void pretrain_fill(pretrain *p, const int *const *seqs, const int *lens, int B, af_rng *rng) {
    int S = 0;
    for (int i = 0; i < B; i++)
        if (lens[i] > S) S = lens[i];
    p->B = B, p->S = S, p->n = 0;
    for (int i = 0; i < B; i++) {
        int *row = p->ids + (size_t)i * S;
        memcpy(row, seqs[i], (size_t)lens[i] * sizeof(int));
        for (int j = 0; j < S; j++) {
            if (j >= lens[i]) row[j] = p->m->cfg.pad_id;
            p->types[i * S + j] = 0;
            p->mask[i * S + j] = j < lens[i];
        }
        if (p->masker) mlm_mask(p->masker, row, lens[i], i * S, p->pos, p->labels, &p->n, rng);
    }
}

void pretrain_keep_rows(pretrain *p, int lo, int hi) {
    size_t S = (size_t)p->S;
    if (lo > 0) {
        memmove(p->ids, p->ids + lo * S, (size_t)(hi - lo) * S * sizeof(int));
        memmove(p->types, p->types + lo * S, (size_t)(hi - lo) * S * sizeof(int));
        memmove(p->mask, p->mask + lo * S, (size_t)(hi - lo) * S * sizeof(int));
    }
    int n = 0;
    for (int i = 0; i < p->n; i++) {
        int row = p->pos[i] / p->S;
        if (row < lo || row >= hi) continue;
        p->pos[n] = p->pos[i] - lo * p->S;
        p->labels[n++] = p->labels[i];
    }
    p->B = hi - lo, p->n = n;
}

int pretrain_run(pretrain *p, int train, float scale, af_rng *dropout_rng, double *loss,
                 long *correct, af_err *e) {
    const bert_config *c = &p->m->cfg;
    bert_batch b = {p->B, p->S, p->ids, p->types, p->mask};
    if (bert_batch_check(p->m, &b, e)) return -1;
    const float *hidden = bert_forward(p->m, p->acts, &b, NULL, train, dropout_rng);
    if (!hidden) return af_errf(e, "encoder forward failed for a batch of %d × %d", p->B, p->S);
    int hit = 0;
    *loss += mlm_forward(p->head, &p->ha, hidden, p->m->w.word_emb, p->pos, p->labels, p->n, &hit);
    *correct += hit;
    if (!train || p->n == 0) return 0;
    size_t cells = (size_t)p->B * p->S * c->hidden;
    memset(p->dhidden, 0, cells * sizeof(float));
    mlm_backward(p->head, &p->ha, p->dhidden, p->g.g.word_emb, p->m->w.word_emb, p->pos,
                 p->labels, p->n, scale);
    bert_backward(p->m, p->acts, p->dhidden, NULL, &p->g);
    return 0;
}

/* ---- corpus ------------------------------------------------------------------------------- */

int pretrain_read_corpus(mlm_packer *p, const char *path, lmtok *t, int vocab_size, long *docs,
                         af_err *e) {
    af_lines *l;
    if (af_lines_open(&l, path, e)) return -1;
    tok_ids ids = {0};
    jl_example ex;
    memset(&ex, 0, sizeof ex);
    int mode = -1, rc = 0; /* -1 unknown, 0 text, 1 JSONL */
    char *line;
    long n;
    *docs = 0;
    while ((n = af_lines_next(l, &line, e)) >= 0) {
        size_t k = 0;
        while (k < (size_t)n && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == (size_t)n) continue;
        if (mode < 0) mode = line[k] == '{';
        const int *v;
        int len;
        if (mode == 1) {
            if (jl_parse_line(line, n, &ex, vocab_size, af_lines_name(l), af_lines_lineno(l), e)) {
                rc = -1;
                break;
            }
            v = ex.input_ids, len = ex.len;
            if (len > 0 && v[0] == p->cls_id) v++, len--;
            if (len > 0 && v[len - 1] == p->sep_id) len--;
        } else {
            if (!t) {
                rc = af_errf(e, "%s:%ld: raw text needs a vocabulary to tokenize it",
                             af_lines_name(l), af_lines_lineno(l));
                break;
            }
            ids.n = 0;
            if (lmtok_encode(t, line, n, &ids, e)) {
                rc = af_err_prefix(e, "%s:%ld", af_lines_name(l), af_lines_lineno(l));
                break;
            }
            v = ids.v, len = ids.n;
        }
        if (len > 0) {
            mlm_pack_doc(p, v, len);
            (*docs)++;
        }
    }
    if (n == -2) rc = -1;
    mlm_pack_finish(p, 8);
    tok_ids_free(&ids);
    jl_example_free(&ex);
    af_lines_close(l);
    return rc;
}

void pretrain_unigram(const mlm_packer *train, const mlm_packer *dev, const mlm_masker *masker,
                      double *acc, double *loss) {
    int V = masker->V;
    double *c = af_calloc(V, sizeof(double)), total = 0;
    for (int i = 0; i < train->nseq; i++)
        for (int j = 0; j < train->len[i]; j++) {
            int id = mlm_seq(train, i)[j];
            if (id >= 0 && id < V && !masker->special[id]) c[id]++, total++;
        }
    int best = masker->normal[0];
    for (int v = 0; v < V; v++)
        if (!masker->special[v] && c[v] > c[best]) best = v;
    double hits = 0, nll = 0, n = 0, denom = total + masker->nnormal;
    for (int i = 0; i < dev->nseq; i++)
        for (int j = 0; j < dev->len[i]; j++) {
            int id = mlm_seq(dev, i)[j];
            if (id < 0 || id >= V || masker->special[id]) continue;
            hits += id == best;
            nll -= log((c[id] + 1) / denom);
            n++;
        }
    *acc = n ? hits / n : 0;
    *loss = n ? nll / n : 0;
    free(c);
}

void pretrain_corpus_digest(const mlm_packer *p, char out[65]) {
    sha256_ctx c;
    sha256_init(&c);
    for (int i = 0; i < p->nseq; i++) {
        sha256_update(&c, &p->len[i], sizeof(int));
        sha256_update(&c, mlm_seq(p, i), (size_t)p->len[i] * sizeof(int));
    }
    sha256_final(&c, out);
}

/* ---- output -------------------------------------------------------------------------------- */

static char *join(const char *dir, const char *file) {
    size_t n = strlen(dir) + strlen(file) + 2;
    char *s = af_malloc(n);
    snprintf(s, n, "%s/%s", dir, file);
    return s;
}

static int write_str(FILE *f, void *ctx, af_err *e) {
    const char *s = ctx;
    if (fputs(s, f) < 0) return af_errf(e, "write failed: %s", strerror(errno));
    return 0;
}

static int rewrite_config(const char *path, const af_arch *a, af_err *e) {
    char *text;
    size_t len;
    if (af_read_file(path, &text, &len, e)) return -1;
    cJSON *o = cJSON_Parse(text);
    free(text);
    if (!o) return af_errf(e, "%s: not JSON", path);
    /* bert_save names the bare model; the file also holds the MLM head */
    const char *arch[] = {a->mlm_class};
    cJSON_ReplaceItemInObject(o, "architectures", cJSON_CreateStringArray(arch, 1));
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    size_t n = strlen(s);
    s = af_realloc(s, n + 2);
    s[n] = '\n', s[n + 1] = 0;
    int rc = af_write_atomic(path, write_str, s, e);
    free(s);
    return rc;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        char *p = join(dir, de->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

/* What pretrain_save puts in a model directory, and nothing else: its own files, then the
 * tokenizer's (lmtok_file). */
static const char *const own_files[] = {"config.json", "model.safetensors", "trainer.safetensors"};
#define NOWN ((int)(sizeof own_files / sizeof *own_files))

const char *pretrain_file(int i) {
    return i < 0 ? NULL : i < NOWN ? own_files[i] : lmtok_file(i - NOWN);
}

static int is_ours(const char *name) {
    for (int i = 0; pretrain_file(i); i++)
        if (strcmp(name, pretrain_file(i)) == 0) return 1;
    return 0;
}

/* Removes a directory af-pretrain wrote: its own files by name, then the directory, which
 * rmdir leaves in place if anything else appeared there meanwhile. */
static void remove_ours(const char *dir) {
    for (int i = 0; pretrain_file(i); i++) {
        char *p = join(dir, pretrain_file(i));
        unlink(p);
        free(p);
    }
    rmdir(dir);
}

int pretrain_check_output(const char *dir, af_err *e) {
    struct stat st;
    if (lstat(dir, &st) != 0)
        return errno == ENOENT ? 0 : af_errf(e, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return af_errf(e,
                       "%s: exists and is not a directory; af-pretrain writes a model "
                       "directory there and replaces only one it wrote",
                       dir);
    DIR *d = opendir(dir);
    if (!d) return af_errf(e, "%s: %s", dir, strerror(errno));
    struct dirent *de;
    int n = 0, rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        n++;
        if (!is_ours(de->d_name))
            rc = af_errf(e,
                         "%s: holds %s, which af-pretrain did not write; it replaces only a "
                         "directory it wrote (choose another -o, or empty it)",
                         dir, de->d_name);
    }
    closedir(d);
    if (rc || n == 0) return rc;
    /* the right names are not enough: a Hugging Face checkpoint has them too */
    char *w = join(dir, "model.safetensors");
    st_file f;
    af_err e2;
    if (st_open(&f, w, &e2) == 0) {
        const char *by = st_meta_get(&f, "created_by");
        if (!by || strncmp(by, "af-pretrain", 11) != 0)
            rc = af_errf(e,
                         "%s: a model af-pretrain did not write (created_by: %s); it replaces "
                         "only a directory it wrote (choose another -o)",
                         dir, by ? by : "none");
        st_close(&f);
    } else if (access(w, F_OK) == 0) {
        rc = af_errf(e,
                     "%s: its model.safetensors is not one af-pretrain wrote (%s); choose "
                     "another -o",
                     dir, e2.msg);
    }
    free(w);
    return rc;
}

int pretrain_save(const char *dir, const bert *m, const mlm_head *h, const lmtok *tok, int f16,
                  const st_meta *meta, int nmeta, st_writer *state, af_err *e) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    char *tmp = af_malloc(n + 16), *old = af_malloc(n + 16);
    snprintf(tmp, n + 16, "%.*s.tmp.XXXXXX", (int)n, dir);
    snprintf(old, n + 16, "%.*s.old.XXXXXX", (int)n, dir);
    char *final = af_malloc(n + 1);
    snprintf(final, n + 1, "%.*s", (int)n, dir);
    int rc = pretrain_check_output(final, e), mark = -1;
    if (rc) goto out;
    if (!mkdtemp(tmp)) {
        rc = af_errf(e, "%s: cannot create a temporary directory: %s", tmp, strerror(errno));
        goto out;
    }
    /* a second Ctrl-C exits at once (signals.h): the directory and whatever is in it by then
     * go, files first (af_tmp_cleanup runs backwards; a name not written yet fails harmlessly) */
    mark = af_tmp_push(tmp);
    for (int i = 0; pretrain_file(i); i++) {
        char *p = join(tmp, pretrain_file(i));
        af_tmp_push(p);
        free(p);
    }
    /* mkdtemp makes 0700; the model directory gets the permissions of any new directory */
    mode_t mask = umask(0);
    umask(mask);
    chmod(tmp, 0777 & ~mask);
    st_writer extra;
    st_writer_init(&extra);
    mlm_save_add(h, &extra);
    st_writer_meta(&extra, "format", "pt");
    for (int i = 0; i < nmeta; i++) st_writer_meta(&extra, meta[i].key, meta[i].value);
    rc = bert_save(m, tmp, &extra, e);
    st_writer_free(&extra);
    char *cfg = join(tmp, "config.json"), *wts = join(tmp, "model.safetensors");
    if (rc == 0) rc = rewrite_config(cfg, arch_get(m->cfg.arch), e);
    if (rc == 0 && f16) rc = st_rewrite_f16(wts, e);
    /* model_max_length: the longest input, RoBERTa's 512 of its 514 positions */
    if (rc == 0) rc = lmtok_save(tok, tmp, bert_max_len(&m->cfg), e);
    if (rc == 0 && state) {
        char *sp = join(tmp, "trainer.safetensors");
        rc = st_writer_write(state, sp, e);
        free(sp);
    }
    free(cfg), free(wts);
    /* checked again: the directory may have changed in the hours of training */
    if (rc == 0) rc = pretrain_check_output(final, e);
    if (rc == 0) {
        struct stat st;
        if (lstat(final, &st) != 0) {
            if (rename(tmp, final) != 0)
                rc = af_errf(e, "%s: cannot rename %s: %s", final, tmp, strerror(errno));
        } else if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_EXCHANGE) == 0) {
            /* one step, so the directory is never missing; tmp now names the old one */
            af_tmp_release(mark), mark = -1;
            remove_ours(tmp);
        } else if (errno != EINVAL && errno != ENOSYS) {
            rc = af_errf(e, "%s: cannot replace it with %s: %s", final, tmp, strerror(errno));
        } else if (!mkdtemp(old)) {
            /* a file system without RENAME_EXCHANGE: the old directory moves aside first */
            rc = af_errf(e, "%s: cannot create %s: %s", final, old, strerror(errno));
        } else if (rename(final, old) != 0) {
            rc = af_errf(e, "%s: cannot move the old directory aside: %s", final, strerror(errno));
            rmdir(old);
        } else if (rename(tmp, final) != 0) {
            rc = af_errf(e, "%s: cannot rename %s: %s", final, tmp, strerror(errno));
            rename(old, final);
        } else {
            remove_ours(old);
        }
        if (rc == 0) rc = af_fsync_parent(final, e);
    }
    if (rc && mark >= 0) remove_tree(tmp);
out:
    if (mark >= 0) af_tmp_release(mark);
    free(tmp), free(old), free(final);
    return rc;
}
