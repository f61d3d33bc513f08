/* records.h: text examples as records with named fields, from JSONL (an object per line, fields
 * by key) or from TSV/CSV (a row per record, columns by header name or 1-based number).
 *
 * TSV is split on every tab, with no quoting (as GLUE's csv.reader(delimiter="\t",
 * quotechar=None)); CSV follows Python's csv module (RFC 4180 quoting, "" for a quote, quoted
 * fields may span lines). Empty lines are skipped, a UTF-8 byte-order mark before the first line
 * is dropped, gzip is read transparently. Errors name the input and the line. */
#ifndef AF_RECORDS_H
#define AF_RECORDS_H

#include "af.h"

typedef struct cJSON cJSON;

typedef enum { REC_AUTO, REC_JSONL, REC_TSV, REC_CSV } rec_format;

typedef struct rec_reader rec_reader;

/* Opens path ("-" or NULL: stdin). REC_AUTO reads JSONL when the first line starts with '{'
 * and TSV otherwise. header: the first TSV/CSV row names the columns (ignored for JSONL). */
int rec_open(rec_reader **r, const char *path, rec_format fmt, int header, af_err *e);
rec_format rec_format_of(const rec_reader *r);

/* Resolves a field: a JSON key; for TSV/CSV a header name, else a 1-based column number.
 * Returns a handle for rec_get, or -1 (e says why). */
int rec_field(rec_reader *r, const char *spec, af_err *e);

/* Reads the next record: 1, 0 at end of input, -1 on error. */
int rec_next(rec_reader *r, af_err *e);

typedef struct {
    const char *s; /* the text: a TSV/CSV cell, or a JSON string's value; NULL if not a string */
    size_t n;
    const cJSON *json; /* JSONL only: the value as parsed */
} rec_value;

/* Fills v with a field of the current record; returns 0 when the record has no such field (a
 * missing key, or a row with too few columns). */
int rec_get(const rec_reader *r, int field, rec_value *v);
/* JSONL only: the field's value exactly as written in the line (valid until the next record).
 * Returns 0 when it is not there (or its key is written with escapes). */
int rec_raw(const rec_reader *r, int field, const char **s, size_t *n);
/* Whether a cell is a JSON number as written ("1", "-0.5", "3.800", "1e3"; not "+1", ".5",
 * "01", "nan"), so that it can be passed on as a number. */
int rec_is_json_number(const char *s, size_t n);
const char *rec_field_name(const rec_reader *r, int field); /* the spec it was resolved from */
int rec_ncols(const rec_reader *r);                         /* columns of the current row */

const char *rec_name(const rec_reader *r);
long rec_line(const rec_reader *r); /* first line of the current record */
void rec_close(rec_reader *r);

#endif
