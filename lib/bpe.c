/* bpe.c: RoBERTa's byte-level BPE tokenizer (HF RobertaTokenizer, the slow one); see bpe.h. */
#include "bpe.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- a string -> int map (open addressing, keys copied) ----------------------------------------
 */

typedef struct {
    char *key; /* NULL: empty slot */
    size_t len;
    int val;
} slot;

typedef struct {
    slot *s;
    size_t cap, n; /* cap a power of two */
} strmap;

static uint64_t hash(const char *k, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
    return h;
}

static slot *find(const strmap *m, const char *k, size_t n) {
    for (size_t i = hash(k, n) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        slot *s = &m->s[i];
        if (!s->key || (s->len == n && !memcmp(s->key, k, n))) return s;
    }
}

static void map_init(strmap *m, size_t expect) {
    m->cap = 16;
    while (m->cap < 2 * expect + 16) m->cap *= 2;
    m->s = af_calloc(m->cap, sizeof *m->s);
    m->n = 0;
}

/* A later put of the same key overrides (Python's dict from a list, json.load's objects). */
static void map_put(strmap *m, const char *k, size_t n, int val) {
    slot *s = find(m, k, n);
    if (!s->key) {
        s->key = af_malloc(n + 1);
        memcpy(s->key, k, n);
        s->key[n] = 0;
        s->len = n;
        m->n++;
    }
    s->val = val;
    if (2 * m->n > m->cap) { /* grow */
        strmap g;
        map_init(&g, m->cap);
        for (size_t i = 0; i < m->cap; i++)
            if (m->s[i].key) *find(&g, m->s[i].key, m->s[i].len) = m->s[i], g.n++;
        free(m->s);
        *m = g;
    }
}

static int map_get(const strmap *m, const char *k, size_t n) {
    const slot *s = find(m, k, n);
    return s->key ? s->val : -1;
}

static void map_free(strmap *m) {
    for (size_t i = 0; i < m->cap; i++) free(m->s[i].key);
    free(m->s);
}

/* ---- the tokenizer ------------------------------------------------------------------------ */

/* the roles of bpe.h, by shorter names */
enum {
    SP_BOS = BPE_BOS,
    SP_EOS = BPE_EOS,
    SP_UNK = BPE_UNK,
    SP_SEP = BPE_SEP,
    SP_PAD = BPE_PAD,
    SP_CLS = BPE_CLS,
    SP_MASK = BPE_MASK,
    SP_N = BPE_NSPECIAL
};

struct bpe_tokenizer {
    strmap vocab;           /* vocab.json, and the added special tokens */
    strmap ranks;           /* "first second" -> merge rank */
    char byte_char[256][3]; /* bytes_to_unicode, UTF-8 */
    const char **names;     /* id -> token (pointing into the map's keys) */
    int nids;
    char *special[SP_N];  /* names */
    int special_id[SP_N]; /* -1: none */
    int lstrip[SP_N], rstrip[SP_N];
    int add_prefix_space;
    /* work space */
    char *buf;
    size_t bufcap;
    int *sym; /* symbol boundaries (byte offsets into buf) */
    size_t symcap;
};

void bpe_options_default(bpe_options *o) {
    memset(o, 0, sizeof *o);
    o->mask_lstrip = 1;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes for
 * U+0100 upwards in byte order, so that no byte becomes whitespace or a control character. */
static void byte_table(char out[256][3]) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        int cp = printable ? b : 256 + n++;
        utf8proc_uint8_t u[4];
        utf8proc_ssize_t k = utf8proc_encode_char(cp, u);
        memcpy(out[b], u, (size_t)k);
        out[b][k] = 0;
    }
}

