/* jsonl.c: the schema of af-files(5), every error with its line number, gzip, CRLF, long lines. */
#include "jsonl.h"
#include "tap.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char tmpdir[] = "/tmp/af-jl-test.XXXXXX";

static char *tmp(const char *name) {
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

static void put(const char *path, const char *text, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, n, f);
    fclose(f);
}

static int parse(const char *line, jl_example *ex, int vocab, af_err *e) {
    return jl_parse_line(line, strlen(line), ex, vocab, "x.jsonl", 7, e);
}

static void test_fields(void) {
    jl_example ex = {0};
    af_err e;
    int rc = parse("{\"input_ids\":[101,7592,102],\"token_type_ids\":[0,0,1],"
                   "\"attention_mask\":[1,1,0],\"label\":1,\"task\":\"sst2\",\"id\":\"x17\","
                   "\"extra\":{\"k\":[1,2]}}",
                   &ex, 30522, &e);
    ok(rc == 0, "a full line parses");
    if (rc) diag("%s", e.msg);
    ok(ex.len == 3 && ex.input_ids[0] == 101 && ex.input_ids[2] == 102, "input_ids");
    ok(ex.token_type_ids[2] == 1 && ex.attention_mask[2] == 0, "token_type_ids, attention_mask");
    ok(ex.label_kind == JL_LABEL_INT && ex.label_int == 1 && ex.label_num == 1, "integer label");
    ok(ex.task && strcmp(ex.task, "sst2") == 0 && ex.id && strcmp(ex.id, "x17") == 0,
       "task and id");
    ok(ex.json && cJSON_GetObjectItem(ex.json, "extra") && ex.line == 7,
       "unknown keys kept in json for pass-through; line number");

    rc = parse("{\"input_ids\":[5, 6]}", &ex, 0, &e);
    ok(rc == 0 && ex.len == 2 && ex.token_type_ids[0] == 0 && ex.token_type_ids[1] == 0 &&
           ex.attention_mask[0] == 1 && ex.attention_mask[1] == 1,
       "defaults: token types 0, mask 1");
    ok(ex.label_kind == JL_LABEL_NONE && !ex.task && !ex.id && !ex.label_str,
       "reused example: earlier label, task, id cleared");
    ok(parse("{\"input_ids\":[5],\"label\":\"positive\"}", &ex, 0, &e) == 0 &&
           ex.label_kind == JL_LABEL_STRING && strcmp(ex.label_str, "positive") == 0,
       "string label");
    ok(parse("{\"input_ids\":[5],\"label\":3.25}", &ex, 0, &e) == 0 &&
           ex.label_kind == JL_LABEL_NUMBER && ex.label_num == 3.25,
       "number label (regression)");
    ok(parse("{\"input_ids\":[5],\"label\":[\"toxic\",\"rude\"]}", &ex, 0, &e) == 0 &&
           ex.label_kind == JL_LABEL_LIST && ex.label_n == 2 && !strcmp(ex.label_str, "toxic") &&
           !strcmp(ex.label_str + 6, "rude"),
       "a list of names (multi-label)");
    ok(parse("{\"input_ids\":[5],\"label\":[]}", &ex, 0, &e) == 0 &&
           ex.label_kind == JL_LABEL_LIST && ex.label_n == 0,
       "an empty list: the empty set, not no label");
    ok(parse("{\"input_ids\":[5],\"label\":2.0}", &ex, 0, &e) == 0 &&
           ex.label_kind == JL_LABEL_INT && ex.label_int == 2,
       "2.0 is the integer label 2");
    ok(parse("{\"input_ids\":[5],\"label\":-1}", &ex, 0, &e) == 0 &&
           ex.label_kind == JL_LABEL_INT && ex.label_int == -1,
       "negative integer label");
    ok(parse("{\"input_ids\":[5],\"label\":null,\"task\":null,\"id\":null}", &ex, 0, &e) == 0 &&
           ex.label_kind == JL_LABEL_NONE && !ex.task && !ex.id,
       "null counts as absent");
    ok(parse("{\"input_ids\":[5],\"id\":12345678901234567890}", &ex, 0, &e) == 0 &&
           strcmp(ex.id, "12345678901234567890") == 0,
       "a numeric id is kept as its text, beyond double precision");
    ok(parse("{ \"id\" : 1.50 , \"input_ids\":[5]}", &ex, 0, &e) == 0 && strcmp(ex.id, "1.50") == 0,
       "a numeric id keeps its written form");
    ok(parse("{\"input_ids\":[5],\"task\":\"caf\xc3\xa9\"}", &ex, 0, &e) == 0 &&
           strcmp(ex.task, "caf\xc3\xa9") == 0,
       "UTF-8 strings");
    ok(parse("{\"input_ids\":[0, 30521]} \t", &ex, 30522, &e) == 0,
       "ids at both ends of the vocabulary; trailing whitespace");
    jl_example_free(&ex);
    ok(ex.input_ids == NULL && ex.json == NULL, "jl_example_free clears");
}

