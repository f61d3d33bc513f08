/* model.c: base + adapters + fusion + heads; see model.h. */
#include "model.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layercache.h"
#include "model_int.h"
#include "ops.h"

/* Tensor names are AdapterHub's for the base's architecture (arch.h). */
static const af_arch *model_arch(const af_model *m) {
    return arch_get(m->base->cfg.arch);
}

int model_site_mask(int arch) {
    if (arch == SITE_NONE) return 0;
    return arch == SITE_HOULSBY ? (1 << BERT_SITE_ATTN) | (1 << BERT_SITE_OUT)
                                : (1 << BERT_SITE_OUT);
}

static int site_has(const af_model *m, int s) {
    return m->N > 0 && (model_site_mask(m->arch) >> s & 1);
}

int model_left_out(const af_model *m, int l) {
    return l >= 0 && l < 64 && (m->leave_out >> l & 1);
}

/* Site p = 2l + s holds adapters (and fusion): its kind, in a layer not left out. */
static int site_on(const af_model *m, int p) {
    return site_has(m, p % 2) && !model_left_out(m, p / 2);
}

/* Sites holding adapters are laid out one after the other: how many come before site p. */
static int site_rank(const af_model *m, int p) {
    int k = 0;
    for (int q = 0; q < p; q++) k += site_on(m, q);
    return k;
}

int model_frozen_layers(const af_model *m) {
    int p = 0;
    while (p < 2 * m->L && !site_on(m, p)) p++;
    return p / 2;
}

void model_init(af_model *m, bert *base) {
    memset(m, 0, sizeof *m);
    m->base = base;
    m->L = base->cfg.layers;
    m->H = base->cfg.hidden;
    m->dropout = bert_head_dropout(&base->cfg);
    m->train_heads = 1;
}

static void free_head(model_head *h) {
    free(h->name);
    if (h->labels)
        for (int j = 0; j < h->L; j++) free(h->labels[j]);
    free(h->labels);
    free(h->mem);
    free(h->grad);
}

void model_free(af_model *m) {
    for (int i = 0; i < m->N; i++) free(m->ad[i].name), free(m->ad[i].path);
    free(m->ad);
    free(m->amem), free(m->agrad), free(m->aw), free(m->ag);
    free(m->fusion_name);
    free(m->fmem), free(m->fgrad), free(m->fw), free(m->fg);
    model_tree_free(m);
    for (int i = 0; i < m->nheads; i++) free_head(&m->heads[i]);
    free(m->heads);
    for (int i = 0; i < m->nparams; i++) free(m->params[i].name);
    free(m->params);
    free(m->sites), free(m->sc);
    af_arena_free(&m->arena);
    memset(m, 0, sizeof *m);
}

/* Allocates the adapter stacks for m->N adapters with bottlenecks r[] and activations act[]. */
static void alloc_adapters(af_model *m) {
    int N = m->N, *r = af_malloc(N * sizeof(int)), *act = af_malloc(N * sizeof(int));
    size_t per = 0;
    for (int i = 0; i < N; i++) {
        r[i] = m->ad[i].r, act[i] = m->ad[i].act;
        per += adapter_nparams(m->H, r[i]);
    }
    m->an = per * site_rank(m, 2 * m->L);
    m->amem = af_calloc(m->an ? m->an : 1, sizeof(float));
    m->aw = af_calloc((size_t)2 * m->L * N, sizeof(adapter));
    m->ag = af_calloc((size_t)2 * m->L * N, sizeof(adapter));
    float *p = m->amem;
    for (int q = 0; q < 2 * m->L; q++)
        if (site_on(m, q)) {
            adapter_stack_carve(&m->aw[(size_t)q * N], N, p, m->H, r, act);
            p += per;
        }
    free(r), free(act);
}

/* Adapter and task names become parts of tensor names ("...adapters.NAME.adapter_up.weight",
 * "heads.NAME.1.weight") and a fusion's name joins its adapters' with commas, as AdapterHub's
 * does: a '.' or ',' in a name would make two different models write the same tensor names
 * ("a" + "b,c" and "a,b" + "c"). */
int model_name_check(const char *what, const char *name, const char *where, af_err *e) {
    size_t n = strlen(name);
    int good = n > 0 && n <= 128 && name[0] != '-';
    for (size_t i = 0; good && i < n; i++)
        good = isalnum((unsigned char)name[i]) || name[i] == '_' || name[i] == '-';
    if (good) return 0;
    return af_errf(e,
                   "%s%s%s name \"%.160s\": 1 to 128 letters, digits, '_' or '-' expected (not "
                   "starting with '-'; '.' and ',' separate the parts of tensor names)",
                   where ? where : "", where ? ": " : "", what, name);
}

/* A head's labels: names a user reads back from af-infer, one per class, so none empty, none
 * twice, and no control characters (a tab would break the tables af prints). */
static int check_labels(const char *task, char **labels, int L, af_err *e) {
    for (int j = 0; j < L; j++) {
        if (!labels[j][0]) return af_errf(e, "task '%s': label %d is empty", task, j + 1);
        for (const unsigned char *c = (const unsigned char *)labels[j]; *c; c++)
            if (*c < 0x20 || *c == 0x7f)
                return af_errf(e, "task '%s': label %d holds a control character", task, j + 1);
        for (int k = 0; k < j; k++)
            if (!strcmp(labels[j], labels[k]))
                return af_errf(e, "task '%s': label '%s' is given twice", task, labels[j]);
    }
    return 0;
}

int model_new_adapter(af_model *m, const char *name, const adapter_spec *spec, uint64_t seed,
                      af_err *e) {
    if (m->N) return af_errf(e, "model: an adapter is already loaded");
    if (model_name_check("adapter", name, NULL, e)) return -1;
    int r = spec->bottleneck > 0 ? spec->bottleneck
                                 : (spec->reduction > 0 ? m->H / spec->reduction : 0);
    if (spec->arch == SITE_NONE) r = 0; /* a head alone */
    else if (r < 1 || r > m->H)
        return af_errf(e, "bottleneck size %d is not in [1, hidden size %d]", r, m->H);
    m->arch = spec->arch;
    m->N = 1;
    m->ad = af_calloc(1, sizeof *m->ad);
    m->ad[0] = (model_adapter){af_strdup(name), NULL, "", r, spec->act, m->leave_out};
    alloc_adapters(m);
    af_rng rng;
    af_rng_seed(&rng, seed);
    for (int p = 0; p < 2 * m->L; p++)
        if (site_on(m, p)) adapter_init(&m->aw[p], &rng);
    return 0;
}

/* ---- metadata helpers ---- */

static cJSON *meta_json(const st_file *f, const char *key, af_err *e) {
    const char *v = st_meta_get(f, key);
    if (!v) {
        af_errf(e, "%s: metadata '%s' missing", f->path, key);
        return NULL;
    }
    cJSON *j = cJSON_Parse(v);
    if (!j) af_errf(e, "%s: metadata '%s' is not JSON", f->path, key);
    return j;
}

static int check_base(const af_model *m, const st_file *f, af_err *e) {
    cJSON *b = meta_json(f, "base", e);
    if (!b) return -1;
    const cJSON *fp = cJSON_GetObjectItemCaseSensitive(b, "fingerprint");
    /* Files from before the architectures were told apart are BERT's. */
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(b, "config"), "model_type");
    int arch = cJSON_IsString(mt) ? arch_find(mt->valuestring) : ARCH_BERT, rc = 0;
    const af_arch *here = model_arch(m);
    if (!cJSON_IsString(fp))
        rc = af_errf(e, "%s: metadata 'base' has no fingerprint", f->path);
    else if (arch != m->base->cfg.arch)
        rc = af_errf(e, "%s: trained on a %s base, but %s is a %s base (model_type %s)", f->path,
                     arch >= 0 ? arch_get(arch)->display : mt->valuestring,
                     m->base->dir ? m->base->dir : "this base", here->display, here->model_type);
    else if (strcmp(fp->valuestring, m->base->fingerprint))
        rc = af_errf(e,
                     "%s: trained on a different base (fingerprint %.12s…), not on %s "
                     "(fingerprint %.12s…)",
                     f->path, fp->valuestring, m->base->dir ? m->base->dir : "this base",
                     m->base->fingerprint);
    cJSON_Delete(b);
    return rc;
}

