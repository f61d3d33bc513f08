/* model_tree.c: hierarchical fusion in the model: fusion files as inputs of a fusion
 * (model_load_fusion_inputs), the tree they make at every site (fusion_tree.h), and the record
 * of it a fusion file keeps (af-files(5), "tree"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_int.h"

/* One input a fusion file records: an adapter or a fusion, its name and file's sha256. */
typedef struct {
    int fusion;
    const char *name, *sha, *file;
} rec_input;

/* A fusion file's inputs: its "tree" (hierarchical: adapters and fusions) or, for a flat fusion,
 * its "adapters". Returns the count, or -1. The strings point into j. */
static int rec_inputs(rec_input **out, const cJSON *j, int tree, const char *path, af_err *e) {
    int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : -1;
    if (n < 0)
        return af_errf(e, "%s: metadata '%s' is not a JSON array", path,
                       tree ? "tree" : "adapters");
    rec_input *r = af_calloc(n ? n : 1, sizeof *r);
    for (int i = 0; i < n; i++) {
        const cJSON *a = cJSON_GetArrayItem(j, i);
        const cJSON *ad = cJSON_GetObjectItemCaseSensitive(a, tree ? "adapter" : "name"),
                    *fu = tree ? cJSON_GetObjectItemCaseSensitive(a, "fusion") : NULL,
                    *sha = cJSON_GetObjectItemCaseSensitive(a, "sha256"),
                    *file = cJSON_GetObjectItemCaseSensitive(a, "file");
        const cJSON *name = cJSON_IsString(ad) ? ad : fu;
        if (!cJSON_IsString(name) || !cJSON_IsString(sha) || (cJSON_IsString(ad) && fu)) {
            free(r);
            return af_errf(e, "%s: metadata '%s' entry %d: %s and sha256 expected", path,
                           tree ? "tree" : "adapters", i + 1,
                           tree ? "\"adapter\" or \"fusion\"" : "name");
        }
        r[i] = (rec_input){!cJSON_IsString(ad), name->valuestring, sha->valuestring,
                           cJSON_IsString(file) ? file->valuestring : NULL};
    }
    *out = r;
    return n;
}

/* What reads each adapter (used_ad) and each fusion input (used_fin): a path, or NULL. */
typedef struct {
    const char **ad, **fin;
} users;

/* The inputs a file records, found among the adapters and fusion inputs: in[] as model_fin.in. */
static int resolve(af_model *m, int *in, const rec_input *r, int n, const char *path, users *u,
                   af_err *e) {
    for (int j = 0; j < n; j++) {
        int found = -1, same_name = -1, count = r[j].fusion ? m->nfin : m->N;
        for (int i = 0; i < count; i++) {
            const char *name = r[j].fusion ? m->fin[i].name : m->ad[i].name,
                       *sha = r[j].fusion ? m->fin[i].sha256 : m->ad[i].sha256;
            if (!strcmp(sha, r[j].sha) && !strcmp(name, r[j].name))
                found = i;
            else if (!strcmp(name, r[j].name))
                same_name = i;
        }
        const char *what = r[j].fusion ? "fusion" : "adapter";
        if (found < 0 && same_name >= 0) {
            const char *p = r[j].fusion ? m->fin[same_name].path : m->ad[same_name].path,
                       *sha = r[j].fusion ? m->fin[same_name].sha256 : m->ad[same_name].sha256;
            return af_errf(e,
                           "%s: %s '%s': %s has sha256 %.12s…, but the fusion was trained with "
                           "a file of sha256 %.12s…",
                           path, what, r[j].name, p, sha, r[j].sha);
        }
        if (found < 0)
            return af_errf(e, "%s fuses %s '%s' (sha256 %.12s…%s%s), but no %s file holds it", path,
                           what, r[j].name, r[j].sha, r[j].file ? ", file " : "",
                           r[j].file ? r[j].file : "",
                           r[j].fusion ? "--fusion-input" : "--adapter");
        const char **slot = r[j].fusion ? &u->fin[found] : &u->ad[found];
        if (*slot)
            return af_errf(e,
                           "%s and %s both fuse %s '%s' (%s): an adapter or fusion sits under "
                           "one fusion only",
                           *slot, path, what, r[j].name,
                           r[j].fusion ? m->fin[found].path : m->ad[found].path);
        *slot = path;
        in[j] = r[j].fusion ? FUSION_TREE_NODE(found) : found;
    }
    return 0;
}

static void free_fin(model_fin *f) {
    free(f->name), free(f->label), free(f->path), free(f->in), free(f->fmem), free(f->fw);
}

