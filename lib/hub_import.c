/* hub_import.c: AdapterHub adapter, head and fusion directories -> af files; see hub.h.
 * Field semantics from adapter-transformers 3.2.1 (configuration.py AdapterConfig,
 * AdapterFusionConfig; modeling.py Adapter, BertFusion; heads/base.py ClassificationHead,
 * MultiLabelClassificationHead), and the fields the `adapters` library 1.2.0 adds
 * (configuration/adapter_config.py BnConfig: dropout, init_weights_seed, stochastic_depth;
 * adapter_fusion_config.py: dropout_prob; heads/base.py: dropout_prob; a state dict saved from a
 * model without heads has no architecture prefix). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "hub.h"
#include "model.h"
#include "ops.h"

/* What an AdapterHub bottleneck adapter config says, in af's terms. */
typedef struct {
    int arch, act;
    double scaling;
    uint64_t leave_out; /* bit l: no adapter in layer l */
    double rf[64];      /* reduction factor of layer l */
} hub_adapter;

#define MAXL 64

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* "config.KEY = VALUE" for messages. */
static int refuse(af_err *e, const char *file, const cJSON *it, const char *why) {
    char *v = cJSON_PrintUnformatted(it);
    af_errf(e, "%s: config.%s = %s: %s", file, it->string, v, why);
    free(v);
    return -1;
}

static int want_bool(af_err *e, const char *file, const cJSON *it, int want, const char *why) {
    if (!cJSON_IsBool(it)) return refuse(e, file, it, "true or false expected");
    if (cJSON_IsTrue(it) != want) return refuse(e, file, it, why);
    return 0;
}

/* Reads reduction_factor (a number, or {"LAYER": n, ..., "default": n}) into rf[0..L). */
static int parse_rf(hub_adapter *h, const cJSON *it, int L, const char *file, af_err *e) {
    if (cJSON_IsNumber(it)) {
        if (!(it->valuedouble > 0)) return refuse(e, file, it, "a positive number expected");
        for (int l = 0; l < L; l++) h->rf[l] = it->valuedouble;
        return 0;
    }
    if (!cJSON_IsObject(it)) return refuse(e, file, it, "a number or a map of layers expected");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(it, "default"), *x;
    for (int l = 0; l < L; l++) h->rf[l] = cJSON_IsNumber(d) ? d->valuedouble : 0;
    cJSON_ArrayForEach(x, it) {
        char *end;
        long l = strtol(x->string, &end, 10);
        if (!strcmp(x->string, "default")) continue;
        if (*end || end == x->string || l < 0 || l >= L || !cJSON_IsNumber(x) ||
            !(x->valuedouble > 0))
            return refuse(e, file, it,
                          "keys must be layer numbers of the base (or \"default\"), "
                          "values positive numbers");
        h->rf[l] = x->valuedouble;
    }
    for (int l = 0; l < L; l++)
        if (!(h->rf[l] > 0) && !(h->leave_out >> l & 1))
            return refuse(e, file, it, "a layer without a factor and no \"default\"");
    return 0;
}

