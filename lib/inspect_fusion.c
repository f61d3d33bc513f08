/* inspect_fusion.c: fusion weights for af-inspect's heatmaps, from a weighted fusion file or
 * from af-infer --fusion-weights output; see inspect.h. */
#include "inspect.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bert.h"
#include "fusion.h"
#include "jsonl.h"

/* Row label of layer l's site: "3" when only the FFN output holds adapters (Pfeiffer), "3 attn"
 * and "3 out" when the attention output does too (Houlsby). */
static void site_label(char **slot, int l, int attn_site, int two_sites) {
    char buf[32];
    if (two_sites)
        snprintf(buf, sizeof buf, "%d %s", l, attn_site ? "attn" : "out");
    else
        snprintf(buf, sizeof buf, "%d", l);
    heatmap_label(slot, buf);
}

/* ---- from the file -----------------------------------------------------------------------------
 */

/* The base's architecture, from the file's record of it (files that predate it are BERT's). */
static const af_arch *file_arch(const st_file *f) {
    const char *bs = st_meta_get(f, "base");
    cJSON *b = bs ? cJSON_Parse(bs) : NULL;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(b, "config"), "model_type");
    int id = cJSON_IsString(mt) ? arch_find(mt->valuestring) : ARCH_BERT;
    cJSON_Delete(b);
    return arch_get(id < 0 ? ARCH_BERT : id);
}

/* The base's hidden size, from the file's record of it (0: none). */
static int file_hidden(const st_file *f) {
    const char *bs = st_meta_get(f, "base");
    cJSON *b = bs ? cJSON_Parse(bs) : NULL;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(b, "config"),
                                                      "hidden_size");
    int H = cJSON_IsNumber(h) ? h->valueint : 0;
    cJSON_Delete(b);
    return H;
}

/* Site si of layer l's tensors of the method into buf (fusion_nparams floats); 1 when the first
 * is absent (no such layer), -1 on a bad tensor. */
static int read_site(float *buf, const st_file *f, const af_arch *a, int l, int si, const char *key,
                     const fusion_config *cfg, af_err *e) {
    param_desc pd[fusion_param_count(cfg)];
    int np = fusion_params(pd, cfg);
    for (int j = 0; j < np; j++) {
        char name[1024];
        const st_tensor *t = arch_fusion_name(name, sizeof name, a, l, si, key, pd[j].name)
                                 ? NULL
                                 : st_find(f, name);
        if (!t && j == 0) return 1;
        if (!t || t->numel != (int64_t)pd[j].numel)
            return af_errf(e, "%s: layer %d %s: a tensor %s of %zu values expected, %s", f->path, l,
                           arch_site(a, si), name, pd[j].numel,
                           t ? "another size found" : "none found");
        for (size_t k = 0; k < pd[j].numel; k++)
            buf[pd[j].offset + k] = (float)insp_value(t, (int64_t)k);
    }
    return 0;
}

