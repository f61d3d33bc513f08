/* torchfile.c: PyTorch zip checkpoints of state dicts in and out; see torchfile.h. */
#include "torchfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pickle.h"
#include "zip.h"

#define PT_MAX_PICKLE (256u << 20)

int pt_is_zip(const void *data, size_t size) {
    return size >= 4 && !memcmp(data, "PK\x03\x04", 4);
}

/* The one PREFIX/data.pkl entry; its prefix into pre (with the slash). */
static const zip_entry *find_pickle(const zip_archive *z, char *pre, size_t cap, af_err *e) {
    const zip_entry *found = NULL;
    for (int i = 0; i < z->n; i++) {
        const char *nm = z->e[i].name, *slash = strchr(nm, '/');
        if (!slash || strcmp(slash + 1, "data.pkl")) continue;
        if (found) {
            af_errf(e, "%s: two pickles (%s, %s): not one checkpoint", z->path, found->name, nm);
            return NULL;
        }
        found = &z->e[i];
    }
    if (!found) {
        af_errf(e, "%s: a zip archive without PREFIX/data.pkl: not a PyTorch checkpoint", z->path);
        return NULL;
    }
    size_t k = (size_t)(strchr(found->name, '/') - found->name) + 1;
    if (k >= cap) {
        af_errf(e, "%s: entry prefix too long", z->path);
        return NULL;
    }
    memcpy(pre, found->name, k);
    pre[k] = 0;
    return found;
}

/* Elements a view reaches: 1 + offset + Σ (size_d − 1)·stride_d (0 for an empty tensor), with
 * every step checked for overflow and sign. */
static int view_extent(const pk_tensor *t, int64_t *numel, int64_t *extent, const char *path,
                       af_err *e) {
    int64_t n = 1, last = t->offset;
    if (t->offset < 0) return af_errf(e, "%s: %s: negative storage offset", path, t->name);
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0 || t->stride[d] < 0)
            return af_errf(e, "%s: %s: negative size or stride", path, t->name);
        if (__builtin_mul_overflow(n, t->shape[d], &n))
            return af_errf(e, "%s: %s: element count overflows", path, t->name);
        int64_t step;
        if (t->shape[d] && (__builtin_mul_overflow(t->shape[d] - 1, t->stride[d], &step) ||
                            __builtin_add_overflow(last, step, &last)))
            return af_errf(e, "%s: %s: view overflows", path, t->name);
    }
    *numel = n;
    *extent = n ? last + 1 : 0;
    return 0;
}

/* Copies a strided view to dst, contiguous: an odometer over the indices, no recursion. */
static void gather(unsigned char *dst, const unsigned char *src, const pk_tensor *t, size_t es,
                   int64_t numel) {
    int64_t idx[ST_MAX_DIMS] = {0}, off = t->offset;
    for (int64_t k = 0; k < numel; k++) {
        memcpy(dst + k * es, src + off * es, es);
        for (int d = t->ndim; d-- > 0;) {
            off += t->stride[d];
            if (++idx[d] < t->shape[d]) break;
            off -= t->stride[d] * t->shape[d];
            idx[d] = 0;
        }
    }
}

/* The zip entry of a tensor's storage, whose size must be the storage's announced elements. */
static const zip_entry *storage_entry(const st_file *f, const zip_archive *z, const char *pre,
                                      const pk_tensor *t, size_t es, af_err *e) {
    char name[600];
    snprintf(name, sizeof name, "%sdata/%s", pre, t->storage);
    const zip_entry *ze = zip_find(z, name);
    if (!ze) {
        af_errf(e, "%s: %s: storage %s missing", f->path, t->name, name);
        return NULL;
    }
    if (ze->usize / es != (uint64_t)t->storage_numel || ze->usize % es) {
        af_errf(e, "%s: %s: storage %s holds %llu bytes, %lld elements of %zu expected", f->path,
                t->name, name, (unsigned long long)ze->usize, (long long)t->storage_numel, es);
        return NULL;
    }
    return ze;
}

