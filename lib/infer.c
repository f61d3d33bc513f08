/* infer.c: the model af-infer runs, and its streaming batch loop; see infer.h. */
#include "infer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "jsonl.h"
#include "jsonlex.h"
#include "outbuf.h"
#include "train.h"

/* ---- choosing the adapters ------------------------------------------------------------------- */

typedef struct {
    char **v;
    int n;
} strs;

static void strs_add(strs *s, const char *p, size_t len) {
    s->v = af_realloc(s->v, (s->n + 1) * sizeof *s->v);
    s->v[s->n] = af_malloc(len + 1);
    memcpy(s->v[s->n], p, len);
    s->v[s->n++][len] = 0;
}

static void strs_free(strs *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    s->v = NULL, s->n = 0;
}

static int strs_find(const strs *s, const char *x) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], x)) return i;
    return -1;
}

/* "a,b" -> {a, b}; empty names and repeats are errors. */
static int split_select(strs *s, const char *sel, af_err *e) {
    for (const char *p = sel;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (!len) return af_errf(e, "--adapters '%s': an empty adapter name", sel);
        strs_add(s, p, len);
        if (strs_find(s, s->v[s->n - 1]) != s->n - 1)
            return af_errf(e, "--adapters '%s': '%s' is named twice", sel, s->v[s->n - 1]);
        if (!c) return 0;
        p = c + 1;
    }
}

/* The adapter names a fusion file records, in its order. */
static int fusion_record(strs *rec, const char *path, af_err *e) {
    st_file f;
    if (st_open(&f, path, e)) return -1;
    const char *fmt = st_meta_get(&f, "format"), *ads = st_meta_get(&f, "adapters");
    cJSON *j = ads ? cJSON_Parse(ads) : NULL;
    int rc = 0;
    if (!fmt || strcmp(fmt, MODEL_FORMAT_FUSION))
        rc = af_errf(e, "%s: not an af fusion file (metadata format is %s, %s expected)", path,
                     fmt ? fmt : "missing", MODEL_FORMAT_FUSION);
    else if (!cJSON_IsArray(j))
        rc = af_errf(e, "%s: metadata 'adapters' missing or not a JSON array", path);
    for (int i = 0; !rc && i < cJSON_GetArraySize(j); i++) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(j, i), "name");
        if (!cJSON_IsString(name))
            rc = af_errf(e, "%s: metadata 'adapters' entry %d has no name", path, i + 1);
        else
            strs_add(rec, name->valuestring, strlen(name->valuestring));
    }
    cJSON_Delete(j);
    st_close(&f);
    return rc;
}

/* "a.st (a), c.st (c)" for messages. */
static void given_list(char *buf, size_t cap, const char **paths, const strs *names) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < names->n && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%s (%s)", i ? ", " : "", paths[i], names->v[i]);
}

