/* tokenizer.c: BERT word pieces, as Hugging Face's slow BertTokenizer makes them (see
 * tokenizer.h for the steps).
 *
 * Speed comes from three things: ASCII bytes are classified and lower-cased by a table and never
 * decoded; the vocabulary is an open-addressing hash table with a second table for "##" pieces
 * keyed without the prefix, so no lookup builds a string; and the hash (FNV-1a) runs left to
 * right, so one pass gives the hash of every prefix that the greedy longest-match may try. */
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define MAX_WORD_CHARS 100 /* HF WordpieceTokenizer.max_input_chars_per_word */

/* ---- Unicode ---------------------------------------------------------------------------- */

enum { C_WORD, C_DROP, C_SPACE, C_PUNCT };

/* HF _clean_text drops _is_control (category C*, but \t \n \r), NUL and U+FFFD, and turns
 * _is_whitespace (\t \n \r, Zs) into spaces; whitespace_tokenize's str.split() also splits on
 * Zl and Zp (U+2028, U+2029), which cleaning leaves alone. */
static int class_of(int32_t c) {
    if (c == 0xFFFD) return C_DROP;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
        return C_DROP;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
        return C_SPACE;
    default:
        return C_WORD;
    }
}

/* HF _is_punctuation: the ASCII non-alphanumerics, and every P* category. */
static int is_punct(int32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return 1;
    if (c < 128) return 0;
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

/* HF BasicTokenizer._is_chinese_char. */
static int is_cjk(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Python's str.lower() of one character writes up to 2 code points. utf8proc has only the simple
 * (one-to-one) mapping; of SpecialCasing's unconditional lower-case mappings the only one that
 * differs is U+0130 (scripts/tokenizer_ref.py's check over all code points confirms it). */
static int lower_full(int32_t c, int32_t out[2]) {
    if (c == 0x130) {
        out[0] = 'i';
        out[1] = 0x307;
        return 2;
    }
    out[0] = utf8proc_tolower(c);
    return 1;
}

/* Strict UTF-8 (as Python's decoder): no overlong forms, no surrogates, nothing past U+10FFFF.
 * Returns the sequence length, or 0 if s[0, n) does not start with a valid sequence. */
static int utf8_decode(const unsigned char *s, size_t n, int32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = (int32_t)c;
        return 1;
    }
    int len;
    int32_t v, min;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, v = c & 0x07, min = 0x10000;
    else
        return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

static int utf8_encode(int32_t c, char *out) {
    return (int)utf8proc_encode_char(c, (utf8proc_uint8_t *)out);
}

const char *tok_unicode_version(void) {
    return utf8proc_unicode_version();
}

/* ---- small growing arrays ----------------------------------------------------------------- */

void tok_ids_push(tok_ids *l, int id) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = af_realloc(l->v, (size_t)l->cap * sizeof *l->v);
    }
    l->v[l->n++] = id;
}

void tok_ids_free(tok_ids *l) {
    free(l->v);
    memset(l, 0, sizeof *l);
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    *cap = c;
    return af_realloc(p, c * elem);
}

void tok_options_default(tok_options *o) {
    memset(o, 0, sizeof *o);
    o->lower = 1;
    o->strip_accents = -1;
    o->chinese = 1;
}

/* ---- the basic tokenizer ------------------------------------------------------------------ */

struct tok_basic {
    int lower, strip, chinese;
    unsigned char aclass[128]; /* C_* of each ASCII byte */
    unsigned char alower[128];
    char *word; /* the cleaned word being collected (UTF-8) */
    size_t word_cap;
    int32_t *cp, *cp2; /* its code points, lower-cased, decomposed */
    size_t cp_cap, cp2_cap;
    char *piece;
    size_t piece_cap;
    /* words kept whole (HF never_split: the special tokens), as the word compares after
     * lower-casing */
    const char *never[TOK_NSPECIAL];
    size_t never_len[TOK_NSPECIAL];
    int n_never;
};

tok_basic *tok_basic_new(const tok_options *o) {
    tok_basic *b = af_calloc(1, sizeof *b);
    b->lower = o->lower;
    b->strip = o->strip_accents < 0 ? o->lower : o->strip_accents;
    b->chinese = o->chinese;
    for (int c = 0; c < 128; c++) {
        int k = C_WORD;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            k = C_SPACE;
        else if (c < 32 || c == 127)
            k = C_DROP;
        else if (is_punct(c))
            k = C_PUNCT;
        b->aclass[c] = (unsigned char)k;
        b->alower[c] = (unsigned char)(b->lower && c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    return b;
}

void tok_basic_free(tok_basic *b) {
    if (!b) return;
    free(b->word);
    free(b->cp);
    free(b->cp2);
    free(b->piece);
    free(b);
}

/* An all-ASCII word, already lower-cased: split around punctuation. */
static int emit_ascii(tok_basic *b, const char *w, size_t n, tok_word_fn fn, void *ctx) {
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (b->aclass[(unsigned char)w[i]] != C_PUNCT) continue;
        int r;
        if (i > start && (r = fn(ctx, w + start, i - start, (int)(i - start)))) return r;
        if ((r = fn(ctx, w + i, 1, 1))) return r;
        start = i + 1;
    }
    return n > start ? fn(ctx, w + start, n - start, (int)(n - start)) : 0;
}

static int emit_piece(tok_basic *b, const int32_t *c, size_t n, tok_word_fn fn, void *ctx) {
    b->piece = grow(b->piece, &b->piece_cap, 4 * n, 1);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += (size_t)utf8_encode(c[i], b->piece + len);
    return fn(ctx, b->piece, len, (int)n);
}

/* Canonical ordering (the second half of NFD): a stable sort of each run of non-starters by
 * combining class. */
static void canonical_order(int32_t *c, size_t n) {
    for (size_t i = 1; i < n; i++) {
        int cc = utf8proc_get_property(c[i])->combining_class;
        if (!cc) continue;
        size_t j = i;
        int32_t x = c[i];
        while (j > 0 && utf8proc_get_property(c[j - 1])->combining_class > cc) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = x;
    }
}

static int is_never_split(const tok_basic *b, const char *w, size_t n) {
    for (int i = 0; i < b->n_never; i++)
        if (b->never_len[i] == n && memcmp(b->never[i], w, n) == 0) return 1;
    return 0;
}

/* HF checks never_split on the word as split on whitespace (already lower-cased), and again
 * after lower-casing and accent stripping, just before the punctuation split. */
static int never_hit(tok_basic *b, const int32_t *c, size_t m, tok_word_fn fn, void *ctx, int *r) {
    b->piece = grow(b->piece, &b->piece_cap, 4 * m, 1);
    size_t len = 0;
    for (size_t i = 0; i < m; i++) len += (size_t)utf8_encode(c[i], b->piece + len);
    if (!is_never_split(b, b->piece, len)) return 0;
    *r = fn(ctx, b->piece, len, (int)m);
    return 1;
}

/* Canonical decomposition of c[0, m) into b->cp2, in canonical order (NFD). Returns its
 * length. */
static size_t decompose(tok_basic *b, const int32_t *c, size_t m) {
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        for (;;) {
            int bound = 0;
            utf8proc_ssize_t r = utf8proc_decompose_char(c[i], b->cp2 ? b->cp2 + k : NULL,
                                                         (utf8proc_ssize_t)(b->cp2_cap - k),
                                                         UTF8PROC_DECOMPOSE, &bound);
            if (r < 0) { /* cannot happen without UTF8PROC_REJECTNA; keep the character */
                b->cp2 = grow(b->cp2, &b->cp2_cap, k + 1, sizeof *b->cp2);
                b->cp2[k++] = c[i];
                break;
            }
            if ((size_t)r <= b->cp2_cap - k) {
                k += (size_t)r;
                break;
            }
            b->cp2 = grow(b->cp2, &b->cp2_cap, k + (size_t)r, sizeof *b->cp2);
        }
    }
    canonical_order(b->cp2, k);
    return k;
}

/* A cleaned word with non-ASCII characters: lower-case, NFC, then NFD with every Mn dropped
 * (HF _run_strip_accents), then split on punctuation. */
static int emit_unicode(tok_basic *b, const char *w, size_t n, tok_word_fn fn, void *ctx) {
    size_t m = 0;
    int r = 0;
    b->cp = grow(b->cp, &b->cp_cap, 2 * n, sizeof *b->cp);
    for (size_t i = 0; i < n;) {
        int32_t c;
        i += (size_t)utf8_decode((const unsigned char *)w + i, n - i, &c);
        if (b->lower)
            m += (size_t)lower_full(c, b->cp + m);
        else
            b->cp[m++] = c;
    }
    /* Current HF BasicTokenizer normalizes to NFC before splitting on whitespace (older
     * versions did not); the flags are those of utf8proc_NFC. */
    m = decompose(b, b->cp, m);
    m = (size_t)utf8proc_normalize_utf32(b->cp2, (utf8proc_ssize_t)m,
                                         UTF8PROC_COMPOSE | UTF8PROC_STABLE);
    b->cp = grow(b->cp, &b->cp_cap, m, sizeof *b->cp);
    memcpy(b->cp, b->cp2, m * sizeof *b->cp);
    if (b->n_never && never_hit(b, b->cp, m, fn, ctx, &r)) return r;
    int32_t *c = b->cp;
    if (b->strip) {
        size_t k = decompose(b, b->cp, m);
        m = 0;
        for (size_t i = 0; i < k; i++)
            if (utf8proc_category(b->cp2[i]) != UTF8PROC_CATEGORY_MN) b->cp2[m++] = b->cp2[i];
        c = b->cp2;
        if (b->n_never && never_hit(b, c, m, fn, ctx, &r)) return r;
    }
    size_t start = 0;
    for (size_t i = 0; i < m; i++) {
        if (!is_punct(c[i])) continue;
        if (i > start && (r = emit_piece(b, c + start, i - start, fn, ctx))) return r;
        if ((r = emit_piece(b, c + i, 1, fn, ctx))) return r;
        start = i + 1;
    }
    return m > start ? emit_piece(b, c + start, m - start, fn, ctx) : 0;
}

static int emit_word(tok_basic *b, size_t n, int ascii, tok_word_fn fn, void *ctx) {
    if (n == 0) return 0;
    if (!ascii) return emit_unicode(b, b->word, n, fn, ctx);
    if (b->n_never && is_never_split(b, b->word, n)) return fn(ctx, b->word, n, (int)n);
    return emit_ascii(b, b->word, n, fn, ctx);
}

/* base: where text starts in the caller's string, for the error message. */
static int basic_run(tok_basic *b, const char *text, size_t len, size_t base, tok_word_fn fn,
                     void *ctx, af_err *e) {
    const unsigned char *s = (const unsigned char *)text;
    /* A cleaned word is never longer than its source. */
    b->word = grow(b->word, &b->word_cap, len + 1, 1);
    size_t n = 0; /* bytes in b->word */
    int ascii = 1, r;
    for (size_t i = 0; i < len;) {
        unsigned c0 = s[i];
        if (c0 < 128) {
            switch (b->aclass[c0]) {
            case C_SPACE:
                if ((r = emit_word(b, n, ascii, fn, ctx))) return r;
                n = 0, ascii = 1;
                break;
            case C_DROP:
                break;
            default:
                b->word[n++] = (char)b->alower[c0];
            }
            i++;
            continue;
        }
        int32_t c;
        int k = utf8_decode(s + i, len - i, &c);
        if (!k) return af_errf(e, "invalid UTF-8 at byte %zu", base + i + 1);
        if (b->chinese && is_cjk(c)) {
            if ((r = emit_word(b, n, ascii, fn, ctx))) return r;
            memcpy(b->word, s + i, (size_t)k);
            if ((r = emit_word(b, (size_t)k, 0, fn, ctx))) return r;
            n = 0, ascii = 1;
        } else {
            switch (class_of(c)) {
            case C_SPACE:
                if ((r = emit_word(b, n, ascii, fn, ctx))) return r;
                n = 0, ascii = 1;
                break;
            case C_DROP:
                break;
            default:
                memcpy(b->word + n, s + i, (size_t)k), n += (size_t)k, ascii = 0;
            }
        }
        i += (size_t)k;
    }
    return emit_word(b, n, ascii, fn, ctx);
}

int tok_basic_run(tok_basic *b, const char *text, size_t len, tok_word_fn fn, void *ctx,
                  af_err *e) {
    return basic_run(b, text, len, 0, fn, ctx, e);
}

/* ---- the vocabulary ------------------------------------------------------------------------ */

typedef struct {
    uint32_t hash;
    int32_t id; /* -1: empty */
} slot;

/* One table maps whole tokens, the other "##x" tokens by x, so that the greedy match can look a
 * continuation up without writing the prefix. */
typedef struct {
    slot *s;
    uint32_t mask;
    size_t maxlen; /* longest key, in bytes: no longer match can exist */
    int cont;      /* keys skip the token's 2-byte "##" */
} table;

struct tok_tokenizer {
    tok_options opt;
    char *pool;          /* the vocabulary's text, each token NUL-terminated */
    uint32_t *off, *len; /* token i is pool[off[i], off[i] + len[i]) */
    int n;
    table whole, cont;
    int special[TOK_NSPECIAL];
    const char *special_name[TOK_NSPECIAL];
    unsigned char special_first[256]; /* bytes that start a special token in the vocabulary */
    tok_basic *basic;
    uint32_t *hashes; /* prefix hashes of the word being matched */
    size_t hashes_cap;
    tok_ids *out; /* where tok_encode's callback appends */
};

#define FNV_BASIS 2166136261u
#define FNV_PRIME 16777619u

static uint32_t fnv(const char *s, size_t n) {
    uint32_t h = FNV_BASIS;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * FNV_PRIME;
    return h;
}

static const char *key_of(const tok_tokenizer *t, const table *tb, int id, size_t *n) {
    *n = t->len[id] - (tb->cont ? 2 : 0);
    return t->pool + t->off[id] + (tb->cont ? 2 : 0);
}

static int table_find(const tok_tokenizer *t, const table *tb, const char *s, size_t n,
                      uint32_t h) {
    for (uint32_t i = h & tb->mask;; i = (i + 1) & tb->mask) {
        const slot *e = &tb->s[i];
        if (e->id < 0) return -1;
        if (e->hash != h) continue;
        size_t kn;
        const char *k = key_of(t, tb, e->id, &kn);
        if (kn == n && memcmp(k, s, n) == 0) return e->id;
    }
}

static void table_init(table *tb, int n, int cont) {
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)n + 1) cap *= 2;
    tb->s = af_malloc(cap * sizeof *tb->s);
    for (uint32_t i = 0; i < cap; i++) tb->s[i].id = -1;
    tb->mask = cap - 1;
    tb->maxlen = 0;
    tb->cont = cont;
}

