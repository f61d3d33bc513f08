/* inspect.c: file kinds, totals, statistics and the JSON description used by af-inspect. */
#include "inspect.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

insp_kind insp_kind_of(const st_file *f) {
    const char *fmt = st_meta_get(f, "format");
    if (fmt && strcmp(fmt, "af-adapter/1") == 0) return INSP_ADAPTER;
    if (fmt && strcmp(fmt, "af-fusion/1") == 0) return INSP_FUSION;
    char word[160];
    for (int a = 0; a < ARCH_COUNT; a++)
        if (!arch_tensor_name(word, sizeof word, arch_get(a), AT_WORD, 0, 0))
            for (int i = 0; i < f->ntensors; i++)
                if (ends_with(f->tensors[i].name, word)) return INSP_BASE;
    return INSP_OTHER;
}

const char *insp_kind_name(insp_kind k) {
    switch (k) {
    case INSP_BASE:
        return "base";
    case INSP_ADAPTER:
        return "adapter";
    case INSP_FUSION:
        return "fusion";
    default:
        return "other";
    }
}

void insp_totals_of(const st_file *f, insp_totals *t) {
    memset(t, 0, sizeof *t);
    for (int i = 0; i < f->ntensors; i++) {
        t->params += f->tensors[i].numel;
        t->bytes += f->tensors[i].nbytes;
        t->params_by_dtype[f->tensors[i].dtype] += f->tensors[i].numel;
        t->tensors_by_dtype[f->tensors[i].dtype]++;
    }
    /* the data ends at the end of the file (st_parse checked), so the rest is header */
    t->header_bytes = f->size - 8 - t->bytes;
}

/* OCP 8-bit floats: E4M3FN (bias 7, no infinities, S.1111.111 is NaN) and E5M2 (the top byte
 * of an IEEE half). */
static double f8_e4m3(uint8_t b) {
    int sign = b >> 7, exp = (b >> 3) & 15, mant = b & 7;
    double v;
    if (exp == 15 && mant == 7) return NAN;
    if (exp == 0)
        v = ldexp(mant, -9);
    else
        v = ldexp(8 + mant, exp - 10);
    return sign ? -v : v;
}

double insp_value(const st_tensor *t, int64_t i) {
    const unsigned char *p = (const unsigned char *)t->data + (size_t)i * st_dtype_size(t->dtype);
    union {
        int8_t i8;
        uint8_t u8;
        int16_t i16;
        uint16_t u16;
        int32_t i32;
        uint32_t u32;
        int64_t i64;
        uint64_t u64;
        float f32;
        double f64;
    } v;
    memcpy(&v, p, st_dtype_size(t->dtype)); /* the data need not be aligned */
    switch (t->dtype) {
    case ST_BOOL:
        return v.u8 != 0;
    case ST_U8:
        return v.u8;
    case ST_I8:
        return v.i8;
    case ST_I16:
        return v.i16;
    case ST_U16:
        return v.u16;
    case ST_I32:
        return v.i32;
    case ST_U32:
        return v.u32;
    case ST_I64:
        return (double)v.i64;
    case ST_U64:
        return (double)v.u64;
    case ST_F16:
        return st_f16_to_f32(v.u16);
    case ST_BF16:
        return st_bf16_to_f32(v.u16);
    case ST_F32:
        return v.f32;
    case ST_F64:
        return v.f64;
    case ST_F8_E4M3:
        return f8_e4m3(v.u8);
    case ST_F8_E5M2:
        return st_f16_to_f32((uint16_t)(v.u8 << 8));
    default:
        return NAN;
    }
}

void insp_stats_of(const st_tensor *t, insp_stats *s) {
    memset(s, 0, sizeof *s);
    double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < t->numel; i++) {
        double x = insp_value(t, i);
        if (!isfinite(x)) {
            s->nonfinite++;
            continue;
        }
        s->n++;
        sum += x;
        sq += x * x;
        if (x < lo) lo = x;
        if (x > hi) hi = x;
    }
    if (s->n == 0) {
        s->min = s->max = s->mean = s->std = NAN;
        s->l2 = 0;
        return;
    }
    s->min = lo, s->max = hi;
    s->mean = sum / (double)s->n;
    /* a second pass: sum of squared deviations is accurate where E[x²]−E[x]² cancels */
    double dev = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        double x = insp_value(t, i);
        if (isfinite(x)) dev += (x - s->mean) * (x - s->mean);
    }
    s->std = sqrt(dev / (double)s->n);
    s->l2 = sqrt(sq);
}