/* Every field of AdapterHub's AdapterConfig, honoured or refused by name. */
static int parse_adapter_config(hub_adapter *h, const cJSON *c, int versioned, int L,
                                const char *file, af_err *e) {
    memset(h, 0, sizeof *h);
    h->scaling = 1;
    h->act = -1;
    int mh = -1, out = -1, olb = -1;
    const cJSON *it, *rf = NULL;
    cJSON_ArrayForEach(it, c) {
        const char *k = it->string;
        if (!strcmp(k, "architecture")) {
            if (!cJSON_IsNull(it) &&
                !(cJSON_IsString(it) && !strcmp(it->valuestring, "bottleneck")))
                return refuse(e, file, it,
                              "only bottleneck adapters convert (not LoRA, prefix "
                              "tuning or a union of methods)");
        } else if (!strcmp(k, "mh_adapter") || !strcmp(k, "output_adapter") ||
                   !strcmp(k, "original_ln_before")) {
            if (!cJSON_IsBool(it)) return refuse(e, file, it, "true or false expected");
            int v = cJSON_IsTrue(it);
            if (k[0] == 'm')
                mh = v;
            else if (k[1] == 'u')
                out = v;
            else
                olb = v;
        } else if (!strcmp(k, "original_ln_after")) {
            if (want_bool(e, file, it, 1, "af's adapter sites always end in the layer's LayerNorm"))
                return -1;
        } else if (!strcmp(k, "residual_before_ln")) {
            /* the adapters library also takes "post_add": the residual after the sublayer's */
            if (cJSON_IsString(it))
                return refuse(e, file, it,
                              "af adds the residual taken before the LayerNorm (true), not "
                              "after the previous residual connection");
            if (want_bool(e, file, it, 1, "af adds the residual taken before the LayerNorm"))
                return -1;
        } else if (!strcmp(k, "adapter_residual_before_ln")) {
            if (want_bool(e, file, it, 0, "af does not add the residual inside the adapter"))
                return -1;
        } else if (!strcmp(k, "ln_before") || !strcmp(k, "ln_after")) {
            if (want_bool(e, file, it, 0, "af's adapters have no LayerNorm of their own"))
                return -1;
        } else if (!strcmp(k, "is_parallel")) {
            if (want_bool(e, file, it, 0, "af computes sequential adapters, not parallel ones"))
                return -1;
        } else if (!strcmp(k, "use_gating")) {
            if (want_bool(e, file, it, 0, "af's adapters have no gate")) return -1;
        } else if (!strcmp(k, "cross_adapter")) {
            if (want_bool(e, file, it, 0, "af has no cross-attention")) return -1;
        } else if (!strcmp(k, "phm_layer")) {
            if (want_bool(e, file, it, 0,
                          "af's projections are plain linear layers, not PHM "
                          "(Compacter)"))
                return -1;
        } else if (!strncmp(k, "phm_", 4) || !strcmp(k, "factorized_phm_W") ||
                   !strcmp(k, "shared_W_phm") || !strcmp(k, "shared_phm_rule") ||
                   !strcmp(k, "factorized_phm_rule") || !strcmp(k, "learn_phm") ||
                   !strcmp(k, "hypercomplex_nonlinearity")) {
            /* settings of PHM layers, which phm_layer false (checked above) leaves unused */
        } else if (!strcmp(k, "inv_adapter")) {
            if (!cJSON_IsNull(it))
                return refuse(e, file, it,
                              "invertible adapters change the embeddings' output, "
                              "which af does not compute (the \"+inv\" configs); "
                              "use an adapter without one");
        } else if (!strcmp(k, "invertible_adapter")) {
            /* AdapterHub 1.x's nested form of inv_adapter */
            if (!cJSON_IsNull(it))
                return refuse(e, file, it,
                              "invertible adapters change the embeddings' output, which af does "
                              "not compute; use an adapter without one");
        } else if (!strcmp(k, "inv_adapter_reduction_factor")) {
            /* meaningful only with inv_adapter, refused above when set */
        } else if (!strcmp(k, "init_weights")) {
            if (!cJSON_IsString(it) ||
                (strcmp(it->valuestring, "bert") && strcmp(it->valuestring, "mam_adapter") &&
                 strcmp(it->valuestring, "houlsby")))
                return refuse(e, file, it, "\"bert\", \"mam_adapter\" or \"houlsby\" expected");
            /* how the weights started: trained ones are what the file holds */
        } else if (!strcmp(k, "scaling")) {
            if (!cJSON_IsNumber(it))
                return refuse(e, file, it,
                              "a fixed number expected (a learned scaling is not "
                              "supported)");
            h->scaling = it->valuedouble;
        } else if (!strcmp(k, "init_weights_seed")) {
            /* the `adapters` library's seed of the initial weights: the trained ones are here */
            if (!cJSON_IsNull(it) &&
                !(cJSON_IsNumber(it) && it->valuedouble == floor(it->valuedouble)))
                return refuse(e, file, it, "null or an integer expected");
        } else if (!strcmp(k, "dropout") || !strcmp(k, "stochastic_depth")) {
            if (!cJSON_IsNumber(it)) return refuse(e, file, it, "a number expected");
            /* the `adapters` library's adapter dropout and drop-path: training only */
        } else if (!strcmp(k, "leave_out")) {
            const cJSON *x;
            if (!cJSON_IsArray(it)) return refuse(e, file, it, "a list of layers expected");
            cJSON_ArrayForEach(x, it) {
                if (!cJSON_IsNumber(x) || x->valueint < 0 || x->valueint >= L)
                    return refuse(e, file, it, "layers of the base expected");
                h->leave_out |= 1ull << x->valueint;
            }
        } else if (!strcmp(k, "reduction_factor")) {
            rf = it;
        } else if (!strcmp(k, "non_linearity")) {
            char name[32];
            if (!cJSON_IsString(it) || strlen(it->valuestring) >= sizeof name)
                return refuse(e, file, it, "an activation name expected");
            for (size_t i = 0; i <= strlen(it->valuestring); i++)
                name[i] = (char)(it->valuestring[i] >= 'A' && it->valuestring[i] <= 'Z'
                                     ? it->valuestring[i] + 32
                                     : it->valuestring[i]);
            /* AdapterHub renames the activations of configs saved before it wrote a version
             * (loading.py, ACTIVATION_RENAME): their "gelu" is the tanh form */
            const char *n = name;
            if (!versioned && !strcmp(n, "gelu"))
                n = "gelu_new";
            else if (!versioned && !strcmp(n, "gelu_orig"))
                n = "gelu";
            h->act = act_parse(n);
            if (h->act < 0 || h->act == AF_ACT_SIGMOID)
                return refuse(e, file, it,
                              "af computes relu, gelu, gelu_new, swish (silu) and "
                              "tanh");
        } else {
            return refuse(e, file, it, "a field af does not know");
        }
    }
    if (olb < 0) olb = 0; /* AdapterConfig's default */
    if (mh < 0 || out < 0 || h->act < 0 || !rf)
        return af_errf(e,
                       "%s: config lacks one of mh_adapter, output_adapter, non_linearity, "
                       "reduction_factor",
                       file);
    if (!mh && out && olb)
        h->arch = SITE_PFEIFFER;
    else if (mh && out && !olb)
        h->arch = SITE_HOULSBY;
    else
        return af_errf(e,
                       "%s: config.mh_adapter = %s, output_adapter = %s, original_ln_before = "
                       "%s: af computes Pfeiffer (false, true, true) and Houlsby (true, true, "
                       "false) adapters",
                       file, mh ? "true" : "false", out ? "true" : "false", olb ? "true" : "false");
    if (parse_rf(h, rf, L, file, e)) return -1;
    return 0;
}

