/* safetensors.c: a reader that trusts nothing in the file and a writer that produces exactly the
 * layout the spec describes (https://github.com/huggingface/safetensors, README "Format"). */
#include "safetensors.h"
#include "jsonlex.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader maps it directly and needs a LE host"
#endif

/* Integers in the header are read through cJSON's doubles; up to 2^53 they are exact. */
#define EXACT_MAX 9007199254740992.0

static const struct {
    const char *name;
    size_t size;
} DTYPES[ST_NDTYPES] = {
    [ST_BOOL] = {"BOOL", 1}, [ST_U8] = {"U8", 1},           [ST_I8] = {"I8", 1},
    [ST_I16] = {"I16", 2},   [ST_U16] = {"U16", 2},         [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2}, [ST_I32] = {"I32", 4},         [ST_U32] = {"U32", 4},
    [ST_F32] = {"F32", 4},   [ST_F64] = {"F64", 8},         [ST_I64] = {"I64", 8},
    [ST_U64] = {"U64", 8},   [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *st_dtype_name(st_dtype t) {
    return (unsigned)t < ST_NDTYPES ? DTYPES[t].name : "?";
}

size_t st_dtype_size(st_dtype t) {
    return (unsigned)t < ST_NDTYPES ? DTYPES[t].size : 0;
}

static int dtype_parse(const char *s, st_dtype *t) {
    for (int i = 0; i < ST_NDTYPES; i++)
        if (strcmp(s, DTYPES[i].name) == 0) return *t = (st_dtype)i, 0;
    return -1;
}

/* ---- reading ------------------------------------------------------------------------------ */

/* Formats a shape as "[2, 3]" into buf. */
static const char *shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

static int json_uint(const cJSON *j, uint64_t *v) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= EXACT_MAX) || d != floor(d)) return -1;
    *v = (uint64_t)d;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}


static int parse_metadata(st_file *f, const cJSON *m, af_err *e) {
    const char *name = f->path;
    if (!cJSON_IsObject(m))
        return af_errf(e, "%s: __metadata__ must be an object of strings, found %s", name,
                       jsonlex_type_name(m));
    const char *dup = jsonlex_duplicate_key(m);
    if (dup) return af_errf(e, "%s: __metadata__: duplicate key '%s'", name, dup);
    int n = cJSON_GetArraySize(m);
    f->meta = af_calloc((size_t)n, sizeof *f->meta);
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return af_errf(e, "%s: __metadata__: value of '%s' must be a string, found %s", name,
                           c->string, jsonlex_type_name(c));
        f->meta[f->nmeta].key = af_strdup(c->string);
        f->meta[f->nmeta].value = af_strdup(c->valuestring);
        f->nmeta++;
    }
    return 0;
}