void model_tree_free(af_model *m) {
    for (int k = 0; k < m->nfin; k++) free_fin(&m->fin[k]);
    free(m->fin), free(m->root_in), free(m->trees), free(m->tnodes);
    m->fin = NULL, m->root_in = NULL, m->trees = NULL, m->tnodes = NULL;
    m->nfin = m->nroot = 0;
}

/* Orders the fusion inputs so that each comes after those it reads (their indices in every
 * in[] renumbered); -1 on a cycle. order[k]: the old index of the k-th. */
static int topo_order(af_model *m, af_err *e) {
    int n = m->nfin, *order = af_malloc(n * sizeof(int)), *placed = af_calloc(n, sizeof(int));
    int *newidx = af_malloc(n * sizeof(int)), done = 0;
    while (done < n) {
        int progress = 0;
        for (int k = 0; k < n; k++) {
            if (placed[k]) continue;
            int ready = 1;
            for (int j = 0; j < m->fin[k].fcfg.N && ready; j++)
                if (m->fin[k].in[j] < 0) ready = placed[-1 - m->fin[k].in[j]];
            if (!ready) continue;
            placed[k] = 1, newidx[k] = done, order[done++] = k, progress = 1;
        }
        if (!progress) {
            int k = 0;
            while (placed[k]) k++;
            free(order), free(placed), free(newidx);
            return af_errf(e, "%s: a cycle: the fusion is, through its inputs, under itself",
                           m->fin[k].path);
        }
    }
    model_fin *fin = af_malloc(n * sizeof *fin);
    for (int k = 0; k < n; k++) fin[k] = m->fin[order[k]];
    for (int k = 0; k < n; k++)
        for (int j = 0; j < fin[k].fcfg.N; j++)
            if (fin[k].in[j] < 0) fin[k].in[j] = FUSION_TREE_NODE(newidx[-1 - fin[k].in[j]]);
    free(m->fin);
    m->fin = fin;
    free(order), free(placed), free(newidx);
    return 0;
}

/* Marks the adapters under fusion input k. */
static void leaves_under(const af_model *m, int k, char *mark) {
    for (int j = 0; j < m->fin[k].fcfg.N; j++) {
        int v = m->fin[k].in[j];
        if (v >= 0)
            mark[v] = 1;
        else
            leaves_under(m, -1 - v, mark);
    }
}

typedef struct {
    int pos, v;
} posv;

static int cmp_pos(const void *a, const void *b) {
    return ((const posv *)a)->pos - ((const posv *)b)->pos;
}

/* One fusion file: checked against the base and the architecture, its inputs recorded. */
static int open_fin(af_model *m, st_file *f, model_fin *fin, rec_input **r, cJSON **keep,
                    af_err *e) {
    const char *path = fin->path, *fmt = st_meta_get(f, "format"), *name = st_meta_get(f, "name");
    if (!fmt || strcmp(fmt, MODEL_FORMAT_FUSION))
        return af_errf(e, "%s: not an af fusion file (metadata format is %s, %s expected)", path,
                       fmt ? fmt : "missing", MODEL_FORMAT_FUSION);
    if (!name) return af_errf(e, "%s: metadata 'name' missing", path);
    if (model_int_check_base(m, f, e)) return -1;
    int tree = st_meta_get(f, "tree") != NULL;
    if (!(keep[0] = model_int_meta_json(f, "config", e)) ||
        !(keep[1] = model_int_meta_json(f, tree ? "tree" : "adapters", e)))
        return -1;
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(keep[0], "arch");
    if (!cJSON_IsString(arch) || site_arch_parse(arch->valuestring) != m->arch)
        return af_errf(e, "%s: a fusion of %s adapters, but the adapters here are %s", path,
                       cJSON_IsString(arch) ? arch->valuestring : "unknown",
                       site_arch_name(m->arch));
    int n = rec_inputs(r, keep[1], tree, path, e);
    if (n < 0) return -1;
    fin->name = af_strdup(name);
    fin->label = af_malloc(strlen(name) + 3);
    sprintf(fin->label, "(%s)", name);
    return model_int_read_fusion_config(keep[0], path, m->H, n, &fin->fcfg, &fin->temperature, e);
}