/* Each case: a line, then fragments the error must contain. */
static void rejects(const char *what, const char *line, int vocab, const char *f1, const char *f2) {
    jl_example ex = {0};
    af_err e = {{0}};
    int rc = parse(line, &ex, vocab, &e);
    int good = rc == -1 && strncmp(e.msg, "x.jsonl:7: ", 11) == 0 && strstr(e.msg, f1) &&
               (!f2 || strstr(e.msg, f2));
    ok(good, "rejects %s", what);
    diag("%s", rc ? e.msg : "accepted");
    jl_example_free(&ex);
}

/* cJSON's nesting limit, reported as such: 1000 containers pass, 1001 do not. */
static void test_nesting(void) {
    for (int depth = 1000; depth <= 1001; depth++) {
        char *line = malloc(64 + 2 * (size_t)depth);
        int n = sprintf(line, "{\"input_ids\":[1],\"x\":");
        for (int i = 1; i < depth; i++) line[n++] = '[';
        for (int i = 1; i < depth; i++) line[n++] = ']';
        strcpy(line + n, "}");
        if (depth == 1000) {
            jl_example ex = {0};
            af_err e = {{0}};
            ok(parse(line, &ex, 0, &e) == 0, "1000 levels of nesting are read");
            jl_example_free(&ex);
        } else {
            rejects("1001 levels of nesting", line, 0, "nested deeper than 1000 levels", NULL);
        }
        free(line);
    }
}