/* The header fields of an AdapterHub JSON file. */
static int check_header(const cJSON *j, const char *file, const bert *base, af_err *e) {
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(j, "hidden_size");
    const char *mt = jstr(j, "model_type");
    if (cJSON_IsNumber(hs) && hs->valueint != base->cfg.hidden)
        return af_errf(e, "%s: hidden_size %d, but the base %s has %d", file, hs->valueint,
                       base->dir ? base->dir : "", base->cfg.hidden);
    if (mt && strcmp(mt, hub_base_model_type(base)))
        return af_errf(e, "%s: model_type \"%s\", but the base is \"%s\"", file, mt,
                       hub_base_model_type(base));
    if (!jstr(j, "name")) return af_errf(e, "%s: no \"name\"", file);
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "config")))
        return af_errf(e, "%s: \"config\" is not an object (a config given by name only?)", file);
    return 0;
}

/* A tensor by its name in a model with heads ("bert.encoder..."), or in the state dict of a bare
 * base model that the `adapters` library's adapters.init() equipped, which lacks the
 * architecture's prefix ("encoder...."); heads.* names have no prefix either way. */
static const st_tensor *find(const st_file *f, const char *name) {
    const st_tensor *t = st_find(f, name);
    const char *dot = strchr(name, '.');
    if (t || !dot || !strncmp(name, "heads.", 6)) return t;
    for (int i = 0; i < ARCH_COUNT; i++) {
        const char *p = arch_get(i)->prefix;
        if (strlen(p) == (size_t)(dot - name) && !strncmp(name, p, dot - name))
            return st_find(f, dot + 1);
    }
    return NULL;
}

