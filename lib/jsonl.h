/* jsonl.h: tokenized examples on the pipes (af-files(5)), read from a file or stdin, gzip or not.
 *
 *   {"input_ids":[101,...,102], "token_type_ids":[...], "attention_mask":[...],
 *    "label":1, "task":"sst2", "id":"x17"}
 *
 * Only input_ids is required. Errors name the input and the line: "train.jsonl:1042: input_ids
 * must be an array of integers". */
#ifndef AF_JSONL_H
#define AF_JSONL_H

#include "af.h"

typedef struct cJSON cJSON;

typedef enum {
    JL_LABEL_NONE,
    JL_LABEL_INT,
    JL_LABEL_STRING,
    JL_LABEL_NUMBER,
    JL_LABEL_LIST /* an array of label names: a multi-label example's set (possibly empty) */
} jl_label_kind;

typedef struct {
    int *input_ids;       /* [len] */
    int *token_type_ids;  /* [len], zeros when absent */
    int *attention_mask;  /* [len], ones when absent */
    int len;
    jl_label_kind label_kind; /* NONE when absent or null */
    long label_int;       /* JL_LABEL_INT: a number with an integral value (1 and 1.0 alike) */
    double label_num;     /* JL_LABEL_NUMBER (a non-integer number) and also set for INT */
    char *label_str;      /* JL_LABEL_STRING; JL_LABEL_LIST: the names one after another, each
                             ended by its NUL (label_n of them, distinct) */
    int label_n;          /* JL_LABEL_LIST: how many names */
    char *task;           /* NULL when absent */
    char *id;             /* NULL when absent; a numeric id is kept as its JSON text */
    cJSON *json;          /* the whole parsed line (for passing unknown keys through) */
    long line;            /* 1-based line number in the input */
} jl_example;

typedef struct jl_reader jl_reader;

/* Opens path ("-" or NULL: stdin). gzip is detected by its magic bytes. vocab_size > 0 makes ids
 * outside [0, vocab_size) an error. */
int jl_open(jl_reader **r, const char *path, int vocab_size, af_err *e);
/* Reads the next non-blank line into ex (reusing its buffers). Returns 1 when an example was
 * read, 0 at end of input, -1 on error (e says "name:line: what"). */
int jl_next(jl_reader *r, jl_example *ex, af_err *e);
const char *jl_name(const jl_reader *r);   /* "-" shows as "stdin" */
void jl_close(jl_reader *r);
void jl_example_free(jl_example *ex);

/* Parses one line (no trailing newline needed) into ex. Used by jl_next and the fuzzer.
 * ex must be zeroed before its first use; its buffers are reused. A key that is null counts as
 * absent (except input_ids, which is required). Keys may not appear twice. */
int jl_parse_line(const char *line, size_t n, jl_example *ex, int vocab_size, const char *name,
                  long lineno, af_err *e);

/* Reads a whole file into an array (for training sets). The examples' json trees are freed
 * (json is NULL): a tree per example costs kilobytes, and training needs only the fields. */
typedef struct {
    jl_example *ex;
    int n, cap;
} jl_set;
int jl_read_all(jl_set *s, const char *path, int vocab_size, af_err *e);
void jl_set_free(jl_set *s);

/* Line reader shared by every text input (JSONL, TSV, raw text): any line length, CRLF
 * stripped, gzip transparent. Returns line length, or -1 at EOF, -2 on error. */
typedef struct af_lines af_lines;
int af_lines_open(af_lines **l, const char *path, af_err *e);
long af_lines_next(af_lines *l, char **line, af_err *e);
long af_lines_lineno(const af_lines *l);
/* Refuse lines longer than this many bytes (0, the default: no limit). JSONL readers set
 * JL_MAX_LINE: a line's parsed tree costs about 80 bytes per number in it, so a runaway line
 * (one 50 MB array of ids) would otherwise cost gigabytes before --max-len cuts it. */
void af_lines_max(af_lines *l, size_t bytes);
#define JL_MAX_LINE ((size_t)4 << 20)
/* 1 when the next af_lines_next would wait for a writer (nothing buffered holds a whole line and
 * the descriptor has nothing to read yet): a streaming consumer runs what it has instead. */
int af_lines_would_block(const af_lines *l);
const char *af_lines_name(const af_lines *l);
void af_lines_close(af_lines *l);

#endif
