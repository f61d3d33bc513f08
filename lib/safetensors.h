/* safetensors.h: read and write safetensors files, validating every rule of the format.
 *
 * Format (https://github.com/huggingface/safetensors): u64 little-endian header length N; N bytes
 * of UTF-8 JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {"k": "v"}}; then the data buffer, offsets relative to its start. */
#ifndef AF_SAFETENSORS_H
#define AF_SAFETENSORS_H

#include "af.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER 100000000ULL

typedef enum {
    ST_BOOL, ST_U8, ST_I8, ST_I16, ST_U16, ST_F16, ST_BF16, ST_I32, ST_U32, ST_F32, ST_F64,
    ST_I64, ST_U64, ST_F8_E4M3, ST_F8_E5M2, ST_NDTYPES
} st_dtype;

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data;   /* points into the mapping */
    size_t nbytes;
    size_t begin, end;  /* data_offsets */
} st_tensor;

typedef struct {
    char *key, *value;
} st_meta;

typedef struct {
    char *path;
    void *map;          /* the whole file, mmap'ed read-only */
    size_t size;
    st_tensor *tensors; /* sorted by data offset, as in the file */
    int ntensors;
    st_meta *meta;
    int nmeta;
} st_file;

/* Opens and validates a file. On error, e names the file, the rule broken and the tensor. */
int st_open(st_file *f, const char *path, af_err *e);
/* Validates an in-memory image (used by st_open and by the fuzz target); takes no ownership. */
int st_parse(st_file *f, const void *data, size_t size, const char *name, af_err *e);
void st_close(st_file *f);

const st_tensor *st_find(const st_file *f, const char *name);
const char *st_meta_get(const st_file *f, const char *key);
const char *st_dtype_name(st_dtype t);
size_t st_dtype_size(st_dtype t);

/* Copies a F32/F16/BF16 tensor into dst as float32 (n must equal numel). A NaN or infinite
 * value is refused, naming the tensor and the index: every tensor af reads is a weight (or an
 * optimizer state), and a non-finite one would only turn into silent garbage downstream. */
int st_to_f32(const st_tensor *t, float *dst, int64_t n, af_err *e);
/* The check alone, for a tensor used in place (mapped, not copied). */
int st_check_finite(const st_tensor *t, af_err *e);

/* Writing: collect tensors (data is referenced, not copied, until st_writer_write), then write
 * atomically (temp file, fsync, rename). Tensors are written in the order they were added. */
typedef struct {
    struct st_wtensor {
        char *name;
        st_dtype dtype;
        int ndim;
        int64_t shape[ST_MAX_DIMS];
        const void *data;
        size_t nbytes;
    } *t;
    int n, cap;
    st_meta *meta;
    int nmeta, metacap;
} st_writer;

void st_writer_init(st_writer *w);
void st_writer_free(st_writer *w);
void st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape,
                   const void *data);
/* The ndim dimensions that follow are int64_t: cast literals, (int64_t)768. */
void st_writer_add_f32(st_writer *w, const char *name, const float *data, int ndim, ...);
/* Sets a metadata string (replacing an earlier value for the same key). */
void st_writer_meta(st_writer *w, const char *key, const char *value);
/* Sets a metadata value to the compact JSON text of value (the spec stores strings only). */
typedef struct cJSON cJSON;
int st_writer_meta_json(st_writer *w, const char *key, const cJSON *value);
int st_writer_write(st_writer *w, const char *path, af_err *e);

/* float16 / bfloat16 conversions (round to nearest even). */
float st_f16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float f);
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);

/* Rewrites the file at path with every F32 tensor as F16 (rounded to nearest even), the other
 * tensors and the metadata as they are. */
int st_rewrite_f16(const char *path, af_err *e);

#endif