int infer_load(af_model *m, const char **paths, int n, const char *fusion, const char **fins,
               int nfin, const char *select, af_err *e) {
    strs names = {0}, want = {0}, rec = {0};
    const char **chosen = NULL;
    char given[512];
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        st_file f;
        if (st_open(&f, paths[i], e)) {
            rc = -1;
            break;
        }
        const char *name = st_meta_get(&f, "name");
        if (!name)
            rc = af_errf(e, "%s: metadata 'name' missing: not an af adapter file", paths[i]);
        else
            strs_add(&names, name, strlen(name));
        st_close(&f);
    }
    if (rc) goto out;
    given_list(given, sizeof given, paths, &names);
    if (fusion && fusion_record(&rec, fusion, e)) goto fail;
    if (select && split_select(&want, select, e)) goto fail;
    if (fusion) {
        /* a subset must be the fused one: the fusion layer was trained over exactly those */
        for (int i = 0; i < want.n; i++)
            if (strs_find(&rec, want.v[i]) < 0) {
                rc = af_errf(e, "--adapters: %s does not fuse an adapter '%s'", fusion, want.v[i]);
                goto out;
            }
        for (int i = 0; select && i < rec.n; i++)
            if (strs_find(&want, rec.v[i]) < 0) {
                rc = af_errf(e, "--adapters: %s fuses '%s' too; name every fused adapter", fusion,
                             rec.v[i]);
                goto out;
            }
        strs_free(&want);
        want = rec, rec = (strs){0};
    } else if (!select) {
        for (int i = 0; i < names.n; i++) strs_add(&want, names.v[i], strlen(names.v[i]));
    }
    if (!fusion && want.n != 1) {
        rc = af_errf(e,
                     "%d adapters (%s) but no --fusion: without a fusion file one adapter "
                     "serves its own head; choose it with --adapters NAME",
                     want.n, given);
        goto out;
    }
    chosen = af_calloc(want.n, sizeof *chosen);
    for (int k = 0; k < want.n; k++) {
        int found = -1;
        for (int i = 0; i < names.n; i++) {
            if (strcmp(names.v[i], want.v[k])) continue;
            if (found >= 0) {
                rc = af_errf(e, "%s and %s both hold an adapter named '%s'", paths[found], paths[i],
                             want.v[k]);
                goto out;
            }
            found = i;
        }
        if (found < 0) {
            if (fusion)
                rc = af_errf(e, "%s fuses adapter '%s', but no --adapter file holds it (given: %s)",
                             fusion, want.v[k], given);
            else
                rc = af_errf(e, "--adapters: no --adapter file holds '%s' (given: %s)", want.v[k],
                             given);
            goto out;
        }
        chosen[k] = paths[found];
    }
    /* a hierarchical fusion's record lists every adapter under it: the fusion inputs find
     * theirs among them */
    if (model_load_adapters(m, chosen, want.n, e) ||
        (fusion && model_load_fusion_inputs(m, fins, nfin, NULL, NULL, e)) ||
        (fusion && model_load_fusion(m, fusion, e)))
        goto fail;
    if (!m->nheads) {
        rc = af_errf(e, "%s: no task head in the file", fusion ? fusion : chosen[0]);
        goto out;
    }
    m->train_adapters = m->train_fusion = m->train_heads = 0;
    model_finalize(m);
    goto out;
fail:
    rc = -1;
out:
    free(chosen);
    strs_free(&names), strs_free(&want), strs_free(&rec);
    return rc;
}

/* ---- the stream ------------------------------------------------------------------------------ */

typedef struct {
    af_model *m;
    const infer_opts *o;
    infer_stats *st;
    const char *name; /* the input, for messages */
    int B, S, Lmax;
    int G;          /* gold's row width (train_data.ldg) */
    int W;          /* lines in a window: they are run in batches of similar lengths */
    jl_example *ex; /* [W] */
    char **raw;     /* [W] each line's text, for passing its keys through verbatim */
    size_t *rawlen, *rawcap;
    int *head_of; /* [W] */
    int *gold_ok; /* [W] the line has a gold label the head knows (with metrics) */
    float *gold;  /* [W, G] */
    float *pred;  /* [Lmax] a multi-label line's predicted set */
    float *out;   /* [W, Lmax] */
    int *order;   /* [W] the window's lines by length */
    int *bhead;   /* [B] head_of of a batch's rows */
    float *bout;  /* [B, Lmax] a batch's outputs */
    size_t *at, *len; /* [W] each line's rendered text in mem */
    FILE *mem;        /* the window's output lines, rendered out of order */
    char *membuf;
    size_t memsize;
    batch_tokens bt;
    ob_writer w; /* into mem */
    int nsites;  /* fused sites */
    int *sitep;  /* [nsites] site p = 2l + s of each, in layer order */
    double *acc; /* [N] the most inputs of any fusion level */
    float *mean; /* [N] */
} run;

/* Keys af-infer writes itself; an input key of the same name would be ambiguous, so it is not
 * passed through ("label" is, renamed "gold"). */
static int reserved(const char *k) {
    static const char *r[] = {"input_ids", "token_type_ids", "attention_mask",
                              "gold",      "label_id",       "labels",
                              "probs",     "score",          "fusion_weights"};
    for (size_t i = 0; i < sizeof r / sizeof *r; i++)
        if (!strcmp(k, r[i])) return 1;
    return 0;
}

