/* torchfile.c: PyTorch checkpoints (zip.c, pickle.c, torchfile.c): round trips, strided views,
 * a real AdapterHub file, and one test per refusal: hostile globals and opcodes, views outside
 * their storage, every truncation of a valid file, corrupt bytes, the legacy format. */
#include "pickle.h"
#include "tap.h"
#include "torchfile.h"
#include "zip.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/af-pt-test.XXXXXX";

static char *tmp(const char *name) {
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

/* A checkpoint image with the given pickle and storages "0".."n-1" under prefix "archive". */
static unsigned char *zip_image(const void *pkl, size_t plen, const void **st, const size_t *stlen,
                                int n, size_t *size) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, size);
    zip_writer z;
    af_err e;
    zip_writer_init(&z, f);
    zip_writer_add(&z, "archive/data.pkl", pkl, plen, &e);
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "archive/data/%d", i);
        zip_writer_add(&z, name, st[i], stlen[i], &e);
    }
    zip_writer_add(&z, "archive/version", "3\n", 2, &e);
    zip_writer_finish(&z, &e);
    zip_writer_free(&z);
    fclose(f);
    return (unsigned char *)buf;
}

/* Parses an image and checks it is refused with a message holding `frag` and the name. */
static void refused(const unsigned char *p, size_t n, const char *frag, const char *what) {
    st_file f;
    af_err e;
    int rc = pt_parse(&f, p, n, "x.bin", &e);
    ok(rc == -1 && strstr(e.msg, frag) && strstr(e.msg, "x.bin"), "%s: refused (%s)", what,
       rc ? e.msg : "accepted");
    if (!rc) st_close(&f);
}

static void refused_pickle(const char *pkl, size_t plen, const char *frag, const char *what) {
    float data[6] = {0};
    const void *st[1] = {data};
    size_t stlen[1] = {sizeof data}, n;
    unsigned char *img = zip_image(pkl, plen, st, stlen, 1, &n);
    refused(img, n, frag, what);
    free(img);
}

static void test_round_trip(void) {
    float a[6] = {1, -2, 3.5f, 4, 5, 6e-8f}, c[1] = {42};
    uint16_t h[4] = {st_f32_to_f16(1.5f), st_f32_to_f16(-2), 0, 0x7bff};
    uint16_t b[2] = {st_f32_to_bf16(0.25f), st_f32_to_bf16(-1e30f)};
    st_writer w;
    st_writer_init(&w);
    st_writer_add_f32(&w, "bert.encoder.layer.0.output.adapters.x.adapter_up.weight", a, 2,
                      (int64_t)2, (int64_t)3);
    st_writer_add(&w, "half", ST_F16, 1, (int64_t[]){4}, h);
    st_writer_add(&w, "bf", ST_BF16, 2, (int64_t[]){1, 2}, b);
    st_writer_add_f32(&w, "scalar", c, 0);
    af_err e;
    int rc = pt_write(&w, tmp("rt.bin"), "rt", &e);
    ok(rc == 0, "pt_write (%s)", rc ? e.msg : "ok");
    st_file f;
    rc = pt_open(&f, tmp("rt.bin"), &e);
    ok(rc == 0, "pt_open reads it back (%s)", rc ? e.msg : "ok");
    if (rc) return;
    ok(f.ntensors == 4, "4 tensors (%d)", f.ntensors);
    int same = f.ntensors == 4;
    for (int i = 0; same && i < 4; i++) {
        const st_tensor *t = &f.tensors[i];
        same = !strcmp(t->name, w.t[i].name) && t->dtype == w.t[i].dtype &&
               t->ndim == w.t[i].ndim && t->nbytes == w.t[i].nbytes &&
               !memcmp(t->data, w.t[i].data, t->nbytes);
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == w.t[i].shape[d];
    }
    ok(same, "names, order, dtypes, shapes and bytes survive");
    st_close(&f);
    st_writer_free(&w);
}

/* The entries PyTorch's reader relies on, and 64-byte aligned storages. */
static void test_layout(void) {
    char *data;
    size_t n;
    af_err e;
    if (af_read_file(tmp("rt.bin"), &data, &n, &e)) {
        ok(0, "read rt.bin: %s", e.msg);
        return;
    }
    zip_archive z;
    int rc = zip_parse(&z, data, n, "rt.bin", &e);
    ok(rc == 0, "zip_parse (%s)", rc ? e.msg : "ok");
    const zip_entry *v = zip_find(&z, "rt/version"), *p = zip_find(&z, "rt/data.pkl"),
                    *d = zip_find(&z, "rt/data/1");
    ok(v && p && d, "rt/data.pkl, rt/data/1, rt/version present");
    ok(d && d->offset % 64 == 0, "storages start on 64-byte boundaries");
    const unsigned char *b;
    size_t len;
    void *owned;
    ok(v && !zip_read(&z, v, &b, &len, &owned, 16, &e) && len == 2 && !memcmp(b, "3\n", 2),
       "version is 3");
    zip_close(&z);
    free(data);
}

