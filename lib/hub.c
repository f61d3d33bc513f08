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

static void print_config(FILE *out, const cJSON *c) {
    const cJSON *it;
    cJSON_ArrayForEach(it, c) {
        char *v = cJSON_PrintUnformatted(it);
        fprintf(out, "    %-28s %s\n", it->string, v);
        free(v);
    }
}

static int describe_one(const char *dir, const char *file, const char *what, const char *bin,
                        const char *st, FILE *out, af_err *e) {
    int missing;
    cJSON *j = hub_read_json(dir, file, &missing, e);
    if (!j) return missing ? 0 : -1;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name"),
                *ver = cJSON_GetObjectItemCaseSensitive(j, "version"),
                *cls = cJSON_GetObjectItemCaseSensitive(j, "model_class"),
                *hs = cJSON_GetObjectItemCaseSensitive(j, "hidden_size");
    fprintf(out, "%s %s (%s, AdapterHub %s, %s, hidden %d)\n", what,
            cJSON_IsString(name) ? name->valuestring : "?", file,
            cJSON_IsString(ver) ? ver->valuestring : "before 2.0: no version",
            cJSON_IsString(cls) ? cls->valuestring : "no model_class",
            cJSON_IsNumber(hs) ? hs->valueint : 0);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "config");
    if (cJSON_IsObject(c)) print_config(out, c);
    cJSON_Delete(j);
    st_file f;
    if (hub_open_weights(&f, dir, bin, st, e)) return -1;
    size_t n = 0;
    for (int i = 0; i < f.ntensors; i++) n += f.tensors[i].numel;
    fprintf(out, "  %d tensors, %zu parameters:\n", f.ntensors, n);
    for (int i = 0; i < f.ntensors; i++) {
        const st_tensor *t = &f.tensors[i];
        fprintf(out, "    %-72s %s [", t->name, st_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            fprintf(out, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        fprintf(out, "]\n");
    }
    st_close(&f);
    return 0;
}

int hub_describe(const char *dir, FILE *out, af_err *e) {
    fprintf(out, "%s: an AdapterHub directory\n", dir);
    if (describe_one(dir, "adapter_config.json", "adapter", "pytorch_adapter.bin",
                     "adapter.safetensors", out, e) ||
        describe_one(dir, "adapter_fusion_config.json", "fusion",
                     "pytorch_model_adapter_fusion.bin", "model_adapter_fusion.safetensors", out,
                     e) ||
        describe_one(dir, "head_config.json", "head", "pytorch_model_head.bin",
                     "model_head.safetensors", out, e))
        return -1;
    return 0;
}
