/* bert.c: the post-LN encoder of BertModel (and of the architectures that share its layer, see
 * arch.h): config, loading, saving, forward and backward with adapter-site hooks. See bert.h for
 * the layer equations. Every name in a file comes from the architecture's table. */
#include "bert.h"
#include "sha256.h"

#include "ops.h"

#include <cjson/cJSON.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- config ------------------------------------------------------------------------------ */

/* The defaults of the architecture's Hugging Face config class. */
/* One layer widened from 16 bits (bert_load_16). */
struct bert_stage {
    float *mem;   /* one layer's weights, float32 */
    bert_layer w; /* carved over mem */
    int layer;    /* the layer mem holds; -1: none */
    int dtype;    /* ST_F16 or ST_BF16 */
    const uint16_t *src;
};

static void config_defaults(bert_config *c, int arch) {
    const arch_defaults *d = &arch_get(arch)->dflt;
    memset(c, 0, sizeof *c);
    c->arch = arch;
    c->vocab_size = d->vocab_size;
    c->hidden = d->hidden;
    c->layers = d->layers;
    c->heads = d->heads;
    c->ffn = d->ffn;
    c->max_pos = d->max_pos;
    c->type_vocab = d->type_vocab;
    c->pad_id = d->pad_id;
    c->act = AF_ACT_GELU;
    c->ln_eps = d->ln_eps;
    c->hidden_dropout = d->hidden_dropout;
    c->attn_dropout = d->attn_dropout;
    c->head_dropout = d->head_dropout;
    c->has_head_dropout = d->head_dropout >= 0;
}

static int get_int(const cJSON *root, const char *key, int *dst, int min, const char *name,
                   af_err *e) {
    if (!key) return 0; /* not in this architecture's config */
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return af_errf(e, "%s: \"%s\": an integer expected", name, key);
    if (v->valuedouble < min || v->valuedouble > INT_MAX)
        return af_errf(e, "%s: \"%s\": %.17g out of range (at least %d expected)", name, key,
                       v->valuedouble, min);
    *dst = (int)v->valuedouble;
    return 0;
}

static int get_prob(const cJSON *root, const char *key, float *dst, const char *name, af_err *e) {
    if (!key) return 0;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 1))
        return af_errf(e, "%s: \"%s\": a probability in [0, 1) expected", name, key);
    *dst = (float)v->valuedouble;
    return 0;
}

static const char *get_str(const cJSON *root, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int bert_config_parse(bert_config *cfg, const char *json, const char *name, af_err *e) {
    bert_config c;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 0);
    if (!root) {
        size_t at = end && end >= json ? (size_t)(end - json) : 0;
        return af_errf(e, "%s: invalid JSON at byte %zu", name, at);
    }
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        af_errf(e, "%s: a JSON object expected", name);
        goto out;
    }
    /* Old BERT checkpoints predate model_type. */
    const char *mt = get_str(root, "model_type");
    int arch = mt ? arch_find(mt) : ARCH_BERT;
    if (arch < 0) {
        af_errf(e, "%s: \"model_type\": one of %s expected, \"%s\" found", name, arch_list(), mt);
        goto out;
    }
    config_defaults(&c, arch);
    const char *const *key = arch_get(arch)->key;
    const char *pt = get_str(root, "position_embedding_type");
    if (pt && strcmp(pt, "absolute")) {
        af_errf(e, "%s: \"position_embedding_type\": \"absolute\" expected, \"%s\" found", name,
                pt);
        goto out;
    }
    if (get_int(root, key[AK_VOCAB], &c.vocab_size, 1, name, e) ||
        get_int(root, key[AK_HIDDEN], &c.hidden, 1, name, e) ||
        get_int(root, key[AK_LAYERS], &c.layers, 1, name, e) ||
        get_int(root, key[AK_HEADS], &c.heads, 1, name, e) ||
        get_int(root, key[AK_FFN], &c.ffn, 1, name, e) ||
        get_int(root, key[AK_MAX_POS], &c.max_pos, 1, name, e) ||
        get_int(root, key[AK_TYPE_VOCAB], &c.type_vocab, 1, name, e) ||
        get_int(root, key[AK_PAD], &c.pad_id, 0, name, e) ||
        get_prob(root, key[AK_DROPOUT], &c.hidden_dropout, name, e) ||
        get_prob(root, key[AK_ATTN_DROPOUT], &c.attn_dropout, name, e) ||
        get_prob(root, key[AK_HEAD_DROPOUT], &c.head_dropout, name, e))
        goto out;
    if (c.head_dropout >= 0) c.has_head_dropout = 1;
    if (key[AK_SINUSOIDAL])
        c.sinusoidal = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, key[AK_SINUSOIDAL]));
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key[AK_ACT]);
    if (v && !cJSON_IsNull(v)) {
        int act = cJSON_IsString(v) ? act_parse(v->valuestring) : -1;
        if (act < 0) {
            af_errf(e,
                    "%s: \"%s\": one of gelu, gelu_new, gelu_pytorch_tanh, relu, silu "
                    "expected, %s found",
                    name, key[AK_ACT], cJSON_IsString(v) ? v->valuestring : "a non-string");
            goto out;
        }
        c.act = act;
    }
    v = key[AK_EPS] ? cJSON_GetObjectItemCaseSensitive(root, key[AK_EPS]) : NULL;
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0 && v->valuedouble < 1)) {
            af_errf(e, "%s: \"layer_norm_eps\": a number in (0, 1) expected", name);
            goto out;
        }
        c.ln_eps = (float)v->valuedouble;
    }
    if (c.hidden % c.heads) {
        af_errf(e, "%s: \"%s\" %d is not a multiple of \"%s\" %d", name, key[AK_HIDDEN], c.hidden,
                key[AK_HEADS], c.heads);
        goto out;
    }
    if (bert_max_len(&c) < 1) {
        af_errf(e, "%s: \"%s\" %d leaves no position after \"pad_token_id\" %d", name,
                key[AK_MAX_POS], c.max_pos, c.pad_id);
        goto out;
    }
    if (c.pad_id >= c.vocab_size) {
        af_errf(e, "%s: \"pad_token_id\" %d out of range [0, %d)", name, c.pad_id, c.vocab_size);
        goto out;
    }
    *cfg = c;
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