/* Python's str.isspace (rstrip, split, the prefix-space test). */
static int py_space(int32_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* \s of the regex module: the White_Space property (no U+001C..U+001F, unlike isspace). */
static int re_space(int32_t c) {
    return py_space(c) && !(c >= 0x1c && c <= 0x1f);
}

static int is_letter(int32_t c) {
    int k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

static int is_number(int32_t c) {
    int k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

/* Decodes one code point at s (n bytes left); its length, or -1. */
static int next_cp(const char *s, size_t n, int32_t *cp) {
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, cp);
    return k > 0 ? (int)k : -1;
}

static int load_vocab(bpe_tokenizer *t, const char *path, af_err *e) {
    char *data;
    size_t len;
    if (af_read_file(path, &data, &len, e) < 0) return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    int rc = 0, maxid = -1;
    if (!cJSON_IsObject(root)) {
        rc = af_errf(e, "%s: a JSON object of token -> id expected (invalid JSON at byte %zu)",
                     path, end && end >= data ? (size_t)(end - data) : 0);
        goto out;
    }
    map_init(&t->vocab, (size_t)cJSON_GetArraySize(root));
    for (const cJSON *v = root->child; v; v = v->next) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (1 << 30) ||
            v->valuedouble != (int)v->valuedouble) {
            rc = af_errf(e, "%s: \"%s\": a non-negative integer id expected", path, v->string);
            goto out;
        }
        map_put(&t->vocab, v->string, strlen(v->string), v->valueint);
        if (v->valueint > maxid) maxid = v->valueint;
    }
    t->nids = maxid + 1;
out:
    cJSON_Delete(root);
    free(data);
    return rc;
}

/* merges.txt as RobertaTokenizer reads it: text mode (\r\n and \r are newlines), split on \n,
 * the first line and what follows the last \n dropped, each line split on whitespace; a line of
 * two parts is the merge of that rank (its index among the kept lines). */
static int load_merges(bpe_tokenizer *t, const char *path, af_err *e) {
    char *data;
    size_t len;
    if (af_read_file(path, &data, &len, e) < 0) return -1;
    size_t w = 0;
    for (size_t i = 0; i < len; i++) { /* universal newlines */
        if (data[i] == '\r') {
            data[w++] = '\n';
            if (i + 1 < len && data[i + 1] == '\n') i++;
        } else
            data[w++] = data[i];
    }
    len = w;
    map_init(&t->ranks, len / 8);
    char *key = af_malloc(len + 2);
    int rank = -1, rc = 0;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(data + at, '\n', len - at);
        if (!nl) break; /* the text after the last newline is dropped */
        size_t end = (size_t)(nl - data);
        if (rank >= 0) { /* the first line is the #version header */
            size_t part[4][2], np = 0;
            for (size_t i = at; i < end && np < 3;) {
                int32_t c;
                int k = next_cp(data + i, end - i, &c);
                if (k < 0) {
                    rc = af_errf(e, "%s: line %d: invalid UTF-8", path, rank + 2);
                    goto out;
                }
                if (py_space(c)) {
                    i += k;
                    continue;
                }
                size_t s = i;
                while (i < end && (k = next_cp(data + i, end - i, &c)) > 0 && !py_space(c)) i += k;
                if (k < 0) {
                    rc = af_errf(e, "%s: line %d: invalid UTF-8", path, rank + 2);
                    goto out;
                }
                part[np][0] = s, part[np][1] = i, np++;
            }
            if (np == 2) {
                size_t a = part[0][1] - part[0][0], b = part[1][1] - part[1][0];
                memcpy(key, data + part[0][0], a);
                key[a] = ' ';
                memcpy(key + a + 1, data + part[1][0], b);
                map_put(&t->ranks, key, a + 1 + b, rank);
            }
        }
        rank++;
        at = end + 1;
    }
out:
    free(key);
    free(data);
    return rc;
}

/* HF add_tokens(all_special_tokens): a special token vocab.json lacks gets the next id, in the
 * order bos, eos, sep, pad, cls, mask (first occurrence); <unk> never does. */