/* A later token with the same text takes the slot, as in HF's load_vocab dictionary. */
static void table_put(tok_tokenizer *t, table *tb, int id) {
    size_t n;
    const char *k = key_of(t, tb, id, &n);
    uint32_t h = fnv(k, n);
    uint32_t i = h & tb->mask;
    for (;; i = (i + 1) & tb->mask) {
        slot *e = &tb->s[i];
        if (e->id < 0) break;
        size_t en;
        const char *ek = key_of(t, tb, e->id, &en);
        if (e->hash == h && en == n && memcmp(ek, k, n) == 0) break;
    }
    tb->s[i].hash = h;
    tb->s[i].id = id;
    if (n > tb->maxlen) tb->maxlen = n;
}

int tok_vocab_size(const tok_tokenizer *t) {
    return t->n;
}

int tok_lookup(const tok_tokenizer *t, const char *s, size_t n) {
    return table_find(t, &t->whole, s, n, fnv(s, n));
}

const char *tok_token(const tok_tokenizer *t, int id) {
    return id >= 0 && id < t->n ? t->pool + t->off[id] : NULL;
}

int tok_special(const tok_tokenizer *t, int which) {
    return which >= 0 && which < TOK_NSPECIAL ? t->special[which] : -1;
}

/* Splits the vocabulary into lines the way Python's text mode does (\n, \r\n and \r end a line;
 * text after the last line end is a last line). */