int insp_fusion_static(const st_file *f, heatmap *h, af_err *e) {
    const char *cfgs = st_meta_get(f, "config"), *key = st_meta_get(f, "name");
    cJSON *cfg = cfgs ? cJSON_Parse(cfgs) : NULL;
    int rc = 0;
    float *buf = NULL;
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(cfg, "method"),
                *arch = cJSON_GetObjectItemCaseSensitive(cfg, "arch"),
                *names = cJSON_GetObjectItemCaseSensitive(cfg, "adapter_names");
    fusion_config fc = {0};
    if (!cJSON_IsString(method) || !key ||
        (fc.method = fusion_method_parse(method->valuestring)) < 0) {
        rc = af_errf(e, "%s: metadata config.method or name missing: not an af fusion file",
                     f->path);
        goto out;
    }
    /* the method's row says whether its weights are the same for every token */
    if (!fusion_has_static_weights(&fc)) {
        rc = 1;
        af_errf(e, "%s: %s fusion weighs the adapters per token, from the input", f->path,
                method->valuestring);
        goto out;
    }
    fc.H = file_hidden(f), fc.N = cJSON_GetArraySize(names);
    if (fusion_config_from_json(&fc, cfg, e) || fusion_config_check(&fc, e)) {
        rc = af_err_prefix(e, "%s", f->path);
        goto out;
    }
    int two = cJSON_IsString(arch) && !strcmp(arch->valuestring, "houlsby"), L = 0, N = fc.N;
    const af_arch *a = file_arch(f);
    buf = af_malloc(fusion_nparams(&fc) * sizeof(float));
    while (!(rc = read_site(buf, f, a, L, BERT_SITE_OUT, key, &fc, e))) L++;
    if (rc < 0) goto out;
    rc = 0;
    if (!L) {
        char name[1024];
        param_desc pd[fusion_param_count(&fc)];
        fusion_params(pd, &fc);
        arch_fusion_name(name, sizeof name, a, 0, BERT_SITE_OUT, key, pd[0].name);
        rc = af_errf(e, "%s: no tensor %s", f->path, name);
        goto out;
    }
    heatmap_init(h, L * (two ? 2 : 1), N);
    for (int i = 0; i < N; i++) {
        const cJSON *nm = cJSON_GetArrayItem(names, i);
        char b[32];
        snprintf(b, sizeof b, "%d", i + 1);
        heatmap_label(&h->col_labels[i], cJSON_IsString(nm) ? nm->valuestring : b);
    }
    for (int l = 0; l < L && !rc; l++)
        for (int s = 0; s < (two ? 2 : 1) && !rc; s++) {
            int row = two ? 2 * l + s : l, attn = two && s == 0;
            int si = attn ? BERT_SITE_ATTN : BERT_SITE_OUT;
            site_label(&h->row_labels[row], l, attn, two);
            if ((rc = read_site(buf, f, a, l, si, key, &fc, e)) > 0)
                rc = af_errf(e, "%s: layer %d %s: no fusion tensors", f->path, l, arch_site(a, si));
            if (rc) break;
            /* as the forward computes them (fusion.h) */
            fusion fu;
            float w[N];
            fusion_carve(&fu, &fc, buf);
            fusion_static_weights(w, &fu);
            for (int i = 0; i < N; i++) h->v[(size_t)row * N + i] = w[i];
        }
    if (rc) {
        heatmap_free(h);
        goto out;
    }
    char title[512];
    snprintf(title, sizeof title, "%s fusion %s: softmax of the weights in the file",
             fusion_method_name(fc.method), key);
    heatmap_label(&h->title, title);
out:
    free(buf);
    cJSON_Delete(cfg);
    return rc;
}

/* ---- from af-infer output ----------------------------------------------------------------------
 */

typedef struct {
    char *label; /* NULL: every line */
    long n;
    double *sum; /* [rows, N] */
    long *cnt;   /* [rows, N]: lines with a weight in the cell */
} fw_group;

struct insp_fw {
    int by_label;
    int N, L, two;   /* set by the first line */
    char **adapters; /* [N] */
    fw_group *g;     /* g[0]: every line */
    int ng;
    double *line; /* [rows, N] this line's weights */
    /* a hierarchical fusion's inner fusions ("levels"), set by the first line: each level's
     * weights accumulate as the top level's do */
    int nlevels;
    char **level_names; /* [nlevels] */
    insp_fw **levels;   /* [nlevels] */
};

insp_fw *insp_fw_new(int by_label) {
    insp_fw *a = af_calloc(1, sizeof *a);
    a->by_label = by_label;
    return a;
}

void insp_fw_free(insp_fw *a) {
    if (!a) return;
    for (int i = 0; i < a->N; i++) free(a->adapters[i]);
    free(a->adapters);
    for (int k = 0; k < a->ng; k++) free(a->g[k].label), free(a->g[k].sum), free(a->g[k].cnt);
    free(a->g);
    free(a->line);
    for (int k = 0; k < a->nlevels; k++) free(a->level_names[k]), insp_fw_free(a->levels[k]);
    free(a->level_names), free(a->levels);
    free(a);
}

static fw_group *group(insp_fw *a, const char *label) {
    for (int k = 0; k < a->ng; k++)
        if ((!label && !a->g[k].label) || (label && a->g[k].label && !strcmp(label, a->g[k].label)))
            return &a->g[k];
    a->g = af_realloc(a->g, (a->ng + 1) * sizeof *a->g);
    fw_group *g = &a->g[a->ng++];
    g->label = label ? af_strdup(label) : NULL;
    g->n = 0;
    g->sum = af_calloc((size_t)a->L * (a->two ? 2 : 1) * a->N, sizeof(double));
    g->cnt = af_calloc((size_t)a->L * (a->two ? 2 : 1) * a->N, sizeof(long));
    return g;
}