static void add_specials(bpe_tokenizer *t) {
    int base = (int)t->vocab.n, k = 0;
    for (int i = 0; i < SP_N; i++) {
        const char *s = t->special[i];
        if (map_get(&t->vocab, s, strlen(s)) >= 0 || !strcmp(s, t->special[SP_UNK])) continue;
        map_put(&t->vocab, s, strlen(s), base + k++);
    }
    if (base + k > t->nids) t->nids = base + k;
    for (int i = 0; i < SP_N; i++)
        t->special_id[i] = map_get(&t->vocab, t->special[i], strlen(t->special[i]));
    t->names = af_calloc((size_t)t->nids, sizeof *t->names);
    for (size_t i = 0; i < t->vocab.cap; i++) {
        const slot *s = &t->vocab.s[i];
        if (s->key && s->val < t->nids && !t->names[s->val]) t->names[s->val] = s->key;
    }
}

int bpe_open(bpe_tokenizer **out, const char *vocab_json, const char *merges_txt,
             const bpe_options *o, af_err *e) {
    bpe_tokenizer *t = af_calloc(1, sizeof *t);
    const char *dflt[SP_N] = {"<s>", "</s>", "<unk>", "</s>", "<pad>", "<s>", "<mask>"};
    const char *given[SP_N] = {o->bos, o->eos, o->unk, o->sep, o->pad, o->cls, o->mask};
    for (int i = 0; i < SP_N; i++) t->special[i] = af_strdup(given[i] ? given[i] : dflt[i]);
    t->lstrip[SP_MASK] = o->mask_lstrip;
    t->add_prefix_space = o->add_prefix_space;
    byte_table(t->byte_char);
    if (load_vocab(t, vocab_json, e) < 0 || load_merges(t, merges_txt, e) < 0) {
        bpe_close(t);
        return -1;
    }
    add_specials(t);
    *out = t;
    return 0;
}

void bpe_close(bpe_tokenizer *t) {
    if (!t) return;
    if (t->vocab.s) map_free(&t->vocab);
    if (t->ranks.s) map_free(&t->ranks);
    for (int i = 0; i < SP_N; i++) free(t->special[i]);
    free(t->names);
    free(t->buf);
    free(t->sym);
    free(t);
}

int bpe_vocab_size(const bpe_tokenizer *t) {
    return t->nids;
}

int bpe_special(const bpe_tokenizer *t, int which) {
    return which >= 0 && which < SP_N ? t->special_id[which] : -1;
}

const char *bpe_token(const bpe_tokenizer *t, int id) {
    return id >= 0 && id < t->nids ? t->names[id] : NULL;
}

/* ---- encoding ------------------------------------------------------------------------------ */

static void reserve(bpe_tokenizer *t, size_t bytes, size_t syms) {
    if (bytes > t->bufcap) t->bufcap = 2 * bytes, t->buf = af_realloc(t->buf, t->bufcap);
    if (syms > t->symcap)
        t->symcap = 2 * syms, t->sym = af_realloc(t->sym, t->symcap * sizeof(int));
}

static int rank_of(bpe_tokenizer *t, char *key, int a0, int a1, int b1) {
    /* key: scratch after the word in buf; "first second" */
    size_t la = (size_t)(a1 - a0), lb = (size_t)(b1 - a1);
    memcpy(key, t->buf + a0, la);
    key[la] = ' ';
    memcpy(key + la + 1, t->buf + a1, lb);
    return map_get(&t->ranks, key, la + 1 + lb);
}