static int parse_vocab(tok_tokenizer *t, const char *data, size_t len, const char *name,
                       af_err *e) {
    t->pool = af_malloc(len + 1);
    size_t cap = 1024;
    t->off = af_malloc(cap * sizeof *t->off);
    t->len = af_malloc(cap * sizeof *t->len);
    size_t w = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && data[j] != '\n' && data[j] != '\r') j++;
        for (size_t k = i; k < j;) {
            int32_t c;
            int q = utf8_decode((const unsigned char *)data + k, j - k, &c);
            if (!q)
                return af_errf(e, "%s:%d: invalid UTF-8 at byte %zu of the line", name, t->n + 1,
                               k - i + 1);
            k += (size_t)q;
        }
        if ((size_t)t->n == cap) {
            cap *= 2;
            t->off = af_realloc(t->off, cap * sizeof *t->off);
            t->len = af_realloc(t->len, cap * sizeof *t->len);
        }
        if (j - i > UINT32_MAX / 2 || t->n == INT32_MAX - 1)
            return af_errf(e, "%s:%d: vocabulary too large", name, t->n + 1);
        memcpy(t->pool + w, data + i, j - i);
        t->off[t->n] = (uint32_t)w;
        t->len[t->n] = (uint32_t)(j - i);
        t->n++;
        w += j - i;
        t->pool[w++] = 0;
        if (j < len && data[j] == '\r' && j + 1 < len && data[j + 1] == '\n') j++;
        i = j + 1;
    }
    if (t->n == 0) return af_errf(e, "%s: empty vocabulary", name);
    return 0;
}