static int json_int(const cJSON *o, const char *k, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : dflt;
}

static const char *json_str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The layers a file's config leaves without adapters ("leave_out", AdapterHub's key and meaning:
 * layer numbers from 0), into *mask. An adapter imported from AdapterHub records its left-out
 * layers as bottleneck 0 in its "hub" metadata (hub_import.c) and holds zeros there: those are
 * left out too, which computes the same and skips the work. */
static int leave_out_meta(const st_file *f, const cJSON *cfg, int L, uint64_t *mask, af_err *e) {
    const cJSON *lo = cJSON_GetObjectItemCaseSensitive(cfg, "leave_out"), *it;
    if (lo && !cJSON_IsArray(lo))
        return af_errf(e, "%s: config.leave_out: a list of layers expected", f->path);
    cJSON_ArrayForEach(it, lo) {
        double d = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (!(d >= 0 && d < L && d < 64 && d == (int)d))
            return af_errf(e, "%s: config.leave_out: layers 0 to %d expected, %s found", f->path,
                           L - 1, cJSON_IsNumber(it) ? "another number" : "something else");
        *mask |= 1ull << (int)d;
    }
    const char *hub = st_meta_get(f, "hub");
    cJSON *h = hub ? cJSON_Parse(hub) : NULL;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(h, "bottlenecks");
    for (int l = 0; l < L && l < 64 && cJSON_IsArray(b); l++) {
        const cJSON *r = cJSON_GetArrayItem(b, l);
        if (cJSON_IsNumber(r) && r->valueint == 0) *mask |= 1ull << l;
    }
    cJSON_Delete(h);
    return 0;
}

/* A fusion file's config values, checked as af-fuse checks its options: a file edited by hand
 * must not run with a value the command line would have refused (a temperature of 0 or "abc"
 * was once read as 1, and 1e-40 made every probability NaN). Absent keys take the defaults of
 * files written before the key existed. */
static int fusion_meta_check(const cJSON *cfg, const char *path, af_err *e) {
    static const struct {
        const char *key;
        double lo, hi;
        int integer;
    } nums[] = {{"temperature", 1e-3, 1e6, 0},
                {"heads", 1, 4096, 1},
                {"fixed_weights", 0, 1, 1},
                {"adapters_updated", 0, 1, 1},
                {"dropout", 0, 0.99, 0}};
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, nums[i].key);
        if (!v) continue;
        double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        if (!(d >= nums[i].lo && d <= nums[i].hi) || (nums[i].integer && d != floor(d))) {
            char *txt = cJSON_PrintUnformatted(v);
            af_errf(e, "%s: config.%s: %s in [%g, %g] expected, %s found", path, nums[i].key,
                    nums[i].integer ? "an integer" : "a number", nums[i].lo, nums[i].hi,
                    txt ? txt : "?");
            free(txt);
            return -1;
        }
    }
    const cJSON *gate = cJSON_GetObjectItemCaseSensitive(cfg, "gate");
    if (gate && !(cJSON_IsString(gate) &&
                  (!strcmp(gate->valuestring, "sigmoid") || !strcmp(gate->valuestring, "softmax"))))
        return af_errf(e, "%s: config.gate: \"sigmoid\" or \"softmax\" expected", path);
    const cJSON *an = cJSON_GetObjectItemCaseSensitive(cfg, "temperature_anneal");
    if (an && !cJSON_IsBool(an))
        return af_errf(e, "%s: config.temperature_anneal: true or false expected", path);
    return 0;
}

/* Reads an adapter's name and shape from a file's metadata. */
static int adapter_meta(const st_file *f, model_adapter *a, int *arch, uint64_t *leave_out, int L,
                        af_err *e) {
    const char *fmt = st_meta_get(f, "format");
    /* A fusion file has no adapter config: say what it is rather than what it lacks. */
    if (fmt && !strcmp(fmt, MODEL_FORMAT_FUSION))
        return af_errf(e, "%s: a fusion file (%s), not an adapter file (%s expected)", f->path,
                       fmt, MODEL_FORMAT_ADAPTER);
    if (!fmt || strcmp(fmt, MODEL_FORMAT_ADAPTER))
        return af_errf(e, "%s: not an af adapter file (metadata format is %s, %s expected)",
                       f->path, fmt ? fmt : "missing", MODEL_FORMAT_ADAPTER);
    cJSON *c = meta_json(f, "config", e);
    if (!c) return -1;
    const char *name = st_meta_get(f, "name"), *archs = json_str(c, "arch"),
               *acts = json_str(c, "non_linearity");
    int r = json_int(c, "bottleneck", 0), rc = 0;
    if (!name) rc = af_errf(e, "%s: metadata 'name' missing", f->path);
    else if (model_name_check("adapter", name, f->path, e))
        rc = -1;
    else if (!archs || site_arch_parse(archs) < 0)
        rc = af_errf(e, "%s: config.arch missing or unknown", f->path);
    else if (!acts || act_parse(acts) < 0)
        rc = af_errf(e, "%s: config.non_linearity missing or unknown", f->path);
    else if (r < 1 && site_arch_parse(archs) != SITE_NONE)
        rc = af_errf(e, "%s: config.bottleneck missing", f->path);
    else
        rc = leave_out_meta(f, c, L, leave_out, e);
    if (!rc) {
        a->name = af_strdup(name);
        a->r = r;
        a->act = act_parse(acts);
        *arch = site_arch_parse(archs);
    }
    cJSON_Delete(c);
    return rc;
}

