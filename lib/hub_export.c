/* hub_export.c: af adapter and fusion files -> AdapterHub directories; see hub.h. What is
 * written is what AdapterHub 3.2.1's save_* write and its load_* need, nothing af-specific:
 * every field of the config (its loader compares configs), model_class (its head loader refuses
 * a head without one), the weight file's zip entries under the file's stem. With safetensors, the
 * layout of the `adapters` library 1.2.0 (HUB_ADAPTERS_VERSION) instead: its config fields and
 * version, weights as its safetensors.torch.save_file writes them (no metadata, tensors by
 * name). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hub.h"
#include "model.h"
#include "torchfile.h"

typedef struct {
    st_file f;
    cJSON *cfg, *heads, *hub;
    const char *name;
    char model_type[32]; /* the base's, as recorded (default: hub_base_model_type) */
    int H, L, arch;
    uint64_t leave_out; /* config.leave_out: bit l, layer l holds no adapter and no fusion */
} af_file;

static void af_file_close(af_file *a) {
    cJSON_Delete(a->cfg);
    cJSON_Delete(a->heads);
    cJSON_Delete(a->hub);
    st_close(&a->f);
}

static cJSON *meta(const af_file *a, const char *key, int required, af_err *e) {
    const char *v = st_meta_get(&a->f, key);
    if (!v) {
        if (required) af_errf(e, "%s: metadata '%s' missing", a->f.path, key);
        return NULL;
    }
    cJSON *j = cJSON_Parse(v);
    if (!j) af_errf(e, "%s: metadata '%s' is not JSON", a->f.path, key);
    return j;
}

static int num(const cJSON *o, const char *k, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : dflt;
}

static int af_file_open(af_file *a, const char *path, const char *format, af_err *e) {
    memset(a, 0, sizeof *a);
    if (st_open(&a->f, path, e)) return -1;
    const char *fmt = st_meta_get(&a->f, "format");
    if (!fmt || strcmp(fmt, format))
        return af_errf(e, "%s: metadata format is %s, %s expected", path, fmt ? fmt : "missing",
                       format);
    a->name = st_meta_get(&a->f, "name");
    if (!a->name) return af_errf(e, "%s: metadata 'name' missing", path);
    if (!(a->cfg = meta(a, "config", 1, e)) || !(a->heads = meta(a, "heads", 1, e))) return -1;
    a->hub = meta(a, "hub", 0, e);
    cJSON *base = meta(a, "base", 1, e);
    if (!base) return -1;
    const cJSON *bc = cJSON_GetObjectItemCaseSensitive(base, "config");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(bc, "model_type");
    snprintf(a->model_type, sizeof a->model_type, "%s",
             cJSON_IsString(mt) && hub_model_type_known(mt->valuestring)
                 ? mt->valuestring
                 : hub_base_model_type(NULL));
    a->H = num(bc, "hidden_size", 0);
    a->L = num(bc, "num_hidden_layers", 0);
    cJSON_Delete(base);
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(a->cfg, "arch");
    a->arch = cJSON_IsString(arch) ? site_arch_parse(arch->valuestring) : -1;
    if (a->H < 1 || a->L < 1 || a->L > 64)
        return af_errf(e, "%s: metadata 'base' lacks hidden_size or num_hidden_layers", path);
    if (a->arch != SITE_PFEIFFER && a->arch != SITE_HOULSBY)
        return af_errf(e,
                       "%s: config.arch is not pfeiffer or houlsby: AdapterHub has nothing "
                       "to load",
                       path);
    const cJSON *lo = cJSON_GetObjectItemCaseSensitive(a->cfg, "leave_out"), *it;
    cJSON_ArrayForEach(it, lo) {
        if (!cJSON_IsNumber(it) || it->valueint < 0 || it->valueint >= a->L)
            return af_errf(e, "%s: config.leave_out: layers 0 to %d expected", path, a->L - 1);
        a->leave_out |= 1ull << it->valueint;
    }
    return 0;
}

/* A tensor of the af file as float32, into a buffer the writer references until freed. */
typedef struct {
    float **bufs;
    int n;
} pool;