static int resolve(run *R, int k, af_err *e) {
    const af_model *m = R->m;
    const jl_example *x = &R->ex[k];
    int h = R->o->head;
    if (h < 0) {
        if (x->task)
            h = model_head_index(m, x->task);
        else if (m->nheads == 1)
            h = 0;
        else {
            char list[256];
            size_t n = 0;
            list[0] = 0;
            for (int i = 0; i < m->nheads && n < sizeof list; i++)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "",
                                      m->heads[i].name);
            return af_errf(e,
                           "%s:%ld: no \"task\" on the line, and the model has %d heads (%s): "
                           "give --task",
                           R->name, x->line, m->nheads, list);
        }
        if (h < 0)
            return af_errf(e, "%s:%ld: task \"%s\": the model has no head for it", R->name, x->line,
                           x->task);
    }
    R->head_of[k] = h;
    R->gold_ok[k] = 0;
    for (int i = 0; i < x->len; i++)
        if (m->base->cfg.type_vocab && x->token_type_ids[i] >= m->base->cfg.type_vocab)
            return af_errf(e, "%s:%ld: token_type_ids[%d]: %d is outside [0, %d)", R->name, x->line,
                           i, x->token_type_ids[i], m->base->cfg.type_vocab);
    if (!R->o->metrics || x->label_kind == JL_LABEL_NONE) return 0;
    if (train_gold(R->gold + (size_t)k * R->G, x, &m->heads[h], R->name, e)) return -1;
    R->gold_ok[k] = 1;
    return 0;
}

static void put_float(ob_writer *w, double v) {
    char b[32];
    if (!isfinite(v)) {
        ob_str(w, "null"); /* JSON has no NaN */
        return;
    }
    ob_raw(w, b, (size_t)snprintf(b, sizeof b, "%.6g", v));
}

static void put_floats(ob_writer *w, const float *v, int n) {
    ob_char(w, '[');
    for (int i = 0; i < n; i++) {
        if (i) ob_char(w, ',');
        put_float(w, v[i]);
    }
    ob_char(w, ']');
}

/* A line's weights at one site, at fusion level lv (model_fusion_weights_level): the mean over
 * its real tokens, or each of them. */
static void put_site_weights(run *R, int k, int row, int p, int lv) {
    const af_model *m = R->m;
    const float *W = model_fusion_weights_level(m, p, lv);
    const jl_example *x = &R->ex[k];
    if (!W) { /* a layer left out (--drop-layers): no fusion there */
        ob_str(&R->w, "null");
        return;
    }
    int N = lv < m->nfin ? m->fin[lv].fcfg.N : m->fcfg.N;
    int len = R->bt.lengths[row], S = R->bt.S, real = 0;
    for (int t = 0; t < len; t++) real += x->attention_mask[t] != 0;
    if (R->o->fusion_weights == INFER_FW_TOKENS) {
        ob_char(&R->w, '[');
        int first = 1;
        for (int t = 0; t < len; t++) {
            if (!x->attention_mask[t]) continue; /* as af-files(5) says: real tokens only */
            if (!first) ob_char(&R->w, ',');
            first = 0;
            put_floats(&R->w, W + ((size_t)row * S + t) * N, N);
        }
        ob_char(&R->w, ']');
        return;
    }
    double *acc = R->acc;
    for (int i = 0; i < N; i++) acc[i] = 0;
    for (int t = 0; t < len; t++) {
        if (!x->attention_mask[t]) continue;
        for (int i = 0; i < N; i++) acc[i] += W[((size_t)row * S + t) * N + i];
    }
    /* none left after --max-len cut the line: no mean, null (a line has one somewhere) */
    for (int i = 0; i < N; i++) R->mean[i] = real ? (float)(acc[i] / real) : NAN;
    put_floats(&R->w, R->mean, N);
}

/* One level's object members: its inputs' names ("adapters"), "layers" and, for Houlsby,
 * "attention_layers". */
