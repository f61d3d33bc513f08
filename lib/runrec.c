/* runrec.c: digests and comparison of run records (runrec.h). */
#include "runrec.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

void runrec_examples_digest(const jl_example *ex, int n, char out[65]) {
    sha256_ctx c;
    sha256_init(&c);
    for (int i = 0; i < n; i++) {
        const jl_example *x = &ex[i];
        /* lengths and kinds first, so no two different examples serialise alike */
        int32_t head[2] = {x->len, (int32_t)x->label_kind};
        sha256_update(&c, head, sizeof head);
        sha256_update(&c, x->input_ids, (size_t)x->len * sizeof(int));
        sha256_update(&c, x->token_type_ids, (size_t)x->len * sizeof(int));
        sha256_update(&c, x->attention_mask, (size_t)x->len * sizeof(int));
        if (x->label_kind == JL_LABEL_STRING)
            sha256_update(&c, x->label_str, strlen(x->label_str) + 1);
        else if (x->label_kind == JL_LABEL_LIST) { /* the count, then each name with its NUL */
            int32_t k = x->label_n;
            size_t len = 0;
            for (int j = 0; j < k; j++) len += strlen(x->label_str + len) + 1;
            sha256_update(&c, &k, sizeof k);
            sha256_update(&c, x->label_str, len);
        } else if (x->label_kind != JL_LABEL_NONE)
            sha256_update(&c, &x->label_num, sizeof x->label_num);
        const char *t = x->task ? x->task : "";
        uint8_t has = x->task != NULL;
        sha256_update(&c, &has, 1);
        sha256_update(&c, t, strlen(t) + 1);
    }
    sha256_final(&c, out);
}

/* A value for a message: compact JSON, cut at 100 characters. */
static void show(const cJSON *v, char *buf, size_t n) {
    if (!v) {
        snprintf(buf, n, "(not recorded)");
        return;
    }
    char *s = cJSON_PrintUnformatted(v);
    size_t len = strlen(s);
    if (len > 100)
        snprintf(buf, n, "%.97s...", s);
    else
        snprintf(buf, n, "%s", s);
    free(s);
}

/* The first difference of a and b, at path; 0 when equal. */
static int differ(const cJSON *a, const cJSON *b, char *path, size_t cap, const cJSON **da,
                  const cJSON **db) {
    if (a && b && cJSON_IsObject(a) && cJSON_IsObject(b)) {
        size_t len = strlen(path);
        for (int pass = 0; pass < 2; pass++) {
            const cJSON *o = pass ? b : a;
            for (const cJSON *k = o->child; k; k = k->next) {
                const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, k->string);
                const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, k->string);
                if (pass && x) continue; /* seen in the first pass */
                snprintf(path + len, cap - len, "%s%s", len ? "." : "", k->string);
                if (differ(x, y, path, cap, da, db)) return 1;
                path[len] = 0;
            }
        }
        return 0;
    }
    if (a && b && cJSON_Compare(a, b, 1)) return 0;
    *da = a, *db = b;
    return 1;
}

int runrec_compare(const char *was, const char *now, const char *ckpt, const char *may_change,
                   af_err *e) {
    if (!was)
        return af_errf(e,
                       "%s: the checkpoint has no record of its run's options and data (an "
                       "older af wrote it), so resuming it cannot be checked; start afresh",
                       ckpt);
    cJSON *a = cJSON_Parse(was), *b = cJSON_Parse(now);
    int rc = 0;
    if (!a) {
        rc = af_errf(e, "%s: the checkpoint's run record is not JSON", ckpt);
    } else {
        char path[256] = "";
        const cJSON *da = NULL, *db = NULL;
        if (differ(a, b, path, sizeof path, &da, &db)) {
            char sa[112], sb[112];
            show(da, sa, sizeof sa), show(db, sb, sizeof sb);
            rc = af_errf(e,
                         "%s: a checkpoint of another run: %s is %s there, %s here; only %s "
                         "may differ on resume",
                         ckpt, *path ? path : "the record", sa, sb, may_change);
        }
    }
    cJSON_Delete(a), cJSON_Delete(b);
    return rc;
}
