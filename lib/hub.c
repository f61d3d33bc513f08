/* hub.c: what AdapterHub import and export share (names, reading and writing a directory's
 * files), and the description af-inspect prints; see hub.h. */
#include "hub.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch.h"
#include "torchfile.h"

/* Every name comes from the architecture table (arch.h); an unknown model_type (refused earlier
 * by hub_model_type_known) falls back to BERT's. */
static const af_arch *arch_of(const char *model_type) {
    int id = model_type ? arch_find(model_type) : ARCH_BERT;
    return arch_get(id >= 0 ? id : ARCH_BERT);
}

const char *hub_base_model_type(const bert *base) {
    return arch_get(base ? base->cfg.arch : ARCH_BERT)->model_type;
}

int hub_model_type_known(const char *model_type) {
    return model_type && arch_find(model_type) >= 0;
}

const char *hub_arch_prefix(const char *model_type) {
    return arch_of(model_type)->prefix;
}

const char *hub_model_class(const char *model_type) {
    /* AdapterHub's class for a base class: BertModel -> BertAdapterModel */
    static char buf[ARCH_COUNT][64];
    const af_arch *a = arch_of(model_type);
    char *out = buf[a - arch_get(0)];
    size_t n = strlen(a->class_name);
    if (n > 5 && !strcmp(a->class_name + n - 5, "Model"))
        snprintf(out, 64, "%.*sAdapterModel", (int)(n - 5), a->class_name);
    else
        snprintf(out, 64, "%s", a->class_name);
    return out;
}

void hub_tensor_name(char *buf, size_t n, const char *model_type, int fusion, int l, int s,
                     const char *name, const char *param) {
    const af_arch *a = arch_of(model_type);
    if (fusion)
        arch_fusion_name(buf, n, a, l, s, name, param);
    else
        arch_adapter_name(buf, n, a, l, s, name, param);
}

/* A string member of a JSON object the code built itself. */
static const char *str_of(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static char *join(const char *dir, const char *file) {
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = af_malloc(n);
    snprintf(p, n, "%s/%s", dir, file);
    return p;
}

static int exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

cJSON *hub_read_json(const char *dir, const char *file, int *missing, af_err *e) {
    char *path = join(dir, file), *text;
    size_t len;
    cJSON *j = NULL;
    if (missing) *missing = !exists(path);
    if (!af_read_file(path, &text, &len, e)) {
        j = cJSON_ParseWithLength(text, len);
        if (!j || !cJSON_IsObject(j)) {
            af_errf(e, "%s: not a JSON object", path);
            cJSON_Delete(j);
            j = NULL;
        }
        free(text);
    }
    free(path);
    return j;
}

int hub_open_weights(st_file *f, const char *dir, const char *bin, const char *st, af_err *e) {
    char *pb = join(dir, bin), *ps = join(dir, st);
    int rc;
    /* The safetensors file when both exist: the same tensors without a pickle to parse. */
    if (exists(ps))
        rc = st_open(f, ps, e);
    else if (exists(pb))
        rc = pt_open(f, pb, e);
    else
        rc = af_errf(e, "%s: neither %s nor %s", dir, bin, st);
    free(pb);
    free(ps);
    return rc;
}

static int write_text(FILE *f, void *ctx, af_err *e) {
    if (fputs(ctx, f) < 0 || fputc('\n', f) == EOF) return af_errf(e, "write error");
    return 0;
}

typedef struct {
    char *s;
    size_t n, cap;
} text;

static void put(text *t, const char *s) {
    size_t k = strlen(s);
    if (t->n + k + 1 > t->cap) {
        t->cap = (t->n + k + 1) * 2;
        t->s = af_realloc(t->s, t->cap);
    }
    memcpy(t->s + t->n, s, k + 1);
    t->n += k;
}

static void put_owned(text *t, char *s) {
    put(t, s);
    free(s);
}

/* As Python's json.dump(indent=2) writes (AdapterHub's files), so the two read alike. The
 * nesting is af's own (a few levels), so recursion is bounded. */
static void pretty(text *t, const cJSON *j, int ind) {
    int obj = cJSON_IsObject(j);
    if ((!obj && !cJSON_IsArray(j)) || !j->child) {
        put_owned(t, cJSON_PrintUnformatted(j));
        return;
    }
    put(t, obj ? "{\n" : "[\n");
    for (const cJSON *c = j->child; c; c = c->next) {
        for (int i = 0; i < ind + 2; i++) put(t, " ");
        if (obj) {
            cJSON *k = cJSON_CreateString(c->string);
            put_owned(t, cJSON_PrintUnformatted(k));
            cJSON_Delete(k);
            put(t, ": ");
        }
        pretty(t, c, ind + 2);
        put(t, c->next ? ",\n" : "\n");
    }
    for (int i = 0; i < ind; i++) put(t, " ");
    put(t, obj ? "}" : "]");
}

int hub_write_json(const char *path, const cJSON *j, af_err *e) {
    text t = {0};
    pretty(&t, j, 0);
    int rc = af_write_atomic(path, write_text, t.s, e);
    free(t.s);
    return rc;
}

int hub_is_dir(const char *path) {
    static const char *const files[] = {"adapter_config.json", "adapter_fusion_config.json",
                                        "head_config.json"};
    struct stat sb;
    if (stat(path, &sb) || !S_ISDIR(sb.st_mode)) return 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *p = join(path, files[i]);
        int ok = exists(p);
        free(p);
        if (ok) return 1;
    }
    return 0;
}

