/* records.c: JSONL / TSV / CSV records with named fields; see records.h. */
#include "records.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jsonl.h"
#include "jsonlex.h"

struct rec_reader {
    af_lines *lines;
    rec_format fmt;
    int header;
    char *pending; /* a line read ahead (format sniffing) and not yet used */
    long pending_len, pending_lineno;
    long lineno; /* first line of the current record */
    /* TSV/CSV: the current row, cells as [start, end) offsets into rowbuf */
    char *rowbuf;
    size_t rowcap;
    size_t *cell; /* 2 per column */
    int ncols, cellcap;
    char **names; /* header */
    int nnames;
    cJSON *json;       /* JSONL: the current object */
    const char *jline; /* ... and its text (valid until the next record) */
    size_t jlen;
    char **specs; /* what each field handle was made from */
    int *col;     /* TSV/CSV: the column of each field */
    int nfields;
};

static int is_blank(const char *s, long n) {
    for (long i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t') return 0;
    return 1;
}

/* The next line (or the one read ahead), with a first-line byte-order mark removed. Returns its
 * length, -1 at the end, -2 on error. */
static long next_line(rec_reader *r, char **line, long *lineno, af_err *e) {
    if (r->pending) {
        *line = r->pending;
        *lineno = r->pending_lineno;
        r->pending = NULL;
        return r->pending_len;
    }
    long n = af_lines_next(r->lines, line, e);
    *lineno = af_lines_lineno(r->lines);
    if (n >= 3 && *lineno == 1 && memcmp(*line, "\xEF\xBB\xBF", 3) == 0) {
        *line += 3;
        n -= 3;
    }
    return n;
}

static void push_cell(rec_reader *r, size_t start, size_t end) {
    if (r->ncols == r->cellcap) {
        r->cellcap = r->cellcap ? 2 * r->cellcap : 16;
        r->cell = af_realloc(r->cell, 2 * (size_t)r->cellcap * sizeof *r->cell);
    }
    r->cell[2 * r->ncols] = start;
    r->cell[2 * r->ncols + 1] = end;
    r->ncols++;
}

static void row_reserve(rec_reader *r, size_t n) {
    if (n <= r->rowcap) return;
    while (r->rowcap < n) r->rowcap = r->rowcap ? 2 * r->rowcap : 1024;
    r->rowbuf = af_realloc(r->rowbuf, r->rowcap);
}

static void split_tsv(rec_reader *r, const char *line, long n) {
    row_reserve(r, (size_t)n + 1);
    memcpy(r->rowbuf, line, (size_t)n);
    r->rowbuf[n] = 0;
    r->ncols = 0;
    size_t start = 0;
    for (size_t i = 0; i <= (size_t)n; i++) {
        if (i == (size_t)n || line[i] == '\t') {
            push_cell(r, start, i);
            start = i + 1;
        }
    }
}

/* Python's csv reader (default dialect, strict off): a field that starts with a quote is quoted
 * up to a lone quote, "" standing for one; anything after the closing quote is taken as it is;
 * quotes inside an unquoted field are ordinary characters. Cells are unescaped in place into
 * rowbuf, each NUL-terminated. Returns 1 when the record is complete, 0 when it ends inside
 * quotes (the caller adds the next line). */
static int split_csv(rec_reader *r, const char *s, size_t n) {
    row_reserve(r, n + 1 + (n + 1)); /* cells + a NUL each never exceed twice */
    char *out = r->rowbuf;
    size_t w = 0, start = 0, i = 0;
    r->ncols = 0;
    for (;;) {
        start = w;
        if (i < n && s[i] == '"') {
            i++;
            for (;;) {
                if (i == n) return 0;
                if (s[i] == '"') {
                    if (i + 1 < n && s[i + 1] == '"') {
                        out[w++] = '"';
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                out[w++] = s[i++];
            }
        }
        while (i < n && s[i] != ',') out[w++] = s[i++];
        push_cell(r, start, w);
        out[w++] = 0;
        if (i == n) return 1;
        i++; /* the comma */
    }
}

static int read_row(rec_reader *r, af_err *e) {
    char *line;
    long n, lineno;
    do {
        n = next_line(r, &line, &lineno, e);
        if (n == -2) return -1;
        if (n == -1) return 0;
    } while (n == 0);
    r->lineno = lineno;
    if (r->fmt == REC_TSV) {
        split_tsv(r, line, n);
        return 1;
    }
    /* CSV: gather lines until the quotes close; the record text lives in rec (not rowbuf,
     * which split_csv writes). */
    size_t cap = (size_t)n + 1, len = (size_t)n;
    char *rec = af_malloc(cap);
    memcpy(rec, line, len);
    while (!split_csv(r, rec, len)) {
        long m = next_line(r, &line, &lineno, e);
        if (m == -2) {
            free(rec);
            return -1;
        }
        if (m == -1) {
            free(rec);
            return af_errf(e, "%s:%ld: quoted field not closed at the end of the input",
                           rec_name(r), r->lineno);
        }
        if (len + 1 + (size_t)m + 1 > cap) {
            while (len + 1 + (size_t)m + 1 > cap) cap *= 2;
            rec = af_realloc(rec, cap);
        }
        rec[len++] = '\n';
        memcpy(rec + len, line, (size_t)m);
        len += (size_t)m;
    }
    free(rec);
    return 1;
}

/* cJSON ends a string at an escaped NUL; the tokenizer drops NUL anyway (HF _clean_text), so
 * the escape is removed before parsing. Works in place; returns the new length. */
static size_t drop_nul_escapes(char *s, size_t n) {
    size_t w = 0;
    int in_string = 0;
    for (size_t i = 0; i < n;) {
        if (in_string && s[i] == '\\' && i + 1 < n) {
            if (i + 5 < n && memcmp(s + i + 1, "u0000", 5) == 0) {
                i += 6;
                continue;
            }
            s[w++] = s[i++];
            s[w++] = s[i++];
            continue;
        }
        if (s[i] == '"') in_string = !in_string;
        s[w++] = s[i++];
    }
    return w;
}

static int read_json(rec_reader *r, af_err *e) {
    char *line;
    long n, lineno;
    do {
        n = next_line(r, &line, &lineno, e);
        if (n == -2) return -1;
        if (n == -1) return 0;
    } while (is_blank(line, n));
    r->lineno = lineno;
    n = (long)drop_nul_escapes(line, (size_t)n);
    jsonlex_result lx;
    if (jsonlex_check(line, (size_t)n, &lx) < 0)
        return af_errf(e, "%s:%ld: %s at byte %zu", rec_name(r), lineno, lx.error, lx.at.pos + 1);
    cJSON_Delete(r->json);
    const char *end = NULL;
    r->json = cJSON_ParseWithLengthOpts(line, (size_t)n, &end, 0);
    if (!r->json)
        return af_errf(e, "%s:%ld: invalid JSON at byte %ld", rec_name(r), lineno,
                       end ? (long)(end - line) + 1 : 1L);
    while (end && end < line + n && (*end == ' ' || *end == '\t')) end++;
    if (end && end < line + n)
        return af_errf(e, "%s:%ld: text after the JSON value at byte %ld", rec_name(r), lineno,
                       (long)(end - line) + 1);
    if (!cJSON_IsObject(r->json))
        return af_errf(e, "%s:%ld: a JSON object expected", rec_name(r), lineno);
    r->jline = line;
    r->jlen = (size_t)n;
    return 1;
}

int rec_next(rec_reader *r, af_err *e) {
    return r->fmt == REC_JSONL ? read_json(r, e) : read_row(r, e);
}

int rec_open(rec_reader **rp, const char *path, rec_format fmt, int header, af_err *e) {
    *rp = NULL;
    rec_reader *r = af_calloc(1, sizeof *r);
    if (af_lines_open(&r->lines, path, e) < 0) {
        free(r);
        return -1;
    }
    r->fmt = fmt;
    r->header = header;
    if (fmt == REC_AUTO) {
        char *line;
        long n, lineno;
        do n = next_line(r, &line, &lineno, e);
        while (n >= 0 && is_blank(line, n));
        if (n == -2) {
            rec_close(r);
            return -1;
        }
        size_t i = 0;
        while (n > 0 && i < (size_t)n && (line[i] == ' ' || line[i] == '\t')) i++;
        r->fmt = n > 0 && line[i] == '{' ? REC_JSONL : REC_TSV;
        if (n >= 0) {
            r->pending = line, r->pending_len = n, r->pending_lineno = lineno;
        }
    }
    if (r->header && r->fmt != REC_JSONL) {
        int got = read_row(r, e);
        if (got < 0) {
            rec_close(r);
            return -1;
        }
        if (got == 0) {
            af_errf(e, "%s: no header line", rec_name(r));
            rec_close(r);
            return -1;
        }
        r->nnames = r->ncols;
        r->names = af_malloc((size_t)r->ncols * sizeof *r->names);
        for (int i = 0; i < r->ncols; i++) {
            size_t a = r->cell[2 * i], b = r->cell[2 * i + 1];
            r->names[i] = af_malloc(b - a + 1);
            memcpy(r->names[i], r->rowbuf + a, b - a);
            r->names[i][b - a] = 0;
        }
    }
    *rp = r;
    return 0;
}

rec_format rec_format_of(const rec_reader *r) {
    return r->fmt;
}

int rec_field(rec_reader *r, const char *spec, af_err *e) {
    int col = -1;
    if (r->fmt != REC_JSONL) {
        for (int i = 0; i < r->nnames && col < 0; i++)
            if (strcmp(r->names[i], spec) == 0) col = i;
        if (col < 0) {
            char *end;
            long v = strtol(spec, &end, 10);
            if (*spec && !*end && v >= 1 && v <= 1000000) col = (int)v - 1;
        }
        if (col < 0) {
            if (!r->header)
                return af_errf(e, "column '%s': a column number expected (no --header)", spec);
            char list[512] = "";
            for (int i = 0; i < r->nnames && strlen(list) < sizeof list - 80; i++) {
                strcat(list, i ? ", " : "");
                strncat(list, r->names[i], 60);
            }
            return af_errf(e, "%s: no column '%s' in the header (%s)", rec_name(r), spec, list);
        }
    }
    r->specs = af_realloc(r->specs, (size_t)(r->nfields + 1) * sizeof *r->specs);
    r->col = af_realloc(r->col, (size_t)(r->nfields + 1) * sizeof *r->col);
    r->specs[r->nfields] = af_strdup(spec);
    r->col[r->nfields] = col;
    return r->nfields++;
}

int rec_get(const rec_reader *r, int field, rec_value *v) {
    memset(v, 0, sizeof *v);
    if (field < 0 || field >= r->nfields) return 0;
    if (r->fmt == REC_JSONL) {
        const cJSON *j = r->json ? cJSON_GetObjectItemCaseSensitive(r->json, r->specs[field]) : 0;
        if (!j) return 0;
        v->json = j;
        if (cJSON_IsString(j)) {
            v->s = j->valuestring;
            v->n = strlen(j->valuestring);
        }
        return 1;
    }
    int c = r->col[field];
    if (c >= r->ncols) return 0;
    v->s = r->rowbuf + r->cell[2 * c];
    v->n = r->cell[2 * c + 1] - r->cell[2 * c];
    return 1;
}

int rec_raw(const rec_reader *r, int field, const char **s, size_t *n) {
    size_t start, len;
    if (r->fmt != REC_JSONL || field < 0 || field >= r->nfields || !r->jline) return 0;
    /* jsonlex_member compares raw key text: a name with a backslash could match another key
     * written with escapes */
    if (strchr(r->specs[field], '\\') || strchr(r->specs[field], '"')) return 0;
    if (jsonlex_member(r->jline, r->jlen, r->specs[field], &start, &len) < 0) return 0;
    *s = r->jline + start;
    *n = len;
    return 1;
}

/* RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
int rec_is_json_number(const char *p, size_t n) {
    size_t i = 0;
#define DIGIT(k) ((k) < n && p[k] >= '0' && p[k] <= '9')
    if (i < n && p[i] == '-') i++;
    if (i < n && p[i] == '0')
        i++;
    else if (DIGIT(i))
        while (DIGIT(i)) i++;
    else
        return 0;
    if (i < n && p[i] == '.') {
        size_t d = ++i;
        while (DIGIT(i)) i++;
        if (i == d) return 0;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-')) i++;
        size_t d = i;
        while (DIGIT(i)) i++;
        if (i == d) return 0;
    }
#undef DIGIT
    if (i != n) return 0;
    /* a number that overflows a double would not read back (jsonlex rejects it) */
    char small[64], *buf = n < sizeof small ? small : af_malloc(n + 1);
    memcpy(buf, p, n);
    buf[n] = 0;
    double v = strtod(buf, NULL);
    if (buf != small) free(buf);
    return isfinite(v);
}

const char *rec_field_name(const rec_reader *r, int field) {
    return field >= 0 && field < r->nfields ? r->specs[field] : "";
}

int rec_ncols(const rec_reader *r) {
    return r->ncols;
}

const char *rec_name(const rec_reader *r) {
    return af_lines_name(r->lines);
}

long rec_line(const rec_reader *r) {
    return r->lineno;
}

void rec_close(rec_reader *r) {
    if (!r) return;
    af_lines_close(r->lines);
    free(r->rowbuf);
    free(r->cell);
    for (int i = 0; i < r->nnames; i++) free(r->names[i]);
    free(r->names);
    for (int i = 0; i < r->nfields; i++) free(r->specs[i]);
    free(r->specs);
    free(r->col);
    cJSON_Delete(r->json);
    free(r);
}
