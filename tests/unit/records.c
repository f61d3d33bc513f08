/* tests/unit/records.c: JSONL / TSV / CSV records: format sniffing, headers, columns by name
 * and number, CSV quoting as Python's csv module, raw JSON values, numbers, and errors. */
#include "records.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

static char path[64];

static void write_file(const char *text) {
    strcpy(path, "/tmp/af-records.XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) abort();
    close(fd);
}

/* Every record's fields (by spec, comma-separated list), joined as "a|b;a|b;"; missing fields
 * show as "-", non-strings as their raw JSON. */
static const char *read_all(const char *text, rec_format fmt, int header, const char *specs) {
    static char out[2048];
    af_err e;
    rec_reader *r;
    write_file(text);
    out[0] = 0;
    if (rec_open(&r, path, fmt, header, &e) < 0) {
        snprintf(out, sizeof out, "error: %s", e.msg);
        unlink(path);
        return out;
    }
    int f[8], nf = 0;
    char *s = strdup(specs), *save = NULL;
    for (char *p = strtok_r(s, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if ((f[nf++] = rec_field(r, p, &e)) < 0) {
            snprintf(out, sizeof out, "error: %s", e.msg);
            goto done;
        }
    }
    int got;
    while ((got = rec_next(r, &e)) > 0) {
        char line[32];
        snprintf(line, sizeof line, "%ld:", rec_line(r));
        strcat(out, line);
        for (int i = 0; i < nf; i++) {
            rec_value v;
            const char *raw;
            size_t n;
            if (i) strcat(out, "|");
            if (!rec_get(r, f[i], &v))
                strcat(out, "-");
            else if (v.s)
                strncat(out, v.s, v.n);
            else if (rec_raw(r, f[i], &raw, &n))
                strncat(out, raw, n);
        }
        strcat(out, ";");
    }
    if (got < 0) snprintf(out + strlen(out), sizeof out - strlen(out), "error: %s", e.msg);
done:
    free(s);
    rec_close(r);
    unlink(path);
    return out;
}

int main(void) {
    const char *v;
    v = read_all("{\"text\":\"a\",\"n\":[1, 2]}\n\n{\"text\":\"b\"}\n", REC_AUTO, 0, "text,n");
    ok(!strcmp(v, "1:a|[1, 2];3:b|-;"), "JSONL sniffed; raw values; missing keys: %s", v);
    v = read_all("x\ty\n1\t2\n\n3\n", REC_AUTO, 1, "y,x,1");
    ok(!strcmp(v, "2:2|1|1;4:-|3|3;"), "TSV sniffed, header names and numbers: %s", v);
    v = read_all("\xef\xbb\xbf"
                 "Quality\tS\n1\ta\"b\n",
                 REC_TSV, 1, "Quality,S");
    ok(!strcmp(v, "2:1|a\"b;"), "BOM dropped from the header; quotes are text in TSV: %s", v);
    v = read_all("a\t\tc\t\n", REC_TSV, 0, "2,4,5");
    ok(!strcmp(v, "1:||-;"), "empty TSV cells: %s", v);
    v = read_all("a\t\tc\t\n", REC_TSV, 0, "3,4");
    ok(!strcmp(v, "1:c|;"), "a trailing tab makes an empty last cell: %s", v);
    v = read_all("h,i\r\n\"x, y\",\"say \"\"hi\"\"\"\r\n\"multi\nline\",z\n", REC_CSV, 1, "h,i");
    ok(!strcmp(v, "2:x, y|say \"hi\";3:multi\nline|z;"),
       "CSV: quotes, doubled quotes, CRLF, a field over two lines (line of its start)");
    v = read_all("a\"b,\"c\"d,\"\"\n", REC_CSV, 0, "1,2,3");
    ok(!strcmp(v, "1:a\"b|cd|;"), "CSV edge cases as Python's csv: %s", v);
    v = read_all("a,b\n\"open\n", REC_CSV, 1, "a");
    ok(strstr(v, ":2: quoted field not closed") != NULL, "unclosed quote: %s", v);
    v = read_all("x\ty\n", REC_TSV, 1, "z");
    ok(strstr(v, "error: ") != NULL && strstr(v, "no column 'z' in the header (x, y)") != NULL,
       "%s", v);
    v = read_all("x\ty\n", REC_TSV, 0, "y");
    ok(strstr(v, "a column number expected (no --header)") != NULL, "%s", v);
    v = read_all("", REC_TSV, 1, "a");
    ok(strstr(v, "no header line") != NULL, "%s", v);
    v = read_all("{\"a\":1}\n[1]\n", REC_JSONL, 0, "a");
    ok(strstr(v, "1:1;error: ") != NULL && strstr(v, ":2: a JSON object expected") != NULL, "%s",
       v);
    v = read_all("{\"a\":1} x\n", REC_JSONL, 0, "a");
    ok(strstr(v, ":1: text after the JSON value at byte 9") != NULL, "%s", v);
    v = read_all("{\"a\":\"\x01\"}\n", REC_JSONL, 0, "a");
    ok(strstr(v, ":1: control character in a string") != NULL, "strict JSON: %s", v);
    v = read_all("{\"a\":\"x\\u0000y\",\"b\":\"\\\\u0000\"}\n", REC_JSONL, 0, "a,b");
    ok(!strcmp(v, "1:xy|\\u0000;"), "an escaped NUL is dropped, an escaped backslash kept: %s", v);
    v = read_all("{\"a\":\"x\"}\n", REC_AUTO, 1, "a");
    ok(!strcmp(v, "1:x;"), "--header means nothing to JSONL: %s", v);

    ok(rec_is_json_number("1", 1) && rec_is_json_number("-0.5", 4) &&
           rec_is_json_number("3.800", 5) && rec_is_json_number("1e3", 3) &&
           rec_is_json_number("0", 1),
       "JSON numbers");
    ok(!rec_is_json_number("+1", 2) && !rec_is_json_number(".5", 2) &&
           !rec_is_json_number("01", 2) && !rec_is_json_number("1.", 2) &&
           !rec_is_json_number("nan", 3) && !rec_is_json_number("", 0) &&
           !rec_is_json_number("1e999", 5) && !rec_is_json_number("1 ", 2),
       "not JSON numbers (or not finite)");
    return done_testing();
}