/* One site's array: [w_1..w_N] (a mean) or [[w_1..w_N] per token] (averaged here). A weight is
 * a number in [0, 1] (every method's weights are probabilities or gates) or null (af-infer's
 * "not finite"); nulls are left out of the mean, and a weight with none is NaN. The whole
 * array null: a layer without fusion. */
static int site_weights(double *out, const cJSON *v, int N, const char *where, af_err *e) {
    if (cJSON_IsNull(v)) { /* a layer the fusion leaves out (leave_out): no weights at all */
        for (int i = 0; i < N; i++) out[i] = NAN;
        return 0;
    }
    const cJSON *first = cJSON_IsArray(v) ? v->child : NULL;
    if (!first)
        return af_errf(e, "%s: an array of %d weights (or of tokens' weights) expected", where, N);
    int tokens = cJSON_IsArray(first);
    double sum[N];
    int cnt[N];
    for (int i = 0; i < N; i++) sum[i] = 0, cnt[i] = 0;
    int t_i = 0;
    for (const cJSON *t = tokens ? first : v; t; t = tokens ? t->next : NULL, t_i++) {
        if (tokens && !cJSON_IsArray(t))
            return af_errf(e, "%s: token %d: an array of %d weights expected", where, t_i, N);
        int i = 0;
        for (const cJSON *x = t->child; x; x = x->next, i++) {
            if (i >= N || !(cJSON_IsNumber(x) || cJSON_IsNull(x)))
                return af_errf(e, "%s: %d numbers (one per adapter) expected per %s", where, N,
                               tokens ? "token" : "layer");
            if (cJSON_IsNull(x)) continue;
            double w = x->valuedouble;
            if (!(w >= 0 && w <= 1 + 1e-6))
                return af_errf(e, "%s: weight %g of adapter %d is outside [0, 1]", where, w, i + 1);
            sum[i] += w, cnt[i]++;
        }
        if (i != N)
            return af_errf(e, "%s: %d numbers (one per adapter) expected, %d found", where, N, i);
    }
    for (int i = 0; i < N; i++) out[i] = cnt[i] ? sum[i] / cnt[i] : NAN;
    return 0;
}

static int first_line(insp_fw *a, const cJSON *ads, const cJSON *layers, const cJSON *attn,
                      const char *where, af_err *e) {
    int N = cJSON_GetArraySize(ads), L = cJSON_GetArraySize(layers);
    if (N < 1 || L < 1)
        return af_errf(e, "%s: fusion_weights needs adapters and layers (%d and %d found)", where,
                       N, L);
    if (N > 4096 || L > 4096)
        return af_errf(e, "%s: fusion_weights of %d adapters and %d layers: too many", where, N, L);
    for (const cJSON *x = ads->child; x; x = x->next)
        if (!cJSON_IsString(x))
            return af_errf(e, "%s: fusion_weights.adapters: names expected", where);
    /* the shape is set only once the line is known good: insp_fw_free trusts it */
    a->N = N, a->L = L, a->two = attn != NULL;
    a->adapters = af_calloc(a->N, sizeof *a->adapters);
    int i = 0;
    for (const cJSON *x = ads->child; x; x = x->next, i++)
        a->adapters[i] = af_strdup(x->valuestring);
    a->line = af_calloc((size_t)a->L * (a->two ? 2 : 1) * a->N, sizeof(double));
    group(a, NULL);
    return 0;
}

/* One level's weights (an object with "adapters", "layers", maybe "attention_layers") into a,
 * under group `label` (NULL: every line only). */