static const char *const default_special[TOK_NSPECIAL] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]",
                                                          "[MASK]"};

int tok_open_mem(tok_tokenizer **tp, const char *data, size_t len, const char *name,
                 const tok_options *o, af_err *e) {
    *tp = NULL;
    tok_tokenizer *t = af_calloc(1, sizeof *t);
    t->opt = *o;
    if (parse_vocab(t, data, len, name, e) < 0) {
        tok_close(t);
        return -1;
    }
    table_init(&t->whole, t->n, 0);
    table_init(&t->cont, t->n, 1);
    for (int i = 0; i < t->n; i++) {
        table_put(t, &t->whole, i);
        if (t->len[i] > 2 && memcmp(t->pool + t->off[i], "##", 2) == 0) table_put(t, &t->cont, i);
    }
    const char *names[TOK_NSPECIAL] = {o->unk, o->sep, o->pad, o->cls, o->mask};
    t->basic = tok_basic_new(o);
    for (int k = 0; k < TOK_NSPECIAL; k++) {
        const char *s = names[k] ? names[k] : default_special[k];
        t->special_name[k] = s;
        t->special[k] = tok_lookup(t, s, strlen(s));
        if (t->special[k] < 0) {
            if (k == TOK_PAD || k == TOK_MASK) continue;
            tok_close(t);
            return af_errf(e, "%s: the vocabulary has no %s token", name, s);
        }
        if (!*s) continue;
        t->special_first[(unsigned char)s[0]] = 1;
        tok_basic *b = t->basic;
        b->never[b->n_never] = s;
        b->never_len[b->n_never++] = strlen(s);
    }
    *tp = t;
    return 0;
}

