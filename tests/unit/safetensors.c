/* safetensors.c: round trips, the exact layout of written files, one test per rejection rule. */
#include "safetensors.h"
#include "tap.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/af-st-test.XXXXXX";

static char *tmp(const char *name) {
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

/* An in-memory file: 8-byte length field, header, datalen bytes of data. */
typedef struct {
    unsigned char *p;
    size_t n;
} image;

static image img_len(uint64_t lenfield, const char *hdr, size_t hlen, size_t datalen) {
    image m;
    m.n = 8 + hlen + datalen;
    m.p = calloc(1, m.n + 1);
    for (int i = 0; i < 8; i++) m.p[i] = (unsigned char)(lenfield >> (8 * i));
    memcpy(m.p + 8, hdr, hlen);
    for (size_t i = 0; i < datalen; i++) m.p[8 + hlen + i] = (unsigned char)i;
    return m;
}

static image img(const char *hdr, size_t datalen) {
    return img_len(strlen(hdr), hdr, strlen(hdr), datalen);
}

/* Parses m and checks that it is rejected with a message containing every given fragment
 * (NULL-terminated), always including the file name. */
static void reject_img(const char *what, image m, ...) {
    st_file f;
    af_err e = {{0}};
    int rc = st_parse(&f, m.p, m.n, "t.safetensors", &e);
    int good = rc == -1 && strncmp(e.msg, "t.safetensors: ", 15) == 0;
    va_list ap;
    va_start(ap, m);
    for (const char *frag; (frag = va_arg(ap, const char *));)
        if (!strstr(e.msg, frag)) good = 0, diag("missing '%s'", frag);
    va_end(ap);
    ok(good, "rejects %s", what);
    if (rc == 0) {
        diag("accepted");
        st_close(&f);
    } else {
        diag("%s", e.msg);
    }
    free(m.p);
}

#define REJECT(what, m, ...) reject_img(what, m, __VA_ARGS__, (const char *)NULL)

static int accepts(image m, st_file *f) {
    af_err e = {{0}};
    int rc = st_parse(f, m.p, m.n, "t.safetensors", &e);
    if (rc) diag("%s", e.msg);
    return rc == 0;
}

static void test_rejections(void) {
    const char *T = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    /* the well-formed base of the cases below */
    st_file f;
    image m = img(T, 8);
    ok(accepts(m, &f) && f.ntensors == 1 && f.tensors[0].nbytes == 8, "base case is valid");
    st_close(&f);
    free(m.p);

    image s = img_len(0, "", 0, 0);
    s.n = 5;
    REJECT("a file shorter than 8 bytes", s, "5 bytes", "too short");
    REJECT("a header length over 100,000,000", img_len(100000001, T, strlen(T), 8),
           "exceeds the limit");
    REJECT("a header length past the end of the file", img_len(strlen(T) + 9, T, strlen(T), 8),
           "runs past the end");
    REJECT("a header length of 2^64-1", img_len(UINT64_MAX, T, strlen(T), 8), "exceeds the limit");
    REJECT("a header not starting with '{'",
           img(" {\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
           "must start with '{'");
    REJECT("a header that is a JSON array", img("[]", 0), "must start with '{'");
    REJECT("an empty header", img("", 0), "header length is 0");
    REJECT("a header that is not UTF-8",
           img("{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
           "not valid UTF-8");
    REJECT("an overlong UTF-8 encoding",
           img("{\"a\xc0\xaf\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
           "not valid UTF-8");
    REJECT("a header that is not JSON",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8),
           "not valid JSON");
    REJECT("a number with a leading zero (cJSON accepts it)",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", 8),
           "not valid JSON", "invalid number", "tensor 'a'");
    REJECT("a raw control character in a string",
           img("{\"a\x01\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
           "control character", "0x01");
    REJECT("an escaped NUL in a name",
           img("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
           "\\u0000");
    REJECT("padding other than spaces",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}\n  ", 8),
           "padded with spaces", "0x0a");
    REJECT("trailing text after the JSON",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  {}", 8),
           "padded with spaces");
    REJECT("an entry that is not an object", img("{\"a\":[1,2]}", 0), "tensor 'a'",
           "must be an object", "an array");
    REJECT("a dtype that is not a string",
           img("{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8), "tensor 'a'",
           "dtype must be a string");
    REJECT("an unknown dtype",
           img("{\"a\":{\"dtype\":\"F128\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
           "tensor 'a'", "unknown dtype 'F128'");
    REJECT("a lower-case dtype",
           img("{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
           "unknown dtype 'f32'");
    REJECT("a shape that is not an array",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8), "tensor 'a'",
           "shape must be an array");
    REJECT("a negative dimension",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8),
           "tensor 'a'", "non-negative integers");
    REJECT("a fractional dimension",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8),
           "tensor 'a'", "non-negative integers");
    REJECT("a dimension written as 2.0",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8),
           "tensor 'a'", "written as non-negative integers", "'2.0'");
    REJECT("a dimension that is a string",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8),
           "tensor 'a'", "non-negative integers", "a string");
    REJECT(
        "more than 8 dimensions",
        img("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8),
        "tensor 'a'", "9 dimensions");
    REJECT("data_offsets that are not an array",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":8}}", 8), "tensor 'a'",
           "data_offsets must be an array of 2");
    REJECT("data_offsets of 3 numbers",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8),
           "tensor 'a'", "data_offsets must be an array of 2");
    REJECT("a negative data offset",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-1,8]}}", 8),
           "tensor 'a'", "data_offsets must be an array of 2 non-negative integers");
    REJECT("a missing dtype", img("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
           "tensor 'a'", "dtype is missing");
    REJECT("a missing shape", img("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8),
           "tensor 'a'", "shape is missing");
    REJECT("missing data_offsets", img("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8),
           "tensor 'a'", "data_offsets is missing");
    REJECT("an unexpected key in an entry",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8),
           "tensor 'a'", "unexpected key 'x'");
    REJECT("a duplicate key in an entry",
           img("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
               8),
           "tensor 'a'", "duplicate key 'dtype'");
    REJECT("__metadata__ that is not an object",
           img("{\"__metadata__\":\"x\",\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,"
               "8]}}",
               8),
           "__metadata__ must be an object");
    REJECT(
        "a __metadata__ value that is not a string",
        img("{\"__metadata__\":{\"k\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
            "[0,8]}}",
            8),
        "__metadata__", "value of 'k' must be a string", "a number");
    REJECT("a __metadata__ value that is an object",
           img("{\"__metadata__\":{\"k\":{}},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_"
               "offsets\":[0,8]}}",
               8),
           "value of 'k' must be a string", "an object");
    REJECT("a duplicate __metadata__ key",
           img("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
               "\"data_offsets\":[0,8]}}",
               8),
           "__metadata__", "duplicate key 'k'");
    REJECT("two __metadata__ objects",
           img("{\"__metadata__\":{},\"__metadata__\":{},\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
               "\"data_offsets\":[0,8]}}",
               8),
           "'__metadata__' appears twice");
    REJECT("a duplicate tensor name",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8),
           "tensor 'a' appears twice");
    REJECT("data_offsets that end before they begin",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8), "tensor 'a'",
           "end before they begin");
    REJECT("a hole at the start of the data",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8), "tensor 'a'",
           "hole at the start");
    REJECT("a hole between tensors",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
               12),
           "tensor 'b'", "hole after tensor 'a'");
    REJECT("overlapping tensors",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12),
           "tensor 'b'", "overlap tensor 'a'");
    REJECT("two tensors on the same bytes",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
               8),
           "overlap");
    REJECT("a byte length that does not match the shape",
           img("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8), "tensor 'a'",
           "hold 8 bytes", "shape [3] of F32 needs 12");
    REJECT("a byte length that does not match the dtype",
           img("{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8), "tensor 'a'",
           "needs 4");
    REJECT("a shape whose element count overflows",
           img("{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],"
               "\"data_offsets\":[0,0]}}",
               0),
           "tensor 'a'", "overflows");
    REJECT("a shape whose byte size overflows",
           img("{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,536870912],"
               "\"data_offsets\":[0,0]}}",
               0),
           "tensor 'a'", "overflows");
    REJECT("data that ends before the end of the file", img(T, 12), "end exactly at the end",
           "data offset 8", "12 bytes");
    REJECT("data that runs past the end of the file (truncated)", img(T, 6), "tensor 'a'",
           "past the end of the file");
}

static void test_accepts_valid_variants(void) {
    st_file f;
    /* offsets out of name order, zero-size tensors sharing an offset, a scalar, space padding */
    image m = img("{\"z\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"e1\":{\"dtype\":\"I64\",\"shape\":[0,3],\"data_offsets\":[12,12]},"
                  "\"e2\":{\"dtype\":\"BOOL\",\"shape\":[5,0],\"data_offsets\":[12,12]},"
                  "\"a\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[4,12]},"
                  "\"__metadata__\":{\"k\":\"v\"}}     ",
                  12);
    int good = accepts(m, &f);
    ok(good && f.ntensors == 4 && f.nmeta == 1, "accepts a valid header in any order");
    if (good) {
        ok(strcmp(f.tensors[0].name, "z") == 0 && strcmp(f.tensors[1].name, "a") == 0,
           "tensors are sorted by data offset");
        const st_tensor *a = st_find(&f, "a");
        ok(a && a->ndim == 0 && a->numel == 1 && a->nbytes == 8 &&
               (const unsigned char *)a->data == m.p + m.n - 8,
           "a 0-dim scalar has one element and points into the image");
        const st_tensor *e1 = st_find(&f, "e1");
        ok(e1 && e1->numel == 0 && e1->nbytes == 0, "a zero-size tensor");
        ok(st_meta_get(&f, "k") && strcmp(st_meta_get(&f, "k"), "v") == 0, "metadata value");
        ok(!st_find(&f, "nope") && !st_meta_get(&f, "nope"), "lookups of absent names");
        st_close(&f);
    }
    free(m.p);
    m = img("{}", 0);
    ok(accepts(m, &f) && f.ntensors == 0, "accepts an empty file '{}'");
    st_close(&f);
    free(m.p);
    m = img("{\"__metadata__\":{}}", 0);
    ok(accepts(m, &f) && f.ntensors == 0 && f.nmeta == 0, "accepts an empty __metadata__");
    st_close(&f);
    free(m.p);
    m = img("{\"\xc3\xa9t\xc3\xa9\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
    ok(accepts(m, &f) && st_find(&f, "\xc3\xa9t\xc3\xa9"), "accepts a UTF-8 tensor name");
    st_close(&f);
    free(m.p);
}

static int read_bytes(const char *path, unsigned char **p, size_t *n) {
    af_err e;
    return af_read_file(path, (char **)p, n, &e);
}

static int bytes_equal(const char *path, const unsigned char *want, size_t n) {
    unsigned char *got;
    size_t gn;
    if (read_bytes(path, &got, &gn)) return 0;
    int eq = gn == n && memcmp(got, want, n) == 0;
    if (!eq) diag("%s: %zu bytes, %zu expected", path, gn, n);
    free(got);
    return eq;
}

/* Byte-for-byte the outputs of the reference implementation's own serialisation tests
 * (safetensors/src/tensor.rs: test_empty, test_serialization, ..._forced_alignement). */
static void test_reference_layout(void) {
    af_err e;
    st_writer w;
    st_writer_init(&w);
    ok(st_writer_write(&w, tmp("empty.st"), &e) == 0, "write an empty file");
    static const unsigned char empty[] = {8,   0,   0,   0,   0,   0,   0,   0,
                                          '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    ok(bytes_equal(tmp("empty.st"), empty, sizeof empty), "empty file: '{}' padded to 8");
    st_writer_meta(&w, "framework", "pt");
    ok(st_writer_write(&w, tmp("meta.st"), &e) == 0, "write metadata only");
    const char *mh = "{\"__metadata__\":{\"framework\":\"pt\"}}     ";
    unsigned char want[200] = {40};
    memcpy(want + 8, mh, 40);
    ok(bytes_equal(tmp("meta.st"), want, 48), "metadata-only file matches the reference bytes");
    st_writer_free(&w);

    float v[6] = {0, 1, 2, 3, 4, 5};
    st_writer_init(&w);
    st_writer_add_f32(&w, "attn.0", v, 3, (int64_t)1, (int64_t)2, (int64_t)3);
    ok(st_writer_write(&w, tmp("ser.st"), &e) == 0, "write one F32 tensor");
    const char *h1 = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
    memset(want, 0, sizeof want);
    want[0] = 64;
    memcpy(want + 8, h1, 64);
    memcpy(want + 72, v, 24);
    ok(bytes_equal(tmp("ser.st"), want, 96), "one tensor, no padding needed: reference bytes");
    st_writer_free(&w);

    st_writer_init(&w);
    st_writer_add_f32(&w, "attn0", v, 4, (int64_t)1, (int64_t)1, (int64_t)2, (int64_t)3);
    ok(st_writer_write(&w, tmp("align.st"), &e) == 0, "write a tensor needing padding");
    const char *h2 = "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}"
                     "       ";
    memset(want, 0, sizeof want);
    want[0] = 72;
    memcpy(want + 8, h2, 72);
    memcpy(want + 80, v, 24);
    ok(bytes_equal(tmp("align.st"), want, 104), "padded with 7 spaces: reference bytes");
    st_writer_free(&w);
}

/* Checks a written file against the spec directly: length field, padding, offsets, size. */
static void check_layout(const char *path, int ntensors) {
    unsigned char *p;
    size_t n;
    if (read_bytes(path, &p, &n)) {
        ok(0, "%s readable", path);
        return;
    }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | p[i];
    ok(hl % 8 == 0 && 8 + hl <= n, "%s: header length %llu is a multiple of 8", path,
       (unsigned long long)hl);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts((char *)p + 8, hl, &end, 0);
    int spaces = j != NULL && p[8] == '{';
    for (const char *q = end; j && q < (char *)p + 8 + hl; q++) spaces &= *q == ' ';
    ok(spaces, "%s: header is JSON starting with '{' padded with spaces only", path);
    size_t at = 0;
    int contiguous = 1, count = 0;
    for (cJSON *c = j ? j->child : NULL; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            for (cJSON *m = c->child; m; m = m->next) contiguous &= cJSON_IsString(m);
            continue;
        }
        cJSON *o = cJSON_GetObjectItem(c, "data_offsets");
        contiguous &= (size_t)cJSON_GetArrayItem(o, 0)->valuedouble == at;
        at = (size_t)cJSON_GetArrayItem(o, 1)->valuedouble;
        count++;
    }
    ok(contiguous && count == ntensors && 8 + hl + at == n,
       "%s: offsets contiguous from 0 in write order, data ends at end of file", path);
    cJSON_Delete(j);
    free(p);
}

static void test_round_trip(void) {
    af_err e;
    float a[6] = {1.5f, -2.25f, 3e-8f, 1e30f, -0.0f, 7};
    float h[5] = {1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 0.33325195f}; /* exact in F16 */
    float b[4] = {1.0f, -3.0f, 0x1.8p126f, 0.0078125f};                /* exact in BF16 */
    uint16_t h16[5], b16[4];
    for (int i = 0; i < 5; i++) h16[i] = st_f32_to_f16(h[i]);
    for (int i = 0; i < 4; i++) b16[i] = st_f32_to_bf16(b[i]);
    double scalar = 2.5;
    st_writer w;
    st_writer_init(&w);
    st_writer_add_f32(&w, "w.f32", a, 2, (int64_t)2, (int64_t)3);
    st_writer_add(&w, "w.f16", ST_F16, 1, (int64_t[]){5}, h16);
    st_writer_add(&w, "w.bf16", ST_BF16, 2, (int64_t[]){2, 2}, b16);
    st_writer_add(&w, "empty", ST_F32, 2, (int64_t[]){0, 768}, NULL);
    st_writer_add(&w, "scalar", ST_F64, 0, NULL, &scalar);
    st_writer_meta(&w, "format", "af-adapter/1");
    st_writer_meta(&w, "quote", "say \"hi\"\n\\ \x01 caf\xc3\xa9");
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddNumberToObject(cfg, "reduction_factor", 16);
    st_writer_meta_json(&w, "config", cfg);
    cJSON_Delete(cfg);
    st_writer_meta(&w, "format", "af-fusion/1"); /* replaces */
    int rc = st_writer_write(&w, tmp("rt.safetensors"), &e);
    ok(rc == 0, "write F32, F16, BF16, empty and scalar tensors with metadata");
    if (rc) diag("%s", e.msg);
    st_writer_free(&w);

    st_file f;
    rc = st_open(&f, tmp("rt.safetensors"), &e);
    ok(rc == 0, "read it back");
    if (rc) {
        diag("%s", e.msg);
        return;
    }
    ok(f.ntensors == 5 && strcmp(f.tensors[0].name, "w.f32") == 0 &&
           strcmp(f.tensors[4].name, "scalar") == 0,
       "tensors in the order written");
    const st_tensor *t = st_find(&f, "w.f32");
    float out[6];
    ok(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
           st_to_f32(t, out, 6, &e) == 0 && memcmp(out, a, sizeof a) == 0,
       "F32 round trip is bit-exact");
    ok(t && (const char *)t->data >= (const char *)f.map &&
           (const char *)t->data < (const char *)f.map + f.size,
       "F32 data points into the mapping (zero copy)");
    t = st_find(&f, "w.f16");
    ok(t && t->dtype == ST_F16 && st_to_f32(t, out, 5, &e) == 0 && memcmp(out, h, sizeof h) == 0,
       "F16 round trip of representable values is exact");
    t = st_find(&f, "w.bf16");
    ok(t && t->dtype == ST_BF16 && st_to_f32(t, out, 4, &e) == 0 && memcmp(out, b, sizeof b) == 0,
       "BF16 round trip of representable values is exact");
    t = st_find(&f, "empty");
    ok(t && t->numel == 0 && t->nbytes == 0 && t->ndim == 2 && t->shape[1] == 768,
       "zero-size tensor keeps its shape");
    t = st_find(&f, "scalar");
    double sv = 0;
    if (t) memcpy(&sv, t->data, 8);
    ok(t && t->ndim == 0 && t->numel == 1 && t->dtype == ST_F64 && sv == 2.5, "0-dim scalar");
    ok(t && st_to_f32(t, out, 1, &e) == -1 && strstr(e.msg, "F64 found"),
       "st_to_f32 refuses F64, naming the dtype");
    t = st_find(&f, "w.f32");
    ok(t && st_to_f32(t, out, 5, &e) == -1 && strstr(e.msg, "w.f32"),
       "st_to_f32 refuses a wrong count, naming the tensor");
    ok(f.nmeta == 3 && strcmp(st_meta_get(&f, "format"), "af-fusion/1") == 0,
       "metadata keys unique, later value wins");
    ok(strcmp(st_meta_get(&f, "quote"), "say \"hi\"\n\\ \x01 caf\xc3\xa9") == 0,
       "metadata with quotes, control characters and UTF-8 survives");
    ok(strcmp(st_meta_get(&f, "config"), "{\"reduction_factor\":16}") == 0,
       "JSON metadata stored as a string");
    st_close(&f);
    check_layout(tmp("rt.safetensors"), 5);
}

static void test_writer_errors(void) {
    af_err e;
    st_writer w;
    float x = 1;
    st_writer_init(&w);
    st_writer_add_f32(&w, "a", &x, 1, (int64_t)1);
    st_writer_add_f32(&w, "a", &x, 1, (int64_t)1);
    ok(st_writer_write(&w, tmp("dup.st"), &e) == -1 && strstr(e.msg, "'a' added twice") &&
           access(tmp("dup.st"), F_OK) != 0,
       "writer refuses duplicate names and leaves no file");
    st_writer_free(&w);
    st_writer_init(&w);
    st_writer_add_f32(&w, "__metadata__", &x, 1, (int64_t)1);
    ok(st_writer_write(&w, tmp("m.st"), &e) == -1, "writer refuses a tensor named __metadata__");
    st_writer_free(&w);
    st_writer_init(&w);
    st_writer_add(&w, "neg", ST_F32, 1, (int64_t[]){-1}, &x);
    ok(st_writer_write(&w, tmp("n.st"), &e) == -1 && strstr(e.msg, "neg"),
       "writer refuses a negative dimension");
    st_writer_free(&w);
    st_writer_init(&w);
    st_writer_add_f32(&w, "a", &x, 1, (int64_t)1);
    ok(st_writer_write(&w, "/nonexistent-dir/x.st", &e) == -1 && strstr(e.msg, "/nonexistent"),
       "writer reports an unwritable path");
    st_writer_free(&w);
}

static void test_open_errors(void) {
    af_err e;
    st_file f;
    ok(st_open(&f, tmp("missing"), &e) == -1 && strstr(e.msg, "No such file"),
       "open of a missing file");
    FILE *fp = fopen(tmp("short"), "wb");
    fwrite("abc", 1, 3, fp);
    fclose(fp);
    ok(st_open(&f, tmp("short"), &e) == -1 && strstr(e.msg, "3 bytes") &&
           strstr(e.msg, tmp("short")),
       "open of a 3-byte file names it");
    fp = fopen(tmp("zero"), "wb");
    fclose(fp);
    ok(st_open(&f, tmp("zero"), &e) == -1 && strstr(e.msg, "0 bytes"), "open of an empty file");
    ok(st_open(&f, tmpdir, &e) == -1, "open of a directory");
}

static void test_f16(void) {
    ok(st_f32_to_f16(1.0f) == 0x3c00 && st_f16_to_f32(0x3c00) == 1.0f, "f16 1.0");
    ok(st_f32_to_f16(65504.0f) == 0x7bff && st_f32_to_f16(65519.0f) == 0x7bff, "f16 max");
    ok(st_f32_to_f16(65520.0f) == 0x7c00 && st_f32_to_f16(1e10f) == 0x7c00, "f16 overflow to inf");
    ok(st_f32_to_f16(-INFINITY) == 0xfc00 && isinf(st_f16_to_f32(0x7c00)), "f16 infinities");
    ok((st_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (st_f32_to_f16(NAN) & 0x3ff) &&
           isnan(st_f16_to_f32(0x7e00)),
       "f16 NaN stays NaN");
    ok(st_f32_to_f16(ldexpf(1, -24)) == 0x0001 && st_f16_to_f32(1) == ldexpf(1, -24),
       "f16 smallest subnormal");
    ok(st_f32_to_f16(ldexpf(1, -25)) == 0 && st_f32_to_f16(ldexpf(3, -25)) == 2,
       "f16 subnormal ties round to even");
    ok(st_f32_to_f16(ldexpf(1023.5f, -24)) == 0x0400, "f16 rounding up into the normals");
    ok(st_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00 &&
           st_f32_to_f16(1.0f + 3 * ldexpf(1, -11)) == 0x3c02,
       "f16 normal ties round to even");
    ok(st_f32_to_f16(-0.0f) == 0x8000, "f16 negative zero");
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t back = st_f32_to_f16(st_f16_to_f32((uint16_t)h));
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) back = (uint16_t)h; /* NaN: quietened */
        bad += back != h;
    }
    ok(bad == 0, "every f16 survives f16 -> f32 -> f16 (%d differ)", bad);
    ok(st_f32_to_bf16(1.0f) == 0x3f80 && st_bf16_to_f32(0x3f80) == 1.0f, "bf16 1.0");
    float tie_even, tie_odd;
    uint32_t u = 0x3f808000, v = 0x3f818000;
    memcpy(&tie_even, &u, 4);
    memcpy(&tie_odd, &v, 4);
    ok(st_f32_to_bf16(tie_even) == 0x3f80 && st_f32_to_bf16(tie_odd) == 0x3f82,
       "bf16 ties round to even");
    ok((st_f32_to_bf16(NAN) & 0x7f80) == 0x7f80 && (st_f32_to_bf16(NAN) & 0x7f),
       "bf16 NaN stays NaN");
    ok(st_f32_to_bf16(3.4e38f) == 0x7f80, "bf16 overflow rounds to inf");
}

int main(void) {
    if (!mkdtemp(tmpdir)) return 1;
    test_rejections();
    test_accepts_valid_variants();
    test_reference_layout();
    test_round_trip();
    test_writer_errors();
    test_open_errors();
    test_f16();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) diag("could not remove %s", tmpdir);
    return done_testing();
}