/* The shortest decimal that reads back as the same float, so 1e-12f is written "1e-12". */
static double short_float(float f) {
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

static void add_num(cJSON *o, const char *key, double v) {
    if (key && !cJSON_GetObjectItemCaseSensitive(o, key)) cJSON_AddNumberToObject(o, key, v);
}

/* The keys of the architecture's config class (arch.h); a key it lacks is left out. */
static char *config_json(const bert_config *c) {
    const af_arch *a = arch_get(c->arch);
    const char *const *k = a->key;
    cJSON *o = cJSON_CreateObject();
    const char *cls[] = {a->class_name};
    cJSON_AddItemToObject(o, "architectures", cJSON_CreateStringArray(cls, 1));
    cJSON_AddStringToObject(o, "model_type", a->model_type);
    add_num(o, k[AK_VOCAB], c->vocab_size);
    add_num(o, k[AK_HIDDEN], c->hidden);
    add_num(o, k[AK_LAYERS], c->layers);
    add_num(o, k[AK_HEADS], c->heads);
    add_num(o, k[AK_FFN], c->ffn);
    cJSON_AddStringToObject(o, k[AK_ACT], act_name(c->act));
    add_num(o, k[AK_DROPOUT], short_float(c->hidden_dropout));
    add_num(o, k[AK_ATTN_DROPOUT], short_float(c->attn_dropout));
    if (c->has_head_dropout) add_num(o, k[AK_HEAD_DROPOUT], short_float(c->head_dropout));
    add_num(o, k[AK_MAX_POS], c->max_pos);
    add_num(o, k[AK_TYPE_VOCAB], c->type_vocab);
    cJSON_AddNumberToObject(o, "initializer_range", 0.02);
    add_num(o, k[AK_EPS], short_float(c->ln_eps));
    add_num(o, k[AK_PAD], c->pad_id);
    if (k[AK_SINUSOIDAL]) cJSON_AddBoolToObject(o, k[AK_SINUSOIDAL], c->sinusoidal);
    if (k[AK_EPS]) cJSON_AddStringToObject(o, "position_embedding_type", "absolute");
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

/* ---- parameter layout ------------------------------------------------------------------- */

static size_t layer_params(const bert_config *c) {
    size_t H = c->hidden, F = c->ffn;
    return 3 * H * H + 3 * H + H * H + H + 2 * H + F * H + F + H * F + H + 2 * H;
}

/* Floats before the first layer in mem: the embeddings and their LayerNorm. */
static size_t emb_params(const bert_config *c) {
    return ((size_t)c->vocab_size + c->max_pos + c->type_vocab) * c->hidden + 2 * (size_t)c->hidden;
}

static size_t count_params(const bert_config *c) {
    size_t H = c->hidden;
    return ((size_t)c->vocab_size + c->max_pos + c->type_vocab) * H + 2 * H +
           (size_t)c->layers * layer_params(c);
}

/* Points one layer's tensors into p (layer_params floats); returns the end. */
static float *carve_layer(bert_layer *L, float *p, const bert_config *c) {
    size_t H = c->hidden, F = c->ffn;
#define TAKE(n) (p += (n), p - (n))
    L->qkv_w = TAKE(3 * H * H);
    L->qkv_b = TAKE(3 * H);
    L->ao_w = TAKE(H * H);
    L->ao_b = TAKE(H);
    L->ln1_w = TAKE(H);
    L->ln1_b = TAKE(H);
    L->ff1_w = TAKE(F * H);
    L->ff1_b = TAKE(F);
    L->ff2_w = TAKE(H * F);
    L->ff2_b = TAKE(H);
    L->ln2_w = TAKE(H);
    L->ln2_b = TAKE(H);
#undef TAKE
    return p;
}

/* Points w's tensors into mem (count_params floats); allocates the layer array. */
static void carve_weights(bert_weights *w, float *mem, const bert_config *c) {
    size_t H = c->hidden;
    float *p = mem;
#define TAKE(n) (p += (n), p - (n))
    w->word_emb = TAKE((size_t)c->vocab_size * H);
    w->pos_emb = TAKE((size_t)c->max_pos * H);
    w->type_emb = TAKE((size_t)c->type_vocab * H);
    w->emb_ln_w = TAKE(H);
    w->emb_ln_b = TAKE(H);
    w->layer = af_calloc(c->layers, sizeof *w->layer);
    for (int l = 0; l < c->layers; l++) p = carve_layer(&w->layer[l], p, c);
#undef TAKE
}

/* One tensor of the HF layout: its name without the model prefix, where it lives, its shape. */
enum { K_WEIGHT, K_BIAS, K_LN_W, K_LN_B };
typedef struct {
    char name[96];
    float *dst;
    int ndim;
    int64_t shape[2];
    int kind;
} spec;

static int nspecs(const bert_config *c) {
    return AT_FIRST_LAYER + (AT_COUNT - AT_FIRST_LAYER) * c->layers;
}

/* Tensor t of layer l (of the embeddings: l = 0), named by the architecture's table; a tensor the
 * architecture has not (DistilBERT's token types) is no spec. */
static void add_spec(spec *s, int *n, const bert_config *c, int t, int l, int kind, float *dst,
                     int64_t d0, int64_t d1) {
    if (arch_tensor_name(s[*n].name, sizeof s[*n].name, arch_get(c->arch), t, l, 0)) return;
    spec *x = &s[(*n)++];
    x->dst = dst;
    x->kind = kind;
    x->ndim = d1 ? 2 : 1;
    x->shape[0] = d0;
    x->shape[1] = d1;
}

/* The encoder's tensors in state_dict order; q, k, v are slices of the stacked qkv_w. */
static int list_specs(spec *s, const bert_weights *w, const bert_config *c) {
    int64_t H = c->hidden, F = c->ffn;
    int n = 0;
    add_spec(s, &n, c, AT_WORD, 0, K_WEIGHT, w->word_emb, c->vocab_size, H);
    add_spec(s, &n, c, AT_POS, 0, K_WEIGHT, w->pos_emb, c->max_pos, H);
    if (c->type_vocab) add_spec(s, &n, c, AT_TYPE, 0, K_WEIGHT, w->type_emb, c->type_vocab, H);
    add_spec(s, &n, c, AT_EMB_LN_W, 0, K_LN_W, w->emb_ln_w, H, 0);
    add_spec(s, &n, c, AT_EMB_LN_B, 0, K_LN_B, w->emb_ln_b, H, 0);
    for (int l = 0; l < c->layers; l++) {
        const bert_layer *L = &w->layer[l];
        for (int i = 0; i < 3; i++) {
            add_spec(s, &n, c, AT_Q_W + 2 * i, l, K_WEIGHT, L->qkv_w + i * H * H, H, H);
            add_spec(s, &n, c, AT_Q_B + 2 * i, l, K_BIAS, L->qkv_b + i * H, H, 0);
        }
        add_spec(s, &n, c, AT_AO_W, l, K_WEIGHT, L->ao_w, H, H);
        add_spec(s, &n, c, AT_AO_B, l, K_BIAS, L->ao_b, H, 0);
        add_spec(s, &n, c, AT_LN1_W, l, K_LN_W, L->ln1_w, H, 0);
        add_spec(s, &n, c, AT_LN1_B, l, K_LN_B, L->ln1_b, H, 0);
        add_spec(s, &n, c, AT_FF1_W, l, K_WEIGHT, L->ff1_w, F, H);
        add_spec(s, &n, c, AT_FF1_B, l, K_BIAS, L->ff1_b, F, 0);
        add_spec(s, &n, c, AT_FF2_W, l, K_WEIGHT, L->ff2_w, H, F);
        add_spec(s, &n, c, AT_FF2_B, l, K_BIAS, L->ff2_b, H, 0);
        add_spec(s, &n, c, AT_LN2_W, l, K_LN_W, L->ln2_w, H, 0);
        add_spec(s, &n, c, AT_LN2_B, l, K_LN_B, L->ln2_b, H, 0);
    }
    return n;
}

static void alloc_weights(bert *m, const bert_config *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->nparams = count_params(cfg);
    m->mem = af_malloc(m->nparams * sizeof(float));
    carve_weights(&m->w, m->mem, cfg);
}

void bert_free(bert *m) {
    if (!m) return;
    if (m->region) munmap(m->region, m->region_len);
    else free(m->mem);
    free(m->w.layer);
    free(m->dir);
    free(m->w16);
    free(m->we16);
    if (m->we_path) close(m->we_fd);
    free(m->we_path);
    if (m->stage) {
        free(m->stage->mem);
        free(m->stage);
    }
    memset(m, 0, sizeof *m);
}

void bert_init_random(bert *m, const bert_config *cfg, uint64_t seed) {
    alloc_weights(m, cfg);
    af_rng rng;
    af_rng_seed(&rng, seed);
    spec *s = af_malloc(nspecs(cfg) * sizeof *s);
    int n = list_specs(s, &m->w, cfg);
    for (int i = 0; i < n; i++) {
        size_t k = (size_t)s[i].shape[0] * (s[i].ndim == 2 ? (size_t)s[i].shape[1] : 1);
        for (size_t j = 0; j < k; j++)
            s[i].dst[j] = s[i].kind == K_WEIGHT ? 0.02f * af_rng_normal(&rng)
                          : s[i].kind == K_LN_W ? 1.0f
                                                : 0.0f;
    }
    free(s);
    /* HF _init_weights zeroes the padding_idx row of the word embeddings, and RoBERTa's position
     * embeddings have one too (pads sit at position pad_token_id). */
    size_t H = cfg->hidden;
    memset(m->w.word_emb + (size_t)cfg->pad_id * H, 0, H * sizeof(float));
    if (arch_get(cfg->arch)->pos == ARCH_POS_FROM_PAD)
        memset(m->w.pos_emb + (size_t)cfg->pad_id * H, 0, H * sizeof(float));
    /* DistilBERT's create_sinusoidal_embeddings: sin on even columns, cos on odd, of
     * pos / 10000^(2·(j/2)/H) */
    if (cfg->sinusoidal)
        for (int p = 0; p < cfg->max_pos; p++)
            for (size_t j = 0; j < H; j++) {
                double a = p / pow(10000.0, 2.0 * (double)(j / 2) / (double)H);
                m->w.pos_emb[p * H + j] = (float)(j % 2 ? cos(a) : sin(a));
            }
    /* No file backs this model: the fingerprint names its recipe until it is saved and loaded. */
    char *js = config_json(cfg);
    size_t len = strlen(js) + 64;
    char *buf = af_malloc(len);
    snprintf(buf, len, "random:%llu:%s", (unsigned long long)seed, js);
    af_sha256_hex(buf, strlen(buf), m->fingerprint);
    free(buf);
    free(js);
}

/* ---- loading ---------------------------------------------------------------------------- */

static char *path_join(const char *dir, const char *file) {
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = af_malloc(n);
    snprintf(p, n, "%s/%s", dir, file);
    return p;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* LayerNorm parameters were called gamma/beta in the original TF-converted checkpoints. */
static const st_tensor *find_spec(const st_file *f, const spec *s, const af_arch *a) {
    char alt[112], name[112];
    snprintf(alt, sizeof alt, "%s", s->name);
    if (s->kind == K_LN_W || s->kind == K_LN_B) {
        char *dot = strrchr(alt, '.');
        strcpy(dot + 1, s->kind == K_LN_W ? "gamma" : "beta");
    }
    const char *cand[2] = {s->name, alt};
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "%s.%s", a->prefix, cand[i]);
        const st_tensor *t = st_find(f, name);
        if (!t) t = st_find(f, cand[i]);
        if (t) return t;
    }
    return NULL;
}

/* Tensors that belong to the encoder must all be consumed; everything else (pooler, MLM and NSP
 * heads, task heads, the position_ids buffer) is someone else's business. */
static int encoder_tensor(const char *name, const af_arch *a) {
    size_t k = strlen(a->prefix);
    if (!strncmp(name, a->prefix, k) && name[k] == '.') name += k + 1;
    for (int i = 0; i < 2; i++)
        if (a->buffers[i] && !strcmp(name, a->buffers[i])) return 0;
    for (int i = 0; i < 2; i++)
        if (!strncmp(name, a->body[i], strlen(a->body[i]))) return 1;
    return 0;
}

/* The file's pages of a tensor already converted: out of this process's memory now, so that the
 * peak while loading is the weights once, not the weights plus the file. */
static void drop_pages(const void *data, size_t n) {
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0) return;
    uintptr_t a = ((uintptr_t)data + pg - 1) / pg * pg, b = ((uintptr_t)data + n) / pg * pg;
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* t's values into dst as dtype (F16 or BF16): copied when stored so, else (round) each value as
 * float32 (exact from any stored type) rounded to nearest, ties to even. Only F16 can overflow. */
static int hold16(uint16_t *dst, const st_tensor *t, int dtype, int round, af_err *e) {
    if ((int)t->dtype == dtype) {
        if (dst) memcpy(dst, t->data, (size_t)t->numel * 2);
        return 0;
    }
    if (!round)
        return af_errf(e, "%s: %s, %s expected", t->name, st_dtype_name(t->dtype),
                       st_dtype_name((st_dtype)dtype));
    const unsigned char *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) {
        float v;
        uint16_t h;
        if (t->dtype == ST_F32)
            memcpy(&v, p + 4 * i, 4);
        else
            memcpy(&h, p + 2 * i, 2), v = t->dtype == ST_F16 ? st_f16_to_f32(h) : st_bf16_to_f32(h);
        uint16_t r = dtype == ST_F16 ? st_f32_to_f16(v) : st_f32_to_bf16(v);
        if (dst) dst[i] = r; /* NULL: only checked (rows read from the file as looked up) */
        if (dtype == ST_F16 && (r & 0x7c00) == 0x7c00)
            return af_errf(e,
                           "%s: element %lld is %g, past F16's range (65504): hold the weights as "
                           "bf16 instead",
                           t->name, (long long)i, v);
    }
    return 0;
}

static int load_tensors(bert *m, const st_file *f, const char *path, int emb_mapped, af_err *e) {
    const af_arch *a = arch_get(m->cfg.arch);
    int rc = -1;
    spec *s = af_malloc(nspecs(&m->cfg) * sizeof *s);
    int n = list_specs(s, &m->w, &m->cfg);
    char *used = af_calloc(f->ntensors, 1);
    for (int i = 0; i < n; i++) {
        const st_tensor *t = find_spec(f, &s[i], a);
        char want[64], got[64];
        shape_str(want, sizeof want, s[i].ndim, s[i].shape);
        if (!t) {
            af_errf(e,
                    "%s: tensor %s.%s missing (with or without \"%s.\"), shape %s expected "
                    "(config.json says %s)",
                    path, a->prefix, s[i].name, a->prefix, want, a->model_type);
            goto out;
        }
        used[t - f->tensors] = 1;
        int same = t->ndim == s[i].ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == s[i].shape[d];
        if (!same) {
            shape_str(got, sizeof got, t->ndim, t->shape);
            af_errf(e, "%s: %s: shape %s expected, %s found", path, t->name, want, got);
            goto out;
        }
        if (emb_mapped && s[i].dst == m->w.word_emb) {
            /* used in place: checked here, then its pages go back until lookups need rows */
            if (st_check_finite(t, e)) {
                af_err_prefix(e, "%s", path);
                goto out;
            }
            drop_pages(t->data, t->nbytes);
            continue;
        }
        if (m->we16_dtype && s[i].dst == m->w.word_emb) { /* held 16-bit, rows widened */
            if (st_check_finite(t, e) || hold16(m->we16, t, m->we16_dtype, m->rounded, e)) {
                af_err_prefix(e, "%s", path);
                goto out;
            }
            drop_pages(t->data, t->nbytes);
            continue;
        }
        size_t at = (size_t)(s[i].dst - m->mem), emb = emb_params(&m->cfg);
        if (m->w16_dtype && at >= emb) { /* a layer's tensor, held 16-bit */
            if ((!m->rounded && (int)t->dtype != m->w16_dtype) || st_check_finite(t, e) ||
                hold16(m->w16 + (at - emb), t, m->w16_dtype, m->rounded, e)) {
                if (!m->rounded && (int)t->dtype != m->w16_dtype)
                    af_errf(e, "%s: %s is %s, the layers before it %s", t->name, path,
                            st_dtype_name(t->dtype), st_dtype_name((st_dtype)m->w16_dtype));
                af_err_prefix(e, "%s", path);
                goto out;
            }
            drop_pages(t->data, t->nbytes);
            continue;
        }
        if (st_to_f32(t, s[i].dst, t->numel, e)) {
            af_err_prefix(e, "%s", path);
            goto out;
        }
        drop_pages(t->data, t->nbytes);
    }
    for (int i = 0; i < f->ntensors; i++)
        if (!used[i] && encoder_tensor(f->tensors[i].name, a)) {
            af_errf(e, "%s: unexpected tensor %s (not part of a %d-layer %s)", path,
                    f->tensors[i].name, m->cfg.layers, a->class_name);
            goto out;
        }
    rc = 0;
out:
    free(used);
    free(s);
    return rc;
}

/* The word embeddings are most of a small model (30522 rows) and a batch reads a few hundred of
 * them. When the file stores them as F32, mem is placed in an anonymous mapping so that they
 * start at the same offset within a page as in the file, and their whole pages are mapped from
 * the file over mem (MAP_PRIVATE: a write copies the page, the file never changes); the partial
 * pages at both ends are copied. Returns 1 when mapped, 0 when the normal path must read them. */
static int map_word_emb(bert *m, const st_file *f, const char *path) {
    const af_arch *ar = arch_get(m->cfg.arch);
    char name[160];
    const st_tensor *t = NULL;
    for (int prefixed = 1; !t && prefixed >= 0; prefixed--)
        if (!arch_tensor_name(name, sizeof name, ar, AT_WORD, 0, prefixed)) t = st_find(f, name);
    size_t H = m->cfg.hidden, n = (size_t)m->cfg.vocab_size * H * sizeof(float);
    long pg = sysconf(_SC_PAGESIZE);
    if (!t || t->dtype != ST_F32 || t->nbytes != n || pg <= 0) return 0;
    size_t off = (size_t)((const char *)t->data - (const char *)f->map), P = (size_t)pg;
    if (off % sizeof(float) || n < 4 * P) return 0;
    size_t len = m->nparams * sizeof(float) + P;
    char *region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) return 0;
    char *mem = region + off % P;
    size_t a = (off + P - 1) / P * P, b = (off + n) / P * P; /* whole pages of the file */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    void *got = fd < 0 ? MAP_FAILED
                       : mmap(mem + (a - off), b - a, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_FIXED, fd, (off_t)a);
    if (fd >= 0) close(fd);
    if (got == MAP_FAILED) {
        munmap(region, len);
        return 0;
    }
    memcpy(mem, t->data, a - off);
    memcpy(mem + (b - off), (const char *)t->data + (b - off), off + n - b);
    free(m->mem);
    free(m->w.layer);
    m->mem = (float *)mem;
    m->region = region, m->region_len = len;
    carve_weights(&m->w, m->mem, &m->cfg);
    return 1;
}