static float *load(pool *p, const af_file *a, const char *name, int64_t numel, af_err *e) {
    const st_tensor *t = st_find(&a->f, name);
    if (!t) {
        af_errf(e, "%s: tensor %s missing", a->f.path, name);
        return NULL;
    }
    float *b = af_malloc((size_t)(numel ? numel : 1) * sizeof(float));
    p->bufs = af_realloc(p->bufs, (p->n + 1) * sizeof *p->bufs);
    p->bufs[p->n++] = b;
    if (st_to_f32(t, b, numel, e)) {
        af_err_prefix(e, "%s", a->f.path);
        return NULL;
    }
    return b;
}

static void pool_free(pool *p) {
    for (int i = 0; i < p->n; i++) free(p->bufs[i]);
    free(p->bufs);
}

static int make_dir(const char *dir, af_err *e) {
    if (mkdir(dir, 0777) && errno != EEXIST) return af_errf(e, "%s: %s", dir, strerror(errno));
    return 0;
}

static char *path_in(const char *dir, const char *file) {
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = af_malloc(n);
    snprintf(p, n, "%s/%s", dir, file);
    return p;
}

static int by_name(const void *x, const void *y) {
    return strcmp(((const struct st_wtensor *)x)->name, ((const struct st_wtensor *)y)->name);
}

/* The weights as DIR/STEM.bin (entries under STEM/) or DIR/ST_NAME. */
static int write_weights(st_writer *w, const char *dir, const char *stem, const char *st_name,
                         int safetensors, af_err *e) {
    char bin[256];
    snprintf(bin, sizeof bin, "%s.bin", stem);
    char *p = path_in(dir, safetensors ? st_name : bin);
    int rc;
    if (safetensors) {
        /* save_file(state_dict, path): no metadata; its header lists tensors by dtype, then
         * name (safetensors' prepare), and all of these are F32 */
        qsort(w->t, (size_t)w->n, sizeof *w->t, by_name);
        rc = st_writer_write(w, p, e);
    } else {
        rc = pt_write(w, p, stem, e);
    }
    free(p);
    return rc;
}

/* build_full_config's fields (both libraries; st: the `adapters` library's version string). */
static cJSON *header(const af_file *a, const char *name, cJSON *config, int st) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "config", config);
    cJSON_AddNumberToObject(j, "hidden_size", a->H);
    cJSON_AddStringToObject(j, "model_class", hub_model_class(a->model_type));
    cJSON_AddNullToObject(j, "model_name");
    cJSON_AddStringToObject(j, "model_type", a->model_type);
    cJSON_AddStringToObject(j, "name", name);
    cJSON_AddStringToObject(j, "version", st ? "adapters." HUB_ADAPTERS_VERSION : HUB_VERSION);
    return j;
}

static int write_json_in(const char *dir, const char *file, cJSON *j, af_err *e) {
    char *p = path_in(dir, file);
    int rc = hub_write_json(p, j, e);
    free(p);
    cJSON_Delete(j);
    return rc;
}

/* The head the export takes: --head, or the file's only one (NULL: none). */
static const cJSON *pick_head(const af_file *a, const char *want, af_err *e, int *rc) {
    *rc = 0;
    int n = cJSON_GetArraySize(a->heads);
    if (want) {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(a->heads, want);
        if (!h) *rc = af_errf(e, "%s: no head '%s'", a->f.path, want);
        return h;
    }
    if (n > 1) {
        *rc = af_errf(e,
                      "%s: %d heads, and an AdapterHub directory holds one: pick one with "
                      "--head",
                      a->f.path, n);
        return NULL;
    }
    return n ? cJSON_GetArrayItem(a->heads, 0) : NULL;
}

/* An af file's "heads" entry (model.c writes them): its kind and label list (NULL: regression). */
static int head_kind_of(const cJSON *h, const cJSON **labels) {
    *labels = cJSON_IsArray(h) ? h : NULL;
    if (cJSON_IsString(h)) return HEAD_REGRESSION;
    if (!cJSON_IsObject(h)) return HEAD_CLASSIFICATION;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(h, "kind");
    int kind = cJSON_IsString(k) ? head_kind_parse(k->valuestring) : -1;
    *labels = kind == HEAD_REGRESSION ? NULL : cJSON_GetObjectItemCaseSensitive(h, "labels");
    return kind;
}