static int parse_entry(st_file *f, st_tensor *t, const cJSON *j, af_err *e) {
    const char *name = f->path, *tn = j->string;
    if (!cJSON_IsObject(j))
        return af_errf(e, "%s: tensor '%s': entry must be an object, found %s", name, tn,
                       jsonlex_type_name(j));
    const char *dup = jsonlex_duplicate_key(j);
    if (dup) return af_errf(e, "%s: tensor '%s': duplicate key '%s'", name, tn, dup);
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *c = j->child; c; c = c->next) {
        if (strcmp(c->string, "dtype") == 0)
            dtype = c;
        else if (strcmp(c->string, "shape") == 0)
            shape = c;
        else if (strcmp(c->string, "data_offsets") == 0)
            offs = c;
        else
            return af_errf(e,
                           "%s: tensor '%s': unexpected key '%s' (an entry holds dtype, shape "
                           "and data_offsets)",
                           name, tn, c->string);
    }
    if (!dtype) return af_errf(e, "%s: tensor '%s': dtype is missing", name, tn);
    if (!shape) return af_errf(e, "%s: tensor '%s': shape is missing", name, tn);
    if (!offs) return af_errf(e, "%s: tensor '%s': data_offsets is missing", name, tn);

    if (!cJSON_IsString(dtype))
        return af_errf(e, "%s: tensor '%s': dtype must be a string, found %s", name, tn,
                       jsonlex_type_name(dtype));
    if (dtype_parse(dtype->valuestring, &t->dtype))
        return af_errf(e, "%s: tensor '%s': unknown dtype '%s'", name, tn, dtype->valuestring);

    if (!cJSON_IsArray(shape))
        return af_errf(e,
                       "%s: tensor '%s': shape must be an array of non-negative integers, "
                       "found %s",
                       name, tn, jsonlex_type_name(shape));
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > ST_MAX_DIMS)
        return af_errf(e, "%s: tensor '%s': shape has %d dimensions, af supports at most %d", name,
                       tn, ndim, ST_MAX_DIMS);
    t->ndim = 0;
    for (const cJSON *c = shape->child; c; c = c->next) {
        uint64_t v;
        if (json_uint(c, &v)) {
            char *s = cJSON_PrintUnformatted(c);
            af_errf(e,
                    "%s: tensor '%s': shape must be an array of non-negative integers, "
                    "found %s %s",
                    name, tn, jsonlex_type_name(c), s ? s : "");
            free(s);
            return -1;
        }
        t->shape[t->ndim++] = (int64_t)v;
    }

    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return af_errf(e,
                       "%s: tensor '%s': data_offsets must be an array of 2 non-negative "
                       "integers, found %s",
                       name, tn,
                       cJSON_IsArray(offs) ? "an array of another length" : jsonlex_type_name(offs));
    uint64_t b, en;
    if (json_uint(offs->child, &b) || json_uint(offs->child->next, &en))
        return af_errf(e,
                       "%s: tensor '%s': data_offsets must be an array of 2 non-negative "
                       "integers",
                       name, tn);
    if (en < b)
        return af_errf(e, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", name,
                       tn, (unsigned long long)b, (unsigned long long)en);
    t->begin = (size_t)b;
    t->end = (size_t)en;

    /* Rust's reference uses checked_mul for both products; so do we. */
    uint64_t numel = 1, nbytes;
    for (int i = 0; i < t->ndim; i++)
        if (__builtin_mul_overflow(numel, (uint64_t)t->shape[i], &numel)) goto overflow;
    if (__builtin_mul_overflow(numel, (uint64_t)st_dtype_size(t->dtype), &nbytes)) goto overflow;
    if (numel > INT64_MAX) goto overflow;
    t->numel = (int64_t)numel;
    t->nbytes = (size_t)nbytes;
    if (nbytes != en - b) {
        char sh[256];
        return af_errf(e,
                       "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, but shape %s "
                       "of %s needs %llu",
                       name, tn, (unsigned long long)b, (unsigned long long)en,
                       (unsigned long long)(en - b), shape_str(sh, sizeof sh, t->ndim, t->shape),
                       st_dtype_name(t->dtype), (unsigned long long)nbytes);
    }
    return 0;
overflow:;
    char sh[256];
    return af_errf(e, "%s: tensor '%s': byte size of shape %s of %s overflows 64 bits", name, tn,
                   shape_str(sh, sizeof sh, t->ndim, t->shape), st_dtype_name(t->dtype));
}

static int cmp_offsets(const void *a, const void *b) {
    const st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name); /* names are unique: a deterministic order */
}

/* The offsets must tile [0, data size) exactly, in some order: that is what makes a tensor's
 * bytes belong to it alone. */
static int check_layout(st_file *f, size_t data_size, af_err *e) {
    qsort(f->tensors, (size_t)f->ntensors, sizeof *f->tensors, cmp_offsets);
    size_t at = 0;
    const char *prev = NULL;
    for (int i = 0; i < f->ntensors; i++) {
        const st_tensor *t = &f->tensors[i];
        if (t->begin > at) {
            if (!prev)
                return af_errf(e,
                               "%s: tensor '%s': data_offsets begin at %zu, leaving a hole at the "
                               "start of the data (offsets must be contiguous from 0)",
                               f->path, t->name, t->begin);
            return af_errf(e,
                           "%s: tensor '%s': data_offsets begin at %zu, leaving a hole after "
                           "tensor '%s', which ends at %zu (offsets must be contiguous)",
                           f->path, t->name, t->begin, prev, at);
        }
        if (t->begin < at)
            return af_errf(e,
                           "%s: tensor '%s': data_offsets [%zu, %zu] overlap tensor '%s', which "
                           "ends at %zu",
                           f->path, t->name, t->begin, t->end, prev, at);
        at = t->end;
        prev = t->name;
    }
    if (at != data_size) {
        if (at > data_size)
            return af_errf(e,
                           "%s: tensor '%s': data ends at %zu, past the end of the file (%zu "
                           "bytes of data; is the file truncated?)",
                           f->path, prev, at, data_size);
        return af_errf(e,
                       "%s: the data must end exactly at the end of the file: tensors end at "
                       "data offset %zu, the file holds %zu bytes of data",
                       f->path, at, data_size);
    }
    return 0;
}

