/* zip.h: the zip container of PyTorch checkpoints (torch.save since 1.6), read and written.
 *
 * Reading trusts nothing: the end-of-central-directory record (and its zip64 form, which
 * PyTorch always writes), every central directory entry and every local header are checked
 * against the image's size before use, the sizes in the central directory are the ones used (a
 * PyTorch local header says 0 and defers to a data descriptor), and each entry's CRC-32 is
 * verified when it is read. Entries are stored (PyTorch's choice) or deflated (a checkpoint
 * someone re-zipped); nothing else. Encrypted entries and multi-disk archives are refused.
 *
 * Writing produces what PyTorch writes: stored entries, each one's data aligned to 64 bytes by
 * padding in the local header's extra field, a plain central directory (no zip64: af writes
 * adapters, far below 4 GiB). */
#ifndef AF_ZIP_H
#define AF_ZIP_H

#include "af.h"

#define ZIP_MAX_ENTRIES 100000

typedef struct {
    char *name; /* NUL-terminated copy */
    int method; /* 0 stored, 8 deflated */
    uint32_t crc;
    uint64_t csize;  /* bytes in the archive */
    uint64_t usize;  /* bytes once inflated */
    uint64_t offset; /* of the data, checked: offset + csize <= size */
} zip_entry;

typedef struct {
    const char *path; /* for messages */
    const unsigned char *data;
    size_t size;
    zip_entry *e;
    int n;
} zip_archive;

/* Parses the directory of an image (not copied: it must outlive z). Errors name `path`. */
int zip_parse(zip_archive *z, const void *data, size_t size, const char *path, af_err *e);
void zip_close(zip_archive *z);
const zip_entry *zip_find(const zip_archive *z, const char *name);
/* The bytes of an entry, CRC-checked: a pointer into the image for a stored entry, or a new
 * allocation (*owned set to it; free it) for a deflated one. At most max bytes are accepted. */
int zip_read(const zip_archive *z, const zip_entry *ze, const unsigned char **out, size_t *len,
             void **owned, size_t max, af_err *e);

/* Writing to a stream: add entries in order, then finish (central directory). */
typedef struct {
    FILE *f;
    uint64_t at;
    struct zip_wentry {
        char *name;
        uint32_t crc;
        uint64_t size, header;
    } * w;
    int n, cap;
} zip_writer;

void zip_writer_init(zip_writer *z, FILE *f);
int zip_writer_add(zip_writer *z, const char *name, const void *data, size_t len, af_err *e);
int zip_writer_finish(zip_writer *z, af_err *e);
void zip_writer_free(zip_writer *z);

#endif