/* Copies a hub tensor of the given shape (as float32) into dst, marking it used. */
static int take(const st_file *f, char *used, const char *name, int64_t d0, int64_t d1, float *dst,
                af_err *e) {
    const st_tensor *t = find(f, name);
    if (!t) return af_errf(e, "%s: tensor %s missing", f->path, name);
    int ndim = d1 ? 2 : 1;
    if (t->ndim != ndim || t->shape[0] != d0 || (d1 && t->shape[1] != d1)) {
        char want[64], got[64];
        int k = 0;
        snprintf(want, sizeof want, d1 ? "[%lld, %lld]" : "[%lld]", (long long)d0, (long long)d1);
        k = snprintf(got, sizeof got, "[");
        for (int d = 0; d < t->ndim && k < (int)sizeof got - 24; d++)
            k += snprintf(got + k, sizeof got - k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        snprintf(got + k, sizeof got - k, "]");
        return af_errf(e, "%s: %s: shape %s expected, %s found", f->path, name, want, got);
    }
    used[t - f->tensors] = 1;
    if (st_to_f32(t, dst, t->numel, e)) return af_err_prefix(e, "%s", f->path);
    return 0;
}

static int all_used(const st_file *f, const char *used, af_err *e) {
    for (int i = 0; i < f->ntensors; i++)
        if (!used[i])
            return af_errf(e,
                           "%s: tensor %s is not part of what af converts (an invertible "
                           "adapter, a gate, or another adapter's?)",
                           f->path, f->tensors[i].name);
    return 0;
}

/* The bottleneck AdapterHub builds for a reduction factor: int(hidden // factor). */
static int bottleneck(int H, double rf) {
    return (int)floor(H / rf);
}

static int load_adapter_weights(af_model *m, const st_file *f, const hub_adapter *h,
                                const char *name, af_err *e) {
    const char *mt = hub_base_model_type(m->base);
    char *used = af_calloc(f->ntensors ? f->ntensors : 1, 1);
    int H = m->H, R = m->ad[0].r, rc = 0;
    float *buf = af_malloc((size_t)H * R * sizeof(float));
    for (int l = 0; l < m->L && !rc; l++)
        for (int s = 0; s < BERT_NSITES && !rc; s++) {
            if (!(model_site_mask(m->arch) >> s & 1)) continue;
            adapter *a = &m->aw[2 * l + s];
            if (h->leave_out >> l & 1) continue; /* zeros: the model was allocated zeroed */
            int r = bottleneck(H, h->rf[l]);
            char n[512];
            float sc = (float)h->scaling;
            hub_tensor_name(n, sizeof n, mt, 0, l, s, name, "adapter_down.0.weight");
            if ((rc = take(f, used, n, r, H, a->down_w, e))) break; /* rows 0..r of (R, H) */
            hub_tensor_name(n, sizeof n, mt, 0, l, s, name, "adapter_down.0.bias");
            if ((rc = take(f, used, n, r, 0, a->down_b, e))) break;
            hub_tensor_name(n, sizeof n, mt, 0, l, s, name, "adapter_up.weight");
            if ((rc = take(f, used, n, H, r, buf, e))) break;
            for (int i = 0; i < H; i++)
                for (int j = 0; j < R; j++)
                    a->up_w[(size_t)i * R + j] = j < r ? sc * buf[(size_t)i * r + j] : 0;
            hub_tensor_name(n, sizeof n, mt, 0, l, s, name, "adapter_up.bias");
            if ((rc = take(f, used, n, H, 0, a->up_b, e))) break;
            if (sc != 1)
                for (int i = 0; i < H; i++) a->up_b[i] *= sc;
        }
    if (!rc) rc = all_used(f, used, e);
    free(buf);
    free(used);
    return rc;
}

/* DIR/head_config.json and its weights, if the directory has a head: added to m. */
static int import_head(af_model *m, const char *dir, const hub_import_opts *o,
                       const char *rename_from, af_err *e) {
    int missing;
    char file[1024];
    snprintf(file, sizeof file, "%s/head_config.json", dir);
    cJSON *j = hub_read_json(dir, "head_config.json", &missing, e);
    if (!j) return missing ? 0 : -1;
    int rc = check_header(j, file, m->base, e);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "config"), *it;
    const char *name = jstr(j, "name");
    int L = 0, kind = HEAD_CLASSIFICATION;
    char **labels = NULL;
    const cJSON *fields = rc ? NULL : c;
    cJSON_ArrayForEach(it, fields) {
        const char *k = it->string;
        if (!strcmp(k, "head_type")) {
            /* MultiLabelClassificationHead: the same layers, sigmoid outputs (BCE) */
            if (cJSON_IsString(it) && !strcmp(it->valuestring, "multilabel_classification"))
                kind = HEAD_MULTILABEL;
            else if (!cJSON_IsString(it) || strcmp(it->valuestring, "classification"))
                rc = refuse(e, file, it,
                            "af's heads are classification heads (one output: "
                            "regression) and multi-label classification heads");
        } else if (!strcmp(k, "num_labels")) {
            if (!cJSON_IsNumber(it) || it->valueint < 1)
                rc = refuse(e, file, it, "a count expected");
            else
                L = it->valueint;
        } else if (!strcmp(k, "layers")) {
            if (!cJSON_IsNumber(it) || it->valueint != 2)
                rc = refuse(e, file, it, "af's head has 2 layers (dense, tanh, output)");
        } else if (!strcmp(k, "activation_function")) {
            if (!cJSON_IsString(it) || strcmp(it->valuestring, "tanh"))
                rc = refuse(e, file, it, "af's head uses tanh");
        } else if (!strcmp(k, "use_pooler")) {
            if (!cJSON_IsFalse(it))
                rc = refuse(e, file, it, "af's head reads [CLS], not the pooler");
        } else if (!strcmp(k, "bias")) {
            if (!cJSON_IsTrue(it)) rc = refuse(e, file, it, "af's head has biases");
        } else if (!strcmp(k, "label2id") || !strcmp(k, "id2label")) {
            /* read below, once num_labels is known */
        } else if (!strcmp(k, "dropout_prob")) {
            /* the `adapters` library's head dropout (null: the base's): training only */
            if (!cJSON_IsNull(it) &&
                !(cJSON_IsNumber(it) && it->valuedouble >= 0 && it->valuedouble < 1))
                rc = refuse(e, file, it, "null or a dropout probability expected");
        } else {
            rc = refuse(e, file, it, "a field af does not know");
        }
        if (rc) break;
    }
    if (!rc && L < 1) rc = af_errf(e, "%s: no num_labels", file);
    if (kind == HEAD_CLASSIFICATION && L == 1) kind = HEAD_REGRESSION; /* AdapterHub's MSE */
    if (!rc && kind != HEAD_REGRESSION) {
        /* label names by id; AdapterHub's default names are LABEL_i */
        labels = af_calloc(L, sizeof *labels);
        const cJSON *l2i = cJSON_GetObjectItemCaseSensitive(c, "label2id");
        cJSON_ArrayForEach(it, l2i) {
            if (cJSON_IsNumber(it) && it->valueint >= 0 && it->valueint < L) {
                free(labels[it->valueint]);
                labels[it->valueint] = af_strdup(it->string);
            }
        }
        for (int i = 0; i < L; i++)
            if (!labels[i]) {
                char b[32];
                snprintf(b, sizeof b, "LABEL_%d", i);
                labels[i] = af_strdup(b);
            }
    }
    /* AdapterHub names a fusion's head after the fusion, "a,b"; an af task name has no ',' (it
     * separates a fusion's adapters in tensor names): "a_b" */
    char task[256];
    snprintf(task, sizeof task, "%s", name ? name : "");
    for (char *p = task; *p; p++)
        if (*p == ',') *p = '_';
    if (!rc && o->name && rename_from && !strcmp(name, rename_from))
        snprintf(task, sizeof task, "%s", o->name);
    if (!rc && model_name_check("head", task, file, e)) rc = -1;
    if (!rc && o->head && strcmp(o->head, name)) {
        /* not the head asked for */
    } else if (!rc && !model_add_head(m, task, kind, L, labels, 0, e)) {
        st_file f;
        if (!(rc = hub_open_weights(&f, dir, "pytorch_model_head.bin", "model_head.safetensors",
                                    e))) {
            char *used = af_calloc(f.ntensors ? f.ntensors : 1, 1);
            model_head *h = &m->heads[m->nheads - 1];
            char n[600];
            int H = m->H;
            snprintf(n, sizeof n, "heads.%s.1.weight", name);
            rc = take(&f, used, n, H, H, h->w.w1, e);
            snprintf(n, sizeof n, "heads.%s.1.bias", name);
            if (!rc) rc = take(&f, used, n, H, 0, h->w.b1, e);
            snprintf(n, sizeof n, "heads.%s.4.weight", name);
            if (!rc) rc = take(&f, used, n, L, H, h->w.w4, e);
            snprintf(n, sizeof n, "heads.%s.4.bias", name);
            if (!rc) rc = take(&f, used, n, L, 0, h->w.b4, e);
            if (!rc) rc = all_used(&f, used, e);
            free(used);
            st_close(&f);
        }
    } else if (!rc) {
        rc = -1;
    }
    for (int i = 0; labels && i < L; i++) free(labels[i]);
    free(labels);
    cJSON_Delete(j);
    return rc;
}

