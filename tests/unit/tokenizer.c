/* tests/unit/tokenizer.c: vocabulary files, WordPiece, the basic tokenizer's steps one by one,
 * truncation against HF's step-by-step loop, model inputs. The whole pipeline against the
 * Python reference is tests/cli/t0700-tokenize.sh (and scripts/tokenizer-compare.sh). */
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "tap.h"

static tok_tokenizer *open_vocab(const char *text, int lower, int strip) {
    tok_options o;
    tok_options_default(&o);
    o.lower = lower;
    o.strip_accents = strip;
    tok_tokenizer *t;
    af_err e;
    if (tok_open_mem(&t, text, strlen(text), "test", &o, &e) < 0) {
        diag("%s", e.msg);
        return NULL;
    }
    return t;
}

/* The word pieces of text, space-separated (into a static buffer). */
static const char *pieces(tok_tokenizer *t, const char *text, size_t len) {
    static char buf[4096];
    tok_ids ids = {0};
    af_err e;
    if (tok_encode(t, text, len, &ids, &e) < 0) {
        snprintf(buf, sizeof buf, "error: %s", e.msg);
        tok_ids_free(&ids);
        return buf;
    }
    buf[0] = 0;
    for (int i = 0; i < ids.n; i++) {
        if (i) strcat(buf, " ");
        strncat(buf, tok_token(t, ids.v[i]), sizeof buf - strlen(buf) - 2);
    }
    tok_ids_free(&ids);
    return buf;
}

#define SPECIALS "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n"

static void test_vocab_file(void) {
    tok_tokenizer *t = open_vocab("[CLS]\r\n[SEP]\r[UNK]\nx\n\nx\ny", 1, -1);
    ok(t != NULL, "a vocabulary with \\r\\n, \\r and \\n line ends opens");
    if (!t) return;
    ok(tok_vocab_size(t) == 7, "7 lines, the last without a line end: %d", tok_vocab_size(t));
    ok(tok_lookup(t, "[SEP]", 5) == 1 && tok_lookup(t, "[UNK]", 5) == 2, "\\r ends a line");
    ok(tok_lookup(t, "x", 1) == 5, "a later duplicate wins (HF load_vocab): %d",
       tok_lookup(t, "x", 1));
    ok(tok_lookup(t, "", 0) == 4, "an empty line is the empty token");
    ok(tok_lookup(t, "y", 1) == 6 && tok_lookup(t, "z", 1) == -1, "lookups");
    ok(tok_special(t, TOK_CLS) == 0 && tok_special(t, TOK_PAD) == -1, "specials found by name");
    ok(tok_token(t, 3) && strcmp(tok_token(t, 3), "x") == 0 && !tok_token(t, 7), "id to token");
    tok_close(t);

    tok_options o;
    tok_options_default(&o);
    tok_tokenizer *bad;
    af_err e;
    const char *nocls = "[SEP]\n[UNK]\n";
    ok(tok_open_mem(&bad, nocls, strlen(nocls), "v.txt", &o, &e) < 0 &&
           strcmp(e.msg, "v.txt: the vocabulary has no [CLS] token") == 0,
       "no [CLS]: %s", e.msg);
    const char *badutf = "[CLS]\n[SEP]\n[UNK]\nok\nb\xc3\x28\n";
    ok(tok_open_mem(&bad, badutf, strlen(badutf), "v.txt", &o, &e) < 0 &&
           strcmp(e.msg, "v.txt:5: invalid UTF-8 at byte 2 of the line") == 0,
       "invalid UTF-8 named by line: %s", e.msg);
    ok(tok_open_mem(&bad, "", 0, "v.txt", &o, &e) < 0 && strstr(e.msg, "empty"), "empty: %s",
       e.msg);
    o.cls = "<s>";
    const char *custom = "<s>\n[SEP]\n[UNK]\n";
    ok(tok_open_mem(&bad, custom, strlen(custom), "v.txt", &o, &e) == 0 &&
           tok_special(bad, TOK_CLS) == 0,
       "special token names can be changed");
    tok_close(bad);
}

