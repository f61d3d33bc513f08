/* inspect.h: what af-inspect reports about a safetensors file, as data: the kind of file, totals,
 * per-tensor statistics, and the JSON document of `af-inspect --json`. Printing for people
 * stays in cmd/af-inspect.c. */
#ifndef AF_INSPECT_H
#define AF_INSPECT_H

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

#endif