static void test_strided(void) {
    /* A transposed view: shape (3, 2), strides (1, 3) over storage 0..5 with offset 0. */
    pk_tensor t = {"t", ST_F32, "0", 6, 0, 2, {3, 2}, {1, 3}};
    size_t plen, n;
    unsigned char *pkl = pk_write_state_dict(&t, 1, &plen);
    float s[6] = {0, 1, 2, 3, 4, 5}, want[6] = {0, 3, 1, 4, 2, 5};
    const void *st[1] = {s};
    size_t stlen[1] = {sizeof s};
    unsigned char *img = zip_image(pkl, plen, st, stlen, 1, &n);
    st_file f;
    af_err e;
    int rc = pt_parse(&f, img, n, "strided", &e);
    float got[6] = {0};
    if (!rc) st_to_f32(&f.tensors[0], got, 6, &e);
    ok(rc == 0 && !memcmp(got, want, sizeof got),
       "a strided view is copied out in row-major order");
    if (!rc) st_close(&f);
    free(img);
    /* An offset that reaches past the storage, and a storage of the wrong size. */
    t.offset = 1;
    free(pkl);
    pkl = pk_write_state_dict(&t, 1, &plen);
    img = zip_image(pkl, plen, st, stlen, 1, &n);
    refused(img, n, "reaches element 7 of a storage of 6", "a view past its storage");
    free(img);
    free(pkl);
    t.offset = 0, t.storage_numel = 8;
    pkl = pk_write_state_dict(&t, 1, &plen);
    img = zip_image(pkl, plen, st, stlen, 1, &n);
    refused(img, n, "holds 24 bytes, 8 elements of 4 expected", "a storage shorter than announced");
    free(img);
    free(pkl);
    /* the same key twice (SETITEMS may repeat one; a dict cannot) */
    pk_tensor two[2] = {t, t};
    two[0].storage_numel = two[1].storage_numel = 6;
    pkl = pk_write_state_dict(two, 2, &plen);
    img = zip_image(pkl, plen, st, stlen, 1, &n);
    refused(img, n, "state dict key 't' appears twice", "a repeated key");
    free(img);
    free(pkl);
    t.storage = "7", t.storage_numel = 6;
    pkl = pk_write_state_dict(&t, 1, &plen);
    img = zip_image(pkl, plen, st, stlen, 1, &n);
    refused(img, n, "storage archive/data/7 missing", "a storage that is not there");
    free(img);
    free(pkl);
}

#define P(s) s, sizeof s - 1

static void test_hostile(void) {
    refused_pickle(P("cos\nsystem\n(S'touch /tmp/af-pwned'\ntR."), "global 'os.system' refused",
                   "os.system by GLOBAL");
    refused_pickle(P("\x80\x02"
                     "cbuiltins\neval\n."),
                   "global 'builtins.eval' refused", "builtins.eval");
    refused_pickle(P("\x80\x04\x8c\x02os\x8c\x06system\x93."), "global 'os.system' refused",
                   "os.system by STACK_GLOBAL");
    refused_pickle(P("\x80\x02(S'ls'\nios\nsystem\n."), "opcode STRING refused",
                   "a protocol-0 string");
    refused_pickle(P("\x80\x02}(Ka]u."), "opcode EMPTY_LIST refused", "a list");
    refused_pickle(P("\x80\x02(ios\nsystem\n."), "opcode INST refused", "INST");
    refused_pickle(P("\x80\x02"
                     "ctorch\nFloatStorage\n)R."),
                   "calling torch.FloatStorage is refused", "calling a storage type");
    refused_pickle(P("\x80\x02}X\x01\x00\x00\x00"
                     "aK\x01s."),
                   "entry 'a' is not a tensor", "a state dict entry that is an int");
    refused_pickle(P("\x80\x02]."), "opcode EMPTY_LIST", "a list at the top");
    refused_pickle(P("\x80\x02K\x01."), "not a state dict", "an int at the top");
    refused_pickle(P("\x80\x02}"), "without STOP: truncated", "a pickle without STOP");
    refused_pickle(P("\x80\x02}.junk"), "bytes after the pickle's STOP", "bytes after STOP");
    refused_pickle(P("\x80\x02h\x05."), "memo index never set", "BINGET of nothing");
    refused_pickle(P("\x80\x02R."), "stack underflow", "REDUCE on an empty stack");
    refused_pickle(P("\x80\x02}(K\x01u."), "a key without a value", "SETITEMS with an odd count");
    struct stat sb;
    ok(stat("/tmp/af-pwned", &sb) != 0, "nothing ran");
}