static void test_wordpiece(void) {
    tok_tokenizer *t = open_vocab(SPECIALS "un\n##aff\n##able\nab\na\n##bc\n##c\n##a\né\n##é\n"
                                           "##\n",
                                  0, -1);
    if (!ok(t != NULL, "word-piece vocabulary")) return;
    ok(!strcmp(pieces(t, "unaffable", 9), "un ##aff ##able"), "HF's own example: %s",
       pieces(t, "unaffable", 9));
    ok(!strcmp(pieces(t, "abc", 3), "ab ##c"), "greedy longest first, not the best split: %s",
       pieces(t, "abc", 3));
    ok(!strcmp(pieces(t, "unaffablex", 10), "[UNK]"), "one piece missing: the word is [UNK]");
    ok(!strcmp(pieces(t, "unaff x ab", 10), "un ##aff [UNK] ab"), "only that word: %s",
       pieces(t, "unaff x ab", 10));
    char w[512];
    memset(w, 'a', 101);
    ok(!strcmp(pieces(t, w, 101), "[UNK]"), "101 characters: [UNK]");
    const char *p = pieces(t, w, 100);
    ok(!strncmp(p, "a ##a ##a", 9) && strlen(p) == 1 + 99 * 4, "100 characters: 100 pieces");
    for (int i = 0; i < 101; i++) memcpy(w + 2 * i, "\xc3\xa9", 2);
    ok(!strcmp(pieces(t, w, 202), "[UNK]"), "the limit counts characters: 101 x 'é' is [UNK]");
    p = pieces(t, w, 200);
    ok(!strncmp(p, "é ##é", 7) && strlen(p) == 2 + 99 * 5, "100 x 'é' is 100 pieces");
    ok(!strcmp(pieces(t, "##", 2), "[UNK] [UNK]"), "'#' is punctuation: no word holds it");
    ok(!strcmp(pieces(t, "[CLS]un[SEP]", 12), "[CLS] un [SEP]"),
       "special tokens in the text are kept: %s", pieces(t, "[CLS]un[SEP]", 12));
    ok(!strcmp(pieces(t, "[CL\xe2\x80\x8bS]", 8), "[CLS]"),
       "...also when only cleaning makes them (HF never_split)");
    ok(!strcmp(pieces(t, "[cls]", 5), "[UNK] [UNK] [UNK]"), "...but not in another case");
    ok(!strcmp(pieces(t, "ab\xff", 3), "error: invalid UTF-8 at byte 3"), "%s",
       pieces(t, "ab\xff", 3));
    ok(!strcmp(pieces(t, "[SEP]a\xed\xa0\x80", 8), "error: invalid UTF-8 at byte 7"),
       "a surrogate is invalid; the byte counts from the start: %s",
       pieces(t, "[SEP]a\xed\xa0\x80", 8));
    ok(!strcmp(pieces(t, "\xc0\xaf", 2), "error: invalid UTF-8 at byte 1"), "overlong form");
    ok(!strcmp(pieces(t, "a\0b", 3), "ab"), "NUL inside a text is dropped");
    ok(!strcmp(pieces(t, "", 0), ""), "the empty text has no pieces");
    tok_close(t);
}

/* Collects the basic tokenizer's words, separated by '|'. */
typedef struct {
    char buf[1024];
    int chars;
} words;

static int collect(void *ctx, const char *w, size_t n, int nchars) {
    words *c = ctx;
    if (c->buf[0]) strcat(c->buf, "|");
    strncat(c->buf, w, n);
    c->chars += nchars;
    return 0;
}

static const char *basic(int lower, int strip, int chinese, const char *text, int *chars) {
    static words c;
    memset(&c, 0, sizeof c);
    tok_options o;
    tok_options_default(&o);
    o.lower = lower;
    o.strip_accents = strip;
    o.chinese = chinese;
    tok_basic *b = tok_basic_new(&o);
    af_err e;
    if (tok_basic_run(b, text, strlen(text), collect, &c, &e) < 0)
        snprintf(c.buf, 1024, "%s", e.msg);
    tok_basic_free(b);
    if (chars) *chars = c.chars;
    return c.buf;
}

