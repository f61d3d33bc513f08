/* pickle.c: a restricted unpickler for torch.save state dicts, and the matching writer; see
 * pickle.h. Opcode semantics: CPython's Lib/pickletools.py (the normative description). */
#include "pickle.h"

#include <stdlib.h>
#include <string.h>

/* Values on the stack. The only callables are the G_* names, REDUCE on them describes. */
enum { V_MARK, V_NONE, V_BOOL, V_INT, V_STR, V_TUPLE, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR };
enum { G_ORDERED_DICT, G_REBUILD_V2, G_FLOAT, G_HALF, G_BF16, G_N };

static const char *const GLOBALS[G_N] = {"collections.OrderedDict",
                                         "torch._utils._rebuild_tensor_v2", "torch.FloatStorage",
                                         "torch.HalfStorage", "torch.BFloat16Storage"};

typedef struct val {
    int kind;
    int64_t i;          /* BOOL, INT; GLOBAL: G_*; STORAGE: numel */
    char *s;            /* STR; STORAGE: key */
    struct val **items; /* TUPLE: n items; DICT: n/2 (key, value) pairs */
    int n, cap;
    int dtype;           /* STORAGE, TENSOR */
    struct val *storage; /* TENSOR */
    int64_t offset;
    int ndim;
    int64_t shape[ST_MAX_DIMS], stride[ST_MAX_DIMS];
} val;

typedef struct {
    const unsigned char *p;
    size_t n, at, op_at;
    const char *what;
    af_err *e;
    val **pool; /* every value made, freed together */
    size_t npool, poolcap;
    val **stack;
    size_t sp, stackcap;
    val **memo;
    size_t nmemo;
} unpickler;

