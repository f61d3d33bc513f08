/* fuzz-jsonl.c: libFuzzer target for the JSONL line parser. Every accepted line must satisfy
 * the schema the callers rely on; every rejection must name the input and the line. */
#include "jsonl.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static jl_example ex; /* reused across inputs, as jl_next reuses it */
    af_err e;
    int vocab = size ? (data[0] & 1 ? 0 : 30522) : 0;
    if (jl_parse_line((const char *)data, size, &ex, vocab, "fuzz", 3, &e)) {
        if (strncmp(e.msg, "fuzz:3: ", 8) != 0) abort();
        return 0;
    }
    if (ex.len <= 0 || !ex.input_ids || !ex.token_type_ids || !ex.attention_mask || !ex.json)
        abort();
    for (int i = 0; i < ex.len; i++) {
        if (ex.input_ids[i] < 0 || (vocab && ex.input_ids[i] >= vocab)) abort();
        if (ex.token_type_ids[i] < 0) abort();
        if (ex.attention_mask[i] != 0 && ex.attention_mask[i] != 1) abort();
    }
    if (ex.label_kind == JL_LABEL_STRING && !ex.label_str) abort();
    if (ex.id) (void)strlen(ex.id);
    if (ex.task) (void)strlen(ex.task);
    return 0;
}