int model_load_fusion_inputs(af_model *m, const char **paths, int n, const int *pos_adapter,
                             const int *pos_fin, af_err *e) {
    if (m->nfin) return af_errf(e, "model: fusion inputs are already loaded");
    if (m->fused) return af_errf(e, "model: fusion inputs come before the fusion");
    if (n < 1) return 0;
    if (m->arch == SITE_NONE) return af_errf(e, "%s: head-only adapters cannot be fused", paths[0]);
    st_file *f = af_calloc(n, sizeof *f);
    rec_input **r = af_calloc(n, sizeof *r);
    cJSON **keep = af_calloc(2 * (size_t)n, sizeof *keep);
    m->fin = af_calloc(n, sizeof *m->fin);
    users u = {af_calloc(m->N ? m->N : 1, sizeof(char *)), af_calloc(n, sizeof(char *))};
    int rc = 0, nopen = 0;
    for (int k = 0; k < n && !rc; k++) {
        model_fin *fin = &m->fin[k];
        fin->path = af_strdup(paths[k]);
        m->nfin = k + 1;
        if (st_open(&f[k], paths[k], e)) {
            rc = -1;
            break;
        }
        nopen = k + 1;
        if (open_fin(m, &f[k], fin, &r[k], keep + 2 * k, e) ||
            af_sha256_file(paths[k], fin->sha256, e))
            rc = -1;
        for (int j = 0; j < k && !rc; j++)
            if (!strcmp(m->fin[j].sha256, fin->sha256))
                rc = af_errf(e, "%s and %s are the same fusion (sha256 %.12s…)", paths[j], paths[k],
                             fin->sha256);
    }
    for (int k = 0; k < n && !rc; k++) {
        m->fin[k].in = af_calloc(m->fin[k].fcfg.N, sizeof(int));
        rc = resolve(m, m->fin[k].in, r[k], m->fin[k].fcfg.N, paths[k], &u, e);
    }
    if (!rc) rc = topo_order(m, e);
    /* a fusion input left out of layers (--drop-layers) has no output there: the fusion above
     * leaves them out too, as it does an adapter's (model_leave_out) */
    for (int k = 0; k < n && !rc; k++) {
        uint64_t lo = 0;
        if (model_int_leave_out_meta(&f[k], keep[2 * k], m->L, &lo, e) || model_leave_out(m, lo, e))
            rc = -1;
    }
    /* the parameters of each, site by site as the model's own fusion */
    int nsites = model_int_site_rank(m, 2 * m->L);
    for (int k = 0; k < n && !rc; k++) {
        model_fin *fin = &m->fin[k];
        size_t per = fusion_nparams(&fin->fcfg);
        fin->fmem = af_calloc(per * nsites + 1, sizeof(float));
        fin->fw = af_calloc(2 * m->L, sizeof(fusion));
        for (int p = 0; p < 2 * m->L; p++)
            if (model_int_site_on(m, p))
                fusion_carve(&fin->fw[p], &fin->fcfg, fin->fmem + per * model_int_site_rank(m, p));
        int at = 0; /* its file, now that the order changed */
        while (strcmp(paths[at], fin->path)) at++;
        rc = model_int_load_fusion_tensors(m, &f[at], &fin->fcfg, fin->name, fin->fmem, e);
        /* trained with --unfreeze-adapters: it carries every adapter under it; the fusions
         * above it (later in the order) override it, as they trained from its weights */
        const char *cfgs = st_meta_get(&f[at], "config");
        cJSON *cfg = cfgs ? cJSON_Parse(cfgs) : NULL;
        const cJSON *upd = cJSON_GetObjectItemCaseSensitive(cfg, "adapters_updated");
        if (!rc && cJSON_IsNumber(upd) && upd->valueint) {
            char *mark = af_calloc(m->N ? m->N : 1, 1);
            leaves_under(m, k, mark);
            for (int i = 0; i < m->N && !rc; i++)
                if (mark[i]) rc = model_int_load_adapter_tensors(m, &f[at], i, e);
            free(mark);
        }
        cJSON_Delete(cfg);
    }
    /* the new fusion's inputs: what no fusion input reads, in command-line order */
    if (!rc) {
        posv *pv = af_malloc((m->N + n) * sizeof *pv);
        int c = 0;
        for (int i = 0; i < m->N; i++)
            if (!u.ad[i]) pv[c++] = (posv){pos_adapter ? pos_adapter[i] : i, i};
        for (int k = 0; k < n; k++) {
            int used = 0;
            for (int q = 0; q < n; q++)
                for (int j = 0; j < m->fin[q].fcfg.N; j++) used |= m->fin[q].in[j] == -1 - k;
            if (used) continue;
            int at = 0;
            while (strcmp(paths[at], m->fin[k].path)) at++;
            pv[c++] = (posv){pos_fin ? pos_fin[at] : m->N + at, FUSION_TREE_NODE(k)};
        }
        qsort(pv, c, sizeof *pv, cmp_pos);
        m->nroot = c;
        m->root_in = af_malloc((c ? c : 1) * sizeof(int));
        for (int j = 0; j < c; j++) m->root_in[j] = pv[j].v;
        free(pv);
    }
    for (int k = 0; k < nopen; k++) st_close(&f[k]);
    for (int k = 0; k < 2 * n; k++) cJSON_Delete(keep[k]);
    for (int k = 0; k < n; k++) free(r[k]);
    free(f), free(r), free(keep), free(u.ad), free(u.fin);
    if (rc) model_tree_free(m);
    return rc;
}