static void put_level(run *R, int k, int row, int lv) {
    const af_model *m = R->m;
    ob_writer *w = &R->w;
    int n = lv < m->nfin ? m->fin[lv].fcfg.N : m->fcfg.N;
    ob_str(w, "\"adapters\":[");
    for (int i = 0; i < n; i++) {
        if (i) ob_char(w, ',');
        const char *name = lv < m->nfin ? model_fin_input_name(m, lv, i) : model_input_name(m, i);
        ob_json_string(w, name, strlen(name));
    }
    ob_char(w, ']');
    /* the FFN-output site of every layer is "layers"; Houlsby's attention-output site is
     * reported beside it */
    for (int s = BERT_SITE_OUT;; s = BERT_SITE_ATTN) {
        int any = 0;
        for (int j = 0; j < R->nsites; j++) {
            if (R->sitep[j] % 2 != s) continue;
            ob_str(w,
                   any ? "," : (s == BERT_SITE_OUT ? ",\"layers\":[" : ",\"attention_layers\":["));
            any = 1;
            put_site_weights(R, k, row, R->sitep[j], lv);
        }
        if (any) ob_char(w, ']');
        if (s == BERT_SITE_ATTN) break;
    }
}

/* The model's fusion's weights; a hierarchical one's inner fusions follow in "levels", each
 * after the fusions under it. */
static void put_fusion_weights(run *R, int k, int row) {
    const af_model *m = R->m;
    ob_writer *w = &R->w;
    ob_str(w, ",\"fusion_weights\":{");
    put_level(R, k, row, m->nfin);
    if (m->nfin) {
        ob_str(w, ",\"levels\":[");
        for (int lv = 0; lv < m->nfin; lv++) {
            ob_str(w, lv ? ",{\"fusion\":" : "{\"fusion\":");
            ob_json_string(w, m->fin[lv].name, strlen(m->fin[lv].name));
            ob_char(w, ',');
            put_level(R, k, row, lv);
            ob_char(w, '}');
        }
        ob_char(w, ']');
    }
    ob_char(w, '}');
}

/* Line k of the window, which ran as row `row` of the current batch. */
static void put_line(run *R, int k, int row) {
    const af_model *m = R->m;
    const jl_example *x = &R->ex[k];
    const model_head *h = &m->heads[R->head_of[k]];
    const float *o = R->out + (size_t)k * R->Lmax;
    ob_writer *w = &R->w;
    int first = 1, has_task = 0;
    ob_char(w, '{');
    for (const cJSON *c = x->json->child; c; c = c->next) {
        const char *key = c->string;
        int is_label = !strcmp(key, "label");
        if (!is_label && reserved(key)) continue;
        if (is_label && cJSON_IsNull(c)) continue; /* null is no label (af-files(5)) */
        has_task |= !strcmp(key, "task");
        if (!first) ob_char(w, ',');
        first = 0;
        if (is_label)
            ob_str(w, "\"gold\"");
        else
            ob_json_string(w, key, strlen(key));
        ob_char(w, ':');
        /* The value's own text, found by the key as written. A key without a backslash can only
         * match its own raw text; one with a backslash might match another key's escapes. */
        size_t at, len;
        if (!strchr(key, '\\') && !jsonlex_member(R->raw[k], R->rawlen[k], key, &at, &len)) {
            ob_raw(w, R->raw[k] + at, len);
        } else { /* the key was written with escapes: cJSON's rendering of the value */
            char *s = cJSON_PrintUnformatted(c);
            ob_str(w, s ? s : "null");
            free(s);
        }
    }
    if (!has_task && m->nheads > 1) {
        ob_str(w, first ? "\"task\":" : ",\"task\":");
        ob_json_string(w, h->name, strlen(h->name));
        first = 0;
    }
    if (!first) ob_char(w, ',');
    if (h->kind == HEAD_REGRESSION) {
        ob_str(w, "\"score\":");
        put_float(w, o[0]);
    } else if (h->kind == HEAD_MULTILABEL) {
        /* the predicted set, in the head's label order, and every label's probability */
        head_multilabel_predict(R->pred, o, h->L);
        ob_str(w, "\"labels\":[");
        for (int j = 0, any = 0; j < h->L; j++)
            if (R->pred[j]) {
                if (any++) ob_char(w, ',');
                ob_json_string(w, h->labels[j], strlen(h->labels[j]));
            }
        ob_str(w, "],\"probs\":");
        put_floats(w, o, h->L);
    } else {
        int j = 0;
        for (int i = 1; i < h->L; i++)
            if (o[i] > o[j]) j = i; /* the first of equals, as train_evaluate */
        ob_str(w, "\"label\":");
        ob_json_string(w, h->labels[j], strlen(h->labels[j]));
        ob_str(w, ",\"label_id\":");
        ob_long(w, j);
        ob_str(w, ",\"probs\":");
        put_floats(w, o, h->L);
    }
    if (R->o->fusion_weights && R->nsites) put_fusion_weights(R, k, row);
    ob_str(w, "}\n");
}