static int export_head(const af_file *a, const cJSON *h, const char *dir, int st, af_err *e) {
    const cJSON *names;
    int kind = head_kind_of(h, &names), H = a->H;
    int L = kind == HEAD_REGRESSION ? 1 : cJSON_GetArraySize(names);
    const char *task = h->string;
    if (kind < 0 || (kind != HEAD_REGRESSION && !cJSON_IsArray(names)))
        return af_errf(e, "%s: metadata heads.%s: not a head af knows", a->f.path, task);
    cJSON *c = cJSON_CreateObject(), *l2i;
    cJSON_AddStringToObject(c, "activation_function", "tanh");
    cJSON_AddTrueToObject(c, "bias");
    /* the adapters library adds the head's dropout (null: the base's, as af's) */
    if (st) cJSON_AddNullToObject(c, "dropout_prob");
    cJSON_AddStringToObject(
        c, "head_type", kind == HEAD_MULTILABEL ? "multilabel_classification" : "classification");
    l2i = cJSON_AddObjectToObject(c, "label2id");
    for (int i = 0; i < L; i++) {
        const cJSON *s = names ? cJSON_GetArrayItem(names, i) : NULL;
        char b[32];
        snprintf(b, sizeof b, "LABEL_%d", i);
        cJSON_AddNumberToObject(l2i, cJSON_IsString(s) ? s->valuestring : b, i);
    }
    cJSON_AddNumberToObject(c, "layers", 2);
    cJSON_AddNumberToObject(c, "num_labels", L);
    cJSON_AddFalseToObject(c, "use_pooler");
    pool p = {0};
    st_writer w;
    st_writer_init(&w);
    static const char *const parts[4] = {"1.weight", "1.bias", "4.weight", "4.bias"};
    int64_t shape[4][2] = {{H, H}, {H, 0}, {L, H}, {L, 0}};
    int rc = 0;
    for (int k = 0; k < 4 && !rc; k++) {
        char n[600];
        snprintf(n, sizeof n, "heads.%s.%s", task, parts[k]);
        int nd = shape[k][1] ? 2 : 1;
        float *b = load(&p, a, n, shape[k][0] * (nd == 2 ? shape[k][1] : 1), e);
        if (!b)
            rc = -1;
        else
            st_writer_add(&w, n, ST_F32, nd, shape[k], b);
    }
    if (!rc) rc = write_weights(&w, dir, "pytorch_model_head", "model_head.safetensors", st, e);
    st_writer_free(&w);
    pool_free(&p);
    if (!rc) return write_json_in(dir, "head_config.json", header(a, task, c, st), e);
    cJSON_Delete(c);
    return rc;
}

/* AdapterHub 3.2.1's complete AdapterConfig for an af adapter, in the order it writes (sorted);
 * st: the `adapters` library 1.2.0's BnConfig, which adds dropout, init_weights_seed and
 * stochastic_depth. */
static cJSON *adapter_config(const af_file *a, int act_ok, const char *act, cJSON *rf,
                             cJSON *leave_out, int st) {
    int ho = a->arch == SITE_HOULSBY;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddFalseToObject(c, "adapter_residual_before_ln");
    cJSON_AddFalseToObject(c, "cross_adapter");
    if (st) cJSON_AddRawToObject(c, "dropout", "0.0");
    cJSON_AddTrueToObject(c, "factorized_phm_W");
    cJSON_AddFalseToObject(c, "factorized_phm_rule");
    cJSON_AddStringToObject(c, "hypercomplex_nonlinearity", "glorot-uniform");
    cJSON_AddStringToObject(c, "init_weights", "bert");
    if (st) cJSON_AddNullToObject(c, "init_weights_seed");
    cJSON_AddNullToObject(c, "inv_adapter");
    cJSON_AddNullToObject(c, "inv_adapter_reduction_factor");
    cJSON_AddFalseToObject(c, "is_parallel");
    cJSON_AddTrueToObject(c, "learn_phm");
    cJSON_AddItemToObject(c, "leave_out", leave_out);
    cJSON_AddFalseToObject(c, "ln_after");
    cJSON_AddFalseToObject(c, "ln_before");
    cJSON_AddBoolToObject(c, "mh_adapter", ho);
    cJSON_AddStringToObject(c, "non_linearity", act_ok ? act : "relu");
    cJSON_AddTrueToObject(c, "original_ln_after");
    cJSON_AddBoolToObject(c, "original_ln_before", !ho);
    cJSON_AddTrueToObject(c, "output_adapter");
    cJSON_AddTrueToObject(c, "phm_bias");
    cJSON_AddStringToObject(c, "phm_c_init", "normal");
    cJSON_AddNumberToObject(c, "phm_dim", 4);
    cJSON_AddNumberToObject(c, "phm_init_range", 0.0001);
    cJSON_AddFalseToObject(c, "phm_layer");
    cJSON_AddNumberToObject(c, "phm_rank", 1);
    cJSON_AddItemToObject(c, "reduction_factor", rf);
    cJSON_AddTrueToObject(c, "residual_before_ln");
    /* a float, "1.0": AdapterHub takes an integer 1 for an unknown scaling type */
    cJSON_AddRawToObject(c, "scaling", "1.0");
    cJSON_AddFalseToObject(c, "shared_W_phm");
    cJSON_AddTrueToObject(c, "shared_phm_rule");
    if (st) cJSON_AddRawToObject(c, "stochastic_depth", "0.0");
    cJSON_AddFalseToObject(c, "use_gating");
    return c;
}