/* Copies one F32/F16/BF16 tensor of the expected shape. */
static int copy_tensor(const st_file *f, const char *name, float *dst, int ndim,
                       const int64_t *shape, af_err *e) {
    const st_tensor *t = st_find(f, name);
    if (!t) return af_errf(e, "%s: tensor %s missing", f->path, name);
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
    if (!ok) {
        char want[64], got[64];
        int n = 0;
        for (int d = 0; d < ndim; d++)
            n += snprintf(want + n, sizeof want - n, "%s%lld", d ? ", " : "", (long long)shape[d]);
        n = 0;
        got[0] = 0;
        for (int d = 0; d < t->ndim && n < (int)sizeof got; d++)
            n += snprintf(got + n, sizeof got - n, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        return af_errf(e, "%s: %s: shape [%s] expected, [%s] found", f->path, name, want, got);
    }
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= shape[d];
    if (st_to_f32(t, dst, numel, e)) return af_err_prefix(e, "%s: %s", f->path, name);
    return 0;
}

static int load_adapter_tensors(af_model *m, const st_file *f, int i, af_err *e) {
    for (int l = 0; l < m->L; l++)
        for (int s = 0; s < BERT_NSITES; s++) {
            if (!site_on(m, 2 * l + s)) continue;
            adapter *a = &m->aw[(size_t)(2 * l + s) * m->N + i];
            float *dst[ADAPTER_NPARAMS] = {a->down_w, a->down_b, a->up_w, a->up_b};
            param_desc pd[ADAPTER_NPARAMS];
            adapter_params(pd, m->H, a->r);
            for (int k = 0; k < ADAPTER_NPARAMS; k++) {
                char name[512];
                arch_adapter_name(name, sizeof name, model_arch(m), l, s, m->ad[i].name,
                                  pd[k].name);
                if (copy_tensor(f, name, dst[k], pd[k].ndim, pd[k].shape, e)) return -1;
            }
        }
    return 0;
}

int model_load_adapters(af_model *m, const char **paths, int N, af_err *e) {
    if (m->N) return af_errf(e, "model: adapters are already loaded");
    if (N < 1) return af_errf(e, "no adapter given");
    st_file *f = af_calloc(N, sizeof *f);
    m->ad = af_calloc(N, sizeof *m->ad);
    int rc = 0, arch0 = -1;
    for (int i = 0; i < N && !rc; i++) {
        int arch = -1;
        /* fused adapters left out of different layers: the fusion exists only where all of
         * them are (af-fuse(1)) */
        if (st_open(&f[i], paths[i], e) ||
            adapter_meta(&f[i], &m->ad[i], &arch, &m->ad[i].leave_out, m->L, e) ||
            check_base(m, &f[i], e) || af_sha256_file(paths[i], m->ad[i].sha256, e)) {
            rc = -1;
            break;
        }
        m->ad[i].path = af_strdup(paths[i]);
        m->leave_out |= m->ad[i].leave_out;
        m->N = i + 1;
        if (i == 0) arch0 = arch;
        else if (arch != arch0)
            rc = af_errf(e, "%s: a %s adapter, but %s is %s: fused adapters must share the "
                            "architecture",
                         paths[i], site_arch_name(arch), paths[0], site_arch_name(arch0));
        for (int j = 0; j < i && !rc; j++)
            if (!strcmp(m->ad[j].name, m->ad[i].name))
                rc = af_errf(e, "%s and %s both hold an adapter named '%s'", paths[j], paths[i],
                             m->ad[i].name);
    }
    if (!rc) m->arch = arch0;
    if (!rc && arch0 != SITE_NONE && model_frozen_layers(m) == m->L)
        rc = af_errf(e, "%s: leave_out leaves no layer with adapters%s", paths[N - 1],
                     N > 1 ? " that all the adapters share" : "");
    if (!rc) {
        m->arch = arch0;
        alloc_adapters(m);
        for (int i = 0; i < N && !rc; i++) rc = load_adapter_tensors(m, &f[i], i, e);
        /* One adapter alone brings its heads; fused adapters' heads are not the target's. */
        if (!rc && N == 1) rc = model_load_heads(m, &f[0], e);
    }
    for (int i = 0; i < N; i++) st_close(&f[i]);
    free(f);
    return rc;
}

int model_leave_out(af_model *m, uint64_t mask, af_err *e) {
    uint64_t old = m->leave_out;
    if (m->fused || m->params) return af_errf(e, "model: layers are left out before fusion");
    m->leave_out |= mask;
    if (m->N && m->arch != SITE_NONE && model_frozen_layers(m) == m->L) {
        m->leave_out = old;
        return af_errf(e, "leaving out layers %s leaves no layer with adapters",
                       model_leave_out_str(mask | old, m->L));
    }
    if (!m->N || m->leave_out == old) return 0;
    /* the adapters already read: their stacks laid out again without the sites left out */
    float *amem = m->amem;
    adapter *aw = m->aw, *ag = m->ag;
    size_t per = 0;
    for (int i = 0; i < m->N; i++) per += adapter_nparams(m->H, m->ad[i].r);
    alloc_adapters(m);
    for (int p = 0; p < 2 * m->L; p++)
        if (site_on(m, p))
            memcpy(m->aw[(size_t)p * m->N].down_w, aw[(size_t)p * m->N].down_w,
                   per * sizeof(float));
    free(amem), free(aw), free(ag);
    return 0;
}

const char *model_leave_out_str(uint64_t mask, int L) {
    static _Thread_local char buf[64 * 4];
    int n = 0, l = 0;
    buf[0] = 0;
    while (l < L && l < 64) {
        if (!(mask >> l & 1)) {
            l++;
            continue;
        }
        int k = l;
        while (k + 1 < L && k + 1 < 64 && (mask >> (k + 1) & 1)) k++;
        n += snprintf(buf + n, sizeof buf - n, n ? ",%d" : "%d", l);
        if (k > l) n += snprintf(buf + n, sizeof buf - n, "-%d", k);
        l = k + 1;
    }
    return buf;
}

/* AdapterHub's key: the inputs' names joined with commas ("(A,B),C" over a fusion). */
static char *join_names(const af_model *m) {
    int n = m->nfin ? m->nroot : m->N;
    size_t len = 1;
    for (int i = 0; i < n; i++) len += strlen(model_input_name(m, i)) + 1;
    char *s = af_malloc(len);
    s[0] = 0;
    for (int i = 0; i < n; i++) {
        if (i) strcat(s, ",");
        strcat(s, model_input_name(m, i));
    }
    return s;
}

static const char *label(const af_model *m, int v) {
    return v >= 0 ? m->ad[v].name : m->fin[-1 - v].label;
}

const char *model_input_name(const af_model *m, int j) {
    return m->nfin ? label(m, m->root_in[j]) : m->ad[j].name;
}

const char *model_fin_input_name(const af_model *m, int k, int j) {
    return label(m, m->fin[k].in[j]);
}

static void alloc_fusion(af_model *m, const fusion_config *cfg) {
    m->fcfg = *cfg;
    m->fcfg.N = m->nfin ? m->nroot : m->N;
    m->fcfg.H = m->H;
    m->fused = 1;
    m->fusion_name = join_names(m);
    size_t per = fusion_nparams(&m->fcfg);
    m->fn = per * site_rank(m, 2 * m->L);
    m->fmem = af_calloc(m->fn ? m->fn : 1, sizeof(float));
    m->fw = af_calloc(2 * m->L, sizeof(fusion));
    m->fg = af_calloc(2 * m->L, sizeof(fusion));
    float *p = m->fmem;
    for (int q = 0; q < 2 * m->L; q++)
        if (site_on(m, q)) {
            fusion_carve(&m->fw[q], &m->fcfg, p);
            p += per;
        }
    if (m->nfin) model_tree_build(m);
}

int model_new_fusion(af_model *m, const fusion_config *cfg, int anneal, uint64_t seed, af_err *e) {
    if (m->nfin && m->nroot < 2)
        return af_errf(e,
                       "fusion needs at least 2 inputs, %d found (%d adapters and %d fusions, "
                       "the rest under them)",
                       m->nroot, m->N, m->nfin);
    if (m->N < 2 && !m->nfin) return af_errf(e, "fusion needs at least 2 adapters, %d given", m->N);
    if (m->arch == SITE_NONE)
        return af_errf(e, "%s holds no adapter (a head alone): nothing to fuse", m->ad[0].path);
    fusion_config c = *cfg;
    c.N = m->nfin ? m->nroot : m->N, c.H = m->H;
    if (fusion_config_check(&c, e)) return -1;
    alloc_fusion(m, &c);
    m->anneal = anneal;
    af_rng rng;
    af_rng_seed(&rng, seed);
    for (int p = 0; p < 2 * m->L; p++)
        if (site_on(m, p)) fusion_init(&m->fw[p], &rng);
    return 0;
}

/* A fusion file's method and options (config), checked for N inputs of size H; T: the
 * temperature it records. */
static int read_fusion_config(const cJSON *cfg, const char *path, int H, int N, fusion_config *fc,
                              float *T, af_err *e) {
    if (fusion_meta_check(cfg, path, e)) return -1;
    memset(fc, 0, sizeof *fc);
    const char *method = json_str(cfg, "method");
    fc->method = method ? fusion_method_parse(method) : -1;
    if (fc->method < 0) return af_errf(e, "%s: config.method missing or unknown", path);
    if (fusion_config_from_json(fc, cfg, e)) return af_err_prefix(e, "%s", path);
    const cJSON *temp = cJSON_GetObjectItemCaseSensitive(cfg, "temperature");
    *T = cJSON_IsNumber(temp) ? (float)temp->valuedouble : 1.0f;
    fc->N = N, fc->H = H;
    if (fusion_config_check(fc, e)) return af_err_prefix(e, "%s", path);
    return 0;
}

/* Copies the fusion tensors named `key` at every site into mem (fusion_nparams per site). */
static int load_fusion_tensors(af_model *m, const st_file *f, const fusion_config *fc,
                               const char *key, float *mem, af_err *e) {
    param_desc pd[fusion_param_count(fc)];
    int np = fusion_params(pd, fc), rc = 0;
    for (int l = 0; l < m->L && !rc; l++)
        for (int s = 0; s < BERT_NSITES && !rc; s++) {
            if (!site_on(m, 2 * l + s)) continue;
            float *base = mem + fusion_nparams(fc) * site_rank(m, 2 * l + s);
            for (int j = 0; j < np && !rc; j++) {
                char name[512];
                arch_fusion_name(name, sizeof name, model_arch(m), l, s, key, pd[j].name);
                rc = copy_tensor(f, name, base + pd[j].offset, pd[j].ndim, pd[j].shape, e);
            }
        }
    return rc;
}

/* The record lists the adapters in fusion order, each with the sha256 of its file. */
static int check_adapter_record(const af_model *m, const cJSON *ads, const char *path, af_err *e) {
    if (!cJSON_IsArray(ads) || cJSON_GetArraySize(ads) != m->N)
        return af_errf(e, "%s: fuses %d adapters, %d given", path,
                       cJSON_IsArray(ads) ? cJSON_GetArraySize(ads) : 0, m->N);
    for (int i = 0; i < m->N; i++) {
        const cJSON *a = cJSON_GetArrayItem(ads, i);
        const char *name = json_str(a, "name"), *sha = json_str(a, "sha256");
        if (!name || !sha)
            return af_errf(e, "%s: metadata 'adapters' entry %d lacks name or sha256", path, i);
        if (strcmp(name, m->ad[i].name))
            return af_errf(e, "%s: adapter %d must be '%s', but %s holds '%s'", path, i + 1, name,
                           m->ad[i].path, m->ad[i].name);
        if (strcmp(sha, m->ad[i].sha256))
            return af_errf(e,
                           "%s: adapter '%s': %s has sha256 %.12s…, but the fusion was trained "
                           "with a file of sha256 %.12s…",
                           path, name, m->ad[i].path, m->ad[i].sha256, sha);
    }
    return 0;
}

int model_load_fusion(af_model *m, const char *path, af_err *e) {
    if (m->N + m->nfin < 2)
        return af_errf(e, "%s: a fusion needs its adapters (at least 2) given first", path);
    st_file f;
    if (st_open(&f, path, e)) return -1;
    int rc = 0;
    cJSON *cfg = NULL, *ads = NULL;
    const char *fmt = st_meta_get(&f, "format");
    fusion_config fc;
    float T;
    uint64_t lo = 0;
    if (!fmt || strcmp(fmt, MODEL_FORMAT_FUSION))
        rc = af_errf(e, "%s: not an af fusion file (metadata format is %s, %s expected)", path,
                     fmt ? fmt : "missing", MODEL_FORMAT_FUSION);
    else if (check_base(m, &f, e) || !(cfg = meta_json(&f, "config", e)) ||
             !(ads = meta_json(&f, "adapters", e)))
        rc = -1;
    else if (check_adapter_record(m, ads, path, e))
        rc = -1;
    /* a hierarchical file: its tree names its inputs among the adapters and fusion inputs */
    else if (st_meta_get(&f, "tree") || m->nfin)
        rc = model_tree_root(m, &f, e);
    if (!rc && (read_fusion_config(cfg, path, m->H, m->nfin ? m->nroot : m->N, &fc, &T, e) ||
                leave_out_meta(&f, cfg, m->L, &lo, e) || model_leave_out(m, lo, e)))
        rc = -1;
    if (!rc) {
        m->temperature = T;
        alloc_fusion(m, &fc);
        rc = load_fusion_tensors(m, &f, &m->fcfg, m->fusion_name, m->fmem, e);
    }
    /* Adapters trained along with the fusion (--unfreeze-adapters) travel in the fusion file. */
    if (!rc && json_int(cfg, "adapters_updated", 0))
        for (int i = 0; i < m->N && !rc; i++) rc = load_adapter_tensors(m, &f, i, e);
    if (!rc) rc = model_load_heads(m, &f, e);
    cJSON_Delete(cfg);
    cJSON_Delete(ads);
    st_close(&f);
    return rc;
}

/* ---- heads ---- */

int model_head_index(const af_model *m, const char *task) {
    for (int i = 0; i < m->nheads; i++)
        if (!task || !strcmp(m->heads[i].name, task)) return i;
    return -1;
}

int model_add_head(af_model *m, const char *task, int kind, int L, char **labels, uint64_t seed,
                   af_err *e) {
    if (model_head_index(m, task) >= 0 && m->nheads)
        if (!strcmp(m->heads[model_head_index(m, task)].name, task))
            return af_errf(e, "a head for task '%s' already exists", task);
    if (model_name_check("task", task, NULL, e)) return -1;
    if (kind == HEAD_REGRESSION) L = 1;
    if (kind == HEAD_CLASSIFICATION && L < 2)
        return af_errf(e, "task '%s': %d labels; a classification head needs at least 2", task, L);
    if (kind == HEAD_MULTILABEL && L < 1)
        return af_errf(e, "task '%s': a multi-label head needs at least 1 label", task);
    if (kind != HEAD_REGRESSION && check_labels(task, labels, L, e)) return -1;
    m->heads = af_realloc(m->heads, (m->nheads + 1) * sizeof *m->heads);
    model_head *h = &m->heads[m->nheads++];
    memset(h, 0, sizeof *h);
    h->name = af_strdup(task);
    h->L = L;
    h->kind = kind;
    if (kind != HEAD_REGRESSION) {
        h->labels = af_calloc(L, sizeof(char *));
        for (int j = 0; j < L; j++) h->labels[j] = af_strdup(labels[j]);
    }
    h->mem = af_calloc(head_nparams(m->H, L), sizeof(float));
    head_carve(&h->w, h->mem, m->H, L, m->dropout);
    af_rng rng;
    af_rng_seed(&rng, seed + 7919 * (uint64_t)m->nheads);
    head_init(&h->w, &rng);
    return 0;
}

/* A head's entry in the "heads" metadata: a list of labels (classification), "regression" (the
 * forms of files written before heads had kinds), or {"kind": KIND, "labels": [...]}. */
static int head_entry(const cJSON *it, int *kind, const cJSON **list) {
    *list = it;
    *kind = HEAD_CLASSIFICATION;
    if (cJSON_IsString(it)) {
        *kind = HEAD_REGRESSION;
        return strcmp(it->valuestring, "regression") ? -1 : 0;
    }
    if (cJSON_IsObject(it)) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(it, "kind");
        *list = cJSON_GetObjectItemCaseSensitive(it, "labels");
        if (!cJSON_IsString(k) || (*kind = head_kind_parse(k->valuestring)) < 0) return -1;
        if (*kind == HEAD_REGRESSION) return 0;
    }
    return cJSON_IsArray(*list) ? 0 : -1;
}