static void free_contents(st_file *f) {
    for (int i = 0; i < f->ntensors; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->nmeta; i++) free(f->meta[i].key), free(f->meta[i].value);
    free(f->tensors);
    free(f->meta);
    free(f->path);
    f->tensors = NULL, f->meta = NULL, f->path = NULL;
    f->ntensors = f->nmeta = 0;
}

static int parse_header(st_file *f, const unsigned char *p, size_t size, af_err *e) {
    const char *name = f->path;
    if (size < 8)
        return af_errf(e, "%s: file is %zu bytes, too short for the 8-byte header length", name,
                       size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | p[i];
    if (n > ST_MAX_HEADER)
        return af_errf(e, "%s: header length %llu exceeds the limit of %llu bytes", name,
                       (unsigned long long)n, ST_MAX_HEADER);
    if (n > size - 8)
        return af_errf(e,
                       "%s: header length %llu runs past the end of the file (8 + %llu > %zu "
                       "bytes)",
                       name, (unsigned long long)n, (unsigned long long)n, size);
    const char *h = (const char *)p + 8;
    if (n == 0) return af_errf(e, "%s: header length is 0; the header must start with '{'", name);
    if (h[0] != '{')
        return af_errf(e, "%s: header must start with '{', found byte 0x%02x", name,
                       (unsigned char)h[0]);

    jsonlex_result lx;
    if (jsonlex_check(h, (size_t)n, &lx)) {
        char where[300] = "";
        if (lx.at.key && lx.at.keylen)
            snprintf(where, sizeof where, ", in tensor '%.*s'",
                     (int)(lx.at.keylen < 200 ? lx.at.keylen : 200), lx.at.key);
        if (strcmp(lx.error, "invalid UTF-8") == 0)
            return af_errf(e, "%s: header is not valid UTF-8 (byte %zu of the header%s)", name,
                           lx.at.pos, where);
        unsigned char c = (unsigned char)h[lx.at.pos];
        if (c < 0x20 || c == 0x7f)
            return af_errf(e,
                           "%s: header is not valid JSON: %s (byte 0x%02x at byte %zu of the "
                           "header%s)",
                           name, lx.error, c, lx.at.pos, where);
        return af_errf(e, "%s: header is not valid JSON: %s '%.*s' at byte %zu of the header%s",
                       name, lx.error, (int)(lx.at.len < 40 ? lx.at.len : 40), h + lx.at.pos,
                       lx.at.pos, where);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(h, (size_t)n, &end, 0);
    if (!root) {
        size_t at = end && end >= h && end <= h + n ? (size_t)(end - h) : 0;
        return af_errf(e, "%s: header is not valid JSON (error near byte %zu of %llu)", name, at,
                       (unsigned long long)n);
    }
    /* The spec allows the JSON to be followed by spaces only (0x20), padding it to alignment. */
    for (const char *q = end; q < h + n; q++)
        if (*q != ' ') {
            cJSON_Delete(root);
            return af_errf(e,
                           "%s: header may only be padded with spaces after the JSON, found "
                           "byte 0x%02x at byte %zu of the header",
                           name, (unsigned char)*q, (size_t)(q - h));
        }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return af_errf(e, "%s: header must be a JSON object", name);
    }
    int rc = 0;
    const char *dup = jsonlex_duplicate_key(root);
    if (dup) {
        rc = af_errf(e, "%s: %s '%s' appears twice in the header", name,
                     strcmp(dup, "__metadata__") ? "tensor" : "key", dup);
        goto out;
    }
    int nt = 0;
    for (const cJSON *c = root->child; c; c = c->next) nt += strcmp(c->string, "__metadata__") != 0;
    f->tensors = af_calloc((size_t)nt, sizeof *f->tensors);
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            if ((rc = parse_metadata(f, c, e))) goto out;
            continue;
        }
        st_tensor *t = &f->tensors[f->ntensors];
        if ((rc = parse_entry(f, t, c, e))) goto out;
        t->name = af_strdup(c->string);
        f->ntensors++;
    }
    /* Numbers that passed as integral doubles but were written "2.0" or "1e3": cJSON cannot
     * tell, jsonlex can; by now every number sits in a shape or data_offsets. */
    if (lx.nonint) {
        rc = af_errf(e,
                     "%s: tensor '%.*s': shape and data_offsets must be written as non-negative "
                     "integers, found '%.*s'",
                     name, (int)(lx.first_nonint.keylen < 200 ? lx.first_nonint.keylen : 200),
                     lx.first_nonint.key ? lx.first_nonint.key : "",
                     (int)(lx.first_nonint.len < 40 ? lx.first_nonint.len : 40),
                     h + lx.first_nonint.pos);
        goto out;
    }
    size_t data_size = size - 8 - (size_t)n;
    if ((rc = check_layout(f, data_size, e))) goto out;
    const unsigned char *data = p + 8 + n;
    for (int i = 0; i < f->ntensors; i++) f->tensors[i].data = data + f->tensors[i].begin;