static void test_basic(void) {
    const char *s = "H\xc3\xa9llo, WORLD!";
    ok(!strcmp(basic(1, -1, 1, s, NULL), "hello|,|world|!"), "lower-cased, accents stripped");
    ok(!strcmp(basic(0, -1, 1, s, NULL), "H\xc3\xa9llo|,|WORLD|!"), "cased: as written");
    ok(!strcmp(basic(0, 1, 1, s, NULL), "Hello|,|WORLD|!"), "cased, accents stripped");
    ok(!strcmp(basic(1, 0, 1, s, NULL), "h\xc3\xa9llo|,|world|!"), "lower-cased, accents kept");
    int n;
    ok(!strcmp(basic(1, 0, 1, "\xc4\xb0x", &n), "i\xcc\x87x") && n == 3,
       "U+0130 lower-cases to two characters, as Python's str.lower()");
    ok(!strcmp(basic(1, 1, 1, "\xc4\xb0x", NULL), "ix"), "...and loses the dot when stripped");
    ok(!strcmp(basic(1, 1, 1, "\xce\x9f\xce\xa3", NULL), "\xce\xbf\xcf\x83"),
       "a final capital sigma becomes σ, not ς (HF lower-cases one character at a time)");
    ok(!strcmp(basic(1, 1, 1,
                     "a\xe4\xb8\xad\xe6\x96\x87"
                     "b",
                     NULL),
               "a|\xe4\xb8\xad|\xe6\x96\x87|b"),
       "CJK ideographs are words of their own");
    ok(!strcmp(basic(1, 1, 0,
                     "a\xe4\xb8\xad"
                     "b",
                     NULL),
               "a\xe4\xb8\xad"
               "b"),
       "...unless tokenize_chinese_chars is off");
    ok(!strcmp(basic(1, 1, 1, "\xed\x95\x9c", NULL), "\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab"),
       "Hangul decomposes to jamo under NFD");
    ok(!strcmp(basic(1, 1, 1,
                     "a\xe2\x80\xa8"
                     "b\xe2\x80\xa9"
                     "c\xc2\xa0"
                     "d\xe3\x80\x80"
                     "e",
                     NULL),
               "a|b|c|d|e"),
       "U+2028, U+2029 (str.split) and Zs separate words");
    ok(!strcmp(basic(1, 1, 1,
                     "a\x01"
                     "b\x7f"
                     "c\xe2\x80\x8b"
                     "d\xef\xbf\xbd"
                     "e\xc2\xad"
                     "f",
                     NULL),
               "abcdef"),
       "controls, ZWSP (Cf), U+FFFD, soft hyphen are dropped");
    ok(!strcmp(basic(1, 1, 1,
                     "a\xee\x80\x80"
                     "b\xf3\xa0\x80\x81"
                     "c\xcd\xb8",
                     NULL),
               "abc"),
       "private use, tags and unassigned code points are dropped (category C)");
    ok(!strcmp(basic(0, -1, 1,
                     "x\xe1\xbf\xaf"
                     "y",
                     NULL),
               "x|`|y"),
       "U+1FEF (Sk) is '`' once normalized (NFC singleton): punctuation, even cased");
    int m;
    ok(!strcmp(basic(0, -1, 1, "e\xcc\x81 \xe2\x84\xab", &m), "\xc3\xa9|\xc3\x85") && m == 2,
       "cased: NFC composes e + U+0301 and maps U+212B to U+00C5 (current HF)");
    ok(!strcmp(basic(0, -1, 1, "\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab", NULL), "\xed\x95\x9c"),
       "cased: NFC composes Hangul jamo");
    ok(!strcmp(basic(0, -1, 1, "\xe0\xa5\x98", &m), "\xe0\xa4\x95\xe0\xa4\xbc") && m == 2,
       "cased: U+0958 is excluded from composition: NFC leaves it decomposed");
    ok(!strcmp(basic(1, 1, 1,
                     "\xc2\xbfQu\xc3\xa9?\xe2\x80\x94\xc2\xab"
                     "a\xc2\xbb",
                     NULL),
               "\xc2\xbf|que|?|\xe2\x80\x94|\xc2\xab|a|\xc2\xbb"),
       "Unicode punctuation (P*) splits");
    ok(!strcmp(basic(1, 1, 1, "a$b^c`d~e", NULL), "a|$|b|^|c|`|d|~|e"),
       "ASCII symbols split though not P* in Unicode");
    ok(!strcmp(basic(1, 1, 1,
                     "a\xe2\x82\xac"
                     "b",
                     NULL),
               "a\xe2\x82\xac"
               "b"),
       "non-ASCII symbols (Sc) do not split");
    /* U+1D16D (ccc 226) before U+1D165 (ccc 216): NFD puts 216 first; both Mc, both kept */
    ok(!strcmp(basic(1, 1, 1, "x\xf0\x9d\x85\xad\xf0\x9d\x85\xa5", NULL),
               "x\xf0\x9d\x85\xa5\xf0\x9d\x85\xad"),
       "canonical ordering of combining marks that stay");
    ok(!strcmp(basic(1, 1, 1, "\xcc\x81 a", NULL), "a"), "a word of marks only disappears");
    ok(!strcmp(basic(1, 1, 1, "\xef\xac\x81", NULL), "\xef\xac\x81"),
       "NFD, not NFKD: the ligature stays");
}