/* The dtype every layer tensor of f is stored in, when it is F16 or BF16 for all; else 0. */
static int layers_16bit(const bert *m, const st_file *f) {
    const af_arch *a = arch_get(m->cfg.arch);
    spec *s = af_malloc(nspecs(&m->cfg) * sizeof *s);
    int n = list_specs(s, &m->w, &m->cfg), dtype = -1;
    size_t emb = emb_params(&m->cfg);
    for (int i = 0; i < n && dtype; i++) {
        if ((size_t)(s[i].dst - m->mem) < emb) continue;
        const st_tensor *t = find_spec(f, &s[i], a);
        int d = t && (t->dtype == ST_F16 || t->dtype == ST_BF16) ? (int)t->dtype : 0;
        dtype = dtype < 0 || dtype == d ? d : 0;
    }
    free(s);
    return dtype > 0 ? dtype : 0;
}

/* The word embeddings stay in the file: each batch reads the rows it looks up (pread: a few
 * hundred rows of 30522; from the page cache in practice). Not a mapping: a fault maps a whole
 * page-cache folio (up to 2 MiB on ext4), so a mapped table ends up resident almost whole. */
static int open_we(bert *m, const st_file *f, const st_tensor *t, const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    m->we_fd = fd, m->we_stored = (int)t->dtype;
    m->we_off = (off_t)((const char *)t->data - (const char *)f->map);
    m->we_path = af_strdup(path);
    return 1;
}

/* keep16: layers stored 16-bit stay so; want: hold them (and the word embeddings) as this 16-bit
 * type whatever is stored (0: as stored). */
static int load(bert *m, const char *dir, int keep16, int want, af_err *e) {
    memset(m, 0, sizeof *m);
    char *cpath = path_join(dir, "config.json"), *wpath = path_join(dir, "model.safetensors");
    char *json = NULL;
    bert_config cfg;
    st_file f;
    int rc = -1, opened = 0;
    if (af_read_file(cpath, &json, NULL, e) || bert_config_parse(&cfg, json, cpath, e)) goto out;
    struct stat sb;
    if (stat(wpath, &sb) != 0) {
        char *bin = path_join(dir, "pytorch_model.bin");
        int has_bin = stat(bin, &sb) == 0;
        free(bin);
        af_errf(e, "%s: %s%s", wpath, strerror(errno),
                has_bin ? " (pytorch_model.bin is not read: convert it to safetensors)" : "");
        goto out;
    }
    if (st_open(&f, wpath, e)) goto out;
    opened = 1;
    alloc_weights(m, &cfg);
    int mapped = want ? 0 : map_word_emb(m, &f, wpath);
    if (want)
        m->w16_dtype = want, m->rounded = layers_16bit(m, &f) != want;
    else if (keep16)
        m->w16_dtype = layers_16bit(m, &f);
    if (m->w16_dtype) {
        size_t n = layer_params(&cfg);
        m->w16 = af_malloc((size_t)cfg.layers * n * sizeof *m->w16);
        m->stage = af_calloc(1, sizeof *m->stage);
        m->stage->mem = af_malloc(n * sizeof(float));
        carve_layer(&m->stage->w, m->stage->mem, &cfg);
        m->stage->layer = -1;
        m->stage->dtype = m->w16_dtype;
    }
    if (!mapped && m->w16_dtype) { /* the word embeddings too, when they are (to be) 16-bit */
        const af_arch *ar = arch_get(cfg.arch);
        char name[160];
        const st_tensor *t = NULL;
        for (int prefixed = 1; !t && prefixed >= 0; prefixed--)
            if (!arch_tensor_name(name, sizeof name, ar, AT_WORD, 0, prefixed))
                t = st_find(&f, name);
        if (t && (want || t->dtype == ST_F16 || t->dtype == ST_BF16) &&
            t->numel == (int64_t)cfg.vocab_size * cfg.hidden) {
            m->we16_dtype = want ? want : (int)t->dtype;
            if (!open_we(m, &f, t, wpath)) m->we16 = af_malloc((size_t)t->numel * sizeof *m->we16);
        }
    }
    if (load_tensors(m, &f, wpath, mapped, e) || bert_fingerprint(dir, &cfg, m->fingerprint, e)) {
        bert_free(m);
        goto out;
    }
    m->dir = af_strdup(dir);
    rc = 0;
out:
    if (opened) st_close(&f);
    free(json);
    free(cpath);
    free(wpath);
    return rc;
}

int bert_load(bert *m, const char *dir, af_err *e) {
    return load(m, dir, 0, 0, e);
}

int bert_load_16(bert *m, const char *dir, af_err *e) {
    return load(m, dir, 1, 0, e);
}

int bert_load_as(bert *m, const char *dir, int dtype, af_err *e) {
    if (dtype == ST_F32) return load(m, dir, 0, 0, e);
    if (dtype && dtype != ST_F16 && dtype != ST_BF16)
        return af_errf(e, "%s: weights can be held as F32, F16 or BF16", dir);
    return load(m, dir, 1, dtype, e);
}

/* ---- fingerprint -------------------------------------------------------------------------- */

/* Every byte of model.safetensors, in chunks hashed in parallel (the digest does not depend on
 * the number of threads: the chunks are fixed), and the config's keys that change what the
 * encoder computes. Dropout rates are left out: they change training's noise, not the function
 * an adapter was fitted to. */
#define FP_CHUNK ((off_t)64 << 20)

typedef struct {
    int fd;
    off_t size;
    char (*hex)[65];
    int *bad;
} fp_job;

static void fp_chunks(void *ctx, int lo, int hi) {
    fp_job *j = ctx;
    enum { BUF = 1 << 20 };
    uint8_t *buf = af_malloc(BUF);
    for (int c = lo; c < hi; c++) {
        sha256_ctx h;
        sha256_init(&h);
        off_t at = (off_t)c * FP_CHUNK, end = at + FP_CHUNK < j->size ? at + FP_CHUNK : j->size;
        while (at < end) {
            size_t want = end - at < BUF ? (size_t)(end - at) : BUF;
            ssize_t got = pread(j->fd, buf, want, at);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) {
                j->bad[c] = got < 0 ? errno : EIO;
                break;
            }
            sha256_update(&h, buf, (size_t)got);
            at += got;
        }
        sha256_final(&h, j->hex[c]);
    }
    free(buf);
}

int bert_fingerprint(const char *dir, const bert_config *cfg, char out[65], af_err *e) {
    char *path = path_join(dir, "model.safetensors");
    int fd = open(path, O_RDONLY | O_NONBLOCK), rc = -1;
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        af_errf(e, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        af_errf(e, "%s: not a regular file", path);
        goto out;
    }
    int n = (int)((sb.st_size + FP_CHUNK - 1) / FP_CHUNK);
    fp_job j = {fd, sb.st_size, af_calloc(n ? n : 1, 65), af_calloc(n ? n : 1, sizeof(int))};
    af_parallel(n, fp_chunks, &j);
    sha256_ctx h;
    sha256_init(&h);
    char head[512];
    snprintf(head, sizeof head,
             "af-base/2\nvocab_size %d\nhidden_size %d\nnum_hidden_layers %d\n"
             "num_attention_heads %d\nintermediate_size %d\nhidden_act %s\n"
             "max_position_embeddings %d\ntype_vocab_size %d\nlayer_norm_eps %.9g\n"
             "pad_token_id %d\nmodel.safetensors %lld bytes\n",
             cfg->vocab_size, cfg->hidden, cfg->layers, cfg->heads, cfg->ffn, act_name(cfg->act),
             cfg->max_pos, cfg->type_vocab, (double)cfg->ln_eps, cfg->pad_id,
             (long long)sb.st_size);
    sha256_update(&h, head, strlen(head));
    /* the architecture, for all but BERT (whose fingerprints predate the others) */
    if (cfg->arch != ARCH_BERT) {
        snprintf(head, sizeof head, "model_type %s\n", arch_get(cfg->arch)->model_type);
        sha256_update(&h, head, strlen(head));
    }
    rc = 0;
    for (int c = 0; c < n; c++) {
        if (j.bad[c]) {
            rc = af_errf(e, "%s: read error: %s", path, strerror(j.bad[c]));
            break;
        }
        sha256_update(&h, j.hex[c], 64);
        sha256_update(&h, "\n", 1);
    }
    if (!rc) sha256_final(&h, out);
    free(j.hex);
    free(j.bad);
out:
    if (fd >= 0) close(fd);
    free(path);
    return rc;
}

/* ---- saving ------------------------------------------------------------------------------- */

static int write_text(FILE *f, void *ctx, af_err *e) {
    const char *s = ctx;
    if (fputs(s, f) < 0 || fputc('\n', f) < 0) return af_errf(e, "write failed");
    return 0;
}

int bert_save(const bert *m, const char *dir, st_writer *extra, af_err *e) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return af_errf(e, "%s: cannot create directory: %s", dir, strerror(errno));
    char *cpath = path_join(dir, "config.json"), *wpath = path_join(dir, "model.safetensors");
    char *js = config_json(&m->cfg);
    int rc = af_write_atomic(cpath, write_text, js, e);
    if (rc == 0) {
        spec *s = af_malloc(nspecs(&m->cfg) * sizeof *s);
        int n = list_specs(s, &m->w, &m->cfg);
        const char *prefix = arch_get(m->cfg.arch)->prefix;
        st_writer w;
        st_writer_init(&w);
        st_writer_meta(&w, "format", "pt");
        for (int i = 0; i < n; i++) {
            char name[112];
            snprintf(name, sizeof name, "%s.%s", prefix, s[i].name);
            st_writer_add(&w, name, ST_F32, s[i].ndim, s[i].shape, s[i].dst);
        }
        for (int i = 0; extra && i < extra->n; i++)
            st_writer_add(&w, extra->t[i].name, extra->t[i].dtype, extra->t[i].ndim,
                          extra->t[i].shape, extra->t[i].data);
        for (int i = 0; extra && i < extra->nmeta; i++)
            st_writer_meta(&w, extra->meta[i].key, extra->meta[i].value);
        rc = st_writer_write(&w, wpath, e);
        st_writer_free(&w);
        free(s);
    }
    free(js);
    free(cpath);
    free(wpath);
    return rc;
}

/* ---- gradients ---------------------------------------------------------------------------- */

void bert_grads_init(bert_grads *g, const bert_config *cfg) {
    g->mem = af_calloc(count_params(cfg), sizeof(float));
    carve_weights(&g->g, g->mem, cfg);
}

void bert_grads_zero(bert_grads *g, const bert_config *cfg) {
    memset(g->mem, 0, count_params(cfg) * sizeof(float));
}

void bert_grads_free(bert_grads *g) {
    if (!g) return;
    free(g->mem);
    free(g->g.layer);
    memset(g, 0, sizeof *g);
}

/* ---- activations -------------------------------------------------------------------------- */

/* What one layer keeps for backward. In inference mode every layer shares one set. */
typedef struct {
    float *qkv;               /* (M, 3H) */
    float *probs;             /* (B, NH, S, S) softmax output, before dropout */
    float *ctx;               /* (M, H) attention context, input of attention.output.dense */
    float *h1;                /* (M, H) dropout(attention.output.dense): the ATTN site's h;
                                 in rotating frozen plans, after that site, its input h1 + x */
    float *a;                 /* (M, H) ATTN site output: FFN input, the OUT site's r */
    float *u;                 /* (M, F) intermediate.dense output, before the activation */
    float *h2;                /* (M, H) dropout(output.dense): the OUT site's h */
    float *mean1, *rstd1;     /* (M) LayerNorm statistics of the default sites */
    float *mean2, *rstd2;     /* (M) */
    uint64_t sp, s1, s2;      /* dropout seeds (probabilities, h1, h2): the backward hashes the
                                 masks again from them (dropout_apply), so none is stored */
} layer_acts;