static int add_level(insp_fw *a, const cJSON *fw, const char *label, const char *where, af_err *e) {
    const cJSON *ads = cJSON_GetObjectItemCaseSensitive(fw, "adapters"),
                *layers = cJSON_GetObjectItemCaseSensitive(fw, "layers"),
                *attn = cJSON_GetObjectItemCaseSensitive(fw, "attention_layers");
    if (!cJSON_IsArray(ads) || !cJSON_IsArray(layers) || (attn && !cJSON_IsArray(attn)))
        return af_errf(e, "%s: fusion_weights: arrays \"adapters\" and \"layers\" expected", where);
    if (!a->N && first_line(a, ads, layers, attn, where, e)) return -1;
    int same = cJSON_GetArraySize(ads) == a->N && cJSON_GetArraySize(layers) == a->L &&
               (attn != NULL) == a->two && (!attn || cJSON_GetArraySize(attn) == a->L);
    for (int i = 0; same && i < a->N; i++) {
        const cJSON *x = cJSON_GetArrayItem(ads, i);
        same = cJSON_IsString(x) && !strcmp(x->valuestring, a->adapters[i]);
    }
    if (!same)
        return af_errf(e,
                       "%s: fusion_weights of another model (adapters or layers differ from the "
                       "first line's)",
                       where);
    int N = a->N;
    for (int s = 0; s < (a->two ? 2 : 1); s++) {
        const cJSON *arr = a->two && s == 0 ? attn : layers;
        int l = 0;
        for (const cJSON *v = arr->child; v; v = v->next, l++) {
            char w2[600];
            snprintf(w2, sizeof w2, "%s: fusion_weights.%s[%d]", where,
                     arr == attn ? "attention_layers" : "layers", l);
            int row = a->two ? 2 * l + s : l;
            if (site_weights(a->line + (size_t)row * N, v, N, w2, e)) return -1;
        }
    }
    size_t cells = (size_t)a->L * (a->two ? 2 : 1) * N;
    for (int k = 0; k < (label ? 2 : 1); k++) {
        fw_group *g = group(a, k ? label : NULL);
        for (size_t c = 0; c < cells; c++)
            if (!isnan(a->line[c])) g->sum[c] += a->line[c], g->cnt[c]++;
        g->n++;
    }
    return 0;
}

/* The inner fusions of a hierarchical fusion: the same ones, in the same order, on every line. */
static int add_levels(insp_fw *a, const cJSON *lv, int first, const char *label, const char *where,
                      af_err *e) {
    int n = cJSON_IsArray(lv) ? cJSON_GetArraySize(lv) : 0;
    if (lv && !cJSON_IsArray(lv))
        return af_errf(e, "%s: fusion_weights.levels: an array expected", where);
    if (first && n) { /* the first line: the levels it has */
        a->nlevels = n;
        a->level_names = af_calloc(n, sizeof *a->level_names);
        a->levels = af_calloc(n, sizeof *a->levels);
        for (int k = 0; k < n; k++) {
            const cJSON *name =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(lv, k), "fusion");
            a->level_names[k] = af_strdup(cJSON_IsString(name) ? name->valuestring : "?");
            a->levels[k] = insp_fw_new(a->by_label);
        }
    }
    if (n != a->nlevels)
        return af_errf(e, "%s: fusion_weights of another model (%d levels, the first line had %d)",
                       where, n, a->nlevels);
    for (int k = 0; k < n; k++) {
        const cJSON *o = cJSON_GetArrayItem(lv, k),
                    *name = cJSON_GetObjectItemCaseSensitive(o, "fusion");
        char w2[600];
        snprintf(w2, sizeof w2, "%s: fusion_weights.levels[%d]", where, k);
        if (!cJSON_IsObject(o) || !cJSON_IsString(name) ||
            strcmp(name->valuestring, a->level_names[k]))
            return af_errf(e, "%s: an object with \"fusion\" \"%s\" expected", w2,
                           a->level_names[k]);
        if (add_level(a->levels[k], o, label, w2, e)) return -1;
    }
    return 0;
}

int insp_fw_add(insp_fw *a, const char *line, size_t n, const char *name, long lineno, af_err *e) {
    char where[512];
    snprintf(where, sizeof where, "%s:%ld", name, lineno);
    cJSON *j = cJSON_ParseWithLength(line, n);
    int rc = 0;
    if (!cJSON_IsObject(j)) {
        rc = af_errf(e, "%s: not a JSON object (af-infer output expected)", where);
        goto out;
    }
    const cJSON *fw = cJSON_GetObjectItemCaseSensitive(j, "fusion_weights");
    if (!cJSON_IsObject(fw)) {
        rc = af_errf(e, "%s: no \"fusion_weights\" (af-infer --fusion-weights writes them)", where);
        goto out;
    }
    char buf[256];
    const char *label = NULL;
    if (a->by_label) {
        const cJSON *gold = cJSON_GetObjectItemCaseSensitive(j, "gold");
        if (cJSON_IsString(gold))
            label = gold->valuestring;
        else if (gold && !cJSON_IsNull(gold)) {
            char *s = cJSON_PrintUnformatted(gold);
            snprintf(buf, sizeof buf, "%s", s ? s : "?");
            free(s);
            label = buf;
        } else
            label = "(no label)";
    }
    int first = !a->N;
    rc = add_level(a, fw, label, where, e);
    if (!rc)
        rc = add_levels(a, cJSON_GetObjectItemCaseSensitive(fw, "levels"), first, label, where, e);
out:
    cJSON_Delete(j);
    return rc;
}