int model_load_heads(af_model *m, const st_file *f, af_err *e) {
    cJSON *hs = meta_json(f, "heads", e);
    if (!hs) return -1;
    int rc = 0;
    if (!cJSON_IsObject(hs)) rc = af_errf(e, "%s: metadata 'heads' is not an object", f->path);
    const cJSON *it;
    cJSON_ArrayForEach(it, hs) {
        if (rc) break;
        int kind;
        const cJSON *list;
        if (head_entry(it, &kind, &list)) {
            rc = af_errf(e,
                         "%s: heads.%s: a list of label names, \"regression\" or {\"kind\": "
                         "classification|regression|multilabel, \"labels\": [...]} expected",
                         f->path, it->string);
            break;
        }
        int L = kind == HEAD_REGRESSION ? 1 : cJSON_GetArraySize(list);
        char **labels = NULL;
        if (kind != HEAD_REGRESSION) {
            labels = af_calloc(L ? L : 1, sizeof(char *));
            for (int j = 0; j < L; j++) {
                const cJSON *s = cJSON_GetArrayItem(list, j);
                labels[j] = cJSON_IsString(s) ? s->valuestring : "";
            }
        }
        if (model_add_head(m, it->string, kind, L, labels, 0, e))
            rc = af_err_prefix(e, "%s", f->path);
        free(labels);
        if (rc) break;
        model_head *h = &m->heads[m->nheads - 1];
        param_desc pd[HEAD_NPARAMS];
        head_params(pd, m->H, h->L);
        for (int k = 0; k < HEAD_NPARAMS && !rc; k++) {
            char name[512];
            arch_head_name(name, sizeof name, h->name, pd[k].name);
            rc = copy_tensor(f, name, h->mem + pd[k].offset, pd[k].ndim, pd[k].shape, e);
        }
    }
    cJSON_Delete(hs);
    return rc;
}