/* A reduction factor that AdapterHub turns back into bottleneck r: int(H // factor) == r. */
static int reduction_factor(int H, int r, double *rf) {
    *rf = (double)H / r;
    return floor(H / *rf) == r;
}

/* leave_out: layers to leave out besides the adapter's own (a fusion's, which has none there) */
static int export_adapter(const char *file, const char *dir, const hub_export_opts *o,
                          int with_head, uint64_t leave_out, af_err *e) {
    af_file a;
    int rc = af_file_open(&a, file, MODEL_FORMAT_ADAPTER, e);
    const cJSON *act = rc ? NULL : cJSON_GetObjectItemCaseSensitive(a.cfg, "non_linearity");
    int R = rc ? 0 : num(a.cfg, "bottleneck", 0), r[64];
    if (!rc && (!cJSON_IsString(act) || R < 1))
        rc = af_errf(e, "%s: config lacks non_linearity or bottleneck", file);
    /* per layer: the bottleneck AdapterHub had (0: left out), from the import's record */
    const cJSON *rec = a.hub ? cJSON_GetObjectItemCaseSensitive(a.hub, "bottlenecks") : NULL;
    for (int l = 0; !rc && l < a.L; l++) {
        const cJSON *b = cJSON_GetArrayItem(rec, l);
        r[l] = cJSON_IsNumber(b) ? b->valueint : R;
        if (r[l] < 0 || r[l] > R) rc = af_errf(e, "%s: metadata 'hub': bad bottlenecks", file);
        if ((a.leave_out | leave_out) >> l & 1) r[l] = 0; /* AdapterHub's leave_out */
    }
    cJSON *rf = NULL, *lo = cJSON_CreateArray();
    if (!rc) {
        const cJSON *orig =
            a.hub ? cJSON_GetObjectItemCaseSensitive(a.hub, "reduction_factor") : NULL;
        double f;
        if (orig)
            rf = cJSON_Duplicate(orig, 1);
        else if (reduction_factor(a.H, R, &f))
            rf = cJSON_CreateNumber(f);
        else
            rc = af_errf(e,
                         "%s: bottleneck %d: no reduction factor of hidden size %d gives it "
                         "back in AdapterHub",
                         file, R, a.H);
        for (int l = 0; l < a.L; l++)
            if (!r[l]) cJSON_AddItemToArray(lo, cJSON_CreateNumber(l));
    }
    if (!rc) rc = make_dir(dir, e);
    pool p = {0};
    st_writer w;
    st_writer_init(&w);
    int H = a.H;
    for (int l = 0; l < a.L && !rc; l++)
        for (int s = 0; s < BERT_NSITES && !rc; s++) {
            if (!(model_site_mask(a.arch) >> s & 1) || !r[l]) continue;
            char n[4][600];
            static const char *const parts[4] = {"adapter_down.0.weight", "adapter_down.0.bias",
                                                 "adapter_up.weight", "adapter_up.bias"};
            for (int k = 0; k < 4; k++)
                hub_tensor_name(n[k], sizeof n[k], a.model_type, 0, l, s, a.name, parts[k]);
            float *dw = load(&p, &a, n[0], (int64_t)R * H, e),
                  *db = dw ? load(&p, &a, n[1], R, e) : NULL,
                  *uw = db ? load(&p, &a, n[2], (int64_t)H * R, e) : NULL,
                  *ub = uw ? load(&p, &a, n[3], H, e) : NULL;
            if (!ub) {
                rc = -1;
                break;
            }
            /* the first r[l] rows of down and columns of up: the rest is the import's padding */
            for (int i = 0; i < H && r[l] < R; i++)
                memmove(uw + (size_t)i * r[l], uw + (size_t)i * R, r[l] * sizeof(float));
            st_writer_add(&w, n[0], ST_F32, 2, (int64_t[]){r[l], H}, dw);
            st_writer_add(&w, n[1], ST_F32, 1, (int64_t[]){r[l]}, db);
            st_writer_add(&w, n[2], ST_F32, 2, (int64_t[]){H, r[l]}, uw);
            st_writer_add(&w, n[3], ST_F32, 1, (int64_t[]){H}, ub);
        }
    if (!rc)
        rc = write_weights(&w, dir, "pytorch_adapter", "adapter.safetensors", o->safetensors, e);
    st_writer_free(&w);
    pool_free(&p);
    if (!rc) {
        cJSON *c = adapter_config(&a, 1, act->valuestring, rf, lo, o->safetensors);
        rf = lo = NULL;
        rc = write_json_in(dir, "adapter_config.json", header(&a, a.name, c, o->safetensors), e);
    }
    cJSON_Delete(rf);
    cJSON_Delete(lo);
    const cJSON *h = NULL;
    if (!rc && with_head && (h = pick_head(&a, o->head, e, &rc)) && !rc)
        rc = export_head(&a, h, dir, o->safetensors, e);
    af_file_close(&a);
    return rc;
}