static void test_truncated_and_corrupt(void) {
    char *data;
    size_t n;
    af_err e;
    if (af_read_file(tmp("rt.bin"), &data, &n, &e)) {
        ok(0, "read rt.bin: %s", e.msg);
        return;
    }
    int all = 1;
    for (size_t k = 0; k < n; k++) {
        st_file f;
        if (!pt_parse(&f, data, k, "cut.bin", &e)) {
            st_close(&f);
            all = 0;
            diag("accepted when cut at %zu of %zu", k, n);
        } else if (!strstr(e.msg, "cut.bin")) {
            all = 0;
            diag("cut at %zu: message does not name the file: %s", k, e.msg);
        }
    }
    ok(all, "every truncation of a %zu-byte checkpoint is refused, naming the file", n);
    /* One bit flipped in each byte (the zip's own bookkeeping or a tensor's data): refused or,
     * where the byte is one no reader looks at (a timestamp, padding), the same tensors. */
    int safe = 1;
    for (size_t k = 0; k < n; k++) {
        data[k] ^= 0x10;
        st_file f;
        if (!pt_parse(&f, data, n, "flip.bin", &e))
            st_close(&f);
        else if (!strstr(e.msg, "flip.bin"))
            safe = 0;
        data[k] ^= 0x10;
    }
    ok(safe, "every single flipped bit is survived, every refusal names the file");
    zip_archive z;
    zip_parse(&z, data, n, "rt.bin", &e);
    const zip_entry *d = zip_find(&z, "rt/data/0");
    size_t at = d ? d->offset : 0;
    zip_close(&z);
    data[at] ^= 1;
    refused((unsigned char *)data, n, "CRC-32 mismatch", "a corrupt storage byte");
    free(data);
}

static void test_byteorder(void) {
    pk_tensor t = {"t", ST_F32, "0", 1, 0, 1, {1}, {1}};
    size_t plen, n;
    unsigned char *pkl = pk_write_state_dict(&t, 1, &plen);
    float v = 1;
    for (int big = 0; big < 2; big++) {
        char *buf = NULL;
        FILE *f = open_memstream(&buf, &n);
        zip_writer z;
        af_err e;
        zip_writer_init(&z, f);
        zip_writer_add(&z, "archive/data.pkl", pkl, plen, &e);
        zip_writer_add(&z, "archive/byteorder", big ? "big" : "little", big ? 3 : 6, &e);
        zip_writer_add(&z, "archive/data/0", &v, 4, &e);
        zip_writer_finish(&z, &e);
        zip_writer_free(&z);
        fclose(f);
        st_file sf;
        int rc = pt_parse(&sf, buf, n, "bo.bin", &e);
        if (!big) {
            ok(rc == 0, "byteorder little (PyTorch >= 2.1) reads (%s)", rc ? e.msg : "ok");
            if (!rc) st_close(&sf);
        } else {
            refused((unsigned char *)buf, n, "not in little-endian byte order", "byteorder big");
        }
        free(buf);
    }
    free(pkl);
}

static void test_legacy(void) {
    const unsigned char legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                    0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
    refused(legacy, sizeof legacy, "legacy format (before PyTorch 1.6)", "the legacy format");
    refused(legacy, sizeof legacy, "torch.save(torch.load(", "the legacy format: how to re-save");
    refused((const unsigned char *)"{\"a\":1}", 7, "not a PyTorch checkpoint", "JSON");
}

/* A file saved by AdapterHub 3.2.1 (scripts/gen-hub-fixtures.py). */
static void test_adapterhub(void) {
    const char *top = getenv("AF_TOP");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/hub/pfeiffer/pytorch_adapter.bin",
             top ? top : ".");
    st_file f;
    af_err e;
    int rc = pt_open(&f, path, &e);
    ok(rc == 0, "AdapterHub's pytorch_adapter.bin reads (%s)", rc ? e.msg : "ok");
    if (rc) return;
    const st_tensor *t = st_find(&f, "bert.encoder.layer.1.output.adapters.pf.adapter_up.weight");
    ok(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 32,
       "its adapter_up.weight is F32 [32, r]");
    st_close(&f);
}

int main(void) {
    if (!mkdtemp(tmpdir)) return 1;
    test_round_trip();
    test_layout();
    test_strided();
    test_hostile();
    test_truncated_and_corrupt();
    test_byteorder();
    test_legacy();
    test_adapterhub();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) diag("could not remove %s", tmpdir);
    return done_testing();
}