int insp_fw_read(insp_fw *a, const char *path, af_err *e) {
    af_lines *l;
    if (af_lines_open(&l, path, e)) return -1;
    af_lines_max(l, JL_MAX_LINE);
    int rc = 0;
    for (;;) {
        char *line;
        long n = af_lines_next(l, &line, e);
        if (n == -1) break;
        if (n < 0) {
            rc = -1;
            break;
        }
        size_t k = 0;
        while (k < (size_t)n && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == (size_t)n) continue;
        if ((rc = insp_fw_add(a, line, (size_t)n, af_lines_name(l), af_lines_lineno(l), e))) break;
    }
    af_lines_close(l);
    return rc;
}

static int cmp_group(const void *x, const void *y) {
    const fw_group *a = x, *b = y;
    int na = !strcmp(a->label, "(no label)"), nb = !strcmp(b->label, "(no label)");
    if (na != nb) return na - nb;
    return strcmp(a->label, b->label);
}

static int level_maps(const insp_fw *a, heatmap **maps);

int insp_fw_maps(const insp_fw *a, heatmap **maps, af_err *e) {
    if (!a->ng || !a->g[0].n) return af_errf(e, "no line with fusion weights was read");
    int n = level_maps(a, maps);
    /* a hierarchical fusion's inner fusions follow, each map saying which it is */
    for (int k = 0; k < a->nlevels; k++) {
        heatmap *lm;
        int nl = level_maps(a->levels[k], &lm);
        *maps = af_realloc(*maps, (n + nl) * sizeof **maps);
        for (int i = 0; i < nl; i++) {
            heatmap *h = &lm[i];
            char title[1024];
            snprintf(title, sizeof title, "fusion %s: %s", a->level_names[k], h->title);
            free(h->title), h->title = NULL;
            heatmap_label(&h->title, title);
            heatmap_label(&h->level, a->level_names[k]);
            (*maps)[n + i] = *h;
        }
        free(lm);
        n += nl;
    }
    return n;
}

static int level_maps(const insp_fw *a, heatmap **maps) {
    int rows = a->L * (a->two ? 2 : 1);
    fw_group *g = af_malloc(a->ng * sizeof *g);
    memcpy(g, a->g, a->ng * sizeof *g);
    qsort(g + 1, a->ng - 1, sizeof *g, cmp_group);
    *maps = af_calloc(a->ng, sizeof **maps);
    for (int k = 0; k < a->ng; k++) {
        heatmap *h = &(*maps)[k];
        heatmap_init(h, rows, a->N);
        for (int i = 0; i < a->N; i++) heatmap_label(&h->col_labels[i], a->adapters[i]);
        for (int r = 0; r < rows; r++)
            site_label(&h->row_labels[r], a->two ? r / 2 : r, a->two && r % 2 == 0, a->two);
        for (size_t c = 0; c < (size_t)rows * a->N; c++)
            h->v[c] = g[k].cnt[c] ? g[k].sum[c] / g[k].cnt[c] : NAN;
        h->n = g[k].n;
        char title[512];
        if (g[k].label) {
            snprintf(title, sizeof title, "gold label %s: mean over %ld line%s", g[k].label, g[k].n,
                     g[k].n == 1 ? "" : "s");
            heatmap_label(&h->group, g[k].label);
        } else {
            snprintf(title, sizeof title, "fusion weights: mean over %ld line%s", g[k].n,
                     g[k].n == 1 ? "" : "s");
        }
        heatmap_label(&h->title, title);
    }
    free(g);
    return a->ng;
}