/* The af file: the model's tensors and metadata, and the AdapterHub config it came from. */
static int write_af(af_model *m, const char *format, int groups, const cJSON *hubcfg,
                    const char *out, af_err *e) {
    m->train_adapters = m->train_fusion = m->train_heads = 0;
    model_finalize(m);
    st_writer w;
    st_writer_init(&w);
    model_writer(m, &w, format, groups, NULL);
    if (hubcfg) st_writer_meta_json(&w, "hub", hubcfg);
    int rc = st_writer_write(&w, out, e);
    st_writer_free(&w);
    return rc;
}

int hub_import_adapter(bert *base, const char *dir, const hub_import_opts *o, const char *out,
                       af_err *e) {
    char file[1024];
    snprintf(file, sizeof file, "%s/adapter_config.json", dir);
    cJSON *j = hub_read_json(dir, "adapter_config.json", NULL, e);
    if (!j) return -1;
    int L = base->cfg.layers, H = base->cfg.hidden, rc = 0;
    hub_adapter h = {0};
    if (L > MAXL) rc = af_errf(e, "%s: bases of more than %d layers are not supported", dir, MAXL);
    if (!rc) rc = check_header(j, file, base, e);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(j, "config");
    int versioned = cJSON_GetObjectItemCaseSensitive(j, "version") != NULL;
    if (!rc) rc = parse_adapter_config(&h, cfg, versioned, L, file, e);
    const char *hubname = jstr(j, "name"), *name = o->name ? o->name : hubname;
    int R = 0;
    for (int l = 0; l < L && !rc; l++) {
        if (h.leave_out >> l & 1) continue;
        int r = bottleneck(H, h.rf[l]);
        if (r < 1 || r > H)
            rc = af_errf(e, "%s: reduction factor %g of layer %d gives a bottleneck of %d", file,
                         h.rf[l], l, r);
        R = r > R ? r : R;
    }
    if (!rc && !R) rc = af_errf(e, "%s: leave_out leaves no layer with an adapter", file);
    af_model m;
    model_init(&m, base);
    adapter_spec spec = {h.arch, 0, R, h.act};
    if (!rc) rc = model_new_adapter(&m, name, &spec, 0, e);
    if (!rc) { /* the weights the file does not give (leave_out, padding) must be 0 */
        memset(m.amem, 0, m.an * sizeof(float));
        st_file f;
        rc = hub_open_weights(&f, dir, "pytorch_adapter.bin", "adapter.safetensors", e);
        if (!rc) {
            rc = load_adapter_weights(&m, &f, &h, hubname, e);
            st_close(&f);
        }
    }
    if (!rc) rc = import_head(&m, dir, o, hubname, e);
    if (!rc && o->head && !m.nheads) rc = af_errf(e, "%s: no head named '%s'", dir, o->head);
    if (!rc) {
        /* what export needs to write the same layout back: the factors as given, and the
         * bottleneck of every layer (0: left out) */
        cJSON *rec = cJSON_CreateObject(), *b = cJSON_CreateArray();
        cJSON_AddItemToObject(rec, "adapter_config", cJSON_Duplicate(j, 1));
        cJSON_AddItemToObject(
            rec, "reduction_factor",
            cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(cfg, "reduction_factor"), 1));
        for (int l = 0; l < L; l++)
            cJSON_AddItemToArray(
                b, cJSON_CreateNumber(h.leave_out >> l & 1 ? 0 : bottleneck(H, h.rf[l])));
        cJSON_AddItemToObject(rec, "bottlenecks", b);
        rc = write_af(&m, MODEL_FORMAT_ADAPTER, 1 << PG_ADAPTER | 1 << PG_HEAD, rec, out, e);
        cJSON_Delete(rec);
    }
    model_free(&m);
    cJSON_Delete(j);
    return rc;
}