static int load_tensors(st_file *f, const zip_archive *z, const char *pre, pk_tensor *pt, int n,
                        af_err *e) {
    int64_t *numel = af_calloc(n ? n : 1, sizeof *numel);
    size_t total = 0;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int64_t ext = 0;
        size_t es = st_dtype_size(pt[i].dtype);
        if (view_extent(&pt[i], &numel[i], &ext, f->path, e))
            rc = -1;
        else if (ext > pt[i].storage_numel || pt[i].storage_numel < 0)
            rc = af_errf(e, "%s: %s: the view reaches element %lld of a storage of %lld", f->path,
                         pt[i].name, (long long)ext, (long long)pt[i].storage_numel);
        else if (storage_entry(f, z, pre, &pt[i], es, e) == NULL)
            rc = -1;
        else /* numel <= extent <= the storage's elements, which the file's bytes bound */
            total += ((size_t)numel[i] * es + 63) / 64 * 64;
        /* Views may share a storage, so together they can describe more bytes than the file
         * holds; real checkpoints do not by much (tied weights), hostile ones by terabytes. */
        if (!rc && total / 4 > z->size + (64u << 20))
            rc = af_errf(e,
                         "%s: its tensors view more than %zu bytes, far more than the file's "
                         "%zu",
                         f->path, total, z->size);
    }
    /* One anonymous mapping holds every tensor: st_close unmaps it like a file's. */
    unsigned char *blob = NULL;
    if (!rc) {
        f->size = total ? total : 64;
        blob = mmap(NULL, f->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (blob == MAP_FAILED) {
            free(numel);
            f->size = 0;
            return af_errf(e, "%s: cannot allocate %zu bytes", f->path, total);
        }
        f->map = blob;
        f->tensors = af_calloc(n ? n : 1, sizeof *f->tensors);
    }
    size_t at = 0;
    for (int i = 0; i < n && !rc; i++) {
        size_t es = st_dtype_size(pt[i].dtype);
        const zip_entry *ze = storage_entry(f, z, pre, &pt[i], es, e);
        const unsigned char *src;
        size_t len;
        void *owned;
        if (zip_read(z, ze, &src, &len, &owned, ze->usize, e)) {
            rc = -1;
            break;
        }
        st_tensor *t = &f->tensors[f->ntensors++];
        t->name = af_strdup(pt[i].name);
        t->dtype = pt[i].dtype;
        t->ndim = pt[i].ndim;
        memcpy(t->shape, pt[i].shape, sizeof t->shape);
        t->numel = numel[i];
        t->nbytes = (size_t)numel[i] * es;
        t->begin = at;
        t->end = at + t->nbytes;
        t->data = blob + at;
        gather(blob + at, src, &pt[i], es, numel[i]);
        at += (t->nbytes + 63) / 64 * 64;
        free(owned);
    }
    free(numel);
    return rc;
}

/* PyTorch >= 2.1 records the storages' byte order (PREFIX/byteorder); without it, little. */
static int check_byteorder(const zip_archive *z, const char *pre, af_err *e) {
    char name[320];
    snprintf(name, sizeof name, "%sbyteorder", pre);
    const zip_entry *ze = zip_find(z, name);
    const unsigned char *b;
    size_t len;
    void *owned;
    if (!ze) return 0;
    if (zip_read(z, ze, &b, &len, &owned, 16, e)) return -1;
    int little = len == 6 && !memcmp(b, "little", 6);
    free(owned);
    if (!little)
        return af_errf(e, "%s: %s: storages not in little-endian byte order", z->path, name);
    return 0;
}