static void test_errors(void) {
    rejects("a line without input_ids", "{\"label\":1}", 0, "input_ids is missing", NULL);
    rejects("input_ids null", "{\"input_ids\":null}", 0, "input_ids is missing", NULL);
    rejects("input_ids not an array", "{\"input_ids\":\"101 102\"}", 0, "input_ids must be",
            "found a string");
    rejects("empty input_ids", "{\"input_ids\":[]}", 0, "input_ids", "empty array");
    rejects("a fractional token id", "{\"input_ids\":[101,1.5]}", 0, "input_ids[1]", "1.5");
    rejects("a negative token id", "{\"input_ids\":[-3]}", 0, "input_ids[0]",
            "non-negative integer");
    rejects("a string token id", "{\"input_ids\":[101,\"7\"]}", 0, "input_ids[1]", "a string");
    rejects("a token id too large for int", "{\"input_ids\":[4294967298]}", 0,
            "input_ids[0]: 4294967298 is too large", "at most 2147483647");
    rejects("an attention_mask of 0s only", "{\"input_ids\":[1,2],\"attention_mask\":[0,0]}", 0,
            "attention_mask is all 0", NULL);
    rejects("a token id outside the vocabulary", "{\"input_ids\":[101,30522]}", 30522,
            "input_ids[1]", "outside the vocabulary [0, 30522)");
    rejects("token_type_ids of another length", "{\"input_ids\":[1,2,3],\"token_type_ids\":[0,0]}",
            0, "token_type_ids has 2 values, input_ids has 3", NULL);
    rejects("token_type_ids not integers", "{\"input_ids\":[1],\"token_type_ids\":[true]}", 0,
            "token_type_ids[0]", "a boolean");
    rejects("attention_mask of another length", "{\"input_ids\":[1,2],\"attention_mask\":[1,1,1]}",
            0, "attention_mask has 3 values, input_ids has 2", NULL);
    rejects("attention_mask value 2", "{\"input_ids\":[1,2],\"attention_mask\":[1,2]}", 0,
            "attention_mask[1] must be 0 or 1", NULL);
    rejects("attention_mask not an array", "{\"input_ids\":[1],\"attention_mask\":1}", 0,
            "attention_mask must be", NULL);
    rejects("a boolean label", "{\"input_ids\":[1],\"label\":true}", 0,
            "label must be an integer, a string, a number or a list of names", "a boolean");
    rejects("a list label of numbers", "{\"input_ids\":[1],\"label\":[\"a\",1]}", 0,
            "label[1] must be a string (a label name)", "a number");
    rejects("a list label naming one twice", "{\"input_ids\":[1],\"label\":[\"a\",\"b\",\"a\"]}", 0,
            "label[2]: \"a\" is in the list twice", NULL);
    rejects("an object label", "{\"input_ids\":[1],\"label\":{}}", 0, "label must be", "an object");
    rejects("a numeric task", "{\"input_ids\":[1],\"task\":3}", 0, "task must be a string", NULL);
    rejects("a boolean id", "{\"input_ids\":[1],\"id\":false}", 0,
            "id must be a string or a number", NULL);
    rejects("a line that is not JSON", "{\"input_ids\":[1,2}", 0, "not valid JSON", NULL);
    rejects("a number with a leading zero", "{\"input_ids\":[01]}", 0, "not valid JSON",
            "invalid number");
    rejects("a line that is an array", "[101,102]", 0, "must be a JSON object", "an array");
    rejects("two objects on one line", "{\"input_ids\":[1]}{\"input_ids\":[2]}", 0,
            "text after the JSON object at column 18", NULL);
    rejects("a duplicate key", "{\"input_ids\":[1],\"label\":0,\"label\":1}", 0,
            "key 'label' appears twice", NULL);
    rejects("invalid UTF-8", "{\"input_ids\":[1],\"task\":\"\xff\"}", 0, "invalid UTF-8",
            "in 'task'");
    rejects("a raw control character", "{\"input_ids\":[1],\"task\":\"a\tb\"}", 0,
            "control character", NULL);
}

/* Reads path to the end; returns the number of examples, or -(line of the error) - 1000. */
static long read_count(const char *path, int vocab, af_err *e, long *sum) {
    jl_reader *r;
    if (jl_open(&r, path, vocab, e)) return -1;
    jl_example ex = {0};
    long n = 0, rc;
    *sum = 0;
    while ((rc = jl_next(r, &ex, e)) == 1) {
        n++;
        for (int i = 0; i < ex.len; i++) *sum += ex.input_ids[i];
    }
    jl_example_free(&ex);
    jl_close(r);
    return rc < 0 ? -2 : n;
}