out:
    cJSON_Delete(root);
    return rc;
}

int st_parse(st_file *f, const void *data, size_t size, const char *name, af_err *e) {
    memset(f, 0, sizeof *f);
    f->path = af_strdup(name ? name : "(memory)");
    f->size = size;
    if (parse_header(f, data, size, e)) {
        free_contents(f);
        memset(f, 0, sizeof *f);
        return -1;
    }
    return 0;
}

int st_open(st_file *f, const char *path, af_err *e) {
    memset(f, 0, sizeof *f);
    int fd = af_open_regular(path, e); /* a FIFO is refused, not waited on */
    if (fd < 0) return -1;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return af_errf(e, "%s: %s", path, strerror(errno));
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) { /* mmap refuses length 0; st_parse reports the short file */
        close(fd);
        return st_parse(f, "", size, path, e);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        int err = errno;
        close(fd);
        return af_errf(e, "%s: cannot map: %s", path, strerror(err));
    }
    close(fd);
    if (st_parse(f, map, size, path, e)) {
        munmap(map, size);
        return -1;
    }
    f->map = map;
    return 0;
}

void st_close(st_file *f) {
    if (f->map) munmap(f->map, f->size);
    free_contents(f);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (int i = 0; i < f->ntensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_meta_get(const st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

/* ---- conversions -------------------------------------------------------------------------- */

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0) { /* zero or subnormal: mant * 2^-24, exact in float */
        float v = (float)mant * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (exp == 31) return u2f(sign | 0x7f800000 | mant << 13);
    return u2f(sign | (exp + 112) << 23 | mant << 13);
}

uint16_t st_f32_to_f16(float f) {
    uint32_t x = f2u(f), sign = (x >> 16) & 0x8000;
    x &= 0x7fffffff;
    if (x > 0x7f800000) return (uint16_t)(sign | 0x7e00 | ((x >> 13) & 0x3ff)); /* NaN, quiet */
    if (x >= 0x477ff000) return (uint16_t)(sign | 0x7c00); /* >= 65520 rounds to infinity */
    if (x < 0x38800000) {
        /* Below the smallest normal half: scaling by 2^24 is exact, and lrintf rounds to
         * nearest even; a result of 1024 is correctly the smallest normal's encoding. */
        return (uint16_t)(sign | (uint32_t)lrintf(u2f(x) * 16777216.0f));
    }
    uint32_t r = x - 0x38000000; /* rebias the exponent from 127 to 15 */
    r += 0x0fff + ((r >> 13) & 1);
    return (uint16_t)(sign | r >> 13);
}

float st_bf16_to_f32(uint16_t h) {
    return u2f((uint32_t)h << 16);
}

uint16_t st_f32_to_bf16(float f) {
    uint32_t x = f2u(f);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x0040);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

int st_check_finite(const st_tensor *t, af_err *e) {
    const unsigned char *p = t->data;
    int64_t bad = -1;
    if (t->dtype == ST_F32) {
        for (int64_t i = 0; i < t->numel && bad < 0; i++) {
            uint32_t x;
            memcpy(&x, p + 4 * i, 4);
            if ((x & 0x7f800000u) == 0x7f800000u) bad = i;
        }
    } else if (t->dtype == ST_F16 || t->dtype == ST_BF16) {
        uint16_t exp = t->dtype == ST_F16 ? 0x7c00 : 0x7f80;
        for (int64_t i = 0; i < t->numel && bad < 0; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            if ((h & exp) == exp) bad = i;
        }
    }
    if (bad < 0) return 0;
    float v;
    if (t->dtype == ST_F32)
        memcpy(&v, p + 4 * bad, 4);
    else {
        uint16_t h;
        memcpy(&h, p + 2 * bad, 2);
        v = t->dtype == ST_F16 ? st_f16_to_f32(h) : st_bf16_to_f32(h);
    }
    return af_errf(e, "tensor '%s': value %lld of %lld is %s: weights must be finite", t->name,
                   (long long)bad, (long long)t->numel,
                   isnan(v) ? "NaN"
                   : v > 0  ? "inf"
                            : "-inf");
}

int st_to_f32(const st_tensor *t, float *dst, int64_t n, af_err *e) {
    if (n != t->numel)
        return af_errf(e, "tensor '%s': %lld values expected, the tensor holds %lld", t->name,
                       (long long)n, (long long)t->numel);
    if (st_check_finite(t, e)) return -1;
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case ST_F32:
        if (n) memcpy(dst, p, (size_t)n * 4); /* memcpy: the data need not be 4-aligned */
        return 0;
    case ST_F16:
    case ST_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = t->dtype == ST_F16 ? st_f16_to_f32(h) : st_bf16_to_f32(h);
        }
        return 0;
    default:
        return af_errf(e, "tensor '%s': dtype %s found, F32, F16 or BF16 expected", t->name,
                       st_dtype_name(t->dtype));
    }
}

