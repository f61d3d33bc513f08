/* jsonlex.c: strict JSON lexical checks; see jsonlex.h. */
#include "jsonlex.h"
#include <cjson/cJSON.h>
#include "af.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static int is_ws(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

static int is_numchar(unsigned char c) {
    return is_digit(c) || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* RFC 8259 §6: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int number_ok(const char *p, size_t n) {
    size_t i = 0;
    if (i < n && p[i] == '-') i++;
    if (i < n && p[i] == '0')
        i++;
    else if (i < n && is_digit(p[i]))
        while (i < n && is_digit(p[i])) i++;
    else
        return 0;
    if (i < n && p[i] == '.') {
        size_t d = ++i;
        while (i < n && is_digit(p[i])) i++;
        if (i == d) return 0;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-')) i++;
        size_t d = i;
        while (i < n && is_digit(p[i])) i++;
        if (i == d) return 0;
    }
    return i == n;
}

static int plain_uint(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_digit(p[i])) return 0;
    return 1;
}

/* strtod needs a terminated string; the token is copied because the text may not be. */
static int number_finite(const char *p, size_t n) {
    char small[64], *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf) return 1; /* cannot check; cJSON will still parse it */
    memcpy(buf, p, n);
    buf[n] = 0;
    double v = strtod(buf, NULL);
    if (buf != small) free(buf);
    return isfinite(v);
}

typedef struct {
    const char *s;
    size_t n;
    const char *key; /* current top-level key */
    size_t keylen;
    int in_key; /* the key is still being read: its length is not known yet */
    jsonlex_result *r;
} lexer;

static int fail(lexer *L, const char *what, size_t pos, size_t len) {
    if (L->in_key) L->keylen = (size_t)(L->s + pos - L->key);
    L->r->error = what;
    L->r->at = (jsonlex_at){pos, len, L->key, L->keylen};
    return -1;
}

int jsonlex_check(const char *s, size_t n, jsonlex_result *r) {
    memset(r, 0, sizeof *r);
    lexer L = {s, n, NULL, 0, 0, r};
    long depth = 0;
    int root_object = 0, expect_key = 0, in_string = 0;
    size_t i = 0, str_start = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            utf8proc_int32_t cp;
            utf8proc_ssize_t k =
                utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
            if (k < 0) return fail(&L, "invalid UTF-8", i, 1);
            i += (size_t)k; /* outside a string this is a JSON error, which cJSON reports */
            continue;
        }
        if (in_string) {
            if (c == '"') {
                in_string = 0;
                if (L.in_key) L.keylen = i - str_start, L.in_key = 0;
            } else if (c == '\\') {
                if (i + 5 < n && memcmp(s + i + 1, "u0000", 5) == 0)
                    return fail(&L, "NUL character (\\u0000) in a string", i, 6);
                i++; /* the escaped character; cJSON checks the escape itself */
            } else if (c < 0x20) {
                return fail(&L, "control character in a string (must be escaped)", i, 1);
            }
            i++;
            continue;
        }
        if (is_ws(c)) {
            i++;
            continue;
        }
        if (c < 0x20 || c == 0x7f) return fail(&L, "control character outside a string", i, 1);
        if (c == '-' || is_digit(c)) {
            size_t j = i;
            while (j < n && is_numchar((unsigned char)s[j])) j++;
            if (!number_ok(s + i, j - i)) return fail(&L, "invalid number", i, j - i);
            if (!number_finite(s + i, j - i))
                return fail(&L, "number out of range of a double", i, j - i);
            if (!r->nonint && !plain_uint(s + i, j - i)) {
                r->nonint = 1;
                r->first_nonint = (jsonlex_at){i, j - i, L.key, L.keylen};
            }
            i = j;
            continue;
        }
        /* cJSON stops at this depth with only a column; name the cause instead */
        if ((c == '{' || c == '[') && depth >= CJSON_NESTING_LIMIT)
            return fail(&L, "nested deeper than 1000 levels", i, 1);
        switch (c) {
        case '"':
            in_string = 1;
            str_start = i + 1;
            if (depth == 1 && root_object && expect_key) {
                L.in_key = 1;
                expect_key = 0;
                L.key = s + str_start;
                L.keylen = 0;
            }
            break;
        case '{':
            if (++depth == 1) root_object = 1, expect_key = 1;
            break;
        case '[':
            depth++;
            break;
        case '}':
        case ']':
            depth--;
            break;
        case ',':
            if (depth == 1) expect_key = 1;
            break;
        }
        i++;
    }
    return 0;
}

/* Skips one JSON value starting at s[i] (text known to be valid); returns the index after it. */
static size_t skip_value(const char *s, size_t n, size_t i) {
    if (s[i] == '"') {
        for (i++; i < n && s[i] != '"'; i++)
            if (s[i] == '\\') i++;
        return i < n ? i + 1 : n;
    }
    if (s[i] == '{' || s[i] == '[') {
        long depth = 0;
        int in_string = 0;
        for (; i < n; i++) {
            char c = s[i];
            if (in_string) {
                if (c == '\\')
                    i++;
                else if (c == '"')
                    in_string = 0;
            } else if (c == '"') {
                in_string = 1;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if ((c == '}' || c == ']') && --depth == 0) {
                return i + 1;
            }
        }
        return n;
    }
    while (i < n && !is_ws((unsigned char)s[i]) && s[i] != ',' && s[i] != '}' && s[i] != ']') i++;
    return i;
}

static size_t skip_ws(const char *s, size_t n, size_t i) {
    while (i < n && is_ws((unsigned char)s[i])) i++;
    return i;
}

int jsonlex_member(const char *s, size_t n, const char *key, size_t *start, size_t *len) {
    size_t klen = strlen(key), i = skip_ws(s, n, 0);
    if (i >= n || s[i] != '{') return -1;
    i = skip_ws(s, n, i + 1);
    while (i < n && s[i] == '"') {
        size_t k0 = i + 1, k1 = skip_value(s, n, i) - 1;
        if (k1 < k0) return -1;
        i = skip_ws(s, n, k1 + 1);
        if (i >= n || s[i] != ':') return -1;
        i = skip_ws(s, n, i + 1);
        if (i >= n) return -1;
        size_t v1 = skip_value(s, n, i);
        if (k1 - k0 == klen && memcmp(s + k0, key, klen) == 0) {
            *start = i;
            *len = v1 - i;
            return 0;
        }
        i = skip_ws(s, n, v1);
        if (i >= n || s[i] != ',') return -1;
        i = skip_ws(s, n, i + 1);
    }
    return -1;
}

static int cmp_key(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *jsonlex_duplicate_key(const cJSON *obj) {
    int n = cJSON_GetArraySize(obj);
    if (n < 2) return NULL;
    const char **keys = af_malloc((size_t)n * sizeof *keys);
    int k = 0;
    for (const cJSON *c = obj->child; c; c = c->next) keys[k++] = c->string;
    qsort(keys, (size_t)k, sizeof *keys, cmp_key);
    const char *dup = NULL;
    for (int i = 1; i < k && !dup; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0) dup = keys[i];
    free(keys);
    return dup;
}

const char *jsonlex_type_name(const cJSON *j) {
    if (cJSON_IsObject(j)) return "an object";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    return "an invalid value";
}