struct bert_acts {
    int maxB, maxS, train; /* train: made to keep what backward needs */
    float ph, pa;          /* dropout the last forward applied (0 unless train) */
    float ph1;             /* after the attention output: ph, or 0 where the architecture has
                              none (DistilBERT) */
    int B, S;              /* shape of the last forward */
    int L, H, F, NH;
    int *ids, *type_ids, *mask; /* (maxM) copies of the last batch */
    int *pos;                   /* (maxM) its position ids (arch.h: ARCH_POS_*) */
    unsigned char *active;      /* (L, 2) hooks active in the last forward */
    float *hidden;              /* (L+1, maxM, H): [0] embeddings, [l+1] after layer l */
    float *dhidden;             /* (L+1, maxM, H) train only: gradients of the same */
    int dvalid;                 /* dhidden[k] holds a complete gradient for k >= dvalid */
    float *emb_sum;             /* (M, H) train: word + type + position, the LayerNorm input */
    float *emb_mean, *emb_rstd; /* (M) */
    uint64_t emb_seed;          /* the embeddings' dropout (see layer_acts.sp) */
    layer_acts *la;             /* [L] */
    /* scratch shared by all layers */
    float *tmp;                          /* (M, H) the embeddings' sum when not kept; a full
                                            backward's site LayerNorm input h + r */
    float *g;                            /* (M, F) activation output */
    float *dqkv;                         /* (M, 3H) backward only from here on */
    float *dctx, *dh1, *da, *dh2, *dtmp; /* (M, H) */
    float *dg, *du;                      /* (M, F) */
    /* cls_only: the last layer computes only the first token of every sequence (bert.h) */
    int cls_only, fwd_cls_only; /* as set, and as the last forward ran */
    int probs_kept;             /* the backward reads the layers' attention probabilities; else it
                                   computes them again (frozen plans with S >= RECOMPUTE_PROBS_S) */
    int u_deriv;                /* the last forward (frozen, training) left act'(u) in the kept
                                   layers' u: the backward multiplies instead of evaluating it */
    int frozen, lowest;         /* bert_acts_new_frozen: the plan the buffers were cut for */
    int begun;                  /* K after bert_forward_begin, until bert_forward_end */
    int compact;                /* its last layer holds [CLS] rows only */
    int lean;                   /* bert_acts_new_lean: only the last hidden states are kept */
    int ffn_rows;               /* lean: the feed-forward runs in blocks of this many rows (its
                                   u buffer's); else every row at once */
    int group_rows;             /* lean, grouped: each layer runs a group of whole sequences of
                                   at most this many rows at a time (its buffers' rows); 0: the
                                   batch at once */
    int workers;                /* grouped: groups that may run at once, each in its own set of
                                   buffers wla[k] (wla[0] is every la[l]) */
    layer_acts *wla;
    int rot;                    /* frozen, no attention site hooked: the attention sites keep
                                   their LayerNorm's input h1 + x in h1, so the hidden states
                                   rotate through two buffers as in lean acts */
    int sum_out;                /* frozen, sum_only hooks: from the lowest hooked layer up, the
                                   output sites get h2 + a (in h2) and r = NULL, and a lives in
                                   the shared block (in ctx's place: ctx is spent by then) */
    float *xc, *yc, *dxc;                /* (maxB, H) its input and output rows, packed */
    float *hook_scratch;                 /* frozen: see bert_acts_hook_scratch */
};

/* Carves from an arena, or only counts the bytes when a == NULL (bert_acts_bytes). */
typedef struct {
    af_arena *a;
    size_t bytes;
} carver;

static void *carve(carver *c, size_t bytes) {
    c->bytes += (bytes + 63) & ~(size_t)63;
    return c->a ? af_arena_alloc(c->a, bytes) : NULL;
}

/* A bump allocator over one carved block, so that two sets of buffers that are never live at
 * the same time (the forward-only ones, the backward scratch) can share it. base NULL: count. */
typedef struct {
    char *base;
    size_t off;
} bump;

static void *take(bump *b, size_t bytes) {
    void *p = b->base ? b->base + b->off : NULL;
    b->off += (bytes + 63) & ~(size_t)63;
    return p;
}

#define BF(b, n) ((float *)take(b, (n) * sizeof(float)))

/* One layer's buffers for R rows (M, or B in a [CLS]-only last layer) with P attention floats;
 * ctx only when asked (it is forward-only), a and h2 when asked (else the caller has them). */
static layer_acts layer_set_r(bump *b, size_t R, size_t M, size_t H, size_t F, size_t P,
                              int ctx, int keep_a, int keep_h2) {
    layer_acts x;
    x.qkv = BF(b, M * 3 * H), x.probs = BF(b, P), x.h1 = BF(b, R * H);
    x.ctx = ctx ? BF(b, R * H) : NULL;
    x.a = keep_a ? BF(b, R * H) : NULL, x.u = BF(b, R * F), x.h2 = keep_h2 ? BF(b, R * H) : NULL;
    x.mean1 = BF(b, R), x.rstd1 = BF(b, R), x.mean2 = BF(b, R), x.rstd2 = BF(b, R);
    x.sp = x.s1 = x.s2 = 0;
    return x;
}

static layer_acts layer_set(bump *b, size_t R, size_t M, size_t H, size_t F, size_t P, int ctx) {
    return layer_set_r(b, R, M, H, F, P, ctx, 1, 1);
}

/* plan: NULL for the general layouts (inference: one set shared by all layers; train: a set per
 * layer, everything kept); else a frozen training run (bert_acts_new_frozen). */
typedef struct {
    int lowest, cls_only;
    size_t hook_floats;
    int flags;      /* BERT_PLAN_*: what the hooks may do (bert.h) */
} frozen_plan;

/* From this sequence length up, a frozen plan does not keep the attention probabilities (B·NH·S²
 * floats a layer, which grow with S² while the rest grows with S) but computes them again in the
 * backward from q and k: 2·S·D more FLOPs per token and head, about S/(12·H) of a layer's
 * arithmetic (1.4% on BERT-base at S = 128), for B·NH·S² floats (12 MiB a layer at 16 × 128; 200 at
 * 16 × 512). Below it the probabilities are small and recomputing costs relatively more. */
#define RECOMPUTE_PROBS_S 128

/* Rows of an inference feed-forward block: enough for the matrix products to run at full rate
 * (512 rows: 6 MiB of BERT-base's intermediate activations instead of 24 at 16 × 128), and never
 * fewer than a [CLS]-only layer's B rows, which use the same buffer. */
#define LEAN_FFN_ROWS 512
static size_t lean_ffn_rows(int B, int S) {
    size_t M = (size_t)B * S, R = M < LEAN_FFN_ROWS ? M : LEAN_FFN_ROWS;
    return R < (size_t)B ? (size_t)B : R;
}

int bert_lean_rows(int B, int S, int group) {
    if (!group) return B * S;
    size_t R = lean_ffn_rows(B, S); /* whole sequences, so at least one */
    return (int)(R < (size_t)S ? (size_t)S : R);
}

/* From this hidden size up, grouped inference runs one group at a time, its products split
 * between the threads. Measured with bench-model, one adapter, 2 threads (AVX-512 kernels):
 * BERT-mini (256) runs 6-8% faster with two groups at once; BERT-base (768) within 1% either
 * way, while the second set of buffers and site caches would add 17 MiB to the peak. */
#define GROUPS_AT_ONCE_BELOW_H 512

int bert_lean_groups(const bert_config *cfg, int threads) {
    return cfg->hidden < GROUPS_AT_ONCE_BELOW_H && threads > 1 ? threads : 1;
}