/* HF truncate_sequences as it was first written: one token at a time. */
static void truncate_loop(int *na, int *nb, int max) {
    while (*na + (*nb > 0 ? *nb : 0) > max) {
        if (*nb < 0 || *na > *nb)
            (*na)--;
        else
            (*nb)--;
    }
}

static void test_truncate(void) {
    int bad = 0, cases = 0;
    for (int a = 0; a <= 14; a++)
        for (int b = -1; b <= 14; b++)
            for (int m = 0; m <= 30; m++) {
                int x = a, y = b, u = a, v = b;
                tok_truncate(&x, &y, m);
                truncate_loop(&u, &v, m);
                cases++;
                if (x != u || y != v) {
                    if (!bad) diag("a=%d b=%d max=%d: %d,%d vs %d,%d", a, b, m, x, y, u, v);
                    bad++;
                }
            }
    ok(!bad, "closed-form truncation equals the loop in %d cases", cases);
    int a = 5, b = 5;
    tok_truncate(&a, &b, 9);
    ok(a == 5 && b == 4, "a tie: the second text loses the token");
}

static void test_assemble(void) {
    tok_tokenizer *t = open_vocab(SPECIALS "a\nb\n", 1, -1);
    if (!t) return;
    int av[] = {5, 5, 5, 5}, bv[] = {6, 6};
    tok_ids a = {av, 4, 4}, b = {bv, 2, 2};
    tok_input in = {0};
    af_err e;
    ok(tok_assemble(t, &a, &b, 0, 0, &in, &e) == 0 && in.ids.n == 9 && in.ids.v[0] == 2 &&
           in.ids.v[5] == 3 && in.ids.v[8] == 3 && in.types.v[5] == 0 && in.types.v[6] == 1 &&
           in.types.v[8] == 1 && in.mask.v[8] == 1,
       "[CLS] A [SEP] B [SEP] with token types 0 then 1");
    ok(tok_assemble(t, &a, &b, 6, 0, &in, &e) == 0 && in.ids.n == 6 && in.ids.v[1] == 5 &&
           in.ids.v[2] == 5 && in.ids.v[3] == 3 && in.ids.v[4] == 6,
       "truncated to 6: 2 + 1 left");
    ok(tok_assemble(t, &a, NULL, 8, 1, &in, &e) == 0 && in.ids.n == 8 && in.ids.v[5] == 3 &&
           in.ids.v[6] == 0 && in.mask.v[6] == 0 && in.types.v[7] == 0,
       "padded with [PAD], attention 0");
    ok(tok_assemble(t, &a, &b, 2, 0, &in, &e) < 0 && strstr(e.msg, "3 special tokens"),
       "a pair needs room for 3 special tokens: %s", e.msg);
    ok(tok_assemble(t, &a, NULL, 0, 1, &in, &e) < 0, "padding needs a length");
    tok_input_free(&in);
    tok_close(t);
}

int main(void) {
    test_vocab_file();
    test_wordpiece();
    test_basic();
    test_truncate();
    test_assemble();
    ok(strlen(tok_unicode_version()) >= 5, "Unicode version %s", tok_unicode_version());
    return done_testing();
}