static void score(run *R, int k) {
    int hi = R->head_of[k];
    const model_head *h = &R->m->heads[hi];
    const float *o = R->out + (size_t)k * R->Lmax;
    const float *g = R->gold + (size_t)k * R->G;
    if (!R->gold_ok[k]) return;
    if (h->kind == HEAD_REGRESSION) {
        double d = (double)o[0] - g[0];
        metrics_add_value(&R->st->mt[hi], g[0], o[0]);
        R->st->loss_sum[hi] += d * d;
    } else if (h->kind == HEAD_MULTILABEL) {
        head_multilabel_predict(R->pred, o, h->L);
        metrics_add_set(&R->st->mt[hi], g, R->pred);
        /* the line's binary cross-entropy, the mean over its labels (as training's) */
        double l = 0;
        for (int j = 0; j < h->L; j++) {
            double p = g[j] ? o[j] : 1.0 - o[j];
            l -= log(p > 1e-30 ? p : 1e-30);
        }
        R->st->loss_sum[hi] += l / h->L;
    } else {
        int gi = (int)g[0], j = 0;
        for (int i = 1; i < h->L; i++)
            if (o[i] > o[j]) j = i;
        metrics_add_class(&R->st->mt[hi], gi, j);
        R->st->loss_sum[hi] += -log(o[gi] > 1e-30f ? (double)o[gi] : 1e-30);
    }
}

/* Lines by length (shortest first, input order among equals): a batch of similar lengths pads
 * little, and padding is computed like any token. */
static int by_length(const void *x, const void *y, void *ctx) {
    const jl_example *ex = ctx;
    int i = *(const int *)x, j = *(const int *)y, li = ex[i].len, lj = ex[j].len;
    return li != lj ? (li > lj) - (li < lj) : (i > j) - (i < j);
}

/* The outputs a line's head gives (1 for a regression): none may be NaN or infinite. */
static const char *not_finite(const run *R, int k) {
    const model_head *h = &R->m->heads[R->head_of[k]];
    const float *o = R->out + (size_t)k * R->Lmax;
    const char *what = NULL;
    for (int i = 0; i < (h->kind == HEAD_REGRESSION ? 1 : h->L); i++)
        if (!isfinite(o[i])) what = isnan(o[i]) ? "NaN" : what ? what : "infinite";
    return what;
}

/* Runs ex[0..n) in batches of similar lengths and writes their lines in input order. Each line's
 * result is independent of the others in its batch (padding is masked), so the order of running
 * changes no output. A line whose output is not finite ends the window: the lines before it are
 * written, then the error. */