static void test_files(void) {
    af_err e;
    long sum;
    const char *text =
        "{\"input_ids\":[1,2]}\r\n\r\n  \n{\"input_ids\":[3]}\n\n{\"input_ids\":[4]}";
    put(tmp("a.jsonl"), text, strlen(text));
    ok(read_count(tmp("a.jsonl"), 0, &e, &sum) == 3 && sum == 10,
       "CRLF, blank lines and a missing final newline");

    gzFile gz = gzopen(tmp("a.jsonl.gz"), "wb");
    gzwrite(gz, text, (unsigned)strlen(text));
    gzclose(gz);
    ok(read_count(tmp("a.jsonl.gz"), 0, &e, &sum) == 3 && sum == 10, "gzip input");
    /* two gzip members back to back, as `cat a.gz b.gz` makes */
    gz = gzopen(tmp("a.jsonl.gz"), "wb");
    gzwrite(gz, text, (unsigned)strlen(text));
    gzwrite(gz, "\n", 1);
    gzclose(gz);
    gz = gzopen(tmp("b.jsonl.gz"), "wb");
    gzwrite(gz, "{\"input_ids\":[5]}\n", 18);
    gzclose(gz);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cat %s %s > %s", tmp("a.jsonl.gz"), tmp("b.jsonl.gz"),
             tmp("ab.jsonl.gz"));
    ok(system(cmd) == 0 && read_count(tmp("ab.jsonl.gz"), 0, &e, &sum) == 4 && sum == 15,
       "concatenated gzip members");

    const char *bad = "{\"input_ids\":[1]}\n\n\r\n{\"input_ids\":[2]}\n{\"input_ids\":[1,2],"
                      "\"attention_mask\":[1]}\n";
    put(tmp("bad.jsonl"), bad, strlen(bad));
    ok(read_count(tmp("bad.jsonl"), 0, &e, &sum) == -2 && strstr(e.msg, tmp("bad.jsonl")) &&
           strstr(e.msg, "bad.jsonl:5: attention_mask has 1 value,"),
       "an error names the file and the physical line (blank lines counted)");
    diag("%s", e.msg);

    /* a truncated gzip stream is an error, not a quiet end of input */
    snprintf(cmd, sizeof cmd,
             "seq 1 3000 | sed 's/.*/{\"input_ids\":[&]}/' | gzip > %s && "
             "head -c 2000 %s > %s",
             tmp("big.gz"), tmp("big.gz"), tmp("trunc.gz"));
    ok(system(cmd) == 0 && read_count(tmp("trunc.gz"), 0, &e, &sum) == -2 &&
           strstr(e.msg, "trunc.gz:") && strstr(e.msg, "unexpected end of file"),
       "a truncated gzip file is an error");
    diag("%s", e.msg);

    /* a line over 1 MB */
    size_t n = 250000, cap = n * 7 + 64, k = 0;
    char *big = malloc(cap);
    k += (size_t)snprintf(big + k, cap - k, "{\"input_ids\":[");
    long want = 0;
    for (size_t i = 0; i < n; i++) {
        k += (size_t)snprintf(big + k, cap - k, "%s%zu", i ? "," : "", 10000 + i % 20000);
        want += 10000 + (long)(i % 20000);
    }
    k += (size_t)snprintf(big + k, cap - k, "]}\n{\"input_ids\":[1]}\n");
    put(tmp("long.jsonl"), big, k);
    ok(k > (1 << 20) && read_count(tmp("long.jsonl"), 30522, &e, &sum) == 2 && sum == want + 1,
       "a line of %zu bytes", k);
    free(big);

    /* a NUL byte inside a line is not silently a line end */
    put(tmp("nul.jsonl"), "{\"input_ids\":[1]}\0{\"input_ids\":[2]}\n", 36);
    ok(read_count(tmp("nul.jsonl"), 0, &e, &sum) == -2 && strstr(e.msg, "nul.jsonl:1:"),
       "a NUL byte in a line is an error");
    diag("%s", e.msg);

    jl_reader *r;
    ok(jl_open(&r, tmp("missing.jsonl"), 0, &e) == -1 && strstr(e.msg, "missing.jsonl") &&
           strstr(e.msg, "No such file"),
       "a missing file");
    put(tmp("empty.jsonl"), "", 0);
    ok(read_count(tmp("empty.jsonl"), 0, &e, &sum) == 0, "an empty file has no examples");
}