/* ---- writing ------------------------------------------------------------------------------ */

void st_writer_init(st_writer *w) {
    memset(w, 0, sizeof *w);
}

void st_writer_free(st_writer *w) {
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    for (int i = 0; i < w->nmeta; i++) free(w->meta[i].key), free(w->meta[i].value);
    free(w->t);
    free(w->meta);
    memset(w, 0, sizeof *w);
}

void st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape,
                   const void *data) {
    /* A bad rank or dtype is a bug in the caller, not a condition of the input. */
    if (ndim < 0 || ndim > ST_MAX_DIMS || (unsigned)dtype >= ST_NDTYPES) {
        fprintf(stderr, "st_writer_add: tensor '%s': bad ndim %d or dtype %d\n", name, ndim,
                (int)dtype);
        abort();
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->t = af_realloc(w->t, (size_t)w->cap * sizeof *w->t);
    }
    struct st_wtensor *t = &w->t[w->n++];
    t->name = af_strdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    size_t nbytes = st_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        if (shape[i] < 0 || __builtin_mul_overflow(nbytes, (size_t)shape[i], &nbytes))
            nbytes = SIZE_MAX; /* reported by st_writer_write */
    }
    t->data = data;
    t->nbytes = nbytes;
}

void st_writer_add_f32(st_writer *w, const char *name, const float *data, int ndim, ...) {
    int64_t shape[ST_MAX_DIMS] = {0};
    va_list ap;
    va_start(ap, ndim);
    for (int i = 0; i < ndim && i < ST_MAX_DIMS; i++) shape[i] = va_arg(ap, int64_t);
    va_end(ap);
    st_writer_add(w, name, ST_F32, ndim, shape, data);
}

void st_writer_meta(st_writer *w, const char *key, const char *value) {
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta[i].key, key) == 0) {
            free(w->meta[i].value);
            w->meta[i].value = af_strdup(value);
            return;
        }
    if (w->nmeta == w->metacap) {
        w->metacap = w->metacap ? 2 * w->metacap : 8;
        w->meta = af_realloc(w->meta, (size_t)w->metacap * sizeof *w->meta);
    }
    w->meta[w->nmeta].key = af_strdup(key);
    w->meta[w->nmeta].value = af_strdup(value);
    w->nmeta++;
}