static int run_window(run *R, int n, FILE *out, af_err *e) {
    af_model *m = R->m;
    for (int k = 0; k < n; k++) R->order[k] = k;
    qsort_r(R->order, n, sizeof *R->order, by_length, R->ex);
    if (fseeko(R->mem, 0, SEEK_SET)) return af_errf(e, "output buffer: %s", strerror(errno));
    int bad = n; /* the first line (in input order) without a finite output */
    for (int b0 = 0; b0 < n; b0 += R->B) {
        int nb = n - b0 < R->B ? n - b0 : R->B;
        const int *idx = R->order + b0;
        batch_tokens_fill(&R->bt, R->ex, idx, nb, m->base->cfg.pad_id);
        bert_batch bb = {R->bt.B, R->bt.S, R->bt.input_ids, R->bt.token_type_ids,
                         R->bt.attention_mask};
        if (bert_batch_check(m->base, &bb, e)) {
            long lo = R->ex[idx[0]].line, hi = lo;
            for (int r = 1; r < nb; r++) {
                long l = R->ex[idx[r]].line;
                lo = l < lo ? l : lo, hi = l > hi ? l : hi;
            }
            return af_err_prefix(e, "%s:%ld-%ld", R->name, lo, hi);
        }
        for (int r = 0; r < nb; r++) R->bhead[r] = R->head_of[idx[r]];
        model_run(m, &bb, R->bhead, NULL, 1, 0, R->bout, R->Lmax);
        for (int r = 0; r < nb; r++) {
            int k = idx[r];
            float *o = R->out + (size_t)k * R->Lmax;
            memcpy(o, R->bout + (size_t)r * R->Lmax, R->Lmax * sizeof *o);
            if (not_finite(R, k)) { /* never a label picked from NaNs */
                if (k < bad) bad = k;
                continue;
            }
            /* rendered now: the fusion weights belong to this batch */
            R->at[k] = (size_t)ftello(R->mem) + R->w.n;
            put_line(R, k, r);
            R->len[k] = (size_t)ftello(R->mem) + R->w.n - R->at[k];
        }
    }
    if (ob_flush(&R->w) || fflush(R->mem))
        return af_errf(e, "output buffer: %s", strerror(errno));
    for (int k = 0; k < bad; k++) {
        fwrite(R->membuf + R->at[k], 1, R->len[k], out);
        if (R->o->metrics) score(R, k);
    }
    R->st->lines += bad;
    if (fflush(out) || ferror(out))
        return af_errf(e, "write error on the output: %s", strerror(errno));
    if (bad < n)
        return af_errf(e, "%s:%ld: the model's output is %s, not a number: no prediction (the "
                       "input or the weights overflow float32)",
                       R->name, R->ex[bad].line, not_finite(R, bad));
    return 0;
}

static void run_free(run *R) {
    for (int k = 0; k < R->W; k++) {
        jl_example_free(&R->ex[k]);
        free(R->raw[k]);
    }
    free(R->ex), free(R->raw), free(R->rawlen), free(R->rawcap);
    free(R->head_of), free(R->gold_ok), free(R->gold), free(R->pred), free(R->out);
    free(R->order), free(R->bhead), free(R->bout), free(R->at), free(R->len);
    if (R->mem) fclose(R->mem);
    free(R->membuf);
    free(R->sitep), free(R->acc), free(R->mean);
    batch_tokens_free(&R->bt);
    ob_free(&R->w);
}