/* One pre-token (UTF-8 bytes): bytes_to_unicode, merges by rank, ids. */
static int bpe_word(bpe_tokenizer *t, const char *s, size_t n, tok_ids *out, af_err *e) {
    reserve(t, 6 * n + 8, n + 1);
    char *w = t->buf;
    int ns = 0;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        const char *c = t->byte_char[(unsigned char)s[i]];
        t->sym[ns++] = (int)len;
        size_t k = strlen(c);
        memcpy(w + len, c, k);
        len += k;
    }
    t->sym[ns] = (int)len; /* symbol j is buf[sym[j], sym[j+1]) */
    char *key = w + len + 1;
    while (ns > 1) {
        int best = -1, at = -1;
        for (int j = 0; j + 1 < ns; j++) {
            int r = rank_of(t, key, t->sym[j], t->sym[j + 1], t->sym[j + 2]);
            if (r >= 0 && (best < 0 || r < best)) best = r, at = j;
        }
        if (best < 0) break;
        /* HF bpe(): every occurrence of the pair (first, second), left to right */
        size_t la = (size_t)(t->sym[at + 1] - t->sym[at]),
               lb = (size_t)(t->sym[at + 2] - t->sym[at + 1]);
        char *first = af_malloc(la + lb + 1);
        memcpy(first, w + t->sym[at], la + lb);
        int k = 0;
        for (int j = 0; j < ns;) {
            int a0 = t->sym[j], a1 = t->sym[j + 1];
            if (j + 1 < ns && (size_t)(a1 - a0) == la && (size_t)(t->sym[j + 2] - a1) == lb &&
                !memcmp(w + a0, first, la) && !memcmp(w + a1, first + la, lb)) {
                t->sym[k++] = a0;
                j += 2;
            } else {
                t->sym[k++] = a0;
                j += 1;
            }
        }
        t->sym[k] = (int)len;
        ns = k;
        free(first);
    }
    for (int j = 0; j < ns; j++) {
        int id = map_get(&t->vocab, w + t->sym[j], (size_t)(t->sym[j + 1] - t->sym[j]));
        if (id < 0) id = t->special_id[SP_UNK];
        if (id < 0)
            return af_errf(e, "token '%.*s' is not in vocab.json, and %s has no id",
                           t->sym[j + 1] - t->sym[j], w + t->sym[j], t->special[SP_UNK]);
        tok_ids_push(out, id);
    }
    return 0;
}

/* GPT-2's pattern over one piece (code points cp[0..n), starting at byte offsets off[0..n]):
 * calls bpe_word on each match. */
static int pretokenize(bpe_tokenizer *t, const char *s, const int32_t *cp, const size_t *off, int n,
                       tok_ids *out, af_err *e) {
    for (int i = 0; i < n;) {
        int j = i;
#define OTHER(c) (!re_space(c) && !is_letter(c) && !is_number(c))
        if (cp[i] == '\'' && i + 1 < n) { /* 's|'t|'re|'ve|'m|'ll|'d */
            int32_t a = cp[i + 1], b = i + 2 < n ? cp[i + 2] : 0;
            if (a == 's' || a == 't' || a == 'm' || a == 'd')
                j = i + 2;
            else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
                j = i + 3;
        }
        int sp = cp[i] == ' ' && i + 1 < n; /* " ?" before a class */
        if (j == i && (is_letter(cp[i]) || (sp && is_letter(cp[i + 1])))) {
            for (j = cp[i] == ' ' ? i + 1 : i; j < n && is_letter(cp[j]); j++) {
            }
        } else if (j == i && (is_number(cp[i]) || (sp && is_number(cp[i + 1])))) {
            for (j = cp[i] == ' ' ? i + 1 : i; j < n && is_number(cp[j]); j++) {
            }
        } else if (j == i && (OTHER(cp[i]) || (sp && OTHER(cp[i + 1])))) {
            for (j = cp[i] == ' ' ? i + 1 : i; j < n && OTHER(cp[j]); j++) {
            }
        } else if (j == i) { /* \s+(?!\S) | \s+ */
            for (j = i; j < n && re_space(cp[j]); j++) {
            }
            if (j < n && j - i >= 2) j--; /* leave the last one to the word after the run */
        }
#undef OTHER
        if (bpe_word(t, s + off[i], off[j] - off[i], out, e) < 0) return -1;
        i = j;
    }
    return 0;
}

/* The longest special token at byte p of s, or -1. */
static int special_at(const bpe_tokenizer *t, const char *s, size_t n, size_t p) {
    int best = -1;
    size_t blen = 0;
    for (int i = 0; i < SP_N; i++) {
        size_t k = strlen(t->special[i]);
        if (k && k <= n - p && k > blen && !memcmp(s + p, t->special[i], k)) best = i, blen = k;
    }
    return best;
}