void model_tree_build(af_model *m) {
    free(m->trees), free(m->tnodes);
    m->trees = af_calloc(2 * m->L, sizeof *m->trees);
    m->tnodes = af_calloc((size_t)2 * m->L * m->nfin, sizeof *m->tnodes);
    for (int p = 0; p < 2 * m->L; p++) {
        if (!model_int_site_on(m, p)) continue;
        fusion_tree_node *nd = &m->tnodes[(size_t)p * m->nfin];
        for (int k = 0; k < m->nfin; k++)
            nd[k] = (fusion_tree_node){&m->fin[k].fw[p], m->fin[k].temperature, m->fin[k].in};
        m->trees[p] = (fusion_tree){m->nfin, nd, m->root_in, m->N};
    }
}

int model_tree_root(af_model *m, const st_file *f, af_err *e) {
    const char *path = f->path;
    if (!st_meta_get(f, "tree"))
        return af_errf(e, "%s fuses adapters only: --fusion-input %s is not under it", path,
                       m->fin[0].path);
    cJSON *t = model_int_meta_json(f, "tree", e);
    if (!t) return -1;
    rec_input *r = NULL;
    int n = rec_inputs(&r, t, 1, path, e), rc = n < 0 ? -1 : 0;
    users u = {af_calloc(m->N ? m->N : 1, sizeof(char *)),
               af_calloc(m->nfin ? m->nfin : 1, sizeof(char *))};
    /* what the fusion inputs read is taken already */
    for (int k = 0; k < m->nfin; k++)
        for (int j = 0; j < m->fin[k].fcfg.N; j++) {
            int v = m->fin[k].in[j];
            if (v >= 0)
                u.ad[v] = m->fin[k].path;
            else
                u.fin[-1 - v] = m->fin[k].path;
        }
    int *in = af_calloc(n > 0 ? n : 1, sizeof(int));
    if (!rc) rc = resolve(m, in, r, n, path, &u, e);
    for (int k = 0; k < m->nfin && !rc; k++)
        if (!u.fin[k])
            rc = af_errf(e, "--fusion-input %s: not under %s (it fuses %s)", m->fin[k].path, path,
                         st_meta_get(f, "name"));
    for (int i = 0; i < m->N && !rc; i++)
        if (!u.ad[i])
            rc = af_errf(e, "--adapter %s: adapter '%s' is not under %s", m->ad[i].path,
                         m->ad[i].name, path);
    if (!rc) {
        free(m->root_in);
        m->root_in = in, m->nroot = n, in = NULL;
    }
    free(in), free(r), free(u.ad), free(u.fin);
    cJSON_Delete(t);
    return rc;
}

static const char *base_name(const char *path) {
    const char *s = path ? strrchr(path, '/') : NULL;
    return s ? s + 1 : path;
}

/* The record of inputs in[n], recursively. */
static cJSON *tree_json(const af_model *m, const int *in, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int j = 0; j < n; j++) {
        cJSON *o = cJSON_CreateObject();
        int v = in[j];
        if (v >= 0) {
            cJSON_AddStringToObject(o, "adapter", m->ad[v].name);
            cJSON_AddStringToObject(o, "sha256", m->ad[v].sha256);
            if (m->ad[v].path) cJSON_AddStringToObject(o, "file", base_name(m->ad[v].path));
        } else {
            const model_fin *f = &m->fin[-1 - v];
            cJSON_AddStringToObject(o, "fusion", f->name);
            cJSON_AddStringToObject(o, "sha256", f->sha256);
            cJSON_AddStringToObject(o, "file", base_name(f->path));
            cJSON_AddStringToObject(o, "method", fusion_method_name(f->fcfg.method));
            cJSON_AddItemToObject(o, "inputs", tree_json(m, f->in, f->fcfg.N));
        }
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

char *model_tree_json(const af_model *m) {
    cJSON *t = tree_json(m, m->root_in, m->nroot);
    char *s = cJSON_PrintUnformatted(t);
    cJSON_Delete(t);
    return s;
}
