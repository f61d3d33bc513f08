/* tokenizer_train.c: a WordPiece vocabulary by BPE merges; see tokenizer_train.h.
 *
 * The classic incremental BPE: pair counts are kept up to date as words are rewritten, each pair
 * remembers the words it occurs in, and a max-heap with lazy deletion finds the next pair (an
 * entry whose count is no longer the pair's count is skipped when it comes up). */
#include "tokenizer_train.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- maps ----------------------------------------------------------------------------------- */

static uint32_t fnv(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Strings to dense indices, in order of first insertion. */
typedef struct {
    int *slot; /* index into the arrays below, -1 when empty */
    uint32_t mask;
    char **s;
    size_t *len;
    uint32_t *hash;
    int n, cap;
} strmap;

static void sm_init(strmap *m) {
    memset(m, 0, sizeof *m);
    m->mask = 1023;
    m->slot = af_malloc((m->mask + 1) * sizeof *m->slot);
    memset(m->slot, 0xff, (m->mask + 1) * sizeof *m->slot);
}

static void sm_free(strmap *m) {
    for (int i = 0; i < m->n; i++) free(m->s[i]);
    free(m->s);
    free(m->len);
    free(m->hash);
    free(m->slot);
}

static int sm_find(const strmap *m, const char *s, size_t n) {
    uint32_t h = fnv(s, n);
    for (uint32_t i = h & m->mask;; i = (i + 1) & m->mask) {
        int k = m->slot[i];
        if (k < 0) return -1;
        if (m->hash[k] == h && m->len[k] == n && memcmp(m->s[k], s, n) == 0) return k;
    }
}

static void sm_place(strmap *m, int k) {
    uint32_t i = m->hash[k] & m->mask;
    while (m->slot[i] >= 0) i = (i + 1) & m->mask;
    m->slot[i] = k;
}

/* Returns the index of s, adding it when new (*added says which). */
static int sm_add(strmap *m, const char *s, size_t n, int *added) {
    int k = sm_find(m, s, n);
    if (added) *added = k < 0;
    if (k >= 0) return k;
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 1024;
        m->s = af_realloc(m->s, (size_t)m->cap * sizeof *m->s);
        m->len = af_realloc(m->len, (size_t)m->cap * sizeof *m->len);
        m->hash = af_realloc(m->hash, (size_t)m->cap * sizeof *m->hash);
    }
    k = m->n++;
    m->s[k] = af_malloc(n + 1);
    memcpy(m->s[k], s, n);
    m->s[k][n] = 0;
    m->len[k] = n;
    m->hash[k] = fnv(s, n);
    if (2 * (uint32_t)m->n > m->mask) {
        m->mask = 2 * m->mask + 1;
        m->slot = af_realloc(m->slot, (m->mask + 1) * sizeof *m->slot);
        memset(m->slot, 0xff, (m->mask + 1) * sizeof *m->slot);
        for (int j = 0; j < m->n; j++) sm_place(m, j);
    } else {
        sm_place(m, k);
    }
    return k;
}

/* 64-bit keys to dense indices. */
typedef struct {
    int *slot;
    uint32_t mask;
    uint64_t *key;
    int n, cap;
} keymap;

static uint32_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

static void km_init(keymap *m) {
    memset(m, 0, sizeof *m);
    m->mask = 1023;
    m->slot = af_malloc((m->mask + 1) * sizeof *m->slot);
    memset(m->slot, 0xff, (m->mask + 1) * sizeof *m->slot);
}

static void km_free(keymap *m) {
    free(m->slot);
    free(m->key);
}

static int km_find(const keymap *m, uint64_t key) {
    for (uint32_t i = mix(key) & m->mask;; i = (i + 1) & m->mask) {
        int k = m->slot[i];
        if (k < 0 || m->key[k] == key) return k;
    }
}

static int km_add(keymap *m, uint64_t key, int *added) {
    int k = km_find(m, key);
    *added = k < 0;
    if (k >= 0) return k;
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 1024;
        m->key = af_realloc(m->key, (size_t)m->cap * sizeof *m->key);
    }
    k = m->n++;
    m->key[k] = key;
    if (2 * (uint32_t)m->n > m->mask) {
        m->mask = 2 * m->mask + 1;
        m->slot = af_realloc(m->slot, (m->mask + 1) * sizeof *m->slot);
        memset(m->slot, 0xff, (m->mask + 1) * sizeof *m->slot);
        for (int j = 0; j < m->n; j++) {
            uint32_t i = mix(m->key[j]) & m->mask;
            while (m->slot[i] >= 0) i = (i + 1) & m->mask;
            m->slot[i] = j;
        }
    } else {
        uint32_t i = mix(key) & m->mask;
        while (m->slot[i] >= 0) i = (i + 1) & m->mask;
        m->slot[i] = k;
    }
    return k;
}

/* ---- the trainer ---------------------------------------------------------------------------- */

typedef struct {
    int *sym; /* the word's pieces */
    int len;
} word;