/* The shared line reader, directly: what the TSV and text readers see. */
static void test_lines(void) {
    af_err e;
    const char *text = "a\r\nb\rc\n\r\n\nlast";
    put(tmp("l.txt"), text, strlen(text));
    af_lines *l;
    char *s;
    int good = af_lines_open(&l, tmp("l.txt"), &e) == 0;
    ok(good && strstr(af_lines_name(l), "l.txt"), "af_lines_open");
    if (!good) return;
    long n1 = af_lines_next(l, &s, &e);
    ok(n1 == 1 && strcmp(s, "a") == 0 && af_lines_lineno(l) == 1, "CRLF stripped");
    long n2 = af_lines_next(l, &s, &e);
    ok(n2 == 3 && strcmp(s, "b\rc") == 0, "a CR inside a line is kept");
    long n3 = af_lines_next(l, &s, &e), n4 = af_lines_next(l, &s, &e);
    ok(n3 == 0 && n4 == 0 && af_lines_lineno(l) == 4, "empty lines are returned and counted");
    long n5 = af_lines_next(l, &s, &e);
    ok(n5 == 4 && strcmp(s, "last") == 0 && af_lines_lineno(l) == 5, "last line without newline");
    ok(af_lines_next(l, &s, &e) == -1 && af_lines_next(l, &s, &e) == -1, "then end of input");
    af_lines_close(l);

    /* a line past the limit is an error naming it, whether its newline comes or not */
    size_t big = (1 << 20) + 10;
    char *t = malloc(big + 4);
    memset(t, 'x', big + 4);
    memcpy(t, "ok\n", 3);
    t[big + 3] = '\n';
    put(tmp("long.txt"), t, big + 4);
    free(t);
    if (af_lines_open(&l, tmp("long.txt"), &e) == 0) {
        af_lines_max(l, 1 << 20);
        ok(af_lines_next(l, &s, &e) == 2, "a short line under the limit");
        ok(af_lines_next(l, &s, &e) == -2 &&
               strstr(e.msg, "long.txt:2: the line is longer than 1 MiB"),
           "a line over the limit: %s", e.msg);
        af_lines_close(l);
    }
}

static void test_stdin(void) {
    af_err e;
    const char *text = "{\"input_ids\":[7]}\n{\"input_ids\":[8,9]}\n";
    put(tmp("in.jsonl"), text, strlen(text));
    int saved = dup(0), fd = open(tmp("in.jsonl"), O_RDONLY);
    dup2(fd, 0);
    close(fd);
    jl_reader *r;
    jl_example ex = {0};
    int good = jl_open(&r, "-", 0, &e) == 0;
    ok(good && strcmp(jl_name(r), "stdin") == 0, "'-' reads stdin and is called stdin");
    if (good) {
        ok(jl_next(r, &ex, &e) == 1 && ex.input_ids[0] == 7 && jl_next(r, &ex, &e) == 1 &&
               ex.len == 2 && jl_next(r, &ex, &e) == 0,
           "examples from stdin");
        jl_close(r);
    }
    jl_example_free(&ex);
    dup2(saved, 0);
    close(saved);
}

static void test_read_all(void) {
    af_err e;
    jl_set s;
    const char *text = "{\"input_ids\":[1],\"label\":0}\n{\"input_ids\":[2,3],\"label\":\"b\"}\n";
    put(tmp("set.jsonl"), text, strlen(text));
    int rc = jl_read_all(&s, tmp("set.jsonl"), 10, &e);
    ok(rc == 0 && s.n == 2 && s.ex[1].len == 2 && s.ex[1].label_kind == JL_LABEL_STRING &&
           s.ex[0].json == NULL && s.ex[1].line == 2,
       "jl_read_all reads every example, without json trees");
    jl_set_free(&s);
    ok(jl_read_all(&s, tmp("set.jsonl"), 2, &e) == -1 && strstr(e.msg, "set.jsonl:2:") &&
           s.n == 0 && s.ex == NULL,
       "jl_read_all stops at the first error and leaves an empty set");
}

int main(void) {
    if (!mkdtemp(tmpdir)) return 1;
    test_fields();
    test_errors();
    test_nesting();
    test_files();
    test_lines();
    test_stdin();
    test_read_all();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) diag("could not remove %s", tmpdir);
    return done_testing();
}