int model_label_id(const model_head *h, int is_int, long ival, const char *sval) {
    if (h->kind == HEAD_REGRESSION) return -1;
    char buf[32];
    if (is_int) snprintf(buf, sizeof buf, "%ld", ival), sval = buf;
    for (int j = 0; j < h->L; j++)
        if (!strcmp(h->labels[j], sval)) return j;
    if (is_int && ival >= 0 && ival < h->L) {
        /* an index, unless the names are themselves integers (then "7" must mean label "7") */
        for (int j = 0; j < h->L; j++) {
            char *end;
            strtol(h->labels[j], &end, 10);
            if (*h->labels[j] && !*end) return -1;
        }
        return (int)ival;
    }
    return -1;
}

/* ---- the parameter table ---- */

static void add_param(af_model *m, const char *name, int group, const param_desc *pd, float *data,
                      float *grad) {
    m->params = af_realloc(m->params, (m->nparams + 1) * sizeof *m->params);
    m->params[m->nparams++] = (model_param){af_strdup(name), group, pd->ndim,
                                            {pd->shape[0], pd->shape[1]}, data, grad, pd->numel,
                                            pd->decay, pd->trainable};
}

void model_finalize(af_model *m) {
    for (int i = 0; i < m->nparams; i++) free(m->params[i].name);
    free(m->params);
    m->params = NULL;
    m->nparams = 0;
    char name[512];
    /* gradients for what trains */
    if (m->train_adapters && m->N) {
        free(m->agrad);
        m->agrad = af_calloc(m->an, sizeof(float));
        int *r = af_malloc(m->N * sizeof(int)), *act = af_malloc(m->N * sizeof(int));
        for (int i = 0; i < m->N; i++) r[i] = m->ad[i].r, act[i] = m->ad[i].act;
        for (int p = 0; p < 2 * m->L; p++)
            if (site_on(m, p))
                adapter_stack_carve(&m->ag[(size_t)p * m->N], m->N,
                                    m->agrad + (m->aw[(size_t)p * m->N].down_w - m->amem), m->H, r,
                                    act);
        free(r), free(act);
    }
    if (m->train_fusion && m->fused) {
        free(m->fgrad);
        m->fgrad = af_calloc(m->fn ? m->fn : 1, sizeof(float));
        for (int p = 0; p < 2 * m->L; p++)
            if (site_on(m, p)) {
                fusion_carve(&m->fg[p], &m->fcfg,
                             m->fgrad + fusion_nparams(&m->fcfg) * site_rank(m, p));
            }
    }
    for (int i = 0; i < m->nheads && m->train_heads; i++) {
        model_head *h = &m->heads[i];
        free(h->grad);
        h->grad = af_calloc(head_nparams(m->H, h->L), sizeof(float));
        head_carve(&h->g, h->grad, m->H, h->L, m->dropout);
    }
    /* the table: adapters, fusion, heads, in the order files list them */
    for (int i = 0; i < m->N; i++)
        for (int l = 0; l < m->L; l++)
            for (int s = 0; s < BERT_NSITES; s++) {
                if (!site_on(m, 2 * l + s)) continue;
                size_t k = (size_t)(2 * l + s) * m->N + i;
                adapter *a = &m->aw[k], *g = m->agrad ? &m->ag[k] : NULL;
                param_desc pd[ADAPTER_NPARAMS];
                adapter_params(pd, m->H, a->r);
                float *d[] = {a->down_w, a->down_b, a->up_w, a->up_b};
                float *gd[] = {g ? g->down_w : NULL, g ? g->down_b : NULL, g ? g->up_w : NULL,
                               g ? g->up_b : NULL};
                for (int j = 0; j < ADAPTER_NPARAMS; j++) {
                    arch_adapter_name(name, sizeof name, model_arch(m), l, s, m->ad[i].name,
                                      pd[j].name);
                    add_param(m, name, PG_ADAPTER, &pd[j], d[j], gd[j]);
                }
            }
    if (m->fused) {
        param_desc pd[fusion_param_count(&m->fcfg)];
        int np = fusion_params(pd, &m->fcfg);
        size_t per = fusion_nparams(&m->fcfg);
        int k = 0;
        for (int l = 0; l < m->L; l++)
            for (int s = 0; s < BERT_NSITES; s++) {
                if (!site_on(m, 2 * l + s)) continue;
                for (int j = 0; j < np; j++) {
                    arch_fusion_name(name, sizeof name, model_arch(m), l, s, m->fusion_name,
                                     pd[j].name);
                    float *d = m->fmem + per * k + pd[j].offset;
                    float *g = m->fgrad ? m->fgrad + per * k + pd[j].offset : NULL;
                    add_param(m, name, PG_FUSION, &pd[j], d, pd[j].trainable ? g : NULL);
                }
                k++;
            }
    }
    for (int i = 0; i < m->nheads; i++) {
        model_head *h = &m->heads[i];
        param_desc pd[HEAD_NPARAMS];
        head_params(pd, m->H, h->L);
        for (int j = 0; j < HEAD_NPARAMS; j++) {
            arch_head_name(name, sizeof name, h->name, pd[j].name);
            add_param(m, name, PG_HEAD, &pd[j], h->mem + pd[j].offset,
                      h->grad ? h->grad + pd[j].offset : NULL);
        }
    }
}

int model_load_params(af_model *m, const st_file *f, int group_mask, int require, af_err *e) {
    for (int i = 0; i < m->nparams; i++) {
        model_param *p = &m->params[i];
        if (!(group_mask >> p->group & 1)) continue;
        if (!st_find(f, p->name)) {
            if (require) return af_errf(e, "%s: tensor %s missing", f->path, p->name);
            continue;
        }
        if (copy_tensor(f, p->name, p->data, p->ndim, p->shape, e)) return -1;
    }
    return 0;
}

/* ---- running ---- */

static int hook_active(void *ctx, int l, int s) {
    af_model *m = ctx;
    return m->sites[2 * l + s].N > 0;
}

static float fusion_T(const af_model *m) {
    /* annealing: the current T serves training and evaluation alike, as in AdapterHub; the
     * file records the T reached, which inference then uses as fixed */
    if (m->anneal) return (float)fusion_temperature(m->fusion_steps);
    return m->temperature > 0 ? m->temperature : 1.0f;
}