typedef struct {
    int a, b;
    long count;
    int *words; /* words it occurs (or occurred) in; may repeat */
    int nw, capw;
} pair;

typedef struct {
    long count;
    int a, b;
} heap_entry;

struct tok_trainer {
    tok_basic *basic;
    strmap words; /* distinct words */
    long *wcount;
    int wcap;
    long total;
    /* built by tok_train_build */
    strmap syms; /* pieces: "c", "##c", merges */
    word *w;
    keymap pairkey;
    pair *p;
    int pcap;
    heap_entry *heap;
    size_t nheap, capheap;
    char **vocab;
    int nvocab;
};

tok_trainer *tok_train_new(const tok_options *o) {
    tok_trainer *t = af_calloc(1, sizeof *t);
    t->basic = tok_basic_new(o);
    sm_init(&t->words);
    return t;
}

long tok_train_words(const tok_trainer *t) {
    return t->total;
}

static int count_word(void *ctx, const char *w, size_t n, int nchars) {
    tok_trainer *t = ctx;
    if (nchars > 100) return 0; /* HF makes it [UNK] whatever the vocabulary */
    int k = sm_add(&t->words, w, n, NULL);
    if (k >= t->wcap) {
        int old = t->wcap;
        t->wcap = t->wcap ? 2 * t->wcap : 1024;
        t->wcount = af_realloc(t->wcount, (size_t)t->wcap * sizeof *t->wcount);
        memset(t->wcount + old, 0, (size_t)(t->wcap - old) * sizeof *t->wcount);
    }
    t->wcount[k]++;
    t->total++;
    return 0;
}

int tok_train_add(tok_trainer *t, const char *text, size_t len, af_err *e) {
    return tok_basic_run(t->basic, text, len, count_word, t, e) < 0 ? -1 : 0;
}

