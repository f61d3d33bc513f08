/* fuzz-safetensors.c: libFuzzer target for the safetensors reader. A parse that succeeds must
 * describe only bytes inside the input: every tensor's data is read back to check. */
#include "safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_file f;
    af_err e;
    if (st_parse(&f, data, size, "fuzz", &e)) {
        if (!strstr(e.msg, "fuzz")) abort(); /* every message names the file */
        return 0;
    }
    const uint8_t *end = data + size;
    size_t at = 0;
    volatile unsigned sum = 0;
    for (int i = 0; i < f.ntensors; i++) {
        const st_tensor *t = &f.tensors[i];
        const uint8_t *p = t->data;
        if (p < data || p + t->nbytes > end || t->begin != at) abort();
        at = t->end;
        for (size_t k = 0; k < t->nbytes; k++) sum += p[k];
        if ((t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) &&
            t->numel <= 1 << 16) {
            float *buf = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *buf);
            /* it fails exactly when a value is not finite, and then it names the tensor */
            int bad = st_check_finite(t, &e);
            if (bad && !strstr(e.msg, "weights must be finite")) abort();
            if (st_to_f32(t, buf, t->numel, &e) != bad) abort();
            for (int64_t k = 0; !bad && k < t->numel; k++)
                if (!isfinite(buf[k])) abort();
            free(buf);
        }
        if (st_find(&f, t->name) == NULL) abort();
    }
    for (int i = 0; i < f.nmeta; i++)
        if (st_meta_get(&f, f.meta[i].key) != f.meta[i].value) abort();
    st_close(&f);
    return 0;
}