static void hook_forward(void *ctx, int l, int s, int slot, float *out, const float *h,
                         const float *r, const float *ln_w, const float *ln_b, float eps, int M) {
    af_model *m = ctx;
    int p = 2 * l + s;
    site_forward(out, &m->sc[(size_t)slot * 2 * m->L + p], &m->sites[p], h, r, ln_w, ln_b, eps, M,
                 fusion_T(m), m->train ? &m->rng : NULL);
}

static void hook_backward(void *ctx, int l, int s, float *dh, float *dr, const float *dout,
                          const float *h, const float *r, const float *ln_w, const float *ln_b,
                          float eps, int M) {
    af_model *m = ctx;
    int p = 2 * l + s, below = 0;
    for (int q = 0; q < p; q++) below |= m->sites[q].N > 0;
    /* the base is frozen: below the lowest site nothing wants a gradient, so that site skips
     * its input gradients (the adapters' and fusion's dx, the LayerNorm before them) */
    if (!below) dh = dr = NULL;
    site_backward(dh, dr, &m->sc[p], &m->sites[p], dout, h, r, ln_w, M);
}

static int max_labels(const af_model *m) {
    int L = 1;
    for (int i = 0; i < m->nheads; i++) L = m->heads[i].L > L ? m->heads[i].L : L;
    return L;
}

/* Every token's fusion weights must outlive an inference forward (model_fusion_weights). */
static int weights_kept(const af_model *m) {
    return m->fused && m->keep_fusion_weights;
}

/* Inference runs a few sequences at a time through each layer (bert_acts_new_lean's groups),
 * unless a fusion's per-token weights must outlive the forward: 0, or how many groups run at once
 * (bert_lean_groups; each has its own site caches). */
static int infer_groups(const af_model *m) {
    return m->train || weights_kept(m) ? 0 : bert_lean_groups(&m->base->cfg, af_threads());
}

/* Rows a site's caches need: in training the last layer runs [CLS] rows only (model_run); a
 * grouped inference calls a site with a group's rows. */
static int site_rows(const af_model *m, int p, int M) {
    if (!m->train) return bert_lean_rows(m->maxB, m->maxS, infer_groups(m));
    return p / 2 == m->L - 1 ? m->maxB : M;
}

/* The arena model_prepare carves, in bytes; fills m->sites (m->maxB, m->train set) and returns
 * the lowest hooked site, the sites' shared scratch (floats) and the encoder's plan flags. */
static size_t arena_bytes(af_model *m, int maxB, int maxS, int train, int *lowest_out,
                          size_t *scratch_out, int *plan_out) {
    free(m->sites), free(m->sc);
    m->maxB = maxB, m->maxS = maxS, m->train = train;
    /* a set of site caches and scratch per group that runs at once */
    m->slots = infer_groups(m) > 1 ? infer_groups(m) : 1;
    m->sites = af_calloc(2 * m->L, sizeof(site));
    m->sc = af_calloc((size_t)m->slots * 2 * m->L, sizeof(site_cache));
    int M = maxB * maxS, H = m->H, Lmax = max_labels(m);
    size_t scratch = 0; /* the sites' backward scratch: they run one at a time, so they share */
    /* Training never changes the base: its activations follow the frozen plan, from the
     * lowest site that holds adapters (none: nothing is kept) */
    int lowest = 2 * m->L;
    for (int p = 2 * m->L - 1; p >= 0; p--)
        if (site_on(m, p)) lowest = p;
    size_t bytes = 64 * 64;
    for (int p = 0; p < 2 * m->L; p++) {
        if (!site_on(m, p)) continue;
        site *s = &m->sites[p];
        s->arch = m->arch;
        s->N = m->N;
        s->adapters = &m->aw[(size_t)p * m->N];
        s->adapter_grads = m->agrad ? &m->ag[(size_t)p * m->N] : NULL;
        s->fusion = m->fused ? &m->fw[p] : NULL;
        s->fusion_grad = m->fused && m->fgrad ? &m->fg[p] : NULL;
        s->tree = m->fused && m->nfin ? &m->trees[p] : NULL;
        bytes += m->slots * (site_cache_floats_shared(s, site_rows(m, p, M)) * sizeof(float) + 64);
        size_t k = site_scratch_floats(s, site_rows(m, p, M));
        scratch = k > scratch ? k : scratch;
    }
    /* training: the sites' scratch lives in the encoder's (bert_acts_hook_scratch) */
    int plan = (site_has(m, BERT_SITE_ATTN) ? BERT_PLAN_ATTN_HOOKS : 0) |
               (m->arch == SITE_PFEIFFER ? BERT_PLAN_SUM_HOOKS : 0);
    bytes += train ? bert_acts_bytes_frozen(&m->base->cfg, maxB, maxS, lowest, 1, scratch, plan)
                   : bert_acts_bytes_lean(&m->base->cfg, maxB, maxS, infer_groups(m)) +
                         m->slots * (scratch * sizeof(float) + 64);
    bytes += ((size_t)M * H + 2 * (size_t)maxB * H + 3 * (size_t)maxB * Lmax + maxB) * 4 +
             2 * maxB * sizeof(int) + head_cache_floats(H, maxB) * 4 + 16 * 64;
    *lowest_out = lowest, *scratch_out = scratch, *plan_out = plan;
    return bytes;
}

size_t model_arena_bytes(af_model *m, int maxB, int maxS, int train) {
    af_arena_free(&m->arena);
    int lowest, plan;
    size_t scratch;
    return arena_bytes(m, maxB, maxS, train, &lowest, &scratch, &plan);
}

int model_pass_rows(af_model *m, int rows, int maxS, size_t budget) {
    int k = 1, r = rows;
    while (r > 1 && model_arena_bytes(m, r, maxS, 1) > budget) k++, r = (rows + k - 1) / k;
    return r;
}

void model_prepare(af_model *m, int maxB, int maxS, int train) {
    af_arena_free(&m->arena);
    int lowest, plan;
    size_t scratch;
    size_t bytes = arena_bytes(m, maxB, maxS, train, &lowest, &scratch, &plan);
    int M = maxB * maxS, H = m->H, Lmax = max_labels(m);
    af_arena_init(&m->arena, bytes);
    m->acts =
        train ? bert_acts_new_frozen(&m->arena, &m->base->cfg, maxB, maxS, lowest, 1, scratch, plan)
              : bert_acts_new_lean(&m->arena, &m->base->cfg, maxB, maxS, infer_groups(m));
    for (int k = 0; k < m->slots; k++) {
        /* not zeroed: sites write their scratch before reading it (in training it is the
         * encoder's backward scratch), and inference never touches the backward's part, so its
         * pages are never made resident */
        float *shared = train ? bert_acts_hook_scratch(m->acts)
                              : af_arena_alloc(&m->arena, scratch * sizeof(float));
        for (int p = 0; p < 2 * m->L; p++)
            if (m->sites[p].N) {
                int R = site_rows(m, p, M);
                float *mem = af_arena_floats(&m->arena, site_cache_floats_shared(&m->sites[p], R));
                site_cache_carve_shared(&m->sc[(size_t)k * 2 * m->L + p], mem, shared, &m->sites[p],
                                        R);
            }
    }
    m->dhidden = train ? af_arena_floats(&m->arena, (size_t)M * H) : NULL;
    m->cls = af_arena_floats(&m->arena, (size_t)maxB * H);
    m->dcls = af_arena_floats(&m->arena, (size_t)maxB * H);
    m->logits = af_arena_floats(&m->arena, (size_t)maxB * Lmax);
    m->probs = af_arena_floats(&m->arena, (size_t)maxB * Lmax);
    m->dlogits = af_arena_floats(&m->arena, (size_t)maxB * Lmax);
    m->gold = af_arena_floats(&m->arena, (size_t)maxB * Lmax);
    m->ilabels = af_arena_alloc(&m->arena, maxB * sizeof(int));
    m->rows = af_arena_alloc(&m->arena, maxB * sizeof(int));
    head_cache_carve(&m->hc, af_arena_floats(&m->arena, head_cache_floats(H, maxB)), H, maxB);
}