/* Opcode names for messages, from pickletools: a refused opcode is named, not just numbered. */
static const char *op_name(int op) {
    static const struct {
        unsigned char op;
        const char *name;
    } t[] = {
        /* clang-format off */
        {'(', "MARK"}, {'.', "STOP"}, {'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"},
        {'F', "FLOAT"}, {'I', "INT"}, {'J', "BININT"}, {'K', "BININT1"}, {'L', "LONG"},
        {'M', "BININT2"}, {'N', "NONE"}, {'P', "PERSID"}, {'Q', "BINPERSID"}, {'R', "REDUCE"},
        {'S', "STRING"}, {'T', "BINSTRING"}, {'U', "SHORT_BINSTRING"}, {'V', "UNICODE"},
        {'X', "BINUNICODE"}, {'a', "APPEND"}, {'b', "BUILD"}, {'c', "GLOBAL"}, {'d', "DICT"},
        {'}', "EMPTY_DICT"}, {'e', "APPENDS"}, {'g', "GET"}, {'h', "BINGET"}, {'i', "INST"},
        {'j', "LONG_BINGET"}, {'l', "LIST"}, {']', "EMPTY_LIST"}, {'o', "OBJ"}, {'p', "PUT"},
        {'q', "BINPUT"}, {'r', "LONG_BINPUT"}, {'s', "SETITEM"}, {'t', "TUPLE"},
        {')', "EMPTY_TUPLE"}, {'u', "SETITEMS"}, {'G', "BINFLOAT"}, {0x80, "PROTO"},
        {0x81, "NEWOBJ"}, {0x82, "EXT1"}, {0x83, "EXT2"}, {0x84, "EXT4"}, {0x85, "TUPLE1"},
        {0x86, "TUPLE2"}, {0x87, "TUPLE3"}, {0x88, "NEWTRUE"}, {0x89, "NEWFALSE"},
        {0x8a, "LONG1"}, {0x8b, "LONG4"}, {'B', "BINBYTES"}, {'C', "SHORT_BINBYTES"},
        {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"}, {0x8e, "BINBYTES8"},
        {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {0x92, "NEWOBJ_EX"},
        {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"}, {0x95, "FRAME"}, {0x96, "BYTEARRAY8"},
        {0x97, "NEXT_BUFFER"}, {0x98, "READONLY_BUFFER"},
        /* clang-format on */
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (t[i].op == op) return t[i].name;
    return "(not a pickle opcode)";
}

static int fail(unpickler *u, const char *fmt, const char *arg) {
    char msg[1024];
    snprintf(msg, sizeof msg, fmt, arg);
    return af_errf(u->e, "%s: byte %zu: %s", u->what, u->op_at, msg);
}

static val *mk(unpickler *u, int kind) {
    if (u->npool == u->poolcap) {
        u->poolcap = u->poolcap ? 2 * u->poolcap : 256;
        u->pool = af_realloc(u->pool, u->poolcap * sizeof *u->pool);
    }
    val *v = af_calloc(1, sizeof *v);
    v->kind = kind;
    u->pool[u->npool++] = v;
    return v;
}

static void push(unpickler *u, val *v) {
    if (u->sp == u->stackcap) {
        u->stackcap = u->stackcap ? 2 * u->stackcap : 64;
        u->stack = af_realloc(u->stack, u->stackcap * sizeof *u->stack);
    }
    u->stack[u->sp++] = v;
}

static val *pop(unpickler *u) {
    if (!u->sp || u->stack[u->sp - 1]->kind == V_MARK) {
        fail(u, "%s: stack underflow", op_name(u->p[u->op_at]));
        return NULL;
    }
    return u->stack[--u->sp];
}

static void add_item(val *c, val *v) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 4;
        c->items = af_realloc(c->items, c->cap * sizeof *c->items);
    }
    c->items[c->n++] = v;
}

/* Index of the topmost MARK, or -1. */
static long find_mark(const unpickler *u) {
    for (size_t i = u->sp; i-- > 0;)
        if (u->stack[i]->kind == V_MARK) return (long)i;
    return -1;
}

static int need(unpickler *u, size_t k) {
    if (k > u->n - u->at) return fail(u, "%s: truncated argument", op_name(u->p[u->op_at]));
    return 0;
}

static uint64_t le(const unsigned char *p, int k) {
    uint64_t v = 0;
    for (int i = k; i-- > 0;) v = v << 8 | p[i];
    return v;
}

static int memo_put(unpickler *u, uint64_t idx) {
    if (!u->sp) return fail(u, "%s: empty stack", op_name(u->p[u->op_at]));
    if (idx >= PK_MAX_MEMO) return fail(u, "%s: memo index too large", op_name(u->p[u->op_at]));
    if (idx >= u->nmemo) {
        u->memo = af_realloc(u->memo, (idx + 1) * sizeof *u->memo);
        memset(u->memo + u->nmemo, 0, (idx + 1 - u->nmemo) * sizeof *u->memo);
        u->nmemo = idx + 1;
    }
    if (u->stack[u->sp - 1]->kind == V_MARK)
        return fail(u, "%s: a MARK memoised", op_name(u->p[u->op_at]));
    u->memo[idx] = u->stack[u->sp - 1];
    return 0;
}

static int memo_get(unpickler *u, uint64_t idx) {
    if (idx >= u->nmemo || !u->memo[idx])
        return fail(u, "%s: memo index never set", op_name(u->p[u->op_at]));
    push(u, u->memo[idx]);
    return 0;
}

static int push_str(unpickler *u, size_t len) {
    if (need(u, len)) return -1;
    val *v = mk(u, V_STR);
    v->s = af_malloc(len + 1);
    memcpy(v->s, u->p + u->at, len);
    v->s[len] = 0;
    if (memchr(v->s, 0, len)) return fail(u, "%s: NUL in a string", op_name(u->p[u->op_at]));
    u->at += len;
    push(u, v);
    return 0;
}

static int push_global(unpickler *u, const char *module, const char *name) {
    char full[600];
    snprintf(full, sizeof full, "%s.%s", module, name);
    for (int g = 0; g < G_N; g++)
        if (!strcmp(full, GLOBALS[g])) {
            val *v = mk(u, V_GLOBAL);
            v->i = g;
            push(u, v);
            return 0;
        }
    return fail(u,
                "global '%s' refused: a state dict of float tensors names only "
                "collections.OrderedDict, torch._utils._rebuild_tensor_v2 and "
                "torch.{Float,Half,BFloat16}Storage",
                full);
}

/* GLOBAL's argument: "module\nname\n". */
static int op_global(unpickler *u) {
    char part[2][256];
    for (int k = 0; k < 2; k++) {
        const unsigned char *nl = memchr(u->p + u->at, '\n', u->n - u->at);
        size_t len = nl ? (size_t)(nl - (u->p + u->at)) : 0;
        if (!nl || len >= sizeof part[k]) return fail(u, "%s: bad argument", "GLOBAL");
        memcpy(part[k], u->p + u->at, len);
        part[k][len] = 0;
        for (size_t i = 0; i < len; i++)
            if (part[k][i] < 0x20 || part[k][i] > 0x7e) part[k][i] = '?';
        u->at += len + 1;
    }
    return push_global(u, part[0], part[1]);
}

static int is_int_tuple(const val *v, int max) {
    if (v->kind != V_TUPLE || v->n > max) return 0;
    for (int i = 0; i < v->n; i++)
        if (v->items[i]->kind != V_INT) return 0;
    return 1;
}

/* REDUCE: OrderedDict() makes a dict; _rebuild_tensor_v2(storage, offset, size, stride,
 * requires_grad, backward_hooks[, metadata]) makes a tensor view. */
static int op_reduce(unpickler *u) {
    val *args = pop(u), *fn = args ? pop(u) : NULL;
    if (!fn) return -1;
    if (fn->kind != V_GLOBAL) return fail(u, "REDUCE on a %s, not a known global", "value");
    if (args->kind != V_TUPLE)
        return fail(u, "REDUCE of %s with arguments that are not a tuple", GLOBALS[fn->i]);
    if (fn->i == G_ORDERED_DICT) {
        if (args->n) return fail(u, "%s called with arguments", GLOBALS[fn->i]);
        push(u, mk(u, V_DICT));
        return 0;
    }
    if (fn->i != G_REBUILD_V2) return fail(u, "calling %s is refused", GLOBALS[fn->i]);
    val **a = args->items;
    if (args->n < 6 || args->n > 7 || a[0]->kind != V_STORAGE || a[1]->kind != V_INT ||
        !is_int_tuple(a[2], ST_MAX_DIMS) || !is_int_tuple(a[3], ST_MAX_DIMS) ||
        a[2]->n != a[3]->n || a[4]->kind != V_BOOL || a[5]->kind != V_DICT || a[5]->n ||
        (args->n == 7 && a[6]->kind != V_NONE && !(a[6]->kind == V_DICT && !a[6]->n)))
        return fail(u,
                    "%s: arguments are not (storage, offset, size, stride, requires_grad, "
                    "hooks) of a plain tensor",
                    GLOBALS[fn->i]);
    val *t = mk(u, V_TENSOR);
    t->storage = a[0];
    t->dtype = a[0]->dtype;
    t->offset = a[1]->i;
    t->ndim = a[2]->n;
    for (int d = 0; d < t->ndim; d++)
        t->shape[d] = a[2]->items[d]->i, t->stride[d] = a[3]->items[d]->i;
    push(u, t);
    return 0;
}

/* BINPERSID: ('storage', torch.XStorage, key, location, numel) names a storage. */
static int op_persid(unpickler *u) {
    val *pid = pop(u);
    if (!pid) return -1;
    val **a = pid->items;
    if (pid->kind != V_TUPLE || pid->n != 5 || a[0]->kind != V_STR || strcmp(a[0]->s, "storage") ||
        a[1]->kind != V_GLOBAL || a[1]->i < G_FLOAT || a[2]->kind != V_STR || a[3]->kind != V_STR ||
        a[4]->kind != V_INT)
        return fail(u, "%s: not a storage reference ('storage', type, key, location, size)",
                    "BINPERSID");
    val *s = mk(u, V_STORAGE);
    s->dtype = a[1]->i == G_FLOAT ? ST_F32 : a[1]->i == G_HALF ? ST_F16 : ST_BF16;
    s->s = af_strdup(a[2]->s);
    s->i = a[4]->i;
    push(u, s);
    return 0;
}

static int op_tuple(unpickler *u, int k) {
    long m = -1;
    if (k < 0) {
        m = find_mark(u);
        if (m < 0) return fail(u, "%s without MARK", "TUPLE");
        k = (int)(u->sp - m - 1);
    } else if (u->sp < (size_t)k) {
        return fail(u, "%s: stack underflow", op_name(u->p[u->op_at]));
    }
    val *t = mk(u, V_TUPLE);
    for (size_t i = u->sp - k; i < u->sp; i++) {
        if (u->stack[i]->kind == V_MARK)
            return fail(u, "%s: a MARK inside", op_name(u->p[u->op_at]));
        add_item(t, u->stack[i]);
    }
    u->sp -= k;
    if (m >= 0) u->sp--; /* the MARK */
    push(u, t);
    return 0;
}

static int op_setitems(unpickler *u, int many) {
    size_t from;
    if (many) {
        long m = find_mark(u);
        if (m < 0) return fail(u, "%s without MARK", "SETITEMS");
        from = (size_t)m + 1;
    } else {
        if (u->sp < 3) return fail(u, "%s: stack underflow", "SETITEM");
        from = u->sp - 2;
    }
    if ((u->sp - from) % 2) return fail(u, "%s: a key without a value", op_name(u->p[u->op_at]));
    size_t dict_at = many ? from - 2 : from - 1;
    if (from < (many ? 2u : 1u) || u->stack[dict_at]->kind != V_DICT)
        return fail(u, "%s: not setting items of a dict", op_name(u->p[u->op_at]));
    val *d = u->stack[dict_at];
    for (size_t i = from; i < u->sp; i++) {
        if (u->stack[i]->kind == V_MARK)
            return fail(u, "%s: a MARK inside", op_name(u->p[u->op_at]));
        add_item(d, u->stack[i]);
    }
    u->sp = dict_at + 1;
    return 0;
}

static int step(unpickler *u, int *stop) {
    u->op_at = u->at;
    int op = u->p[u->at++];
    uint64_t x;
    switch (op) {
    case 0x80: /* PROTO */
        if (need(u, 1)) return -1;
        if (u->p[u->at] < 2 || u->p[u->at] > 5) return fail(u, "%s: protocol not 2 to 5", "PROTO");
        u->at++;
        return 0;
    case 0x95: /* FRAME: a length hint only */
        if (need(u, 8)) return -1;
        u->at += 8;
        return 0;
    case '(':
        push(u, mk(u, V_MARK));
        return 0;
    case '}':
        push(u, mk(u, V_DICT));
        return 0;
    case ')':
        push(u, mk(u, V_TUPLE));
        return 0;
    case 'N':
        push(u, mk(u, V_NONE));
        return 0;
    case 0x88:
    case 0x89: {
        val *v = mk(u, V_BOOL);
        v->i = op == 0x88;
        push(u, v);
        return 0;
    }
    case 'K':
    case 'M':
    case 'J': {
        int k = op == 'K' ? 1 : op == 'M' ? 2 : 4;
        if (need(u, k)) return -1;
        val *v = mk(u, V_INT);
        x = le(u->p + u->at, k);
        v->i = op == 'J' ? (int64_t)(int32_t)(uint32_t)x : (int64_t)x;
        u->at += k;
        push(u, v);
        return 0;
    }
    case 0x8a: { /* LONG1: little-endian two's complement of n <= 8 bytes */
        if (need(u, 1)) return -1;
        int k = u->p[u->at++];
        if (k > 8) return fail(u, "%s: integer wider than 64 bits", "LONG1");
        if (need(u, k)) return -1;
        x = le(u->p + u->at, k);
        if (k && k < 8 && (u->p[u->at + k - 1] & 0x80)) x |= ~(uint64_t)0 << (8 * k);
        u->at += k;
        val *v = mk(u, V_INT);
        v->i = (int64_t)x;
        push(u, v);
        return 0;
    }
    case 'X':
        if (need(u, 4)) return -1;
        x = le(u->p + u->at, 4);
        u->at += 4;
        return push_str(u, x);
    case 0x8c:
        if (need(u, 1)) return -1;
        return push_str(u, u->p[u->at++]);
    case 'q':
        if (need(u, 1)) return -1;
        return memo_put(u, u->p[u->at++]);
    case 'r':
        if (need(u, 4)) return -1;
        u->at += 4;
        return memo_put(u, le(u->p + u->at - 4, 4));
    case 0x94:
        return memo_put(u, u->nmemo);
    case 'h':
        if (need(u, 1)) return -1;
        return memo_get(u, u->p[u->at++]);
    case 'j':
        if (need(u, 4)) return -1;
        u->at += 4;
        return memo_get(u, le(u->p + u->at - 4, 4));
    case 'c':
        return op_global(u);
    case 0x93: { /* STACK_GLOBAL */
        val *name = pop(u), *module = name ? pop(u) : NULL;
        if (!module) return -1;
        if (name->kind != V_STR || module->kind != V_STR)
            return fail(u, "%s: module and name are not strings", "STACK_GLOBAL");
        return push_global(u, module->s, name->s);
    }
    case 't':
        return op_tuple(u, -1);
    case 0x85:
        return op_tuple(u, 1);
    case 0x86:
        return op_tuple(u, 2);
    case 0x87:
        return op_tuple(u, 3);
    case 'Q':
        return op_persid(u);
    case 'R':
        return op_reduce(u);
    case 's':
        return op_setitems(u, 0);
    case 'u':
        return op_setitems(u, 1);
    case 'b': { /* BUILD: an OrderedDict's attributes (state_dict()._metadata), not needed */
        val *state = pop(u);
        if (!state) return -1;
        if (!u->sp || u->stack[u->sp - 1]->kind != V_DICT || state->kind != V_DICT)
            return fail(u, "%s: only a dict's attributes may be set", "BUILD");
        return 0;
    }
    case '.':
        *stop = 1;
        return 0;
    default:
        return fail(u, "opcode %s refused: not part of a torch.save state dict", op_name(op));
    }
}

static void unpickler_free(unpickler *u) {
    for (size_t i = 0; i < u->npool; i++) {
        free(u->pool[i]->s);
        free(u->pool[i]->items);
        free(u->pool[i]);
    }
    free(u->pool);
    free(u->stack);
    free(u->memo);
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(**(char *const *const *)a, **(char *const *const *)b);
}

/* Keys must be unique (a dict's are; a hostile SETITEMS can repeat one): sorted, O(n log n). */
static int check_unique(const pk_tensor *t, int n, const char *what, af_err *e) {
    char *const **idx = af_malloc((n ? n : 1) * sizeof *idx);
    for (int i = 0; i < n; i++) idx[i] = &t[i].name;
    qsort(idx, n, sizeof *idx, cmp_name);
    int rc = 0;
    for (int i = 1; i < n && !rc; i++)
        if (!strcmp(*idx[i], *idx[i - 1]))
            rc = af_errf(e, "%s: state dict key '%s' appears twice", what, *idx[i]);
    free(idx);
    return rc;
}

void pk_free(pk_tensor *t, int n) {
    for (int i = 0; i < n; i++) free(t[i].name), free(t[i].storage);
    free(t);
}

int pk_read_state_dict(const unsigned char *p, size_t n, const char *what, pk_tensor **out,
                       int *nout, af_err *e) {
    unpickler u = {.p = p, .n = n, .what = what, .e = e};
    *out = NULL;
    *nout = 0;
    int stop = 0, rc = 0;
    while (!rc && !stop) {
        if (u.at >= n) {
            rc = af_errf(e, "%s: pickle ends without STOP: truncated", what);
            break;
        }
        rc = step(&u, &stop);
    }
    val *d = NULL;
    if (!rc && (u.sp != 1 || (d = u.stack[0])->kind != V_DICT))
        rc = af_errf(e, "%s: the pickle holds %s, not a state dict (a dict of tensors)", what,
                     u.sp != 1 ? "several values" : "another kind of value");
    if (!rc) {
        int k = d->n / 2;
        pk_tensor *t = af_calloc(k ? k : 1, sizeof *t);
        for (int i = 0; i < k && !rc; i++) {
            val *key = d->items[2 * i], *v = d->items[2 * i + 1];
            if (key->kind != V_STR) {
                rc = af_errf(e, "%s: state dict entry %d: the key is not a string", what, i + 1);
            } else if (v->kind != V_TENSOR) {
                rc = af_errf(e, "%s: state dict entry '%s' is not a tensor", what, key->s);
            } else {
                t[i] = (pk_tensor){af_strdup(key->s),
                                   v->dtype,
                                   af_strdup(v->storage->s),
                                   v->storage->i,
                                   v->offset,
                                   v->ndim,
                                   {0},
                                   {0}};
                memcpy(t[i].shape, v->shape, sizeof v->shape);
                memcpy(t[i].stride, v->stride, sizeof v->stride);
                *nout = i + 1;
            }
        }
        *out = t;
        if (!rc) rc = check_unique(t, *nout, what, e);
        if (!rc && u.at != n)
            rc = af_errf(e, "%s: %zu bytes after the pickle's STOP", what, n - u.at);
        if (rc) {
            pk_free(t, *nout);
            *out = NULL;
            *nout = 0;
        }
    }
    unpickler_free(&u);
    return rc;
}

/* ---- writing ------------------------------------------------------------------------------ */

typedef struct {
    unsigned char *b;
    size_t n, cap;
} buf;

static void put(buf *b, const void *p, size_t k) {
    if (b->n + k > b->cap) {
        b->cap = (b->n + k) * 2 + 256;
        b->b = af_realloc(b->b, b->cap);
    }
    memcpy(b->b + b->n, p, k);
    b->n += k;
}

static void put_op(buf *b, int op) {
    unsigned char c = (unsigned char)op;
    put(b, &c, 1);
}

static void put_str(buf *b, const char *s) {
    uint32_t k = (uint32_t)strlen(s);
    unsigned char h[5] = {'X', k & 0xFF, k >> 8 & 0xFF, k >> 16 & 0xFF, k >> 24};
    put(b, h, 5);
    put(b, s, k);
}

static void put_int(buf *b, int64_t v) {
    if (v >= 0 && v < 256) {
        unsigned char h[2] = {'K', (unsigned char)v};
        put(b, h, 2);
    } else if (v >= 0 && v < 65536) {
        unsigned char h[3] = {'M', v & 0xFF, v >> 8 & 0xFF};
        put(b, h, 3);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        uint32_t u = (uint32_t)(int32_t)v;
        unsigned char h[5] = {'J', u & 0xFF, u >> 8 & 0xFF, u >> 16 & 0xFF, u >> 24};
        put(b, h, 5);
    } else {
        unsigned char h[10] = {0x8a, 8};
        for (int i = 0; i < 8; i++) h[2 + i] = (uint64_t)v >> (8 * i) & 0xFF;
        put(b, h, 10);
    }
}

static void put_int_tuple(buf *b, int n, const int64_t *v) {
    put_op(b, '(');
    for (int i = 0; i < n; i++) put_int(b, v[i]);
    put_op(b, 't');
}

unsigned char *pk_write_state_dict(const pk_tensor *t, int n, size_t *len) {
    buf b = {0};
    put(&b, "\x80\x02}", 3);
    for (int i = 0; i < n; i++) {
        /* SETITEMS in batches of 1000, as pickle's own writer */
        if (i % 1000 == 0) put_op(&b, '(');
        const pk_tensor *x = &t[i];
        const char *type = x->dtype == ST_F16    ? "HalfStorage"
                           : x->dtype == ST_BF16 ? "BFloat16Storage"
                                                 : "FloatStorage";
        put_str(&b, x->name);
        put(&b, "ctorch._utils\n_rebuild_tensor_v2\n", 33);
        put(&b, "((", 2);
        put_str(&b, "storage");
        put(&b, "ctorch\n", 7);
        put(&b, type, strlen(type));
        put_op(&b, '\n');
        put_str(&b, x->storage);
        put_str(&b, "cpu");
        put_int(&b, x->storage_numel);
        put(&b, "tQ", 2); /* the persistent id tuple, BINPERSID */
        put_int(&b, x->offset);
        put_int_tuple(&b, x->ndim, x->shape);
        put_int_tuple(&b, x->ndim, x->stride);
        put_op(&b, 0x89); /* requires_grad False */
        put(&b, "ccollections\nOrderedDict\n)R", 27);
        put(&b, "tR", 2);
        if (i % 1000 == 999 || i == n - 1) put_op(&b, 'u');
    }
    put_op(&b, '.');
    *len = b.n;
    return b.b;
}