static int export_fusion(const char *file, const char **adapters, int n, const char *outdir,
                         const hub_export_opts *o, af_err *e) {
    af_file a;
    int rc = af_file_open(&a, file, MODEL_FORMAT_FUSION, e);
    const cJSON *m = rc ? NULL : cJSON_GetObjectItemCaseSensitive(a.cfg, "method"),
                *T = rc ? NULL : cJSON_GetObjectItemCaseSensitive(a.cfg, "temperature");
    int attention = cJSON_IsString(m) && !strcmp(m->valuestring, "attention");
    /* AdapterHub's Fuse composes adapters only: no fusion sits under another */
    if (!rc && st_meta_get(&a.f, "tree"))
        rc = af_errf(e,
                     "%s: a hierarchical fusion (a fusion over fusions, %s): AdapterHub fuses "
                     "adapters only and has no such thing; export its fusions over adapters "
                     "one by one",
                     file, a.name);
    if (!rc && !attention && !(cJSON_IsString(m) && !strcmp(m->valuestring, "static")))
        rc = af_errf(e, "%s: a %s fusion: AdapterHub computes attention and static fusion only",
                     file, cJSON_IsString(m) ? m->valuestring : "?");
    if (!rc && num(a.cfg, "adapters_updated", 0))
        rc = af_errf(e,
                     "%s: the fusion retrained its adapters (--unfreeze-adapters), which "
                     "export does not write yet",
                     file);
    float invT = cJSON_IsNumber(T) && T->valuedouble > 0 ? (float)(1.0 / T->valuedouble) : 1.0f;
    /* the adapter files given must be the ones the fusion was trained with */
    cJSON *ads = rc ? NULL : meta(&a, "adapters", 1, e);
    if (!rc && !ads) rc = -1;
    if (!rc && n && cJSON_GetArraySize(ads) != n)
        rc = af_errf(e, "%s: fuses %d adapters, %d given", file, cJSON_GetArraySize(ads), n);
    for (int i = 0; i < n && !rc; i++) {
        const cJSON *x = cJSON_GetArrayItem(ads, i);
        const cJSON *sha = cJSON_GetObjectItemCaseSensitive(x, "sha256");
        char got[65];
        if (af_sha256_file(adapters[i], got, e))
            rc = -1;
        else if (!cJSON_IsString(sha) || strcmp(sha->valuestring, got))
            rc = af_errf(e, "%s: adapter %d of the fusion is not %s (sha256 differs)", file, i + 1,
                         adapters[i]);
    }
    if (!rc) rc = make_dir(outdir, e);
    char *fdir = path_in(outdir, "fusion");
    if (!rc) rc = make_dir(fdir, e);
    pool p = {0};
    st_writer w;
    st_writer_init(&w);
    int H = a.H;
    static const char *const parts[5] = {"query.weight", "query.bias", "key.weight", "key.bias",
                                         "value.weight"};
    for (int l = 0; l < a.L && !rc; l++)
        for (int s = 0; s < BERT_NSITES && !rc; s++) {
            /* no fusion where it left its adapters out (AdapterHub's then goes unused) */
            if (!(model_site_mask(a.arch) >> s & 1) || (a.leave_out >> l & 1)) continue;
            for (int k = 0; k < (attention ? 5 : 4) && !rc; k++) {
                char nm[600];
                hub_tensor_name(nm, sizeof nm, a.model_type, 1, l, s, a.name, parts[k]);
                int mat = k % 2 == 0;
                float *b = load(&p, &a, nm, mat ? (int64_t)H * H : H, e);
                if (!b) {
                    rc = -1;
                    break;
                }
                /* AdapterHub's inference softmax has T = 1: fold af's T into the query */
                if (k < 2 && invT != 1.0f)
                    for (int64_t i = 0; i < (mat ? (int64_t)H * H : H); i++) b[i] *= invT;
                st_writer_add(&w, nm, ST_F32, mat ? 2 : 1, (int64_t[]){H, H}, b);
            }
        }
    if (!rc)
        rc = write_weights(&w, fdir, "pytorch_model_adapter_fusion",
                           "model_adapter_fusion.safetensors", o->safetensors, e);
    st_writer_free(&w);
    pool_free(&p);
    if (!rc) {
        cJSON *c = cJSON_CreateObject();
        if (o->safetensors) cJSON_AddNullToObject(c, "dropout_prob"); /* the adapters library's */
        cJSON_AddTrueToObject(c, "key");
        cJSON_AddTrueToObject(c, "query");
        cJSON_AddFalseToObject(c, "query_before_ln");
        cJSON_AddBoolToObject(c, "regularization", attention);
        cJSON_AddFalseToObject(c, "residual_before");
        cJSON_AddFalseToObject(c, "temperature");
        cJSON_AddBoolToObject(c, "value", attention);
        cJSON_AddBoolToObject(c, "value_before_softmax", 1);
        cJSON_AddBoolToObject(c, "value_initialized", attention);
        cJSON *hj = header(&a, a.name, c, o->safetensors);
        if (o->safetensors) { /* build_full_config(..., adapter_names=...) */
            cJSON *an = cJSON_CreateArray();
            for (int i = 0; i < cJSON_GetArraySize(ads); i++) {
                const cJSON *x =
                    cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ads, i), "name");
                cJSON_AddItemToArray(an,
                                     cJSON_CreateString(cJSON_IsString(x) ? x->valuestring : ""));
            }
            /* first: the library's json.dump sorts the keys */
            cJSON_AddItemToObject(hj, "adapter_names", an);
            cJSON_InsertItemInArray(hj, 0, cJSON_DetachItemViaPointer(hj, an));
        }
        rc = write_json_in(fdir, "adapter_fusion_config.json", hj, e);
    }
    const cJSON *h = NULL;
    if (!rc && (h = pick_head(&a, o->head, e, &rc)) && !rc)
        rc = export_head(&a, h, fdir, o->safetensors, e);
    for (int i = 0; i < n && !rc; i++) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ads, i), "name");
        char *d = path_in(outdir, cJSON_IsString(nm) ? nm->valuestring : "adapter");
        hub_export_opts ao = {o->safetensors, NULL};
        if (!strcmp(d, fdir))
            rc = af_errf(e, "%s: an adapter named 'fusion' would overwrite the fusion", file);
        /* the adapters' own heads are theirs, not the fusion's: left out */
        else
            rc = export_adapter(adapters[i], d, &ao, 0, a.leave_out, e);
        free(d);
    }
    free(fdir);
    cJSON_Delete(ads);
    af_file_close(&a);
    return rc;
}

int hub_export(const char *file, const char **adapters, int n, const char *outdir,
               const hub_export_opts *o, af_err *e) {
    st_file f;
    if (st_open(&f, file, e)) return -1;
    const char *fmt = st_meta_get(&f, "format");
    int fusion = fmt && !strcmp(fmt, MODEL_FORMAT_FUSION);
    st_close(&f);
    if (fusion) return export_fusion(file, adapters, n, outdir, o, e);
    if (n) return af_errf(e, "%s: an adapter file: --adapter belongs to fusion exports", file);
    return export_adapter(file, outdir, o, 1, 0, e);
}