/* The encoder's training forward. With K > 0 lowest layers free of adapters it starts at layer
 * K (AdapterDrop): their output, computed without dropout, comes from the layer cache when every
 * row of the pass is in it, and otherwise is computed and the rows not yet in are put in. ex:
 * the rows' examples (NULL: no cache). NULL on failure (m->cache->failed says when it was the
 * cache's). */
static const float *encode(af_model *m, const bert_batch *b, const bert_hooks *hooks, int train,
                           const int *ex) {
    int K = model_frozen_layers(m);
    if (!train || K == 0 || K >= m->L)
        return bert_forward(m->base, m->acts, b, hooks, train, &m->rng);
    layercache *c = ex ? m->cache : NULL;
    int all = c != NULL;
    for (int r = 0; all && r < b->B; r++) all = layercache_has(c, ex[r]);
    float *x = bert_forward_begin(m->base, m->acts, b, K, !all);
    if (!x) return NULL;
    size_t SH = (size_t)b->S * m->H;
    for (int r = 0; c && r < b->B; r++) {
        float *row = x + r * SH;
        if (all) {
            /* padding rows: zeros, finite, and read by nothing that reaches a real token */
            size_t n = (size_t)(c->off[ex[r] + 1] - c->off[ex[r]]);
            memset(row + n, 0, (SH - n) * sizeof(float));
            if (layercache_get(c, ex[r], row)) return NULL;
        } else if (!layercache_has(c, ex[r]) && layercache_put(c, ex[r], row))
            return NULL;
    }
    return bert_forward_end(m->base, m->acts, hooks, train, &m->rng);
}

/* One pass over rows that fit the prepared activations: rows of a batch of Btot, whose loss is
 * the mean over all Btot rows (so this pass's rows weigh 1/Btot each); `last`: the batch's last
 * pass, which adds the fusion regulariser and advances the annealing clock. */
static double model_pass(af_model *m, const bert_batch *b, const int *head_of, const float *gold,
                         int ldg, int train, float *out, int ldo, int Btot, int last,
                         const int *ex) {
    /* Pfeiffer sites read h and r only as h + r (site.h) */
    bert_hooks hooks = {.ctx = m,
                        .active = hook_active,
                        .forward = hook_forward,
                        .backward = hook_backward,
                        .sum_only = m->arch == SITE_PFEIFFER,
                        .slots = m->slots};
    int B = b->B, S = b->S, H = m->H;
    /* The heads read only [CLS]: the last layer need not compute the other tokens, unless
     * someone reads every token's fusion weights (af-infer --fusion-weights). */
    bert_acts_cls_only(m->acts, m->train || !weights_kept(m));
    const float *hid = encode(m, b, &hooks, train, ex);
    if (!hid) return NAN;
    /* training runs [CLS]-only: the encoder's backward reads the first tokens' rows alone */
    for (int r = 0; train && r < B; r++)
        memset(m->dhidden + (size_t)r * S * H, 0, H * sizeof(float));
    double loss = 0;
    /* rows go through their own task's head, gathered into one contiguous block per head */
    for (int hi = 0; hi < m->nheads; hi++) {
        model_head *h = &m->heads[hi];
        int n = 0;
        for (int r = 0; r < B; r++)
            if (head_of[r] == hi) m->rows[n++] = r;
        if (!n) continue;
        for (int k = 0; k < n; k++)
            memcpy(m->cls + (size_t)k * H, hid + (size_t)m->rows[k] * S * H, H * sizeof(float));
        int L = h->L;
        h->w.dropout = h->g.dropout = m->dropout;
        head_forward(m->logits, &m->hc, m->cls, H, &h->w, n, train ? &m->rng : NULL);
        double part = NAN;
        if (h->kind == HEAD_REGRESSION) {
            for (int k = 0; k < n; k++) m->probs[k] = m->logits[k];
            if (gold) {
                for (int k = 0; k < n; k++) m->gold[k] = gold[(size_t)m->rows[k] * ldg];
                part = head_mse_forward(m->logits, m->gold, n);
            }
        } else if (h->kind == HEAD_MULTILABEL) {
            /* a row's gold is its L yes/no targets */
            for (int k = 0; gold && k < n; k++)
                memcpy(m->gold + (size_t)k * L, gold + (size_t)m->rows[k] * ldg, L * sizeof(float));
            if (gold)
                part = head_bce_forward(m->probs, m->logits, m->gold, n, L);
            else
                head_sigmoid_forward(m->probs, m->logits, n, L);
        } else {
            if (gold) {
                for (int k = 0; k < n; k++) m->ilabels[k] = (int)gold[(size_t)m->rows[k] * ldg];
                part = head_ce_forward(m->probs, m->logits, m->ilabels, n, L);
            } else
                softmax_forward(m->probs, m->logits, n, L);
        }
        if (out)
            for (int k = 0; k < n; k++)
                memcpy(out + (size_t)m->rows[k] * ldo, m->probs + (size_t)k * L, L * sizeof(float));
        if (gold) loss += part * n / Btot;
        if (train && gold) {
            /* the batch loss is the mean over all rows: this head's mean weighs n/Btot */
            memset(m->dlogits, 0, (size_t)n * L * sizeof(float));
            if (h->kind == HEAD_REGRESSION)
                head_mse_backward(m->dlogits, m->logits, m->gold, n);
            else if (h->kind == HEAD_MULTILABEL)
                head_bce_backward(m->dlogits, m->probs, m->gold, n, L);
            else
                head_ce_backward(m->dlogits, m->probs, m->ilabels, n, L);
            float scale = (float)n / Btot;
            for (int k = 0; k < n * L; k++) m->dlogits[k] *= scale;
            memset(m->dcls, 0, (size_t)n * H * sizeof(float));
            head_backward(m->dcls, H, h->grad ? &h->g : NULL, &m->hc, m->dlogits, &h->w, n);
            for (int k = 0; k < n; k++)
                vec_add(m->dhidden + (size_t)m->rows[k] * S * H, m->dcls + (size_t)k * H, H);
        }
    }
    if (!gold) loss = NAN;
    if (train && gold) {
        if (last && m->fused && m->fgrad) { /* a method's own loss term (attention's) */
            loss += model_fusion_reg(m);
            for (int p = 0; p < 2 * m->L; p++)
                if (m->sites[p].N) fusion_reg_backward(&m->fg[p], &m->fw[p], 1.0f);
        }
        if (m->N) bert_backward(m->base, m->acts, m->dhidden, &hooks, NULL);
        if (last && m->fused) m->fusion_steps++;
    }
    return loss;
}

double model_run(af_model *m, const bert_batch *b, const int *head_of, const float *gold, int ldg,
                 int train, float *out, int ldo) {
    return model_run_cached(m, b, NULL, head_of, gold, ldg, train, out, ldo);
}

double model_run_cached(af_model *m, const bert_batch *b, const int *ex, const int *head_of,
                        const float *gold, int ldg, int train, float *out, int ldo) {
    train = train && m->train;
    if (b->B <= m->maxB)
        return model_pass(m, b, head_of, gold, ldg, train, out, ldo, b->B, 1, ex);
    /* More rows than the activations were prepared for: passes of maxB rows, whose gradients
     * add up to the batch's (the loss is a mean over rows, each pass weighs its share). */
    double loss = 0;
    size_t S = (size_t)b->S;
    for (int r = 0; r < b->B; r += m->maxB) {
        int n = b->B - r < m->maxB ? b->B - r : m->maxB;
        bert_batch part = {n, b->S, b->ids + r * S, b->type_ids ? b->type_ids + r * S : NULL,
                           b->mask ? b->mask + r * S : NULL};
        loss += model_pass(m, &part, head_of + r, gold ? gold + (size_t)r * ldg : NULL, ldg, train,
                           out ? out + (size_t)r * ldo : NULL, ldo, b->B, r + n == b->B,
                           ex ? ex + r : NULL);
    }
    return loss;
}