static bert_acts *layout_acts(carver *c, const bert_config *cfg, int B, int S, int train,
                              const frozen_plan *fp, int lean, int group) {
    size_t M = (size_t)B * S, H = cfg->hidden, F = cfg->ffn, L = cfg->layers;
    size_t P = (size_t)B * cfg->heads * S * S, Pc = (size_t)B * cfg->heads * S;
    if (fp) train = 1;
    bert_acts *A = carve(c, sizeof *A);
    layer_acts *la = carve(c, L * sizeof *la);
    if (A) {
        memset(A, 0, sizeof *A);
        memset(la, 0, L * sizeof *la);
        A->maxB = B, A->maxS = S, A->train = train;
        A->L = (int)L, A->H = (int)H, A->F = (int)F, A->NH = cfg->heads;
        A->la = la;
        A->frozen = fp != NULL, A->lowest = fp ? fp->lowest : 0;
        A->compact = fp && fp->cls_only;
        A->lean = lean && !train;
        A->workers = A->lean && group > 0 ? group : 1;
        A->ffn_rows = A->lean ? (int)lean_ffn_rows(B, S) : B * S;
        A->group_rows = A->lean && group > 0 ? bert_lean_rows(B, S, group) : 0;
        A->probs_kept = !fp || S < RECOMPUTE_PROBS_S;
        A->rot = fp && !(fp->flags & BERT_PLAN_ATTN_HOOKS);
        A->sum_out = fp && (fp->flags & BERT_PLAN_SUM_HOOKS);
    }
#define CF(n) ((float *)carve(c, (n) * sizeof(float)))
#define CI(n) ((int *)carve(c, (n) * sizeof(int)))
#define CB(n) ((uint8_t *)carve(c, (n)))
    int *ids = CI(M), *tids = CI(M), *mask = CI(M), *pos = CI(M);
    unsigned char *active = CB(2 * L);
    int rotate = (lean && !train) || (fp && !(fp->flags & BERT_PLAN_ATTN_HOOKS));
    float *hidden = CF((rotate ? 2 : L + 1) * M * H);
    float *dhidden = train ? CF((fp ? 2 : L + 1) * M * H) : NULL;
    int embg = train && !fp; /* only a full backward reaches the embeddings */
    float *emb_sum = embg ? CF(M * H) : NULL, *emb_mean = embg ? CF(M) : NULL;
    float *emb_rstd = embg ? CF(M) : NULL;
    /* the embeddings' sum: frozen and lean plans take hidden[1], free until layer 0 writes it */
    float *tmp = fp || (lean && !train) ? NULL : CF(M * H);
    float *xc = CF((size_t)B * H), *yc = CF((size_t)B * H), *dxc = train ? CF((size_t)B * H) : NULL;
    float *g = NULL, *dqkv = NULL, *dctx = NULL, *dh1 = NULL, *da = NULL, *dh2 = NULL;
    float *dtmp = NULL, *dg = NULL, *du = NULL;
    if (!fp) {
        layer_acts shared = {0};
        if (lean && !train) {
            /* inference: one set for every layer, no attention probabilities kept (but the
             * [CLS]-only layer's, B·NH·S, in the first set), the feed-forward in blocks of rows;
             * a set per group that runs at once. Within a layer, buffers whose lives do not
             * overlap share memory: q, k, v are spent once attention has run, before the
             * feed-forward's u is written; the context once projected, before the attention
             * site writes a; h1 once that site has read it, before the feed-forward writes h2. */
            int W = group > 0 ? group : 1;
            size_t R = (size_t)bert_lean_rows(B, S, group), FR = lean_ffn_rows(B, S);
            size_t big = R * 3 * H > FR * F ? R * 3 * H : FR * F;
            layer_acts *wla = carve(c, W * sizeof *wla);
            if (A) A->wla = wla;
            for (int k = 0; k < W; k++) {
                layer_acts x = {0};
                x.qkv = x.u = CF(big), x.probs = k == 0 ? CF(Pc) : NULL;
                x.ctx = x.a = CF(R * H), x.h1 = x.h2 = CF(R * H);
                x.mean1 = CF(R), x.rstd1 = CF(R), x.mean2 = CF(R), x.rstd2 = CF(R);
                if (A) wla[k] = x;
                if (k == 0) shared = x;
            }
            for (size_t l = 0; A && l < L; l++) la[l] = shared;
        }
        for (size_t l = 0; !(lean && !train) && l < L; l++) {
            layer_acts x = shared;
            if (l == 0 || train) {
                bump b = {NULL, 0};
                layer_set(&b, M, M, H, F, P, 1);
                b.base = carve(c, b.off), b.off = 0;
                x = layer_set(&b, M, M, H, F, P, 1);
                /* inference: ctx is dead once projected, h2 is written after that */
                if (!train) x.h2 = x.ctx;
                if (l == 0) shared = x;
            }
            if (A) la[l] = x;
        }
        g = train ? CF(M * F) : NULL; /* inference applies the activation in place */
        if (train) {
            dqkv = CF(M * 3 * H), dctx = CF(M * H), dh1 = CF(M * H), da = CF(M * H);
            dh2 = CF(M * H), dtmp = CF(M * H), dg = CF(M * F), du = CF(M * F);
        }
    } else {
        /* Frozen: layers below the lowest hooked site keep nothing (their buffers share one
         * block with the backward scratch, which is not live during the forward); the layer of
         * a lowest OUT site keeps only that site's h and r, for its hook; ctx and the activation
         * output are forward-only everywhere; a [CLS]-only last layer keeps K, V of every token
         * and B rows of the rest. The hooks' scratch shares the block too: when a hook runs,
         * the forward-only buffers are spent (a site comes after ctx and the activation output
         * are consumed, and the shared set serves only layers whose sites do not run), and of
         * the backward's buffers only dh and da, which a hook reads or writes, are live: they
         * are carved apart. */
        bump fb = {NULL, 0}, bb = {NULL, 0};
        /* a and h2 of the shared set serve only layers below the lowest adapter's layer */
        int resid = fp->lowest / 2 > 0;
        int keep_from = fp->lowest / 2 + (fp->lowest % 2); /* first layer kept whole */
        int keep_probs = S < RECOMPUTE_PROBS_S;
        /* The layers below the first kept one run in that layer's buffers (their forward comes
         * first, and it writes each before reading it), so the shared set holds only ctx, the
         * activation output and recomputed probabilities: unless the first kept layer is a
         * [CLS]-only one, or there is none. */
        int borrow = keep_from < (int)L && !(fp->cls_only && keep_from == (int)L - 1);
        if (borrow) BF(&fb, M * H), BF(&fb, keep_probs ? 0 : P), BF(&fb, M * F);
        else layer_set_r(&fb, M, M, H, F, P, 1, resid, resid);
        BF(&bb, M * 3 * H), BF(&bb, M * H), BF(&bb, M * F);
        size_t U = fb.off > bb.off ? fb.off : bb.off;
        size_t hookb = (fp->hook_floats * sizeof(float) + 63) & ~(size_t)63;
        if (hookb > U) U = hookb;
        char *ub = carve(c, U);
        fb = (bump){ub, 0}, bb = (bump){ub, 0};
        layer_acts shared = {0};
        if (borrow) shared.ctx = BF(&fb, M * H), shared.probs = BF(&fb, keep_probs ? 0 : P),
                    shared.u = BF(&fb, M * F);
        else shared = layer_set_r(&fb, M, M, H, F, P, 1, resid, resid);
        /* the activation's output: in place below the kept layers, in the shared u above */
        g = shared.u;
        dqkv = BF(&bb, M * 3 * H), dtmp = BF(&bb, M * H);
        dg = BF(&bb, M * F), du = dg; /* the activation's gradient is taken in place */
        /* dh2 is spent (into dtmp) before dh1 is written, dh1 before dctx: one buffer */
        dctx = dh1 = dh2 = CF(M * H);
        da = CF(M * H);
        if (A && fp->hook_floats) A->hook_scratch = (float *)ub;
        /* sum_only hooks: h2 + a is kept in h2, and a needs only the forward's span from the
         * attention site to the output site, which ctx's (spent by then) can hold */
        int sum = (fp->flags & BERT_PLAN_SUM_HOOKS) != 0;
        layer_acts first = shared; /* the first kept layer's set */
        for (size_t l = L; l-- > 0 && (int)l >= keep_from;) {
            int last = fp->cls_only && l == L - 1, suml = sum && !last;
            size_t R = last ? (size_t)B : M, Pl = last ? Pc : keep_probs ? P : 0;
            bump b = {NULL, 0};
            layer_set_r(&b, R, M, H, F, Pl, 0, !suml, 1);
            b.base = carve(c, b.off), b.off = 0;
            layer_acts x = layer_set_r(&b, R, M, H, F, Pl, 0, !suml, 1);
            x.ctx = shared.ctx;
            if (suml) x.a = shared.ctx;
            if (!Pl) x.probs = shared.probs; /* forward-only: the backward recomputes them */
            if (A) la[l] = x;
            first = x;
        }
        for (size_t l = 0; (int)l < keep_from && l < L; l++) {
            layer_acts x = shared;
            if (borrow) { /* the first kept layer's buffers; ctx, a and u (in place): shared */
                x = first;
                x.ctx = x.a = shared.ctx, x.u = shared.u;
            }
            if ((int)l == fp->lowest / 2 && fp->lowest % 2)
                x.h2 = CF(M * H), x.a = sum ? shared.ctx : CF(M * H);
            if (A) la[l] = x;
        }
    }
#undef CF
#undef CI
#undef CB
    if (A) {
        A->ids = ids, A->type_ids = tids, A->mask = mask, A->pos = pos, A->active = active;
        A->hidden = hidden, A->dhidden = dhidden, A->dvalid = (int)L + 1;
        A->emb_sum = emb_sum, A->emb_mean = emb_mean, A->emb_rstd = emb_rstd;
        A->tmp = tmp ? tmp : hidden + M * H, A->g = g;
        A->dqkv = dqkv, A->dctx = dctx, A->dh1 = dh1, A->da = da, A->dh2 = dh2, A->dtmp = dtmp;
        A->dg = dg, A->du = du;
        A->xc = xc, A->yc = yc, A->dxc = dxc;
    }
    return A;
}

size_t bert_acts_bytes(const bert_config *cfg, int B, int S, int train) {
    carver c = {NULL, 0};
    layout_acts(&c, cfg, B, S, train, NULL, 0, 0);
    return c.bytes;
}

bert_acts *bert_acts_new(af_arena *a, const bert_config *cfg, int B, int S, int train) {
    carver c = {a, 0};
    return layout_acts(&c, cfg, B, S, train, NULL, 0, 0);
}

size_t bert_acts_bytes_lean(const bert_config *cfg, int B, int S, int group) {
    carver c = {NULL, 0};
    layout_acts(&c, cfg, B, S, 0, NULL, 1, group);
    return c.bytes;
}

bert_acts *bert_acts_new_lean(af_arena *a, const bert_config *cfg, int B, int S, int group) {
    carver c = {a, 0};
    return layout_acts(&c, cfg, B, S, 0, NULL, 1, group);
}

size_t bert_acts_bytes_frozen(const bert_config *cfg, int B, int S, int lowest, int cls_only,
                              size_t hook_floats, int flags) {
    carver c = {NULL, 0};
    frozen_plan fp = {lowest, cls_only, hook_floats, flags};
    layout_acts(&c, cfg, B, S, 1, &fp, 0, 0);
    return c.bytes;
}

bert_acts *bert_acts_new_frozen(af_arena *a, const bert_config *cfg, int B, int S, int lowest,
                                int cls_only, size_t hook_floats, int flags) {
    carver c = {a, 0};
    frozen_plan fp = {lowest, cls_only, hook_floats, flags};
    bert_acts *A = layout_acts(&c, cfg, B, S, 1, &fp, 0, 0);
    A->cls_only = cls_only;
    return A;
}

float *bert_acts_hook_scratch(const bert_acts *acts) {
    return acts->hook_scratch;
}

/* hidden[k] for k = 0 (embeddings) .. L, packed for the current batch. */
static float *hid(const bert_acts *A, float *base, int k) {
    return base + (size_t)k * A->maxB * A->maxS * A->H;
}

/* hidden[k]: lean inference acts keep two buffers in turn (layer l reads k = l, writes l + 1) */
static float *hidk(const bert_acts *A, int k) {
    return hid(A, A->hidden, A->lean || A->rot ? k % 2 : k);
}

const float *bert_hidden(const bert_acts *acts, int l) {
    if (l < -1 || l >= acts->L || ((acts->lean || acts->rot) && l != acts->L - 1)) return NULL;
    return hidk(acts, l + 1);
}

/* dhidden[k]: a frozen plan keeps two buffers in turn (a layer's backward reads k + 1, writes k) */
static float *dhid(const bert_acts *A, int k) {
    return hid(A, A->dhidden, A->frozen ? k % 2 : k);
}

const float *bert_dhidden(const bert_acts *acts, int l) {
    if (!acts->train || l < -1 || l >= acts->L || l + 1 < acts->dvalid) return NULL;
    if (acts->frozen && l + 1 != acts->dvalid) return NULL;
    return dhid(acts, l + 1);
}

/* ---- forward ------------------------------------------------------------------------------ */

float bert_head_dropout(const bert_config *c) {
    return c->has_head_dropout ? c->head_dropout : c->hidden_dropout;
}

int bert_max_len(const bert_config *c) {
    return arch_get(c->arch)->pos == ARCH_POS_FROM_PAD ? c->max_pos - c->pad_id - 1 : c->max_pos;
}

int bert_batch_check(const bert *m, const bert_batch *b, af_err *e) {
    const bert_config *c = &m->cfg;
    if (b->B < 1 || b->S < 1 || !b->ids) return af_errf(e, "batch: empty (%d x %d)", b->B, b->S);
    if (b->S > bert_max_len(c))
        return af_errf(
            e, "batch: sequence length %d exceeds max_position_embeddings %d%s", b->S, c->max_pos,
            bert_max_len(c) < c->max_pos ? " less pad_token_id + 1 (RoBERTa's positions)" : "");
    for (int i = 0; i < b->B * b->S; i++) {
        int seq = i / b->S, tok = i % b->S;
        if (b->ids[i] < 0 || b->ids[i] >= c->vocab_size)
            return af_errf(e, "batch: sequence %d token %d: input_ids %d out of range [0, %d)", seq,
                           tok, b->ids[i], c->vocab_size);
        /* an architecture without token types (DistilBERT) ignores them, as its tokenizer
         * never makes them */
        if (b->type_ids && c->type_vocab && (b->type_ids[i] < 0 || b->type_ids[i] >= c->type_vocab))
            return af_errf(e, "batch: sequence %d token %d: token_type_ids %d out of range [0, %d)",
                           seq, tok, b->type_ids[i], c->type_vocab);
        if (b->mask && b->mask[i] != 0 && b->mask[i] != 1)
            return af_errf(e, "batch: sequence %d token %d: attention_mask %d is not 0 or 1", seq,
                           tok, b->mask[i]);
    }
    return 0;
}

/* The dropout a forward applies: the config's in training, else none. */
static void forward_rates(bert_acts *A, const bert_config *c, int train) {
    A->ph = train ? c->hidden_dropout : 0, A->pa = train ? c->attn_dropout : 0;
    A->ph1 = arch_get(c->arch)->attn_out_dropout ? A->ph : 0;
}

static int hooked(const bert_hooks *hk, int l, int site) {
    return hk && hk->active && hk->active(hk->ctx, l, site);
}

/* out = LN(h + r), or the hook's replacement of it. sum (unless NULL; may be h): h + r, kept
 * for the backward when h and r are not. */
static void site_forward_slot(bert_acts *A, const bert_hooks *hk, int slot, int l, int site,
                              float *out, const float *h, const float *r, const float *ln_w,
                              const float *ln_b, float eps, float *mean, float *rstd, int M,
                              float *sum) {
    if (A->active[2 * l + site]) {
        hk->forward(hk->ctx, l, site, slot, out, h, r, ln_w, ln_b, eps, M);
        return;
    }
    layernorm_forward_sum(out, mean, rstd, sum, h, r, ln_w, ln_b, M, A->H, eps);
}

static void site_forward(bert_acts *A, const bert_hooks *hk, int l, int site, float *out,
                         const float *h, const float *r, const float *ln_w, const float *ln_b,
                         float eps, float *mean, float *rstd, int M, float *sum) {
    site_forward_slot(A, hk, 0, l, site, out, h, r, ln_w, ln_b, eps, mean, rstd, M, sum);
}

/* A dropout's seed, drawn as dropout_forward draws it (one number, only when p > 0). */
static uint64_t draw_seed(float p, af_rng *rng) {
    return p > 0 ? af_rng_u64(rng) : 0;
}

