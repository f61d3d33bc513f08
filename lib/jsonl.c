/* jsonl.c: tokenized examples, one JSON object per line (af-files(5)). */
#include "jsonl.h"
#include "jsonlex.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct jl_reader {
    af_lines *lines;
    int vocab_size;
};

int jl_open(jl_reader **r, const char *path, int vocab_size, af_err *e) {
    af_lines *l;
    *r = NULL;
    if (af_lines_open(&l, path, e)) return -1;
    af_lines_max(l, JL_MAX_LINE);
    *r = af_calloc(1, sizeof **r);
    (*r)->lines = l;
    (*r)->vocab_size = vocab_size;
    return 0;
}

const char *jl_name(const jl_reader *r) {
    return af_lines_name(r->lines);
}

void jl_close(jl_reader *r) {
    if (!r) return;
    af_lines_close(r->lines);
    free(r);
}

static int blank(const char *s, long n) {
    for (long i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

int jl_next(jl_reader *r, jl_example *ex, af_err *e) {
    for (;;) {
        char *line;
        long n = af_lines_next(r->lines, &line, e);
        if (n == -1) return 0;
        if (n < 0) return -1;
        if (blank(line, n)) continue;
        if (jl_parse_line(line, (size_t)n, ex, r->vocab_size, af_lines_name(r->lines),
                          af_lines_lineno(r->lines), e))
            return -1;
        return 1;
    }
}

void jl_example_free(jl_example *ex) {
    free(ex->input_ids);
    free(ex->token_type_ids);
    free(ex->attention_mask);
    free(ex->label_str);
    free(ex->task);
    free(ex->id);
    cJSON_Delete(ex->json);
    memset(ex, 0, sizeof *ex);
}

/* ---- one line ------------------------------------------------------------------------------ */

typedef struct {
    const char *name;
    long line;
    af_err *e;
} where;

static int bad(const where *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(const where *w, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return af_errf(w->e, "%s:%ld: %s", w->name, w->line, msg);
}

static int is_int(const cJSON *j, long lo, long hi, long *v) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) return 0;
    *v = (long)d;
    return 1;
}

/* Reads an optional array of ints (an absent key or null leaves *out untouched and returns 0). */
static int int_array(const where *w, const cJSON *obj, const char *key, int required, long lo,
                     long hi, const char *what, const char *elem, int **out, int *len) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!a || cJSON_IsNull(a)) {
        if (required) return bad(w, "%s is missing (it is required)", key);
        *len = -1;
        return 0;
    }
    if (!cJSON_IsArray(a)) return bad(w, "%s must be %s, found %s", key, what, jsonlex_type_name(a));
    int n = cJSON_GetArraySize(a);
    if (n == 0 && required) return bad(w, "%s must be %s, found an empty array", key, what);
    *out = af_realloc(*out, (size_t)(n ? n : 1) * sizeof **out);
    int i = 0;
    for (const cJSON *c = a->child; c; c = c->next, i++) {
        long v;
        if (!is_int(c, lo, hi, &v)) {
            /* an integer past what af stores (ids are C ints) is not "not an integer" */
            if (cJSON_IsNumber(c) && c->valuedouble == floor(c->valuedouble) &&
                c->valuedouble > (double)hi && hi == INT_MAX)
                return bad(w, "%s[%d]: %.17g is too large (at most %ld)", key, i, c->valuedouble,
                           hi);
            char *s = cJSON_PrintUnformatted(c);
            int rc =
                bad(w, "%s[%d] must be %s, found %s %.40s", key, i, elem, jsonlex_type_name(c), s ? s : "");
            free(s);
            return rc;
        }
        (*out)[i] = (int)v;
    }
    *len = n;
    return 0;
}

static int opt_string(const where *w, const cJSON *obj, const char *key, char **out) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!s || cJSON_IsNull(s)) return 0;
    if (!cJSON_IsString(s)) return bad(w, "%s must be a string, found %s", key, jsonlex_type_name(s));
    *out = af_strdup(s->valuestring);
    return 0;
}