/* AdapterFusionConfig's fields: returns the af method, or -1. */
static int parse_fusion_config(const cJSON *c, const char *file, af_err *e) {
    const cJSON *it;
    int value = -1, key = -1, query = -1;
    cJSON_ArrayForEach(it, c) {
        const char *k = it->string;
        if (!strcmp(k, "key") || !strcmp(k, "query") || !strcmp(k, "value")) {
            if (!cJSON_IsBool(it)) return refuse(e, file, it, "true or false expected");
            *(k[0] == 'k' ? &key : k[0] == 'q' ? &query : &value) = cJSON_IsTrue(it);
        } else if (!strcmp(k, "query_before_ln")) {
            if (want_bool(e, file, it, 0, "af's query is the adapters' input")) return -1;
        } else if (!strcmp(k, "residual_before")) {
            if (want_bool(e, file, it, 0, "af adds the residual after the fusion")) return -1;
        } else if (!strcmp(k, "temperature")) {
            if (want_bool(e, file, it, 0,
                          "AdapterHub then anneals T from 50 on every forward, "
                          "at inference too, which no fixed file reproduces"))
                return -1;
        } else if (!strcmp(k, "dropout_prob") || !strcmp(k, "architecture")) {
            /* the `adapters` library's fusion dropout (training only); the base class's
             * architecture, null for a fusion */
            if (!cJSON_IsNull(it) && !(k[0] == 'd' && cJSON_IsNumber(it)))
                return refuse(e, file, it, "null (or a dropout probability) expected");
        } else if (!strcmp(k, "value_before_softmax") || !strcmp(k, "regularization") ||
                   !strcmp(k, "value_initialized")) {
            /* a value matrix without bias gives the same before or after the weighting; the
             * other two are about training */
            if (!cJSON_IsBool(it) && !cJSON_IsString(it))
                return refuse(e, file, it, "true or false expected");
        } else {
            return refuse(e, file, it, "a field af does not know");
        }
    }
    if (key != 1 || query != 1 || value < 0)
        return af_errf(e,
                       "%s: config needs key and query true, and value (true: attention fusion, "
                       "false: static fusion)",
                       file);
    return value ? FUSION_ATTENTION : FUSION_STATIC;
}

