/* inspect.h: what af-inspect reports about a safetensors file, as data: the kind of file, totals,
 * per-tensor statistics, and the JSON document of `af-inspect --json`. Printing for people
 * stays in cmd/af-inspect.c. */
#ifndef AF_INSPECT_H
#define AF_INSPECT_H

#include "heatmap.h"
#include "safetensors.h"

typedef struct cJSON cJSON;

typedef enum { INSP_OTHER, INSP_BASE, INSP_ADAPTER, INSP_FUSION } insp_kind;

/* adapter / fusion from __metadata__.format (af-adapter/1, af-fusion/1); base when a BERT
 * embedding matrix is present (any prefix: "bert.", none, ...); other otherwise. */
insp_kind insp_kind_of(const st_file *f);
const char *insp_kind_name(insp_kind k);

typedef struct {
    int64_t params;      /* elements over all tensors */
    size_t bytes;        /* tensor data bytes */
    size_t header_bytes; /* the JSON header with its padding */
    int64_t params_by_dtype[ST_NDTYPES];
    int tensors_by_dtype[ST_NDTYPES];
} insp_totals;
void insp_totals_of(const st_file *f, insp_totals *t);

/* Element i of any dtype as a double (integers exactly up to 2^53). */
double insp_value(const st_tensor *t, int64_t i);

/* Statistics over the finite elements; non-finite ones are only counted. Population std. */
typedef struct {
    int64_t n, nonfinite;
    double min, max, mean, std, l2; /* NaN when there are no finite elements */
} insp_stats;
void insp_stats_of(const st_tensor *t, insp_stats *s);

/* A metadata value that is a JSON object or array, parsed (caller deletes); NULL otherwise. */
cJSON *insp_meta_json(const char *value);

/* The --json description of one file: path, kind, sizes, metadata (JSON values embedded),
 * tensors, totals. */
cJSON *insp_file_json(const st_file *f);
/* The --json description of one tensor's statistics. */
cJSON *insp_stats_json(const st_tensor *t, const insp_stats *s);

/* cJSON_Print with two-space indentation instead of tabs (cJSON escapes tabs inside strings,
 * so every tab in its output is layout). Caller frees. */
char *insp_print_json(const cJSON *j);

/* ---- fusion weights (inspect_fusion.c) ---- */

/* A fusion file's weights over its adapters, when they do not depend on the input (weighted
 * fusion: softmax of each layer's `weights`): fills h (rows: layers, or "L attn"/"L out" sites
 * for Houlsby; columns: adapters) and returns 0. Returns 1 (h untouched) for the methods whose
 * weights are computed per token, with e naming the method; -1 on a malformed file. */
int insp_fusion_static(const st_file *f, heatmap *h, af_err *e);

/* Averages of af-infer --fusion-weights output (af-files(5)): every line's weights per layer
 * (its mean over tokens, or the mean of its per-token weights), averaged over lines, and with
 * by_label also per gold label. */
typedef struct insp_fw insp_fw;
insp_fw *insp_fw_new(int by_label);
void insp_fw_free(insp_fw *a);
/* One output line; name and lineno are for messages. */
int insp_fw_add(insp_fw *a, const char *line, size_t n, const char *name, long lineno, af_err *e);
/* Every line of a file ("-": stdin; gzip read too). */
int insp_fw_read(insp_fw *a, const char *path, af_err *e);
/* The maps: all lines first, then (by_label) one per gold label in label order, lines without
 * one last. Returns how many (caller frees each and the array), or -1 when no line was read. */
int insp_fw_maps(const insp_fw *a, heatmap **maps, af_err *e);

/* ---- comparing two files (inspect_diff.c) ---- */

typedef enum { INSP_SAME, INSP_DIFFERENT, INSP_SHAPE, INSP_ONLY_A, INSP_ONLY_B } insp_diff_status;

typedef struct {
    const char *name;     /* points into the files */
    int status;           /* insp_diff_status */
    const st_tensor *a, *b;
    double max_abs;       /* max |a - b| (infinite where only one side is finite or NaN) */
    double rel_l2;        /* ||a - b|| / ||a|| (0 when equal, infinite when a is zero and b not) */
    int64_t ndiff;        /* elements that differ */
} insp_diff_item;

typedef struct {
    insp_diff_item *items; /* A's tensors in file order, then those only in B */
    int n;
    int count[5];          /* per status */
    const char **meta;     /* metadata keys whose values differ or exist on one side only */
    int nmeta;
} insp_diff;

/* Compares tensors by name, values as numbers (any dtypes). */
void insp_diff_files(const st_file *a, const st_file *b, insp_diff *d);
void insp_diff_free(insp_diff *d);
/* {"a": path, "b": path, "counts": {...}, "tensors": [{"name", "status", "max_abs_diff",
 *  "rel_l2", "elements_differing", "shape_a", "shape_b"}], "metadata_differs": [keys]} */
cJSON *insp_diff_json(const st_file *a, const st_file *b, const insp_diff *d);
const char *insp_diff_status_name(int status);

#endif