/* x = dropout(x) in place; returns the seed the backward hashes the mask from again. */
static uint64_t dropout_seeded(float *x, size_t n, float p, af_rng *rng) {
    uint64_t seed = draw_seed(p, rng);
    dropout_apply(x, x, n, p, seed);
    return seed;
}

typedef struct {
    const bert_weights *w;
    const bert_acts *A;
    float *sum;
    int types; /* the architecture has token type embeddings */
    const bert *m; /* for 16-bit word embeddings (bert_load_16) */
} embed_job;

/* Position ids: 0..S-1 (BERT, DistilBERT), or RoBERTa's count of the non-pad ids so far plus
 * pad_token_id, with pads at pad_token_id (HF create_position_ids_from_input_ids): a pad id in
 * mid-sequence shifts the positions after it, as there. */
static void positions(bert_acts *A, const bert_config *c) {
    int S = A->S, from_pad = arch_get(c->arch)->pos == ARCH_POS_FROM_PAD;
    for (int b = 0, k = 0; b < A->B; b++)
        for (int t = 0, n = 0; t < S; t++, k++) {
            if (!from_pad)
                A->pos[k] = t;
            else
                A->pos[k] = A->ids[k] == c->pad_id ? c->pad_id : c->pad_id + ++n;
        }
}

static void widen_row(float *dst, const uint16_t *src, size_t n, int dtype);

/* Row id of the 16-bit word embeddings as float32, into y: widened from we16, or read from the
 * file as stored and, when that is another type, rounded to we16_dtype as hold16 rounds. The row
 * is read into y itself and converted from the end backwards (a float overwrites only 16-bit
 * values already converted). A read that fails (the file cut short under a running program) ends
 * the program: the forward has no way back. */
static void we16_row(const bert *m, int id, float *y) {
    size_t H = (size_t)m->cfg.hidden;
    if (m->we16) {
        widen_row(y, m->we16 + (size_t)id * H, H, m->we16_dtype);
        return;
    }
    size_t es = m->we_stored == ST_F32 ? 4 : 2, n = es * H, got = 0;
    off_t at = (off_t)(m->we_off + (long long)id * (long long)n);
    while (got < n) {
        ssize_t r = pread(m->we_fd, (char *)y + got, n - got, at + (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            fprintf(stderr, "%s: word embedding row %d: %s\n", m->we_path, id,
                    r < 0 ? strerror(errno) : "the file is shorter than when it was opened");
            exit(1);
        }
        got += (size_t)r;
    }
    const uint16_t *h = (const uint16_t *)y;
    int d = m->we16_dtype;
    if (m->we_stored == d) {
        if (d == ST_F16 && H >= 16) {
            uint16_t tmp[16]; /* the vector path reads 16 at once: stage each block apart */
            for (size_t k = H; k >= 16; k -= 16) {
                memcpy(tmp, h + k - 16, sizeof tmp);
                widen_row(y + k - 16, tmp, 16, d);
            }
            size_t rest = H % 16;
            for (size_t k = rest; k-- > 0;) y[k] = st_f16_to_f32(h[k]);
            return;
        }
        for (size_t k = H; k-- > 0;)
            y[k] = d == ST_F16 ? st_f16_to_f32(h[k]) : st_bf16_to_f32(h[k]);
        return;
    }
    for (size_t k = H; k-- > 0;) {
        float v = m->we_stored == ST_F32   ? y[k]
                  : m->we_stored == ST_F16 ? st_f16_to_f32(h[k])
                                           : st_bf16_to_f32(h[k]);
        y[k] = d == ST_F16 ? st_f16_to_f32(st_f32_to_f16(v)) : st_bf16_to_f32(st_f32_to_bf16(v));
    }
}

static void embed_part(void *p, int lo, int hi) {
    const embed_job *j = p;
    const bert_acts *A = j->A;
    int H = A->H;
    for (int t = lo; t < hi; t++) {
        float *y = j->sum + (size_t)t * H;
        const float *we = j->w->word_emb + (size_t)A->ids[t] * H;
        if (j->m->we16_dtype) { /* the row widened in place: y = we, then the same sums */
            we16_row(j->m, A->ids[t], y);
            we = y;
        }
        /* HF order: (inputs_embeds + token_type_embeddings) + position_embeddings */
        if (j->types && we == y)
            vec_add(y, j->w->type_emb + (size_t)A->type_ids[t] * H, H);
        else if (j->types)
            vec_add2(y, we, j->w->type_emb + (size_t)A->type_ids[t] * H, H);
        else if (we != y)
            memcpy(y, we, H * sizeof(float));
        vec_add(y, j->w->pos_emb + (size_t)A->pos[t] * H, H);
    }
}

/* dropout: as A->ph says (the training forward's rate, else 0) */
static void embed_forward(const bert *m, bert_acts *A, float *out, af_rng *rng) {
    const bert_weights *w = &m->w;
    int H = A->H, M = A->B * A->S;
    float *sum = A->emb_sum ? A->emb_sum : A->tmp;
    embed_job ej = {w, A, sum, m->cfg.type_vocab > 0, m};
    af_parallel(M, embed_part, &ej);
    layernorm_forward(out, A->emb_mean, A->emb_rstd, sum, w->emb_ln_w, w->emb_ln_b, M, H,
                      m->cfg.ln_eps);
    A->emb_seed = dropout_seeded(out, (size_t)M * H, A->ph, rng);
}

static void zero(float *p, size_t n);

/* g = act(u); in a frozen training forward u then becomes act'(u), all its backward reads (the
 * backward never needs u itself without weight gradients), computed once here. */
static void act_apply(const bert_acts *A, float *g, float *u, size_t n, int act) {
    if (A->u_deriv && g != u) act_forward_deriv(g, u, u, n, act);
    else act_forward(g, u, n, act);
}

/* d act input = dg ⊙ act'(u), in place when du == dg. */
static void act_grad(const bert_acts *A, float *du, const float *dg, const float *u, size_t n,
                     int act) {
    if (A->u_deriv) vec_mul(du, dg, u, n);
    else if (du == dg) act_backward_set(du, dg, u, n, act);
    else zero(du, n), act_backward(du, dg, u, n, act);
}

/* ---- 16-bit layers (bert_load_16) ---------------------------------------------------------- */

#if defined(__x86_64__)
/* F16 to F32 is exact, so the F16C instruction gives st_f16_to_f32's bits, 8 at a time. */
__attribute__((target("f16c,avx"))) static void widen_f16c(float *dst, const uint16_t *src,
                                                           size_t n) {
    size_t k = 0;
    for (; k + 8 <= n; k += 8)
        _mm256_storeu_ps(dst + k, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + k))));
    for (; k < n; k++) dst[k] = st_f16_to_f32(src[k]);
}
#endif

static void widen_part(void *ctx, int lo, int hi) {
    const struct bert_stage *st = ctx;
    enum { CH = 1 << 14 };
    size_t a = (size_t)lo * CH, b = (size_t)hi * CH;
#if defined(__x86_64__)
    if (st->dtype == ST_F16 && __builtin_cpu_supports("f16c")) {
        widen_f16c(st->mem + a, st->src + a, b - a);
        return;
    }
#endif
    for (size_t k = a; k < b; k++)
        st->mem[k] = st->dtype == ST_F16 ? st_f16_to_f32(st->src[k]) : st_bf16_to_f32(st->src[k]);
}

/* n values of a 16-bit tensor as float32 (the word embeddings' rows). */
static void widen_row(float *dst, const uint16_t *src, size_t n, int dtype) {
#if defined(__x86_64__)
    if (dtype == ST_F16 && __builtin_cpu_supports("f16c")) {
        widen_f16c(dst, src, n);
        return;
    }
#endif
    for (size_t k = 0; k < n; k++)
        dst[k] = dtype == ST_F16 ? st_f16_to_f32(src[k]) : st_bf16_to_f32(src[k]);
}

/* Layer l's weights as float32: the model's own, or (16-bit layers) layer l widened into the
 * stage, with the conversion bert_load uses, so the same bits. */
static const bert_layer *layer_weights(const bert *m, int l) {
    if (!m->w16_dtype) return &m->w.layer[l];
    struct bert_stage *st = m->stage;
    if (st->layer != l) {
        size_t n = layer_params(&m->cfg), CH = 1 << 14;
        st->src = m->w16 + (size_t)l * n;
        /* whole chunks on the pool, the tail here */
        af_parallel((int)(n / CH), widen_part, st);
        for (size_t k = n / CH * CH; k < n; k++)
            st->mem[k] =
                st->dtype == ST_F16 ? st_f16_to_f32(st->src[k]) : st_bf16_to_f32(st->src[k]);
        st->layer = l;
    }
    return &st->w;
}

static void layer_forward(const bert *m, bert_acts *A, int l, const bert_hooks *hk,
                          af_rng *rng) {
    const bert_layer *W = layer_weights(m, l);
    layer_acts *la = &A->la[l];
    const bert_config *c = &m->cfg;
    int B = A->B, S = A->S, M = B * S, H = A->H, F = A->F, NH = A->NH;
    size_t MH = (size_t)M * H;
    const float *x = hidk(A, l);
    float *y = hidk(A, l + 1);
    linear_forward(la->qkv, x, W->qkv_w, W->qkv_b, M, H, 3 * H);
    la->sp = draw_seed(A->pa, rng);
    attention_forward(la->ctx, A->lean ? NULL : la->probs, NULL, la->qkv, A->mask, B, S, NH, H / NH,
                      A->pa, la->sp);
    linear_forward(la->h1, la->ctx, W->ao_w, W->ao_b, M, H, H);
    la->s1 = dropout_seeded(la->h1, MH, A->ph1, rng);
    /* rotating hidden states: x is gone by the backward, h1 + x stays in h1 */
    site_forward(A, hk, l, BERT_SITE_ATTN, la->a, la->h1, x, W->ln1_w, W->ln1_b, c->ln_eps,
                 la->mean1, la->rstd1, M, A->rot ? la->h1 : NULL);
    float *g = A->g ? A->g : la->u; /* inference: in place */
    for (int r = 0; r < M; r += A->ffn_rows) { /* one block but in lean (inference) acts */
        int n = M - r < A->ffn_rows ? M - r : A->ffn_rows;
        linear_forward(la->u, la->a + (size_t)r * H, W->ff1_w, W->ff1_b, n, H, F);
        act_apply(A, g, la->u, (size_t)n * F, c->act);
        linear_forward(la->h2 + (size_t)r * H, g, W->ff2_w, W->ff2_b, n, F, H);
    }
    la->s2 = dropout_seeded(la->h2, MH, A->ph, rng);
    const float *r2 = la->a;
    if (A->sum_out && l >= A->lowest / 2) { /* a lives in the shared block: keep h2 + a */
        vec_add(la->h2, la->a, MH);
        r2 = NULL;
    }
    site_forward(A, hk, l, BERT_SITE_OUT, y, la->h2, r2, W->ln2_w, W->ln2_b, c->ln_eps,
                 la->mean2, la->rstd2, M, NULL);
}

static void gather_cls(float *dst, const float *src, int B, int S, int H) {
    for (int b = 0; b < B; b++) memcpy(dst + (size_t)b * H, src + (size_t)b * S * H, H * sizeof(float));
}

/* The last layer when only the first token of each sequence is read: keys and values for every
 * token, everything else for those B tokens, packed in the first B rows of the layer's buffers. */