int hub_import_fusion(bert *base, const char **adapters, int n, const char *dir,
                      const hub_import_opts *o, const char *out, af_err *e) {
    char file[1024];
    snprintf(file, sizeof file, "%s/adapter_fusion_config.json", dir);
    cJSON *j = hub_read_json(dir, "adapter_fusion_config.json", NULL, e);
    if (!j) return -1;
    int rc = check_header(j, file, base, e), method = -1;
    if (!rc &&
        (method = parse_fusion_config(cJSON_GetObjectItemCaseSensitive(j, "config"), file, e)) < 0)
        rc = -1;
    af_model m;
    model_init(&m, base);
    if (!rc) rc = model_load_adapters(&m, adapters, n, e);
    const char *fname = jstr(j, "name");
    if (!rc) {
        /* the fusion's name lists its adapters, in order */
        size_t k = 0;
        for (int i = 0; i < m.N; i++) k += strlen(m.ad[i].name) + 1;
        char *want = af_calloc(k + 1, 1);
        for (int i = 0; i < m.N; i++) {
            if (i) strcat(want, ",");
            strcat(want, m.ad[i].name);
        }
        if (strcmp(want, fname))
            rc = af_errf(e,
                         "%s: fuses '%s', but the adapter files given hold '%s' (give "
                         "--adapter in the fusion's order)",
                         file, fname, want);
        /* the adapters library also lists them (build_full_config's adapter_names) */
        const cJSON *an = cJSON_GetObjectItemCaseSensitive(j, "adapter_names");
        int same = cJSON_IsArray(an) && cJSON_GetArraySize(an) == m.N;
        for (int i = 0; same && i < m.N; i++) {
            const cJSON *x = cJSON_GetArrayItem(an, i);
            same = cJSON_IsString(x) && !strcmp(x->valuestring, m.ad[i].name);
        }
        if (!rc && an && !same) {
            char *v = cJSON_PrintUnformatted(an);
            rc = af_errf(e, "%s: adapter_names = %s, but the fusion is '%s'", file, v, fname);
            free(v);
        }
        free(want);
    }
    /* AdapterHub fuses, in each layer, the adapters present there (and fails when the last
     * is not); af fuses only where all are (af-fuse(1)): the same only when every adapter
     * leaves out the same layers */
    for (int i = 1; i < m.N && !rc; i++)
        if (m.ad[i].leave_out != m.ad[0].leave_out) {
            char a[256], b[256];
            snprintf(a, sizeof a, "%s", model_leave_out_str(m.ad[0].leave_out, m.L));
            snprintf(b, sizeof b, "%s", model_leave_out_str(m.ad[i].leave_out, m.L));
            rc = af_errf(e,
                         "%s: adapters '%s' and '%s' leave out different layers (%s; %s): "
                         "AdapterHub fuses the adapters a layer has, af only where all are",
                         file, m.ad[0].name, m.ad[i].name, *a ? a : "none", *b ? b : "none");
        }
    fusion_config fc = {method, base->cfg.hidden, n, 1, 0, 0, base->cfg.attn_dropout};
    if (!rc) rc = model_new_fusion(&m, &fc, 0, 0, e);
    if (!rc) {
        st_file f;
        rc = hub_open_weights(&f, dir, "pytorch_model_adapter_fusion.bin",
                              "model_adapter_fusion.safetensors", e);
        if (!rc) {
            char *used = af_calloc(f.ntensors ? f.ntensors : 1, 1), nm[600];
            int H = m.H;
            for (int l = 0; l < m.L && !rc; l++)
                for (int s = 0; s < BERT_NSITES && !rc; s++) {
                    if (!(model_site_mask(m.arch) >> s & 1)) continue;
                    if (model_left_out(&m, l)) { /* built there, never run: not imported */
                        static const char *const parts[] = {
                            "query.weight", "query.bias", "key.weight", "key.bias", "value.weight"};
                        for (int k = 0; k < 5; k++) {
                            hub_tensor_name(nm, sizeof nm, hub_base_model_type(base), 1, l, s,
                                            fname, parts[k]);
                            const st_tensor *t = st_find(&f, nm);
                            if (t) used[t - f.tensors] = 1;
                        }
                        continue;
                    }
                    fusion *fu = &m.fw[2 * l + s];
                    struct {
                        const char *p;
                        float *dst;
                        int d1;
                    } t[] = {{"query.weight", fu->query_w, H},
                             {"query.bias", fu->query_b, 0},
                             {"key.weight", fu->key_w, H},
                             {"key.bias", fu->key_b, 0},
                             {"value.weight", fu->value_w, H}};
                    for (int k = 0; k < (method == FUSION_ATTENTION ? 5 : 4) && !rc; k++) {
                        hub_tensor_name(nm, sizeof nm, hub_base_model_type(base), 1, l, s, fname,
                                        t[k].p);
                        rc = take(&f, used, nm, H, t[k].d1, t[k].dst, e);
                    }
                }
            if (!rc) rc = all_used(&f, used, e);
            free(used);
            st_close(&f);
        }
    }
    m.temperature = 1;
    /* model_load_adapters brings no heads for several adapters: the fusion's is its own. */
    if (!rc) rc = import_head(&m, dir, o, NULL, e);
    if (!rc && o->head && !m.nheads) rc = af_errf(e, "%s: no head named '%s'", dir, o->head);
    if (!rc) {
        cJSON *rec = cJSON_CreateObject();
        cJSON_AddItemToObject(rec, "adapter_fusion_config", cJSON_Duplicate(j, 1));
        rc = write_af(&m, MODEL_FORMAT_FUSION, 1 << PG_FUSION | 1 << PG_HEAD, rec, out, e);
        cJSON_Delete(rec);
    }
    model_free(&m);
    cJSON_Delete(j);
    return rc;
}
