/* fuzz-torchfile.c: libFuzzer target for the PyTorch checkpoint reader (zip.c, pickle.c,
 * torchfile.c). A parse that succeeds must describe tensors whose bytes lie in its own mapping,
 * convert to float32 and be found by name; a refusal must name the file. The input is also fed
 * to the unpickler alone, so the fuzzer reaches it without building valid zip archives. */
#include "pickle.h"
#include "torchfile.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    af_err e;
    pk_tensor *pt;
    int n;
    if (!pk_read_state_dict(data, size, "fuzz.pkl", &pt, &n, &e))
        pk_free(pt, n);
    else if (!strstr(e.msg, "fuzz.pkl"))
        abort();
    st_file f;
    if (pt_parse(&f, data, size, "fuzz", &e)) {
        if (!strstr(e.msg, "fuzz")) abort();
        return 0;
    }
    const unsigned char *lo = f.map, *hi = lo + f.size;
    for (int i = 0; i < f.ntensors; i++) {
        const st_tensor *t = &f.tensors[i];
        const unsigned char *p = t->data;
        if (p < lo || p + t->nbytes > hi) abort();
        if (t->numel <= 1 << 16) {
            /* the conversion fails exactly when a value is not finite (st_check_finite) */
            float *buf = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *buf);
            int bad = st_check_finite(t, &e);
            if (st_to_f32(t, buf, t->numel, &e) != bad) abort();
            free(buf);
        }
        if (!st_find(&f, t->name)) abort();
    }
    st_close(&f);
    return 0;
}