/* Heap order: higher count first, then the pair of older pieces. */
static int before(const heap_entry *x, const heap_entry *y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static void heap_push(tok_trainer *t, heap_entry v) {
    if (t->nheap == t->capheap) {
        t->capheap = t->capheap ? 2 * t->capheap : 4096;
        t->heap = af_realloc(t->heap, t->capheap * sizeof *t->heap);
    }
    size_t i = t->nheap++;
    while (i > 0 && before(&v, &t->heap[(i - 1) / 2])) {
        t->heap[i] = t->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    t->heap[i] = v;
}

static heap_entry heap_pop(tok_trainer *t) {
    heap_entry top = t->heap[0], last = t->heap[--t->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= t->nheap) break;
        if (c + 1 < t->nheap && before(&t->heap[c + 1], &t->heap[c])) c++;
        if (!before(&t->heap[c], &last)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (t->nheap) t->heap[i] = last;
    return top;
}

static uint64_t pkey(int a, int b) {
    return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

/* Adds delta to the count of pair (a, b) as seen in word wi, and queues its new count. */
static void pair_add(tok_trainer *t, int a, int b, long delta, int wi) {
    int added;
    int k = km_add(&t->pairkey, pkey(a, b), &added);
    if (k >= t->pcap) {
        t->pcap = t->pcap ? 2 * t->pcap : 4096;
        t->p = af_realloc(t->p, (size_t)t->pcap * sizeof *t->p);
    }
    pair *p = &t->p[k];
    if (added) memset(p, 0, sizeof *p), p->a = a, p->b = b;
    p->count += delta;
    if (delta > 0) {
        if (p->nw == p->capw) {
            p->capw = p->capw ? 2 * p->capw : 4;
            p->words = af_realloc(p->words, (size_t)p->capw * sizeof *p->words);
        }
        if (!p->nw || p->words[p->nw - 1] != wi) p->words[p->nw++] = wi;
    }
    if (p->count > 0) heap_push(t, (heap_entry){p->count, a, b});
}

typedef struct {
    int32_t cp;
    long count;
} char_count;

static int by_count(const void *x, const void *y) {
    const char_count *a = x, *b = y;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return a->cp < b->cp ? -1 : a->cp > b->cp;
}

static void vocab_add(tok_trainer *t, const char *s) {
    t->vocab = af_realloc(t->vocab, (size_t)(t->nvocab + 1) * sizeof *t->vocab);
    t->vocab[t->nvocab++] = af_strdup(s);
}

/* The characters of all words, most frequent first. */
static char_count *alphabet(tok_trainer *t, int *n) {
    keymap idx;
    km_init(&idx);
    char_count *cc = NULL;
    int cap = 0;
    for (int i = 0; i < t->words.n; i++) {
        const char *s = t->words.s[i];
        for (size_t j = 0; j < t->words.len[i];) {
            int32_t c;
            int k = (int)utf8proc_iterate((const uint8_t *)s + j, -1, &c);
            j += (size_t)k;
            int added, x = km_add(&idx, (uint64_t)c, &added);
            if (x >= cap) {
                cap = cap ? 2 * cap : 256;
                cc = af_realloc(cc, (size_t)cap * sizeof *cc);
            }
            if (added) cc[x] = (char_count){c, 0};
            cc[x].count += t->wcount[i];
        }
    }
    *n = idx.n;
    km_free(&idx);
    if (*n) qsort(cc, (size_t)*n, sizeof *cc, by_count);
    return cc;
}

/* Merges every (a, b) in word wi into m, keeping the neighbours' pair counts right. */
static void merge_word(tok_trainer *t, int wi, int a, int b, int m) {
    word *w = &t->w[wi];
    long f = t->wcount[wi];
    int j = 0;
    for (int i = 0; i < w->len; i++) {
        if (i + 1 < w->len && w->sym[i] == a && w->sym[i + 1] == b) {
            if (j > 0) {
                pair_add(t, w->sym[j - 1], a, -f, wi);
                pair_add(t, w->sym[j - 1], m, f, wi);
            }
            if (i + 2 < w->len) {
                pair_add(t, b, w->sym[i + 2], -f, wi);
                pair_add(t, m, w->sym[i + 2], f, wi);
            }
            w->sym[j++] = m;
            i++;
        } else {
            w->sym[j++] = w->sym[i];
        }
    }
    w->len = j;
}

int tok_train_build(tok_trainer *t, int size, long min_count, char ***tokens, int *n, af_err *e) {
    static const char *const special[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    if (size < 5) return af_errf(e, "a vocabulary needs at least 5 entries, %d asked", size);
    if (t->vocab) return af_errf(e, "tok_train_build runs once");
    for (int i = 0; i < 5; i++) vocab_add(t, special[i]);
    int nchars;
    char_count *cc = alphabet(t, &nchars);
    int k = nchars < (size - 5) / 2 ? nchars : (size - 5) / 2;
    sm_init(&t->syms);
    char buf[8] = "##";
    for (int cont = 0; cont < 2; cont++) {
        for (int i = 0; i < k; i++) {
            int len = (int)utf8proc_encode_char(cc[i].cp, (uint8_t *)buf + 2);
            buf[2 + len] = 0;
            sm_add(&t->syms, cont ? buf : buf + 2, (size_t)len + (cont ? 2 : 0), NULL);
            vocab_add(t, cont ? buf : buf + 2);
        }
    }
    free(cc);
    /* words as pieces; a word with a character left out cannot take part */
    t->w = af_calloc((size_t)t->words.n + 1, sizeof *t->w);
    km_init(&t->pairkey);
    for (int i = 0; i < t->words.n; i++) {
        const char *s = t->words.s[i];
        word *w = &t->w[i];
        w->sym = af_malloc(t->words.len[i] * sizeof *w->sym);
        for (size_t j = 0; j < t->words.len[i];) {
            int32_t c;
            int q = (int)utf8proc_iterate((const uint8_t *)s + j, -1, &c);
            memcpy(buf + 2, s + j, (size_t)q);
            int id = j ? sm_find(&t->syms, buf, (size_t)q + 2) : sm_find(&t->syms, s, (size_t)q);
            j += (size_t)q;
            if (id < 0) {
                w->len = 0;
                break;
            }
            w->sym[w->len++] = id;
        }
        for (int j = 0; j + 1 < w->len; j++) pair_add(t, w->sym[j], w->sym[j + 1], t->wcount[i], i);
    }
    while (t->nvocab < size && t->nheap) {
        heap_entry top = heap_pop(t);
        int pk = km_find(&t->pairkey, pkey(top.a, top.b));
        pair *p = &t->p[pk];
        if (p->count != top.count) continue; /* stale */
        if (p->count < min_count) break;
        /* the merged piece: a's text and b's without its "##" */
        size_t la = t->syms.len[top.a], lb = t->syms.len[top.b] - 2;
        char *s = af_malloc(la + lb + 1);
        memcpy(s, t->syms.s[top.a], la);
        memcpy(s + la, t->syms.s[top.b] + 2, lb);
        s[la + lb] = 0;
        int added, m = sm_add(&t->syms, s, la + lb, &added);
        if (added) vocab_add(t, s);
        free(s);
        /* p may move while words are rewritten (pair_add grows the array): copy the list */
        int nw = p->nw, *ws = p->words;
        p->words = NULL, p->nw = p->capw = 0;
        for (int i = 0; i < nw; i++) merge_word(t, ws[i], top.a, top.b, m);
        free(ws);
        t->p[pk].count = 0;
    }
    *tokens = t->vocab;
    *n = t->nvocab;
    return 0;
}

void tok_train_free(tok_trainer *t) {
    if (!t) return;
    tok_basic_free(t->basic);
    sm_free(&t->words);
    free(t->wcount);
    if (t->w) {
        for (int i = 0; i < t->words.n; i++) free(t->w[i].sym);
        free(t->w);
        sm_free(&t->syms);
        km_free(&t->pairkey);
        for (int i = 0; i < t->pairkey.n; i++) free(t->p[i].words);
    }
    free(t->p);
    free(t->heap);
    for (int i = 0; i < t->nvocab; i++) free(t->vocab[i]);
    free(t->vocab);
    free(t);
}