static int parse_label(const where *w, const cJSON *root, jl_example *ex) {
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(root, "label");
    if (!l || cJSON_IsNull(l)) return 0;
    if (cJSON_IsString(l)) {
        ex->label_kind = JL_LABEL_STRING;
        ex->label_str = af_strdup(l->valuestring);
        return 0;
    }
    if (cJSON_IsNumber(l)) {
        double d = l->valuedouble;
        ex->label_num = d;
        /* 1.0 counts as the class id 1: Python writes float labels that way. */
        if (d == floor(d) && fabs(d) <= 9007199254740992.0) {
            ex->label_kind = JL_LABEL_INT;
            ex->label_int = (long)d;
        } else {
            ex->label_kind = JL_LABEL_NUMBER;
        }
        return 0;
    }
    if (cJSON_IsArray(l)) { /* a multi-label set: distinct names */
        size_t len = 1;
        int n = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, l) {
            if (!cJSON_IsString(it))
                return bad(w, "label[%d] must be a string (a label name), found %s", n,
                           jsonlex_type_name(it));
            for (const cJSON *p = l->child; p != it; p = p->next)
                if (!strcmp(p->valuestring, it->valuestring))
                    return bad(w, "label[%d]: \"%s\" is in the list twice", n, it->valuestring);
            len += strlen(it->valuestring) + 1;
            n++;
        }
        char *buf = af_malloc(len), *at = buf;
        cJSON_ArrayForEach(it, l) {
            size_t k = strlen(it->valuestring) + 1;
            memcpy(at, it->valuestring, k);
            at += k;
        }
        ex->label_kind = JL_LABEL_LIST;
        ex->label_str = buf;
        ex->label_n = n;
        return 0;
    }
    return bad(w, "label must be an integer, a string, a number or a list of names, found %s",
               jsonlex_type_name(l));
}

static int parse_id(const where *w, const char *line, size_t n, const cJSON *root, jl_example *ex) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (!id || cJSON_IsNull(id)) return 0;
    if (cJSON_IsString(id)) {
        ex->id = af_strdup(id->valuestring);
        return 0;
    }
    if (!cJSON_IsNumber(id))
        return bad(w, "id must be a string or a number, found %s", jsonlex_type_name(id));
    /* cJSON keeps only a double; the id is whatever was written, digits and all. */
    size_t at, len;
    if (jsonlex_member(line, n, "id", &at, &len) == 0) {
        ex->id = af_malloc(len + 1);
        memcpy(ex->id, line + at, len);
        ex->id[len] = 0;
    } else { /* the key was written with escapes: fall back to cJSON's rendering */
        char *s = cJSON_PrintUnformatted(id);
        ex->id = af_strdup(s ? s : "");
        free(s);
    }
    return 0;
}

