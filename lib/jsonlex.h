/* jsonlex.h: the strict JSON checks that cJSON leaves out, shared by the safetensors header
 * reader and the JSONL reader.
 *
 * cJSON (1.7) accepts text that RFC 8259 forbids: control characters as whitespace and inside
 * strings, numbers such as "01" and "1.", numbers that overflow to infinity; it does not check
 * UTF-8, and it silently cuts a string at an escaped \u0000. It also forgets how a number was
 * written, so "2.0" and "2" look alike. jsonlex_check scans the raw text once, before cJSON
 * parses it, and reports the first such problem with its byte offset and the top-level key it
 * belongs to (so messages can name a tensor or a field). */
#ifndef AF_JSONLEX_H
#define AF_JSONLEX_H

#include <stddef.h>

typedef struct {
    size_t pos, len; /* byte offset and length of the offending text */
    const char *key; /* raw text of the enclosing top-level key, NULL if none */
    size_t keylen;
} jsonlex_at;

typedef struct {
    const char *error; /* NULL when the text passed; else a static description */
    jsonlex_at at;
    /* Numbers not written as plain non-negative integers ("-1", "2.0", "1e3"): not errors in
     * JSON, but safetensors shapes and offsets must be integers as written. */
    int nonint;
    jsonlex_at first_nonint;
} jsonlex_result;

/* Returns 0 when no problem was found, -1 otherwise (r->error says which). */
int jsonlex_check(const char *s, size_t n, jsonlex_result *r);

/* Finds the first top-level member named key (compared with its raw, unescaped text) of the
 * JSON object in s[0, n) and returns the raw text of its value in [*start, *start + *len).
 * Returns 0 when found, -1 when not. Meant for text that already parsed. */
int jsonlex_member(const char *s, size_t n, const char *key, size_t *start, size_t *len);

/* The first key that appears twice among the members of a parsed object, or NULL. cJSON keeps
 * duplicate members in its list (and its lookups return the first), so one reader could see one
 * value and another reader the other; JSONL lines and safetensors headers both refuse them. */
struct cJSON;
const char *jsonlex_duplicate_key(const struct cJSON *obj);

/* What a parsed value is, for messages: "an object", "a string", "null"... */
const char *jsonlex_type_name(const struct cJSON *j);

#endif