int tok_open(tok_tokenizer **tp, const char *path, const tok_options *o, af_err *e) {
    char *data;
    size_t len;
    *tp = NULL;
    if (af_read_file(path, &data, &len, e) < 0) return -1;
    int r = tok_open_mem(tp, data, len, path, o, e);
    free(data);
    return r;
}

void tok_close(tok_tokenizer *t) {
    if (!t) return;
    free(t->pool);
    free(t->off);
    free(t->len);
    free(t->whole.s);
    free(t->cont.s);
    free(t->hashes);
    tok_basic_free(t->basic);
    free(t);
}

/* ---- WordPiece ------------------------------------------------------------------------------ */

/* HF WordpieceTokenizer.tokenize for one word: at each position the longest vocabulary entry
 * ("##"-prefixed after the first), else the whole word is [UNK]. */
static int wordpiece(void *ctx, const char *w, size_t n, int nchars) {
    tok_tokenizer *t = ctx;
    tok_ids *out = t->out;
    if (nchars > MAX_WORD_CHARS) {
        tok_ids_push(out, t->special[TOK_UNK]);
        return 0;
    }
    int mark = out->n;
    t->hashes = grow(t->hashes, &t->hashes_cap, n + 1, sizeof *t->hashes);
    for (size_t start = 0; start < n;) {
        const table *tb = start ? &t->cont : &t->whole;
        size_t lim = n - start < tb->maxlen ? n - start : tb->maxlen;
        uint32_t h = FNV_BASIS;
        for (size_t i = 0; i < lim; i++)
            t->hashes[i] = h = (h ^ (unsigned char)w[start + i]) * FNV_PRIME;
        int id = -1;
        size_t end = lim;
        for (; end > 0; end--) {
            /* only whole characters: skip ends inside a UTF-8 sequence */
            if (start + end < n && ((unsigned char)w[start + end] & 0xC0) == 0x80) continue;
            if ((id = table_find(t, tb, w + start, end, t->hashes[end - 1])) >= 0) break;
        }
        if (id < 0) {
            out->n = mark;
            tok_ids_push(out, t->special[TOK_UNK]);
            return 0;
        }
        tok_ids_push(out, id);
        start += end;
    }
    return 0;
}