double model_fusion_reg(const af_model *m) {
    double r = 0;
    if (!m->fused) return 0;
    for (int p = 0; p < 2 * m->L; p++)
        if (site_on(m, p)) r += fusion_reg_forward(&m->fw[p]);
    return r;
}

const float *model_fusion_weights(const af_model *m, int p) {
    if (!m->fused || !m->sites || !m->sites[p].N || (!m->train && !weights_kept(m))) return NULL;
    return m->sc[p].fc.p;
}

const float *model_fusion_weights_level(const af_model *m, int p, int k) {
    if (k == m->nfin) return model_fusion_weights(m, p);
    if (!m->fused || !m->sites || !m->sites[p].N || k < 0 || k > m->nfin ||
        (!m->train && !weights_kept(m)))
        return NULL;
    return fusion_tree_weights(&m->sc[p].tc, k);
}

/* ---- for model_tree.c (model_int.h) ---- */

int model_int_site_on(const af_model *m, int p) {
    return site_on(m, p);
}
int model_int_site_rank(const af_model *m, int p) {
    return site_rank(m, p);
}
int model_int_check_base(const af_model *m, const st_file *f, af_err *e) {
    return check_base(m, f, e);
}
cJSON *model_int_meta_json(const st_file *f, const char *key, af_err *e) {
    return meta_json(f, key, e);
}
int model_int_read_fusion_config(const cJSON *cfg, const char *path, int H, int N,
                                 fusion_config *fc, float *T, af_err *e) {
    return read_fusion_config(cfg, path, H, N, fc, T, e);
}
int model_int_leave_out_meta(const st_file *f, const cJSON *cfg, int L, uint64_t *mask, af_err *e) {
    return leave_out_meta(f, cfg, L, mask, e);
}
int model_int_load_fusion_tensors(af_model *m, const st_file *f, const fusion_config *fc,
                                  const char *key, float *mem, af_err *e) {
    return load_fusion_tensors(m, f, fc, key, mem, e);
}
int model_int_load_adapter_tensors(af_model *m, const st_file *f, int i, af_err *e) {
    return load_adapter_tensors(m, f, i, e);
}

/* ---- writing ---- */

static char *json_print(cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static void meta_owned(st_writer *w, const char *key, char *value) {
    st_writer_meta(w, key, value);
    free(value);
}

static cJSON *base_json(const af_model *m) {
    const bert_config *c = &m->base->cfg;
    cJSON *b = cJSON_CreateObject(), *cfg = cJSON_AddObjectToObject(b, "config");
    cJSON_AddStringToObject(b, "fingerprint", m->base->fingerprint);
    cJSON_AddStringToObject(cfg, "model_type", model_arch(m)->model_type);
    cJSON_AddNumberToObject(cfg, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(cfg, "hidden_size", c->hidden);
    cJSON_AddNumberToObject(cfg, "num_hidden_layers", c->layers);
    cJSON_AddNumberToObject(cfg, "num_attention_heads", c->heads);
    cJSON_AddNumberToObject(cfg, "intermediate_size", c->ffn);
    cJSON_AddStringToObject(cfg, "hidden_act", act_name(c->act));
    return b;
}

/* config.leave_out: the layers without adapters or fusion, when there are any (AdapterHub's
 * key; files without it have adapters in every layer) */
static void add_leave_out(cJSON *cfg, const af_model *m) {
    if (!m->leave_out) return;
    cJSON *a = cJSON_AddArrayToObject(cfg, "leave_out");
    for (int l = 0; l < m->L; l++)
        if (model_left_out(m, l)) cJSON_AddItemToArray(a, cJSON_CreateNumber(l));
}

void model_writer(af_model *m, st_writer *w, const char *format, int group_mask,
                  const char *training) {
    int fusionf = !strcmp(format, MODEL_FORMAT_FUSION);
    st_writer_meta(w, "format", format);
    st_writer_meta(w, "name", fusionf ? m->fusion_name : m->ad[0].name);
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "arch", site_arch_name(m->arch));
    if (fusionf) {
        cJSON_AddStringToObject(cfg, "method", fusion_method_name(m->fcfg.method));
        fusion_config_to_json(cfg, &m->fcfg); /* the method's own options */
        cJSON_AddBoolToObject(cfg, "temperature_anneal", m->anneal);
        cJSON_AddNumberToObject(cfg, "temperature", fusion_T(m));
        cJSON_AddNumberToObject(cfg, "dropout", m->fcfg.dropout);
        cJSON_AddNumberToObject(cfg, "adapters_updated", (group_mask >> PG_ADAPTER) & 1);
        /* the names of what the weights range over: adapters, and "(A,B)" for a fusion */
        cJSON *names = cJSON_AddArrayToObject(cfg, "adapter_names");
        for (int i = 0; i < m->fcfg.N; i++)
            cJSON_AddItemToArray(names, cJSON_CreateString(model_input_name(m, i)));
        add_leave_out(cfg, m);
    } else {
        cJSON_AddNumberToObject(cfg, "reduction_factor", m->ad[0].r ? (double)m->H / m->ad[0].r : 0);
        cJSON_AddNumberToObject(cfg, "bottleneck", m->ad[0].r);
        cJSON_AddStringToObject(cfg, "non_linearity", act_name(m->ad[0].act));
        cJSON_AddNumberToObject(cfg, "hidden_size", m->H);
        cJSON_AddNumberToObject(cfg, "num_layers", m->L);
        add_leave_out(cfg, m);
    }
    meta_owned(w, "config", json_print(cfg));
    cJSON *heads = cJSON_CreateObject();
    for (int i = 0; i < m->nheads; i++) {
        model_head *h = &m->heads[i];
        /* the two kinds files had before kinds keep their forms, which older readers know */
        if (h->kind == HEAD_REGRESSION) {
            cJSON_AddStringToObject(heads, h->name, "regression");
            continue;
        }
        cJSON *a = cJSON_CreateArray();
        for (int j = 0; j < h->L; j++) cJSON_AddItemToArray(a, cJSON_CreateString(h->labels[j]));
        if (h->kind == HEAD_CLASSIFICATION) {
            cJSON_AddItemToObject(heads, h->name, a);
        } else {
            cJSON *o = cJSON_AddObjectToObject(heads, h->name);
            cJSON_AddStringToObject(o, "kind", head_kind_name(h->kind));
            cJSON_AddItemToObject(o, "labels", a);
        }
    }
    meta_owned(w, "heads", json_print(heads));
    meta_owned(w, "base", json_print(base_json(m)));
    if (fusionf) {
        cJSON *ads = cJSON_CreateArray();
        for (int i = 0; i < m->N; i++) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddStringToObject(a, "name", m->ad[i].name);
            cJSON_AddStringToObject(a, "sha256", m->ad[i].sha256);
            if (m->ad[i].path) {
                const char *slash = strrchr(m->ad[i].path, '/');
                cJSON_AddStringToObject(a, "file", slash ? slash + 1 : m->ad[i].path);
            }
            cJSON_AddItemToArray(ads, a);
        }
        meta_owned(w, "adapters", json_print(ads));
        if (m->nfin) meta_owned(w, "tree", model_tree_json(m));
    }
    if (training) st_writer_meta(w, "training", training);
    st_writer_meta(w, "created_by", "af " AF_VERSION);
    for (int i = 0; i < m->nparams; i++) {
        model_param *p = &m->params[i];
        if (group_mask >> p->group & 1)
            st_writer_add(w, p->name, ST_F32, p->ndim, p->shape, p->data);
    }
}