static int blank(const char *s, long n) {
    for (long i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

int infer_stream(af_model *m, const infer_opts *o, const char *input, FILE *out, infer_stats *st,
                 af_err *e) {
    run R = {0};
    R.m = m, R.o = o, R.st = st;
    R.B = o->batch_size > 0 ? o->batch_size : 32;
    R.S = bert_max_len(&m->base->cfg);
    if (o->max_len > 0 && o->max_len < R.S) R.S = o->max_len;
    R.G = 1;
    for (int h = 0; h < m->nheads; h++) {
        R.Lmax = m->heads[h].L > R.Lmax ? m->heads[h].L : R.Lmax;
        if (m->heads[h].kind == HEAD_MULTILABEL && m->heads[h].L > R.G) R.G = m->heads[h].L;
    }
    af_lines *lines;
    if (af_lines_open(&lines, input, e)) return -1;
    af_lines_max(lines, JL_MAX_LINE);
    R.name = af_lines_name(lines);
    R.sitep = af_calloc(2 * m->L, sizeof *R.sitep);
    int maxn = m->N > m->fcfg.N ? m->N : m->fcfg.N;
    for (int k = 0; k < m->nfin; k++) maxn = m->fin[k].fcfg.N > maxn ? m->fin[k].fcfg.N : maxn;
    R.acc = af_calloc(maxn ? maxn : 1, sizeof *R.acc);
    R.mean = af_calloc(maxn ? maxn : 1, sizeof *R.mean);
    for (int p = 0; p < 2 * m->L; p++)
        if (m->fused && (model_site_mask(m->arch) >> (p % 2) & 1)) R.sitep[R.nsites++] = p;
    if (!st->mt) {
        st->nheads = m->nheads;
        st->mt = af_calloc(m->nheads, sizeof *st->mt);
        st->loss_sum = af_calloc(m->nheads, sizeof *st->loss_sum);
        for (int h = 0; h < m->nheads; h++) {
            const model_head *hd = &m->heads[h];
            if (hd->kind == HEAD_MULTILABEL)
                metrics_init_multilabel(&st->mt[h], hd->L);
            else
                metrics_init(&st->mt[h], hd->kind == HEAD_REGRESSION ? 0 : hd->L);
        }
    }
    m->keep_fusion_weights = o->fusion_weights != 0;
    model_prepare(m, R.B, R.S, 0);
    R.W = R.B * INFER_WINDOW_BATCHES;
    R.ex = af_calloc(R.W, sizeof *R.ex);
    R.raw = af_calloc(R.W, sizeof *R.raw);
    R.rawlen = af_calloc(R.W, sizeof *R.rawlen);
    R.rawcap = af_calloc(R.W, sizeof *R.rawcap);
    R.head_of = af_calloc(R.W, sizeof *R.head_of);
    R.gold_ok = af_calloc(R.W, sizeof *R.gold_ok);
    R.gold = af_calloc((size_t)R.W * R.G, sizeof *R.gold);
    R.pred = af_calloc(R.Lmax ? R.Lmax : 1, sizeof *R.pred);
    R.out = af_calloc((size_t)R.W * R.Lmax, sizeof *R.out);
    R.order = af_calloc(R.W, sizeof *R.order);
    R.bhead = af_calloc(R.B, sizeof *R.bhead);
    R.bout = af_calloc((size_t)R.B * R.Lmax, sizeof *R.bout);
    R.at = af_calloc(R.W, sizeof *R.at);
    R.len = af_calloc(R.W, sizeof *R.len);
    batch_tokens_init(&R.bt, R.B, R.S);
    if (!(R.mem = open_memstream(&R.membuf, &R.memsize))) {
        run_free(&R);
        af_lines_close(lines);
        return af_errf(e, "output buffer: %s", strerror(errno));
    }
    ob_init(&R.w, R.mem, 1 << 16);
    int rc = 0, eof = 0;
    while (!eof && !rc) {
        int n = 0;
        while (n < R.W) {
            /* a pipe that pauses gets its answers now, not when a whole batch has arrived */
            if (n > 0 && af_lines_would_block(lines)) break;
            char *line;
            long len = af_lines_next(lines, &line, e);
            if (len == -1) {
                eof = 1;
                break;
            }
            if (len < 0) {
                rc = -1;
                break;
            }
            if (blank(line, len)) continue;
            if ((size_t)len + 1 > R.rawcap[n]) {
                R.rawcap[n] = (size_t)len + 1;
                R.raw[n] = af_realloc(R.raw[n], R.rawcap[n]);
            }
            memcpy(R.raw[n], line, (size_t)len + 1);
            R.rawlen[n] = (size_t)len;
            if (jl_parse_line(line, (size_t)len, &R.ex[n], m->base->cfg.vocab_size, R.name,
                              af_lines_lineno(lines), e) ||
                resolve(&R, n, e)) {
                rc = -1;
                break;
            }
            n++;
        }
        /* what was read before a bad line still goes out, so the error is the last thing */
        if (n) {
            af_err e2;
            if (run_window(&R, n, out, &e2)) *e = e2, rc = -1;
        }
    }
    st->truncated += R.bt.truncated;
    run_free(&R);
    af_lines_close(lines);
    return rc;
}

void infer_stats_free(infer_stats *st) {
    for (int h = 0; h < st->nheads && st->mt; h++) metrics_free(&st->mt[h]);
    free(st->mt);
    free(st->loss_sum);
    memset(st, 0, sizeof *st);
}

/* ---- metrics --------------------------------------------------------------------------------- */

void infer_metrics_print(FILE *f, const char *prefix, const af_model *m, const infer_stats *st,
                         int confusion) {
    for (int hi = 0; hi < st->nheads; hi++) {
        const model_head *h = &m->heads[hi];
        metrics_result r;
        metrics_compute(&st->mt[hi], &r);
        fprintf(f, "%s%s: ", prefix, h->name);
        if (!r.n) {
            fprintf(f, "no line with a gold label\n");
            continue;
        }
        fprintf(f, "loss %.4f  ", st->loss_sum[hi] / r.n);
        if (h->kind == HEAD_REGRESSION)
            fprintf(f, "pearson %.4f  spearman %.4f  mse %.4f", r.pearson, r.spearman, r.mse);
        else if (h->kind == HEAD_MULTILABEL)
            fprintf(f, "micro_f1 %.4f  exact_match %.4f", r.micro_f1, r.exact_match);
        else
            fprintf(f, "accuracy %.4f  f1 %.4f  mcc %.4f", r.accuracy, r.f1, r.mcc);
        fprintf(f, "  (%ld examples)\n", r.n);
        if (!confusion || h->kind != HEAD_CLASSIFICATION) continue;
        /* rows gold, columns predicted, as sklearn's confusion_matrix */
        int w = 1, L = h->L;
        char num[32];
        for (int j = 0; j < L; j++)
            w = (int)strlen(h->labels[j]) > w ? (int)strlen(h->labels[j]) : w;
        for (long i = 0; i < (long)L * L; i++) {
            int d = snprintf(num, sizeof num, "%ld", st->mt[hi].confusion[i]);
            w = d > w ? d : w;
        }
        fprintf(f, "%s%s: confusion matrix (rows: gold, columns: predicted)\n", prefix, h->name);
        fprintf(f, "%*s", w + 2, "");
        for (int j = 0; j < L; j++) fprintf(f, " %*s", w, h->labels[j]);
        fputc('\n', f);
        for (int i = 0; i < L; i++) {
            fprintf(f, "  %*s", w, h->labels[i]);
            for (int j = 0; j < L; j++) fprintf(f, " %*ld", w, st->mt[hi].confusion[i * L + j]);
            fputc('\n', f);
        }
    }
}

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

cJSON *infer_metrics_json(const af_model *m, const infer_stats *st) {
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "lines", (double)st->lines);
    cJSON *tasks = cJSON_AddObjectToObject(doc, "tasks");
    for (int hi = 0; hi < st->nheads; hi++) {
        const model_head *h = &m->heads[hi];
        metrics_result r;
        metrics_compute(&st->mt[hi], &r);
        cJSON *t = cJSON_AddObjectToObject(tasks, h->name);
        cJSON_AddNumberToObject(t, "examples", (double)r.n);
        add_num(t, "loss", r.n ? st->loss_sum[hi] / r.n : NAN);
        if (h->kind == HEAD_REGRESSION) {
            add_num(t, "pearson", r.pearson);
            add_num(t, "spearman", r.spearman);
            add_num(t, "mse", r.mse);
            continue;
        }
        if (h->kind == HEAD_MULTILABEL) {
            add_num(t, "micro_f1", r.micro_f1);
            add_num(t, "exact_match", r.exact_match);
            cJSON *labels = cJSON_AddArrayToObject(t, "labels");
            for (int i = 0; i < h->L; i++)
                cJSON_AddItemToArray(labels, cJSON_CreateString(h->labels[i]));
            continue;
        }
        add_num(t, "accuracy", r.accuracy);
        add_num(t, "f1", r.f1);
        add_num(t, "mcc", r.mcc);
        cJSON *labels = cJSON_AddArrayToObject(t, "labels");
        cJSON *conf = cJSON_AddArrayToObject(t, "confusion");
        for (int i = 0; i < h->L; i++) {
            cJSON_AddItemToArray(labels, cJSON_CreateString(h->labels[i]));
            cJSON *row = cJSON_CreateArray();
            for (int j = 0; j < h->L; j++)
                cJSON_AddItemToArray(
                    row, cJSON_CreateNumber((double)st->mt[hi].confusion[i * h->L + j]));
            cJSON_AddItemToArray(conf, row);
        }
    }
    return doc;
}