static void layer_forward_cls(const bert *m, bert_acts *A, int l, const bert_hooks *hk,
                              af_rng *rng) {
    const bert_layer *W = layer_weights(m, l);
    layer_acts *la = &A->la[l];
    const bert_config *c = &m->cfg;
    int B = A->B, S = A->S, M = B * S, H = A->H, F = A->F, NH = A->NH;
    size_t BH = (size_t)B * H;
    const float *x = hidk(A, l);
    float *y = hidk(A, l + 1);
    /* K and V into their columns of the stacked qkv */
    linear_forward_ld(la->qkv + H, 3 * H, x, H, W->qkv_w + (size_t)H * H, W->qkv_b + H, M, H,
                      2 * H);
    gather_cls(A->xc, x, B, S, H);
    float *qc = A->yc; /* free until the end of the layer */
    linear_forward(qc, A->xc, W->qkv_w, W->qkv_b, B, H, H);
    for (int b = 0; b < B; b++)
        memcpy(la->qkv + (size_t)b * S * 3 * H, qc + (size_t)b * H, H * sizeof(float));
    la->sp = draw_seed(A->pa, rng);
    attention_cls_forward(la->ctx, la->probs, la->qkv, A->mask, B, S, NH, H / NH, A->pa, la->sp);
    linear_forward(la->h1, la->ctx, W->ao_w, W->ao_b, B, H, H);
    la->s1 = dropout_seeded(la->h1, BH, A->ph1, rng);
    site_forward(A, hk, l, BERT_SITE_ATTN, la->a, la->h1, A->xc, W->ln1_w, W->ln1_b, c->ln_eps,
                 la->mean1, la->rstd1, B, NULL);
    linear_forward(la->u, la->a, W->ff1_w, W->ff1_b, B, H, F);
    float *g = A->g ? A->g : la->u;
    act_apply(A, g, la->u, (size_t)B * F, c->act);
    linear_forward(la->h2, g, W->ff2_w, W->ff2_b, B, F, H);
    la->s2 = dropout_seeded(la->h2, BH, A->ph, rng);
    site_forward(A, hk, l, BERT_SITE_OUT, A->yc, la->h2, la->a, W->ln2_w, W->ln2_b, c->ln_eps,
                 la->mean2, la->rstd2, B, NULL);
    for (int b = 0; b < B; b++)
        memcpy(y + (size_t)b * S * H, A->yc + (size_t)b * H, H * sizeof(float));
}

/* Grouped inference (lean acts with group_rows): layer l for sequences b0 .. b0+n-1 alone, in
 * the buffers la of slot `slot`; the hooks see those rows. No dropout (inference). */
static void layer_forward_group(const bert *m, bert_acts *A, const bert_layer *W, int l,
                                const bert_hooks *hk, layer_acts *la, int slot, int b0, int n) {
    const bert_config *c = &m->cfg;
    int S = A->S, R = n * S, H = A->H, F = A->F, NH = A->NH;
    const float *x = hidk(A, l) + (size_t)b0 * S * H;
    float *y = hidk(A, l + 1) + (size_t)b0 * S * H;
    linear_forward(la->qkv, x, W->qkv_w, W->qkv_b, R, H, 3 * H);
    attention_forward(la->ctx, NULL, NULL, la->qkv, A->mask + (size_t)b0 * S, n, S, NH, H / NH, 0,
                      0);
    linear_forward(la->h1, la->ctx, W->ao_w, W->ao_b, R, H, H);
    site_forward_slot(A, hk, slot, l, BERT_SITE_ATTN, la->a, la->h1, x, W->ln1_w, W->ln1_b,
                      c->ln_eps, la->mean1, la->rstd1, R, NULL);
    for (int r = 0; r < R; r += A->ffn_rows) {
        int k = R - r < A->ffn_rows ? R - r : A->ffn_rows;
        linear_forward(la->u, la->a + (size_t)r * H, W->ff1_w, W->ff1_b, k, H, F);
        act_apply(A, la->u, la->u, (size_t)k * F, c->act);
        linear_forward(la->h2 + (size_t)r * H, la->u, W->ff2_w, W->ff2_b, k, F, H);
    }
    site_forward_slot(A, hk, slot, l, BERT_SITE_OUT, y, la->h2, la->a, W->ln2_w, W->ln2_b,
                      c->ln_eps, la->mean2, la->rstd2, R, NULL);
}

/* A grouped layer's groups as a pool job: slot k runs sequences B·k/slots .. B·(k+1)/slots - 1
 * (as equal shares as whole sequences allow) in groups of at most G, in its own buffers wla[k];
 * one slot: every group in wla[0], one after the other. */
typedef struct {
    const bert *m;
    bert_acts *A;
    const bert_layer *W;
    const bert_hooks *hk;
    int l, G, slots;
    const float *qc; /* the [CLS]-only layer: its first tokens' queries, and the job is its keys,
                        values and attention (layer_forward_cls_group) */
} group_job;

/* The [CLS]-only layer's part for sequences b0 .. b0+n-1 in slot buffers w: their keys and
 * values, and their first tokens' attention into the first set's ctx and probs (rows b0..). */
static void cls_group_attention(const group_job *j, layer_acts *w, int b0, int n) {
    bert_acts *A = j->A;
    const bert_layer *W = j->W;
    int S = A->S, H = A->H, NH = A->NH;
    const float *x = hidk(A, j->l) + (size_t)b0 * S * H;
    linear_forward_ld(w->qkv + H, 3 * H, x, H, W->qkv_w + (size_t)H * H, W->qkv_b + H, n * S, H,
                      2 * H);
    for (int b = 0; b < n; b++)
        memcpy(w->qkv + (size_t)b * S * 3 * H, j->qc + (size_t)(b0 + b) * H, H * sizeof(float));
    attention_cls_forward(A->wla[0].ctx + (size_t)b0 * H, A->wla[0].probs + (size_t)b0 * NH * S,
                          w->qkv, A->mask + (size_t)b0 * S, n, S, NH, H / NH, 0, 0);
}

static void group_part(void *p, int lo, int hi) {
    const group_job *j = p;
    int B = j->A->B;
    for (int k = lo; k < hi; k++) {
        int end = (int)((long)B * (k + 1) / j->slots);
        for (int b0 = (int)((long)B * k / j->slots); b0 < end; b0 += j->G) {
            int n = end - b0 < j->G ? end - b0 : j->G;
            if (j->qc)
                cls_group_attention(j, &j->A->wla[k], b0, n);
            else
                layer_forward_group(j->m, j->A, j->W, j->l, j->hk, &j->A->wla[k], k, b0, n);
        }
    }
}

/* Layer l's groups, at once when the acts have the slots, the pool the threads, the hooks (if
 * any is active in the layer) the slots, and the batch shares out evenly enough (every slot's
 * products run on one thread, so the slot with the most sequences sets the time: an even
 * share, or one sequence more in at most an eighth); else one after the other, each product
 * split between the threads. */
static void run_groups(group_job *j) {
    bert_acts *A = j->A;
    int W = A->workers, B = A->B;
    int hooked_here = A->active[2 * j->l] || A->active[2 * j->l + 1];
    int at_once = W > 1 && af_threads() >= W && B >= W && (B % W == 0 || B >= 8 * W) &&
                  (!hooked_here || (j->hk && j->hk->slots >= W));
    j->slots = at_once ? W : 1;
    if (j->slots == 1)
        group_part(j, 0, 1);
    else
        af_parallel(j->slots, group_part, j);
}

/* The [CLS]-only last layer, grouped: keys and values (and the first tokens' attention) a group
 * of sequences at a time, the rest on the B first-token rows as layer_forward_cls. */
static void layer_forward_cls_group(const bert *m, bert_acts *A, const bert_layer *W, int l,
                                    const bert_hooks *hk, int G) {
    layer_acts *la = &A->la[l];
    const bert_config *c = &m->cfg;
    int B = A->B, S = A->S, H = A->H, F = A->F;
    const float *x = hidk(A, l);
    float *y = hidk(A, l + 1);
    gather_cls(A->xc, x, B, S, H);
    float *qc = A->yc; /* free until the end of the layer */
    linear_forward(qc, A->xc, W->qkv_w, W->qkv_b, B, H, H);
    group_job j = {m, A, W, hk, l, G, 1, qc};
    run_groups(&j);
    linear_forward(la->h1, la->ctx, W->ao_w, W->ao_b, B, H, H);
    site_forward(A, hk, l, BERT_SITE_ATTN, la->a, la->h1, A->xc, W->ln1_w, W->ln1_b, c->ln_eps,
                 la->mean1, la->rstd1, B, NULL);
    linear_forward(la->u, la->a, W->ff1_w, W->ff1_b, B, H, F);
    act_apply(A, la->u, la->u, (size_t)B * F, c->act);
    linear_forward(la->h2, la->u, W->ff2_w, W->ff2_b, B, F, H);
    site_forward(A, hk, l, BERT_SITE_OUT, A->yc, la->h2, la->a, W->ln2_w, W->ln2_b, c->ln_eps,
                 la->mean2, la->rstd2, B, NULL);
    for (int b = 0; b < B; b++)
        memcpy(y + (size_t)b * S * H, A->yc + (size_t)b * H, H * sizeof(float));
}

/* A layer of a grouped inference forward: its weights once (widened once for a 16-bit base),
 * then every group of whole sequences that fits the buffers. */
static void layer_forward_grouped(const bert *m, bert_acts *A, int l, const bert_hooks *hk) {
    const bert_layer *W = layer_weights(m, l);
    int G = A->group_rows / A->S; /* >= 1: group_rows >= maxS */
    if (A->cls_only && l == m->cfg.layers - 1) {
        layer_forward_cls_group(m, A, W, l, hk, G);
        return;
    }
    group_job j = {m, A, W, hk, l, G, 1, NULL};
    run_groups(&j);
}

void bert_acts_cls_only(bert_acts *acts, int on) {
    acts->cls_only = on;
}

/* The batch into the acts (ids, types, mask, positions) and the dropout rates of a forward
 * (train: the config's, else 0). 0, or -1 when the acts cannot take it (bert_forward's NULL). */
static int forward_setup(const bert *m, bert_acts *A, const bert_batch *b, int train, af_rng *rng) {
    const bert_config *c = &m->cfg;
    if (!b || b->B > A->maxB || b->S > A->maxS || (train && !A->train) || A->L != c->layers ||
        A->H != c->hidden || A->F != c->ffn || A->NH != c->heads)
        return -1;
    if (train && !rng && (c->hidden_dropout > 0 || c->attn_dropout > 0)) return -1;
    if (!b->ids || bert_batch_check(m, b, NULL)) return -1;
    A->B = b->B, A->S = b->S;
    forward_rates(A, c, train);
    int M = b->B * b->S;
    memcpy(A->ids, b->ids, M * sizeof(int));
    for (int i = 0; i < M; i++) {
        A->type_ids[i] = b->type_ids ? b->type_ids[i] : 0;
        A->mask[i] = b->mask ? b->mask[i] : 1;
    }
    positions(A, c);
    return 0;
}

/* Which hooks are active, checked against the plan the acts were cut for; then layers
 * from .. L - 1. from > 0: hidk(A, from) holds their input, and no hook may be active below. */
static const float *forward_layers(const bert *m, bert_acts *A, int from, const bert_hooks *hooks,
                                   int train, af_rng *rng) {
    const bert_config *c = &m->cfg;
    for (int l = 0; l < c->layers; l++)
        for (int s = 0; s < BERT_NSITES; s++)
            A->active[2 * l + s] = (unsigned char)hooked(hooks, l, s);
    /* acts cut for a frozen plan hold too little for anything else */
    if (A->compact && !A->cls_only) return NULL;
    for (int p = 0; A->frozen && train && p < A->lowest && p < 2 * c->layers; p++)
        if (A->active[p]) return NULL;
    for (int p = 0; p < 2 * from; p++)
        if (A->active[p]) return NULL;
    for (int l = 0; A->rot && train && l < c->layers; l++)
        if (A->active[2 * l + BERT_SITE_ATTN]) return NULL;
    if (A->sum_out && train && hooks && !hooks->sum_only)
        for (int p = 0; p < 2 * c->layers; p++)
            if (A->active[p]) return NULL;
    A->dvalid = c->layers + 1;
    A->u_deriv = A->frozen && train;
    if (from == 0) embed_forward(m, A, hidk(A, 0), rng);
    for (int l = from; l < c->layers; l++) {
        if (A->group_rows)
            layer_forward_grouped(m, A, l, hooks);
        else if (A->cls_only && l == c->layers - 1)
            layer_forward_cls(m, A, l, hooks, rng);
        else layer_forward(m, A, l, hooks, rng);
    }
    A->fwd_cls_only = A->cls_only;
    return hidk(A, c->layers);
}

const float *bert_forward(const bert *m, bert_acts *acts, const bert_batch *b,
                          const bert_hooks *hooks, int train, af_rng *rng) {
    if (forward_setup(m, acts, b, train, rng)) return NULL;
    return forward_layers(m, acts, 0, hooks, train, rng);
}