int tok_encode(tok_tokenizer *t, const char *text, size_t len, tok_ids *out, af_err *e) {
    t->out = out;
    size_t seg = 0;
    for (size_t i = 0; i < len;) {
        int hit = -1;
        size_t hitlen = 0;
        if (t->special_first[(unsigned char)text[i]]) {
            for (int k = 0; k < TOK_NSPECIAL; k++) {
                if (t->special[k] < 0) continue;
                size_t sl = strlen(t->special_name[k]);
                if (sl > hitlen && sl <= len - i && memcmp(text + i, t->special_name[k], sl) == 0)
                    hit = k, hitlen = sl;
            }
        }
        if (hit < 0) {
            i++;
            continue;
        }
        if (basic_run(t->basic, text + seg, i - seg, seg, wordpiece, t, e) < 0) return -1;
        tok_ids_push(out, t->special[hit]);
        i += hitlen;
        seg = i;
    }
    if (basic_run(t->basic, text + seg, len - seg, seg, wordpiece, t, e) < 0) return -1;
    return 0;
}

/* ---- model inputs --------------------------------------------------------------------------- */

/* HF truncate_sequences with 'longest_first': its closed form of "remove one token from the end
 * of the longer sequence, the second one on a tie, until the total fits". */
void tok_truncate(int *na, int *nb, int max_tokens) {
    if (max_tokens < 0) max_tokens = 0;
    if (*nb < 0) {
        if (*na > max_tokens) *na = max_tokens;
        return;
    }
    int remove = *na + *nb - max_tokens;
    if (remove <= 0) return;
    int diff = *na > *nb ? *na - *nb : *nb - *na;
    int first = diff < remove ? diff : remove;
    int second = remove - first;
    if (*na > *nb) {
        *na -= first + second / 2;
        *nb -= second - second / 2;
    } else {
        *na -= second / 2;
        *nb -= first + second - second / 2;
    }
}

static void push3(tok_input *in, int id, int type, int mask) {
    tok_ids_push(&in->ids, id);
    tok_ids_push(&in->types, type);
    tok_ids_push(&in->mask, mask);
}

int tok_assemble(const tok_tokenizer *t, const tok_ids *a, const tok_ids *b, int max_len, int pad,
                 tok_input *out, af_err *e) {
    int extra = b ? 3 : 2;
    if (max_len > 0 && max_len < extra)
        return af_errf(e, "a maximum length of %d cannot hold the %d special tokens", max_len,
                       extra);
    if (pad && max_len <= 0) return af_errf(e, "padding needs a maximum length");
    if (pad && t->special[TOK_PAD] < 0)
        return af_errf(e, "padding needs a %s token, and the vocabulary has none",
                       t->special_name[TOK_PAD]);
    int na = a->n, nb = b ? b->n : -1;
    if (max_len > 0) tok_truncate(&na, &nb, max_len - extra);
    out->ids.n = out->types.n = out->mask.n = 0;
    int cls = t->special[TOK_CLS], sep = t->special[TOK_SEP];
    push3(out, cls, 0, 1);
    for (int i = 0; i < na; i++) push3(out, a->v[i], 0, 1);
    push3(out, sep, 0, 1);
    if (b) {
        for (int i = 0; i < nb; i++) push3(out, b->v[i], 1, 1);
        push3(out, sep, 1, 1);
    }
    if (pad)
        while (out->ids.n < max_len) push3(out, t->special[TOK_PAD], 0, 0);
    return 0;
}

void tok_input_free(tok_input *in) {
    tok_ids_free(&in->ids);
    tok_ids_free(&in->types);
    tok_ids_free(&in->mask);
}