cJSON *insp_meta_json(const char *value) {
    cJSON *j = cJSON_Parse(value);
    if (j && (cJSON_IsObject(j) || cJSON_IsArray(j))) return j;
    cJSON_Delete(j);
    return NULL;
}

static cJSON *shape_json(const st_tensor *t) {
    cJSON *a = cJSON_CreateArray();
    for (int d = 0; d < t->ndim; d++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)t->shape[d]));
    return a;
}

cJSON *insp_file_json(const st_file *f) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", f->path);
    cJSON_AddStringToObject(o, "kind", insp_kind_name(insp_kind_of(f)));
    cJSON_AddNumberToObject(o, "size_bytes", (double)f->size);
    insp_totals tot;
    insp_totals_of(f, &tot);
    cJSON_AddNumberToObject(o, "header_bytes", (double)tot.header_bytes);
    cJSON *meta = cJSON_AddObjectToObject(o, "metadata");
    for (int i = 0; i < f->nmeta; i++) {
        cJSON *v = insp_meta_json(f->meta[i].value);
        cJSON_AddItemToObject(meta, f->meta[i].key, v ? v : cJSON_CreateString(f->meta[i].value));
    }
    cJSON *ts = cJSON_AddArrayToObject(o, "tensors");
    for (int i = 0; i < f->ntensors; i++) {
        const st_tensor *t = &f->tensors[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", t->name);
        cJSON_AddStringToObject(x, "dtype", st_dtype_name(t->dtype));
        cJSON_AddItemToObject(x, "shape", shape_json(t));
        cJSON_AddNumberToObject(x, "params", (double)t->numel);
        cJSON *off = cJSON_AddArrayToObject(x, "data_offsets");
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)t->begin));
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)t->end));
        cJSON_AddItemToArray(ts, x);
    }
    cJSON *to = cJSON_AddObjectToObject(o, "totals");
    cJSON_AddNumberToObject(to, "tensors", f->ntensors);
    cJSON_AddNumberToObject(to, "params", (double)tot.params);
    cJSON_AddNumberToObject(to, "bytes", (double)tot.bytes);
    cJSON *bd = cJSON_AddObjectToObject(to, "params_by_dtype");
    for (int d = 0; d < ST_NDTYPES; d++)
        if (tot.tensors_by_dtype[d])
            cJSON_AddNumberToObject(bd, st_dtype_name((st_dtype)d), (double)tot.params_by_dtype[d]);
    return o;
}

static void add_num(cJSON *o, const char *k, double v) {
    /* JSON has no NaN: absent statistics are null */
    cJSON_AddItemToObject(o, k, isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull());
}

cJSON *insp_stats_json(const st_tensor *t, const insp_stats *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "dtype", st_dtype_name(t->dtype));
    cJSON_AddItemToObject(o, "shape", shape_json(t));
    cJSON_AddNumberToObject(o, "count", (double)t->numel);
    cJSON_AddNumberToObject(o, "nonfinite", (double)s->nonfinite);
    add_num(o, "min", s->min);
    add_num(o, "max", s->max);
    add_num(o, "mean", s->mean);
    add_num(o, "std", s->std);
    add_num(o, "l2", s->l2);
    return o;
}

char *insp_print_json(const cJSON *j) {
    char *s = cJSON_Print(j);
    if (!s) return NULL;
    size_t tabs = 0;
    for (char *p = s; *p; p++) tabs += *p == '\t';
    char *out = af_malloc(strlen(s) + tabs + 1), *q = out;
    int line_start = 1;
    for (char *p = s; *p; p++) {
        if (*p == '\t') {
            if (line_start)
                *q++ = ' ', *q++ = ' ';
            else
                *q++ = ' '; /* cJSON puts a tab after each ':' */
            continue;
        }
        line_start = *p == '\n';
        *q++ = *p;
    }
    *q = 0;
    cJSON_free(s);
    return out;
}