int st_writer_meta_json(st_writer *w, const char *key, const cJSON *value) {
    char *s = cJSON_PrintUnformatted(value);
    if (!s) return -1;
    st_writer_meta(w, key, s);
    cJSON_free(s);
    return 0;
}

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t k) {
    if (b->n + k + 1 > b->cap) {
        while (b->n + k + 1 > b->cap) b->cap = b->cap ? 2 * b->cap : 1024;
        b->p = af_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, k);
    b->n += k;
    b->p[b->n] = 0;
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

static void sb_json_string(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static int utf8_ok(const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k < 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

/* Builds the header JSON, padded with spaces so that 8 + its length is a multiple of 8 (the
 * data then starts 8-aligned, as the reference writer does). */
static int build_header(const st_writer *w, const char *path, sbuf *h, af_err *e) {
    const char **names = af_malloc((size_t)(w->n ? w->n : 1) * sizeof *names);
    for (int i = 0; i < w->n; i++) names[i] = w->t[i].name;
    qsort(names, (size_t)w->n, sizeof *names, cmp_str);
    for (int i = 1; i < w->n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) {
            af_errf(e, "%s: tensor '%s' added twice", path, names[i]);
            free(names);
            return -1;
        }
    free(names);
    sb_put(h, "{", 1);
    int first = 1;
    if (w->nmeta) {
        sb_put(h, "\"__metadata__\":{", 16);
        for (int i = 0; i < w->nmeta; i++) {
            if (!utf8_ok(w->meta[i].key) || !utf8_ok(w->meta[i].value))
                return af_errf(e, "%s: metadata '%s' is not valid UTF-8", path, w->meta[i].key);
            if (i) sb_put(h, ",", 1);
            sb_json_string(h, w->meta[i].key);
            sb_put(h, ":", 1);
            sb_json_string(h, w->meta[i].value);
        }
        sb_put(h, "}", 1);
        first = 0;
    }
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const struct st_wtensor *t = &w->t[i];
        if (strcmp(t->name, "__metadata__") == 0 || !utf8_ok(t->name))
            return af_errf(e, "%s: '%s' cannot be a tensor name", path, t->name);
        if (t->nbytes == SIZE_MAX || __builtin_add_overflow(off, t->nbytes, &(size_t){0}))
            return af_errf(e, "%s: tensor '%s': negative or overflowing shape", path, t->name);
        if (!t->data && t->nbytes) return af_errf(e, "%s: tensor '%s': no data", path, t->name);
        if (!first) sb_put(h, ",", 1);
        first = 0;
        sb_json_string(h, t->name);
        sb_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            sb_printf(h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        sb_printf(h, "],\"data_offsets\":[%zu,%zu]}", off, off + t->nbytes);
        off += t->nbytes;
    }
    sb_put(h, "}", 1);
    while (h->n % 8) sb_put(h, " ", 1);
    return 0;
}

typedef struct {
    const st_writer *w;
    const sbuf *h;
    const char *path;
} write_ctx;

static int write_all(FILE *f, void *vctx, af_err *e) {
    write_ctx *c = vctx;
    unsigned char len[8];
    uint64_t n = c->h->n;
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(n >> (8 * i));
    if (fwrite(len, 1, 8, f) != 8 || fwrite(c->h->p, 1, c->h->n, f) != c->h->n)
        return af_errf(e, "%s: write failed: %s", c->path, strerror(errno));
    for (int i = 0; i < c->w->n; i++) {
        const struct st_wtensor *t = &c->w->t[i];
        if (t->nbytes && fwrite(t->data, 1, t->nbytes, f) != t->nbytes)
            return af_errf(e, "%s: tensor '%s': write failed: %s", c->path, t->name,
                           strerror(errno));
    }
    return 0;
}

int st_writer_write(st_writer *w, const char *path, af_err *e) {
    sbuf h = {0};
    if (build_header(w, path, &h, e)) {
        free(h.p);
        return -1;
    }
    write_ctx c = {w, &h, path};
    int rc = af_write_atomic(path, write_all, &c, e);
    free(h.p);
    return rc;
}

/* Written through st_writer_write: a temp file renamed over path, so a failure leaves it whole. */
int st_rewrite_f16(const char *path, af_err *e) {
    st_file f;
    if (st_open(&f, path, e)) return -1;
    st_writer w;
    st_writer_init(&w);
    uint16_t **bufs = af_calloc(f.ntensors, sizeof *bufs);
    int rc = 0;
    for (int i = 0; i < f.nmeta; i++) st_writer_meta(&w, f.meta[i].key, f.meta[i].value);
    for (int i = 0; i < f.ntensors && rc == 0; i++) {
        const st_tensor *t = &f.tensors[i];
        if (t->dtype != ST_F32) {
            st_writer_add(&w, t->name, t->dtype, t->ndim, t->shape, t->data);
            continue;
        }
        float *x = af_malloc(t->numel * sizeof(float) + 1);
        rc = st_to_f32(t, x, t->numel, e);
        bufs[i] = af_malloc(t->numel * sizeof(uint16_t) + 1);
        for (int64_t k = 0; k < t->numel; k++) bufs[i][k] = st_f32_to_f16(x[k]);
        free(x);
        st_writer_add(&w, t->name, ST_F16, t->ndim, t->shape, bufs[i]);
    }
    if (rc == 0) rc = st_writer_write(&w, path, e);
    st_writer_free(&w);
    for (int i = 0; i < f.ntensors; i++) free(bufs[i]);
    free(bufs);
    st_close(&f);
    return rc;
}