int jl_parse_line(const char *line, size_t n, jl_example *ex, int vocab_size, const char *name,
                  long lineno, af_err *e) {
    where w = {name ? name : "stdin", lineno, e};
    free(ex->label_str), free(ex->task), free(ex->id);
    cJSON_Delete(ex->json);
    ex->label_str = ex->task = ex->id = NULL;
    ex->json = NULL;
    ex->label_kind = JL_LABEL_NONE;
    ex->label_int = 0;
    ex->label_num = 0;
    ex->label_n = 0;
    ex->len = 0;
    ex->line = lineno;

    jsonlex_result lx;
    if (jsonlex_check(line, n, &lx)) {
        if (lx.at.key && lx.at.keylen)
            return bad(&w, "not valid JSON: %s at column %zu (in '%.*s')", lx.error, lx.at.pos + 1,
                       (int)(lx.at.keylen < 100 ? lx.at.keylen : 100), lx.at.key);
        return bad(&w, "not valid JSON: %s at column %zu", lx.error, lx.at.pos + 1);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(line, n, &end, 0);
    if (!root) {
        size_t col = end && end >= line && end <= line + n ? (size_t)(end - line) + 1 : 1;
        return bad(&w, "not valid JSON (error near column %zu)", col);
    }
    ex->json = root;
    for (const char *q = end; q < line + n; q++)
        if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n')
            return bad(&w, "text after the JSON object at column %zu (one object per line)",
                       (size_t)(q - line) + 1);
    if (!cJSON_IsObject(root))
        return bad(&w, "a line must be a JSON object, found %s", jsonlex_type_name(root));
    const char *dup = jsonlex_duplicate_key(root);
    if (dup) return bad(&w, "key '%s' appears twice", dup);

    int len, tlen, mlen;
    if (int_array(&w, root, "input_ids", 1, 0, INT_MAX, "a non-empty array of integers",
                  "a non-negative integer", &ex->input_ids, &len))
        return -1;
    if (vocab_size > 0)
        for (int i = 0; i < len; i++)
            if (ex->input_ids[i] >= vocab_size)
                return bad(&w, "input_ids[%d]: token id %d is outside the vocabulary [0, %d)", i,
                           ex->input_ids[i], vocab_size);
    if (int_array(&w, root, "token_type_ids", 0, 0, INT_MAX, "an array of integers",
                  "a non-negative integer", &ex->token_type_ids, &tlen))
        return -1;
    if (tlen >= 0 && tlen != len)
        return bad(&w, "token_type_ids has %d value%s, input_ids has %d", tlen,
                   tlen == 1 ? "" : "s", len);
    if (int_array(&w, root, "attention_mask", 0, 0, 1, "an array of 0s and 1s", "0 or 1",
                  &ex->attention_mask, &mlen))
        return -1;
    if (mlen >= 0 && mlen != len)
        return bad(&w, "attention_mask has %d value%s, input_ids has %d", mlen,
                   mlen == 1 ? "" : "s", len);
    if (tlen < 0) {
        ex->token_type_ids = af_realloc(ex->token_type_ids, (size_t)len * sizeof(int));
        memset(ex->token_type_ids, 0, (size_t)len * sizeof(int));
    }
    if (mlen >= 0) {
        int any = 0;
        for (int i = 0; i < len && !any; i++) any = ex->attention_mask[i];
        /* nothing to attend to: BERT's softmax would spread over padding, a meaningless output */
        if (!any) return bad(&w, "attention_mask is all 0: at least one token must be attended");
    }
    if (mlen < 0) {
        ex->attention_mask = af_realloc(ex->attention_mask, (size_t)len * sizeof(int));
        for (int i = 0; i < len; i++) ex->attention_mask[i] = 1;
    }
    ex->len = len;
    if (parse_label(&w, root, ex) || opt_string(&w, root, "task", &ex->task) ||
        parse_id(&w, line, n, root, ex))
        return -1;
    return 0;
}

/* ---- whole files --------------------------------------------------------------------------- */

int jl_read_all(jl_set *s, const char *path, int vocab_size, af_err *e) {
    memset(s, 0, sizeof *s);
    jl_reader *r;
    if (jl_open(&r, path, vocab_size, e)) return -1;
    for (;;) {
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 1024;
            s->ex = af_realloc(s->ex, (size_t)s->cap * sizeof *s->ex);
        }
        jl_example *ex = &s->ex[s->n];
        memset(ex, 0, sizeof *ex);
        int rc = jl_next(r, ex, e);
        if (rc <= 0) {
            jl_example_free(ex);
            jl_close(r);
            if (rc < 0) jl_set_free(s);
            return rc;
        }
        /* A parsed tree per example would cost kilobytes each; a training set needs only the
         * fields, so the tree is dropped here (streaming readers keep it for pass-through). */
        cJSON_Delete(ex->json);
        ex->json = NULL;
        s->n++;
    }
}

void jl_set_free(jl_set *s) {
    for (int i = 0; i < s->n; i++) jl_example_free(&s->ex[i]);
    free(s->ex);
    memset(s, 0, sizeof *s);
}