int bpe_encode(bpe_tokenizer *t, const char *text, size_t len, tok_ids *out, af_err *e) {
    /* code points, with a prefix space when asked and the text does not start with whitespace */
    int32_t *cp = af_malloc((len + 2) * sizeof *cp);
    size_t *off = af_malloc((len + 2) * sizeof *off);
    char *s = af_malloc(len + 2);
    int n = 0, rc = 0;
    size_t slen = 0;
    int32_t c0 = 0;
    if (t->add_prefix_space && len > 0 && next_cp(text, len, &c0) > 0 && !py_space(c0))
        s[slen++] = ' ';
    memcpy(s + slen, text, len);
    slen += len;
    for (size_t i = 0; i < slen;) {
        int k = next_cp(s + i, slen - i, &cp[n]);
        if (k < 0) {
            rc = af_errf(e, "invalid UTF-8 at byte %zu", i - (slen - len));
            goto out;
        }
        off[n++] = i;
        i += (size_t)k;
    }
    off[n] = slen;
    /* pieces between special tokens; an lstrip special takes the whitespace before it, an rstrip
     * one the whitespace after it (HF tokenize's AddedToken handling) */
    int start = 0; /* code point index where the current plain piece begins */
    int skip_ws = 0;
    for (int i = 0; i <= n;) {
        int sp = i < n ? special_at(t, s, slen, off[i]) : -1;
        if (i < n && sp < 0) {
            i++;
            continue;
        }
        int end = i;
        if (skip_ws)
            while (start < end && py_space(cp[start])) start++;
        if (sp >= 0 && t->lstrip[sp])
            while (end > start && py_space(cp[end - 1])) end--;
        if (end > start &&
            pretokenize(t, s + 0, cp + start, off + start, end - start, out, e) < 0) {
            rc = -1;
            goto out;
        }
        if (sp < 0) break;
        if (t->special_id[sp] < 0) { /* only <unk> can be without an id: HF gives None */
            rc = af_errf(e, "%s in the text has no id in vocab.json", t->special[sp]);
            goto out;
        }
        tok_ids_push(out, t->special_id[sp]);
        size_t after = off[i] + strlen(t->special[sp]);
        while (i < n && off[i] < after) i++;
        start = i;
        skip_ws = t->rstrip[sp];
    }
out:
    free(cp);
    free(off);
    free(s);
    return rc;
}

static void push3(tok_input *in, int id, int mask) {
    tok_ids_push(&in->ids, id);
    tok_ids_push(&in->types, 0); /* RoBERTa's token types are all 0 */
    tok_ids_push(&in->mask, mask);
}

int bpe_assemble(const bpe_tokenizer *t, const tok_ids *a, const tok_ids *b, int max_len, int pad,
                 tok_input *out, af_err *e) {
    int extra = b ? 4 : 2;
    if (max_len > 0 && max_len < extra)
        return af_errf(e, "a maximum length of %d cannot hold the %d special tokens", max_len,
                       extra);
    if (pad && max_len <= 0) return af_errf(e, "padding needs a maximum length");
    int cls = t->special_id[SP_CLS], sep = t->special_id[SP_SEP], pid = t->special_id[SP_PAD];
    if (cls < 0 || sep < 0 || (pad && pid < 0))
        return af_errf(e, "%s, %s%s%s need ids", t->special[SP_CLS], t->special[SP_SEP],
                       pad ? " and " : "", pad ? t->special[SP_PAD] : "");
    int na = a->n, nb = b ? b->n : -1;
    if (max_len > 0) tok_truncate(&na, &nb, max_len - extra);
    out->ids.n = out->types.n = out->mask.n = 0;
    push3(out, cls, 1);
    for (int i = 0; i < na; i++) push3(out, a->v[i], 1);
    push3(out, sep, 1);
    if (b) {
        push3(out, sep, 1);
        for (int i = 0; i < nb; i++) push3(out, b->v[i], 1);
        push3(out, sep, 1);
    }
    if (pad)
        while (out->ids.n < max_len) push3(out, pid, 0);
    return 0;
}
