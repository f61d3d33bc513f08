/* inspect_diff.c: two safetensors files compared tensor by tensor (af-inspect --diff); see
 * inspect.h. */
#include "inspect.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int same_shape(const st_tensor *a, const st_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

static void compare(insp_diff_item *it) {
    const st_tensor *a = it->a, *b = it->b;
    if (!same_shape(a, b)) {
        it->status = INSP_SHAPE;
        it->max_abs = it->rel_l2 = NAN;
        return;
    }
    it->status = INSP_SAME;
    if (a->dtype == b->dtype && a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes))
        return;
    double d2 = 0, a2 = 0, mx = 0;
    for (int64_t i = 0; i < a->numel; i++) {
        double x = insp_value(a, i), y = insp_value(b, i);
        if (x == y || (isnan(x) && isnan(y))) {
            if (isfinite(x)) a2 += x * x;
            continue;
        }
        it->ndiff++;
        double d = fabs(x - y);
        if (!isfinite(d)) d = INFINITY; /* one side not finite, or infinities of both signs */
        mx = d > mx ? d : mx;
        if (isfinite(x)) a2 += x * x;
        d2 += d * d;
    }
    if (!it->ndiff) return; /* equal values in different dtypes */
    it->status = INSP_DIFFERENT;
    it->max_abs = mx;
    it->rel_l2 = a2 > 0 ? sqrt(d2) / sqrt(a2) : INFINITY;
}

static void add(insp_diff *d, const char *name, int status, const st_tensor *a,
                const st_tensor *b) {
    d->items = af_realloc(d->items, (d->n + 1) * sizeof *d->items);
    insp_diff_item *it = &d->items[d->n++];
    *it = (insp_diff_item){name, status, a, b, 0, 0, 0};
    if (a && b) compare(it);
    d->count[it->status]++;
}

void insp_diff_files(const st_file *a, const st_file *b, insp_diff *d) {
    memset(d, 0, sizeof *d);
    for (int i = 0; i < a->ntensors; i++) {
        const st_tensor *tb = st_find(b, a->tensors[i].name);
        add(d, a->tensors[i].name, tb ? INSP_SAME : INSP_ONLY_A, &a->tensors[i], tb);
    }
    for (int i = 0; i < b->ntensors; i++)
        if (!st_find(a, b->tensors[i].name))
            add(d, b->tensors[i].name, INSP_ONLY_B, NULL, &b->tensors[i]);
    for (int i = 0; i < a->nmeta; i++) {
        const char *vb = st_meta_get(b, a->meta[i].key);
        if (!vb || strcmp(vb, a->meta[i].value)) {
            d->meta = af_realloc(d->meta, (d->nmeta + 1) * sizeof *d->meta);
            d->meta[d->nmeta++] = a->meta[i].key;
        }
    }
    for (int i = 0; i < b->nmeta; i++)
        if (!st_meta_get(a, b->meta[i].key)) {
            d->meta = af_realloc(d->meta, (d->nmeta + 1) * sizeof *d->meta);
            d->meta[d->nmeta++] = b->meta[i].key;
        }
}

void insp_diff_free(insp_diff *d) {
    free(d->items);
    free(d->meta);
    memset(d, 0, sizeof *d);
}

const char *insp_diff_status_name(int status) {
    static const char *const names[] = {"same", "different", "shape", "only_a", "only_b"};
    return status >= 0 && status < 5 ? names[status] : "?";
}

static cJSON *shape_json(const st_tensor *t) {
    cJSON *s = cJSON_CreateArray();
    for (int k = 0; k < t->ndim; k++)
        cJSON_AddItemToArray(s, cJSON_CreateNumber((double)t->shape[k]));
    return s;
}

static void add_num(cJSON *o, const char *k, double v) {
    /* JSON has no infinity or NaN */
    cJSON_AddItemToObject(o, k, isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull());
}

cJSON *insp_diff_json(const st_file *a, const st_file *b, const insp_diff *d) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "a", a->path);
    cJSON_AddStringToObject(j, "b", b->path);
    cJSON *c = cJSON_AddObjectToObject(j, "counts");
    for (int s = 0; s < 5; s++) cJSON_AddNumberToObject(c, insp_diff_status_name(s), d->count[s]);
    cJSON *ts = cJSON_AddArrayToObject(j, "tensors");
    for (int i = 0; i < d->n; i++) {
        const insp_diff_item *it = &d->items[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", it->name);
        cJSON_AddStringToObject(o, "status", insp_diff_status_name(it->status));
        if (it->status == INSP_SAME || it->status == INSP_DIFFERENT) {
            add_num(o, "max_abs_diff", it->max_abs);
            add_num(o, "rel_l2", it->rel_l2);
            cJSON_AddNumberToObject(o, "elements_differing", (double)it->ndiff);
        }
        if (it->a) cJSON_AddItemToObject(o, "shape_a", shape_json(it->a));
        if (it->b) cJSON_AddItemToObject(o, "shape_b", shape_json(it->b));
        cJSON_AddItemToArray(ts, o);
    }
    cJSON *m = cJSON_AddArrayToObject(j, "metadata_differs");
    for (int i = 0; i < d->nmeta; i++) cJSON_AddItemToArray(m, cJSON_CreateString(d->meta[i]));
    return j;
}