float *bert_forward_begin(const bert *m, bert_acts *acts, const bert_batch *b, int K, int lower) {
    bert_acts *A = acts;
    if (K < 1 || K >= m->cfg.layers || forward_setup(m, A, b, 0, NULL)) return NULL;
    A->begun = K;
    if (!lower) return hidk(A, K);
    /* no hook below K, no dropout, nothing the backward reads (it stops at K): as inference */
    memset(A->active, 0, 2 * (size_t)K);
    A->u_deriv = 0;
    embed_forward(m, A, hidk(A, 0), NULL);
    for (int l = 0; l < K; l++) {
        if (A->group_rows) layer_forward_grouped(m, A, l, NULL);
        else layer_forward(m, A, l, NULL, NULL);
    }
    return hidk(A, K);
}

const float *bert_forward_end(const bert *m, bert_acts *acts, const bert_hooks *hooks, int train,
                              af_rng *rng) {
    bert_acts *A = acts;
    int K = A->begun;
    A->begun = 0;
    if (K < 1 || (train && !A->train)) return NULL;
    if (train && !rng && (m->cfg.hidden_dropout > 0 || m->cfg.attn_dropout > 0)) return NULL;
    forward_rates(A, &m->cfg, train);
    return forward_layers(m, A, K, hooks, train, rng);
}

/* ---- backward ----------------------------------------------------------------------------- */

static void zero(float *p, size_t n) {
    vec_zero(p, n);
}

/* dh, dr = d out / d(h, r) for the site out = LN(h + r) or its hook (overwritten, as hooks do). */
static void site_backward(bert_acts *A, const bert_hooks *hk, int l, int site, float *dh, float *dr,
                          const float *dout, const float *h, const float *r, const float *ln_w,
                          const float *ln_b, float *dln_w, float *dln_b, float eps,
                          const float *mean, const float *rstd, int M) {
    size_t MH = (size_t)M * A->H;
    if (A->active[2 * l + site]) {
        hk->backward(hk->ctx, l, site, dh, dr, dout, h, r, ln_w, ln_b, eps, M);
        return;
    }
    if (!dln_w && !dln_b) { /* frozen: one pass */
        layernorm_backward_set(dh, dr, NULL, dout, h, r, ln_w, mean, rstd, M, A->H);
        return;
    }
    vec_add2(A->tmp, h, r, MH);
    zero(dh, MH);
    layernorm_backward(dh, dln_w, dln_b, dout, A->tmp, ln_w, mean, rstd, M, A->H);
    memcpy(dr, dh, MH * sizeof(float));
}

static void embed_backward(const bert *m, bert_acts *A, bert_weights *g) {
    const bert_config *c = &m->cfg; /* dropout: as the forward applied it, A->ph */
    int H = A->H, M = A->B * A->S, from_pad = arch_get(c->arch)->pos == ARCH_POS_FROM_PAD;
    size_t MH = (size_t)M * H;
    float *d = A->dh1, *dsum = A->dh2;
    dropout_apply(d, dhid(A, 0), MH, A->ph, A->emb_seed);
    zero(dsum, MH);
    layernorm_backward(dsum, g->emb_ln_w, g->emb_ln_b, d, A->emb_sum, m->w.emb_ln_w, A->emb_mean,
                       A->emb_rstd, M, H);
    for (int t = 0; t < M; t++) {
        const float *x = dsum + (size_t)t * H;
        /* nn.Embedding(padding_idx=pad_token_id) never gives its padding row a gradient */
        if (A->ids[t] != c->pad_id) vec_add(g->word_emb + (size_t)A->ids[t] * H, x, H);
        /* RoBERTa's position table has padding_idx too */
        if (!(from_pad && A->pos[t] == c->pad_id))
            vec_add(g->pos_emb + (size_t)A->pos[t] * H, x, H);
        if (c->type_vocab) vec_add(g->type_emb + (size_t)A->type_ids[t] * H, x, H);
    }
}

/* Backward of layer_forward_cls. dy: the gradient of every row, of which only the first token's
 * are read. Returns 1 when the walk stops in this layer (frozen, lowest hooked site reached). */
static int layer_backward_cls(const bert *m, bert_acts *A, int l, const bert_hooks *hk,
                              bert_grads *grads, int lowest) {
    const bert_config *c = &m->cfg;
    const bert_layer *W = layer_weights(m, l);
    bert_layer *G = grads ? &grads->g.layer[l] : NULL;
    const layer_acts *la = &A->la[l];
    int B = A->B, S = A->S, M = B * S, H = A->H, F = A->F, NH = A->NH;
    size_t BH = (size_t)B * H, BF = (size_t)B * F;
    const float *x = hidk(A, l);
    float *dx = dhid(A, l), *dy = dhid(A, l + 1);
    float *dyc = A->yc; /* the forward's packed output is not needed any more */
    gather_cls(dyc, dy, B, S, H);
    site_backward(A, hk, l, BERT_SITE_OUT, A->dh2, A->da, dyc, la->h2, la->a, W->ln2_w, W->ln2_b,
                  G ? G->ln2_w : NULL, G ? G->ln2_b : NULL, c->ln_eps, la->mean2, la->rstd2, B);
    if (!grads && lowest == 2 * l + BERT_SITE_OUT) return 1;
    dropout_apply(A->dtmp, A->dh2, BH, A->ph, la->s2);
    if (G) {
        act_forward(A->g, la->u, BF, c->act);
        zero(A->dg, BF);
        linear_backward(A->dg, G->ff2_w, G->ff2_b, A->dtmp, A->g, W->ff2_w, B, F, H);
    } else {
        linear_backward_set(A->dg, A->dtmp, W->ff2_w, B, F, H);
    }
    act_grad(A, A->du, A->dg, la->u, BF, c->act);
    linear_backward(A->da, G ? G->ff1_w : NULL, G ? G->ff1_b : NULL, A->du, la->a, W->ff1_w, B, H,
                    F);
    site_backward(A, hk, l, BERT_SITE_ATTN, A->dh1, A->dxc, A->da, la->h1, A->xc, W->ln1_w,
                  W->ln1_b, G ? G->ln1_w : NULL, G ? G->ln1_b : NULL, c->ln_eps, la->mean1,
                  la->rstd1, B);
    zero(dx, (size_t)M * H);
    for (int b = 0; b < B; b++) vec_add(dx + (size_t)b * S * H, A->dxc + (size_t)b * H, H);
    if (!grads && lowest == 2 * l + BERT_SITE_ATTN) return 1;
    dropout_apply(A->dtmp, A->dh1, BH, A->ph1, la->s1);
    if (G) {
        zero(A->dctx, BH);
        linear_backward(A->dctx, G->ao_w, G->ao_b, A->dtmp, la->ctx, W->ao_w, B, H, H);
    } else {
        linear_backward_set(A->dctx, A->dtmp, W->ao_w, B, H, H);
    }
    zero(A->dqkv, (size_t)M * 3 * H);
    attention_cls_backward(A->dqkv, A->dctx, la->qkv, la->probs, B, S, NH, H / NH, A->pa, la->sp);
    /* keys and values: every row; queries: the first token's, packed */
    gemm(0, 0, M, H, 2 * H, 1.0f, A->dqkv + H, 3 * H, W->qkv_w + (size_t)H * H, H, 1.0f, dx, H);
    float *dqc = A->dxc;
    for (int b = 0; b < B; b++)
        memcpy(dqc + (size_t)b * H, A->dqkv + (size_t)b * S * 3 * H, H * sizeof(float));
    zero(A->dtmp, BH);
    linear_backward(A->dtmp, G ? G->qkv_w : NULL, G ? G->qkv_b : NULL, dqc, A->xc, W->qkv_w, B, H,
                    H);
    for (int b = 0; b < B; b++) vec_add(dx + (size_t)b * S * H, A->dtmp + (size_t)b * H, H);
    if (G) {
        gemm(1, 0, 2 * H, H, M, 1.0f, A->dqkv + H, 3 * H, x, H, 1.0f, G->qkv_w + (size_t)H * H, H);
        for (int i = 0; i < M; i++) vec_add(G->qkv_b + H, A->dqkv + (size_t)i * 3 * H + H, 2 * H);
    }
    return 0;
}

void bert_backward(const bert *m, bert_acts *acts, const float *dout, const bert_hooks *hooks,
                   bert_grads *grads) {
    bert_acts *A = acts;
    const bert_config *c = &m->cfg;
    if (!A->train || (A->frozen && grads)) return;
    int L = c->layers, B = A->B, S = A->S, M = B * S, H = A->H, F = A->F, NH = A->NH;
    size_t MH = (size_t)M * H, MF = (size_t)M * F;
    /* Frozen: stop at the lowest hooked site, below which nothing trains. */
    int lowest = INT_MAX;
    for (int p = 2 * L - 1; p >= 0; p--)
        if (A->active[p]) lowest = p;
    if (!grads && lowest == INT_MAX) return;
    float ph = A->ph, pa = A->pa;
    /* a [CLS]-only last layer reads (and bert_dhidden gives) the first tokens' rows only */
    if (!A->fwd_cls_only) memcpy(dhid(A, L), dout, MH * sizeof(float));
    else
        for (int b = 0; b < B; b++)
            memcpy(dhid(A, L) + (size_t)b * S * H, dout + (size_t)b * S * H, H * sizeof(float));
    A->dvalid = L;
    for (int l = L - 1; l >= 0; l--) {
        if (l == L - 1 && A->fwd_cls_only) {
            if (layer_backward_cls(m, A, l, hooks, grads, lowest)) return;
            A->dvalid = l;
            continue;
        }
        const bert_layer *W = layer_weights(m, l);
        bert_layer *G = grads ? &grads->g.layer[l] : NULL;
        const layer_acts *la = &A->la[l];
        const float *x = hidk(A, l);
        float *dx = dhid(A, l), *dy = dhid(A, l + 1);

        /* sum_out: h2 holds h2 + a (the backward never gets below the lowest hooked layer) */
        site_backward(A, hooks, l, BERT_SITE_OUT, A->dh2, A->da, dy, la->h2,
                      A->sum_out ? NULL : la->a, W->ln2_w, W->ln2_b, G ? G->ln2_w : NULL,
                      G ? G->ln2_b : NULL, c->ln_eps, la->mean2, la->rstd2, M);
        if (!grads && lowest == 2 * l + BERT_SITE_OUT) return;

        dropout_apply(A->dtmp, A->dh2, MH, ph, la->s2);
        if (G) {
            act_forward(A->g, la->u, MF, c->act); /* only dW2 needs it; cheaper than storing */
            zero(A->dg, MF);
            linear_backward(A->dg, G->ff2_w, G->ff2_b, A->dtmp, A->g, W->ff2_w, M, F, H);
        } else {
            linear_backward_set(A->dg, A->dtmp, W->ff2_w, M, F, H);
        }
        act_grad(A, A->du, A->dg, la->u, MF, c->act);
        linear_backward(A->da, G ? G->ff1_w : NULL, G ? G->ff1_b : NULL, A->du, la->a, W->ff1_w, M,
                        H, F);

        /* rotating hidden states: h1 holds h1 + x, the LayerNorm's whole input */
        site_backward(A, hooks, l, BERT_SITE_ATTN, A->dh1, dx, A->da, la->h1, A->rot ? NULL : x,
                      W->ln1_w, W->ln1_b, G ? G->ln1_w : NULL, G ? G->ln1_b : NULL, c->ln_eps,
                      la->mean1, la->rstd1, M);
        if (!grads && lowest == 2 * l + BERT_SITE_ATTN) return;

        dropout_apply(A->dtmp, A->dh1, MH, A->ph1, la->s1);
        if (G) {
            zero(A->dctx, MH);
            linear_backward(A->dctx, G->ao_w, G->ao_b, A->dtmp, la->ctx, W->ao_w, M, H, H);
        } else {
            linear_backward_set(A->dctx, A->dtmp, W->ao_w, M, H, H);
        }
        attention_backward(A->dqkv, NULL, A->dctx, la->qkv, A->probs_kept ? la->probs : NULL,
                           A->mask, B, S, NH, H / NH, pa, la->sp);
        linear_backward(dx, G ? G->qkv_w : NULL, G ? G->qkv_b : NULL, A->dqkv, x, W->qkv_w, M, H,
                        3 * H);
        A->dvalid = l;
    }
    if (grads) embed_backward(m, A, &grads->g);
}