int pt_parse(st_file *f, const void *data, size_t size, const char *name, af_err *e) {
    memset(f, 0, sizeof *f);
    const unsigned char *p = data;
    if (!pt_is_zip(data, size)) {
        /* The pre-1.6 format starts with a pickled magic number: PROTO 2, LONG1. */
        if (size >= 2 && p[0] == 0x80 && p[1] <= 5)
            return af_errf(e,
                           "%s: a PyTorch checkpoint in the legacy format (before PyTorch 1.6), "
                           "which af does not read; re-save it with PyTorch >= 1.6: "
                           "python3 -c 'import torch; torch.save(torch.load(\"%s\"), \"%s\")'",
                           name, name, name);
        return af_errf(e, "%s: not a PyTorch checkpoint (no zip signature)", name);
    }
    zip_archive z;
    if (zip_parse(&z, data, size, name, e)) return -1;
    f->path = af_strdup(name);
    char pre[300];
    const zip_entry *pk = find_pickle(&z, pre, sizeof pre, e);
    const unsigned char *pkl;
    size_t len;
    void *owned = NULL;
    pk_tensor *pt = NULL;
    int n = 0, rc = -1;
    char what[400];
    snprintf(what, sizeof what, "%s: %sdata.pkl", name, pre);
    if (pk && !zip_read(&z, pk, &pkl, &len, &owned, PT_MAX_PICKLE, e) &&
        !pk_read_state_dict(pkl, len, what, &pt, &n, e))
        rc = check_byteorder(&z, pre, e) ? -1 : load_tensors(f, &z, pre, pt, n, e);
    free(owned);
    pk_free(pt, n);
    zip_close(&z);
    if (rc) st_close(f);
    return rc;
}

int pt_open(st_file *f, const char *path, af_err *e) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return af_errf(e, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return af_errf(e, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size == 0) {
        close(fd);
        return af_errf(e, "%s: empty file", path);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return af_errf(e, "%s: cannot map: %s", path, strerror(errno));
    int rc = pt_parse(f, map, size, path, e);
    munmap(map, size);
    return rc;
}

typedef struct {
    const st_writer *w;
    const char *prefix;
} write_ctx;

static int write_zip(FILE *out, void *vctx, af_err *e) {
    const write_ctx *c = vctx;
    const st_writer *w = c->w;
    pk_tensor *pt = af_calloc(w->n ? w->n : 1, sizeof *pt);
    char key[32], name[600];
    for (int i = 0; i < w->n; i++) {
        int64_t numel = 1;
        for (int d = 0; d < w->t[i].ndim; d++) numel *= w->t[i].shape[d];
        snprintf(key, sizeof key, "%d", i);
        pt[i] = (pk_tensor){
            w->t[i].name, w->t[i].dtype, af_strdup(key), numel, 0, w->t[i].ndim, {0}, {0}};
        memcpy(pt[i].shape, w->t[i].shape, sizeof pt[i].shape);
        /* row-major strides */
        int64_t s = 1;
        for (int d = w->t[i].ndim; d-- > 0;) {
            pt[i].stride[d] = s;
            s *= w->t[i].shape[d];
        }
    }
    size_t len;
    unsigned char *pkl = pk_write_state_dict(pt, w->n, &len);
    zip_writer z;
    zip_writer_init(&z, out);
    snprintf(name, sizeof name, "%s/data.pkl", c->prefix);
    int rc = zip_writer_add(&z, name, pkl, len, e);
    for (int i = 0; i < w->n && !rc; i++) {
        snprintf(name, sizeof name, "%s/data/%d", c->prefix, i);
        rc = zip_writer_add(&z, name, w->t[i].data, w->t[i].nbytes, e);
    }
    snprintf(name, sizeof name, "%s/version", c->prefix);
    if (!rc) rc = zip_writer_add(&z, name, "3\n", 2, e);
    if (!rc) rc = zip_writer_finish(&z, e);
    zip_writer_free(&z);
    free(pkl);
    for (int i = 0; i < w->n; i++) free(pt[i].storage);
    free(pt);
    return rc;
}

int pt_write(const st_writer *w, const char *path, const char *prefix, af_err *e) {
    for (int i = 0; i < w->n; i++)
        if (w->t[i].dtype != ST_F32 && w->t[i].dtype != ST_F16 && w->t[i].dtype != ST_BF16)
            return af_errf(e, "%s: %s: dtype %s cannot go into a checkpoint here", path,
                           w->t[i].name, st_dtype_name(w->t[i].dtype));
    write_ctx c = {w, prefix};
    if (af_write_atomic(path, write_zip, &c, e)) return af_err_prefix(e, "%s", path);
    return 0;
}