/* One module of a directory (adapter, fusion or head) as JSON: its config file's header fields,
 * its config verbatim, and the tensors of its weights file. NULL when the config file is absent
 * (*missing set) or on error. */
static cJSON *module_json(const char *dir, const char *file, const char *what, const char *bin,
                          const char *st, int *missing, af_err *e) {
    cJSON *j = hub_read_json(dir, file, missing, e);
    if (!j) return NULL;
    st_file f;
    if (hub_open_weights(&f, dir, bin, st, e)) {
        *missing = 0;
        cJSON_Delete(j);
        return NULL;
    }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "module", what);
    cJSON_AddStringToObject(m, "config_file", file);
    static const char *const keys[] = {"name",       "version",     "model_class",
                                       "model_type", "hidden_size", "adapter_names"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        /* before AdapterHub 2.0 there was no version: null says so */
        if (v || k < 5)
            cJSON_AddItemToObject(m, keys[k], v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "config");
    cJSON_AddItemToObject(m, "config", c ? cJSON_Duplicate(c, 1) : cJSON_CreateNull());
    const char *slash = strrchr(f.path, '/');
    cJSON_AddStringToObject(m, "weights_file", slash ? slash + 1 : f.path);
    cJSON *ts = cJSON_AddArrayToObject(m, "tensors");
    double n = 0;
    for (int i = 0; i < f.ntensors; i++) {
        const st_tensor *t = &f.tensors[i];
        cJSON *x = cJSON_CreateObject(), *sh = cJSON_CreateArray();
        cJSON_AddStringToObject(x, "name", t->name);
        cJSON_AddStringToObject(x, "dtype", st_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        cJSON_AddItemToObject(x, "shape", sh);
        cJSON_AddNumberToObject(x, "params", (double)t->numel);
        cJSON_AddItemToArray(ts, x);
        n += (double)t->numel;
    }
    cJSON *to = cJSON_AddObjectToObject(m, "totals");
    cJSON_AddNumberToObject(to, "tensors", f.ntensors);
    cJSON_AddNumberToObject(to, "params", n);
    st_close(&f);
    cJSON_Delete(j);
    return m;
}

static const struct {
    const char *what, *file, *bin, *st;
} MODULES[] = {
    {"adapter", "adapter_config.json", "pytorch_adapter.bin", "adapter.safetensors"},
    {"fusion", "adapter_fusion_config.json", "pytorch_model_adapter_fusion.bin",
     "model_adapter_fusion.safetensors"},
    {"head", "head_config.json", "pytorch_model_head.bin", "model_head.safetensors"},
};

cJSON *hub_describe_json(const char *dir, af_err *e) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", dir);
    cJSON_AddStringToObject(o, "kind", "adapterhub");
    cJSON *mods = cJSON_AddArrayToObject(o, "modules");
    for (size_t i = 0; i < sizeof MODULES / sizeof *MODULES; i++) {
        int missing = 0;
        cJSON *m = module_json(dir, MODULES[i].file, MODULES[i].what, MODULES[i].bin, MODULES[i].st,
                               &missing, e);
        if (!m && !missing) {
            cJSON_Delete(o);
            return NULL;
        }
        if (m) cJSON_AddItemToArray(mods, m);
    }
    return o;
}

/* The text for people, from the same description. */
int hub_describe(const char *dir, FILE *out, af_err *e) {
    cJSON *o = hub_describe_json(dir, e);
    if (!o) return -1;
    fprintf(out, "%s: an AdapterHub directory\n", dir);
    const cJSON *m, *it;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(o, "modules")) {
#define STR(k, dflt)                                                                               \
    (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, k))                                        \
         ? cJSON_GetObjectItemCaseSensitive(m, k)->valuestring                                     \
         : (dflt))
        const cJSON *hs = cJSON_GetObjectItemCaseSensitive(m, "hidden_size");
        fprintf(out, "%s %s (%s, AdapterHub %s, %s, hidden %d)\n", STR("module", "?"),
                STR("name", "?"), STR("config_file", "?"), STR("version", "before 2.0: no version"),
                STR("model_class", "no model_class"), cJSON_IsNumber(hs) ? hs->valueint : 0);
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(m, "config")) {
            char *v = cJSON_PrintUnformatted(it);
            fprintf(out, "    %-28s %s\n", it->string, v);
            free(v);
        }
        const cJSON *to = cJSON_GetObjectItemCaseSensitive(m, "totals");
        fprintf(out, "  %d tensors, %.0f parameters:\n",
                cJSON_GetObjectItemCaseSensitive(to, "tensors")->valueint,
                cJSON_GetObjectItemCaseSensitive(to, "params")->valuedouble);
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(m, "tensors")) {
            fprintf(out, "    %-72s %s [", str_of(it, "name"), str_of(it, "dtype"));
            const cJSON *d;
            int first = 1;
            cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(it, "shape")) {
                fprintf(out, "%s%.0f", first ? "" : ", ", d->valuedouble);
                first = 0;
            }
            fprintf(out, "]\n");
        }
#undef STR
    }
    cJSON_Delete(o);
    return 0;
}
