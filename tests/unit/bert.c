/* bert.c: config parsing, loading (name variants, errors), saving, fingerprints, padding
 * isolation, activation reuse, dropout, and finite-difference checks of the whole encoder's
 * backward (full mode, with dropout, and through a hooked site). */
#include "bert.h"
#include "ops.h"

#include "gradcheck.h"
#include "tap.h"
#include "testhook.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static const char *top(void) {
    const char *t = getenv("AF_TOP");
    return t ? t : ".";
}

/* Formats into one of 8 rotating buffers: for immediate use only. */
static char *path(const char *fmt, const char *a) {
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 1024, fmt, a);
    return p;
}

static int contains(const char *s, const char *sub) {
    return strstr(s, sub) != NULL;
}

/* ---- config ---- */

static void test_config(void) {
    bert_config c;
    af_err e;
    ok(bert_config_parse(&c, "{}", "c.json", &e) == 0 && c.vocab_size == 30522 && c.hidden == 768 &&
           c.layers == 12 && c.heads == 12 && c.ffn == 3072 && c.max_pos == 512 &&
           c.type_vocab == 2 && c.pad_id == 0 && c.act == AF_ACT_GELU && c.ln_eps == 1e-12f &&
           c.hidden_dropout == 0.1f && c.attn_dropout == 0.1f,
       "empty config: Hugging Face BertConfig defaults");
    ok(bert_config_parse(&c,
                         "{\"hidden_size\": 256, \"num_attention_heads\": 4, \"hidden_act\": "
                         "\"gelu_new\", \"layer_norm_eps\": 1e-5, \"pad_token_id\": null, "
                         "\"hidden_dropout_prob\": 0, \"vocab_size\": 100}",
                         "c.json", &e) == 0 &&
           c.hidden == 256 && c.heads == 4 && c.act == AF_ACT_GELU_TANH && c.ln_eps == 1e-5f &&
           c.hidden_dropout == 0 && c.vocab_size == 100,
       "config values are read");
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"{\"hidden_size\": \"x\"}", "\"hidden_size\": an integer expected"},
        {"{\"vocab_size\": 1.5}", "\"vocab_size\": an integer expected"},
        {"{\"num_hidden_layers\": 0}", "\"num_hidden_layers\": 0 out of range"},
        {"{\"num_attention_heads\": 5}", "\"hidden_size\" 768 is not a multiple of"},
        {"{\"hidden_act\": \"swishy\"}", "\"hidden_act\": one of gelu"},
        {"{\"hidden_act\": 3}", "\"hidden_act\""},
        {"{\"layer_norm_eps\": -1}", "\"layer_norm_eps\""},
        {"{\"attention_probs_dropout_prob\": 1.5}", "\"attention_probs_dropout_prob\""},
        {"{\"pad_token_id\": 40000}", "\"pad_token_id\" 40000 out of range"},
        {"{\"model_type\": \"gpt2\"}",
         "\"model_type\": one of bert, roberta, distilbert expected, \"gpt2\" found"},
        {"{\"position_embedding_type\": \"relative_key\"}", "\"position_embedding_type\""},
        {"{\"hidden_size\": 32,", "c.json: invalid JSON"},
        {"[1]", "a JSON object expected"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        e.msg[0] = 0;
        int rc = bert_config_parse(&c, bad[i].json, "c.json", &e);
        ok(rc == -1 && contains(e.msg, bad[i].want) && contains(e.msg, "c.json"),
           "config %s rejected: %s", bad[i].json, e.msg);
    }
}

/* ---- loading and saving ---- */

static int copy_file(const char *from, const char *to) {
    char *data;
    size_t n;
    af_err e;
    if (af_read_file(from, &data, &n, &e)) return -1;
    FILE *f = fopen(to, "wb");
    int rc = f && fwrite(data, 1, n, f) == n ? 0 : -1;
    if (f) fclose(f);
    free(data);
    return rc;
}

/* Writes dir/model.safetensors from src's tensors, renamed by `rename` (NULL result: dropped),
 * plus one extra tensor when extra_name is set; copies config.json. */
typedef const char *(*rename_fn)(const char *name, char *buf);

static int write_variant(const char *src, const char *dir, rename_fn rename, const char *extra_name,
                         st_dtype extra_dtype, int extra_ndim, const int64_t *extra_shape) {
    af_err e;
    st_file f;
    mkdir(dir, 0777);
    if (st_open(&f, path("%s/model.safetensors", src), &e)) return -1;
    st_writer w;
    st_writer_init(&w);
    static float zeros[4096];
    for (int i = 0; i < f.ntensors; i++) {
        char buf[256];
        const char *n = rename ? rename(f.tensors[i].name, buf) : f.tensors[i].name;
        if (n)
            st_writer_add(&w, n, f.tensors[i].dtype, f.tensors[i].ndim, f.tensors[i].shape,
                          f.tensors[i].data);
    }
    if (extra_name) st_writer_add(&w, extra_name, extra_dtype, extra_ndim, extra_shape, zeros);
    int rc = st_writer_write(&w, path("%s/model.safetensors", dir), &e);
    st_writer_free(&w);
    st_close(&f);
    if (rc == 0) rc = copy_file(path("%s/config.json", src), path("%s/config.json", dir));
    return rc;
}

static const char *strip_prefix_gamma(const char *n, char *buf) {
    if (!strncmp(n, "bert.", 5)) n += 5;
    strcpy(buf, n);
    char *p = strstr(buf, "LayerNorm.weight");
    if (p) strcpy(p, "LayerNorm.gamma");
    p = strstr(buf, "LayerNorm.bias");
    if (p) strcpy(p, "LayerNorm.beta");
    return buf;
}

static const char *drop_bias(const char *n, char *buf) {
    return strcmp(n, "bert.encoder.layer.1.output.dense.bias") ? n : NULL;
}

static const char *drop_ffn_w(const char *n, char *buf) {
    return strcmp(n, "bert.encoder.layer.0.intermediate.dense.weight") ? n : NULL;
}

static void test_load_save(void) {
    bert m, m2;
    af_err e;
    char fx[512], d1[512], d2[512], d3[512], d4[512];
    snprintf(fx, sizeof fx, "%s/tests/fixtures/encoder/f32", top());
    snprintf(d1, sizeof d1, "%s/saved", tmpdir);
    snprintf(d2, sizeof d2, "%s/saved2", tmpdir);
    snprintf(d3, sizeof d3, "%s/plain", tmpdir);
    snprintf(d4, sizeof d4, "%s/bad", tmpdir);
    if (!ok(bert_load(&m, fx, &e) == 0, "load the gamma/beta, bert.-prefixed fixture"))
        return diag("%s", e.msg);
    char fp[65];
    ok(bert_fingerprint(fx, &m.cfg, fp, &e) == 0 && !strcmp(fp, m.fingerprint) && strlen(fp) == 64,
       "bert_load records the fingerprint");
    /* save writes the modern names (bert. prefix, weight/bias); loading it back is exact */
    ok(bert_save(&m, d1, NULL, &e) == 0, "save");
    ok(bert_load(&m2, d1, &e) == 0 && m2.nparams == m.nparams &&
           !memcmp(m2.mem, m.mem, m.nparams * sizeof(float)) &&
           !memcmp(&m2.cfg, &m.cfg, sizeof m.cfg),
       "saved model loads back identical (weights and config)");
    bert_free(&m2);
    st_file f;
    if (st_open(&f, path("%s/model.safetensors", d1), &e) == 0) {
        ok(st_find(&f, "bert.encoder.layer.1.attention.self.value.weight") &&
               st_find(&f, "bert.embeddings.LayerNorm.weight") && f.ntensors == 5 + 16 * 2,
           "saved file has HF BertModel names");
        st_close(&f);
    }
    char *cj;
    ok(af_read_file(path("%s/config.json", d1), &cj, NULL, &e) == 0 &&
           contains(cj, "\"model_type\":\t\"bert\"") && contains(cj, "BertModel") &&
           contains(cj, "\"layer_norm_eps\":\t1e-12") && contains(cj, "\"hidden_act\":\t\"gelu\""),
       "saved config.json has model_type, architectures and exact values");
    free(cj);
    /* same weights, same bytes, same fingerprint; one weight changed, another fingerprint */
    char fp1[65], fp2[65];
    bert_save(&m, d2, NULL, &e);
    bert_fingerprint(d1, &m.cfg, fp1, &e), bert_fingerprint(d2, &m.cfg, fp2, &e);
    ok(!strcmp(fp1, fp2), "equal weights give equal fingerprints");
    m.w.layer[1].ff2_b[3] += 1e-3f;
    bert_save(&m, d2, NULL, &e);
    bert_fingerprint(d2, &m.cfg, fp2, &e);
    ok(strcmp(fp1, fp2) != 0, "one changed weight changes the fingerprint");
    m.w.layer[1].ff2_b[3] -= 1e-3f;
    /* the config's computation keys count, its dropout rates do not */
    bert_config c2 = m.cfg;
    c2.act = c2.act == AF_ACT_GELU ? AF_ACT_GELU_TANH : AF_ACT_GELU;
    ok(bert_fingerprint(d1, &c2, fp2, &e) == 0 && strcmp(fp1, fp2),
       "another hidden_act, another fingerprint");
    c2 = m.cfg, c2.heads = c2.heads == 1 ? 2 : 1;
    ok(bert_fingerprint(d1, &c2, fp2, &e) == 0 && strcmp(fp1, fp2),
       "other heads, another fingerprint");
    c2 = m.cfg, c2.ln_eps *= 2;
    ok(bert_fingerprint(d1, &c2, fp2, &e) == 0 && strcmp(fp1, fp2),
       "another eps, another fingerprint");
    c2 = m.cfg, c2.hidden_dropout = 0.3f, c2.attn_dropout = 0;
    ok(bert_fingerprint(d1, &c2, fp2, &e) == 0 && !strcmp(fp1, fp2),
       "dropout rates are not part of it");

    /* extra tensors appended by the caller */
    st_writer x;
    st_writer_init(&x);
    float bias[64] = {0};
    st_writer_add_f32(&x, "cls.predictions.bias", bias, 1, (int64_t)64);
    ok(bert_save(&m, d2, &x, &e) == 0 && st_open(&f, path("%s/model.safetensors", d2), &e) == 0 &&
           st_find(&f, "cls.predictions.bias") != NULL,
       "bert_save appends the caller's extra tensors");
    st_close(&f);
    st_writer_free(&x);
    ok(bert_load(&m2, d2, &e) == 0, "a file with cls.* loads (ignored)");
    bert_free(&m2);

    /* name variants: no prefix + gamma/beta */
    write_variant(d1, d3, strip_prefix_gamma, NULL, 0, 0, NULL);
    ok(bert_load(&m2, d3, &e) == 0 && !memcmp(m2.mem, m.mem, m.nparams * sizeof(float)),
       "no prefix + gamma/beta loads the same weights");
    bert_free(&m2);

    /* errors */
    write_variant(d1, d4, drop_bias, NULL, 0, 0, NULL);
    ok(bert_load(&m2, d4, &e) == -1 && contains(e.msg, "encoder.layer.1.output.dense.bias") &&
           contains(e.msg, "missing") && contains(e.msg, "[32] expected") &&
           contains(e.msg, "model.safetensors"),
       "missing tensor named: %s", e.msg);
    int64_t tshape[2] = {32, 64};
    write_variant(d1, d4, drop_ffn_w, "bert.encoder.layer.0.intermediate.dense.weight", ST_F32, 2,
                  tshape);
    ok(bert_load(&m2, d4, &e) == -1 &&
           contains(e.msg, "bert.encoder.layer.0.intermediate.dense.weight: shape [64, 32] "
                           "expected, [32, 64] found"),
       "mis-shaped tensor named with both shapes: %s", e.msg);
    int64_t bshape[1] = {32};
    write_variant(d1, d4, NULL, "bert.encoder.layer.2.output.dense.bias", ST_F32, 1, bshape);
    ok(bert_load(&m2, d4, &e) == -1 && contains(e.msg, "unexpected tensor") &&
           contains(e.msg, "encoder.layer.2.output.dense.bias"),
       "a tensor of a layer the config does not have: %s", e.msg);
    write_variant(d1, d4, drop_bias, "bert.encoder.layer.1.output.dense.bias", ST_I32, 1, bshape);
    ok(bert_load(&m2, d4, &e) == -1 && contains(e.msg, "encoder.layer.1.output.dense.bias") &&
           contains(e.msg, "I32"),
       "an integer weight is refused: %s", e.msg);
    int64_t cshape[2] = {2, 32};
    write_variant(d1, d4, NULL, "classifier.weight", ST_F32, 2, cshape);
    ok(bert_load(&m2, d4, &e) == 0, "classifier.* is ignored");
    bert_free(&m2);
    unlink(path("%s/model.safetensors", d4));
    ok(bert_load(&m2, d4, &e) == -1 && contains(e.msg, "bad/model.safetensors"),
       "no weights file: %s", e.msg);
    FILE *cf = fopen(path("%s/config.json", d4), "w");
    fputs("{\"hidden_size\": 30}", cf);
    fclose(cf);
    ok(bert_load(&m2, d4, &e) == -1 && contains(e.msg, "config.json") &&
           contains(e.msg, "hidden_size"),
       "bad config named: %s", e.msg);
    bert_free(&m);
}

/* ---- random init ---- */

static bert_config tiny(void) {
    bert_config c = {.vocab_size = 20,
                     .hidden = 16,
                     .layers = 2,
                     .heads = 2,
                     .ffn = 32,
                     .max_pos = 10,
                     .type_vocab = 2,
                     .pad_id = 0,
                     .act = AF_ACT_GELU,
                     .ln_eps = 1e-12f,
                     .hidden_dropout = 0.1f,
                     .attn_dropout = 0.1f};
    return c;
}

static void test_init(void) {
    bert_config c = tiny();
    c.vocab_size = 2000;
    bert m, m2;
    bert_init_random(&m, &c, 3);
    bert_init_random(&m2, &c, 3);
    ok(!memcmp(m.mem, m2.mem, m.nparams * 4) && !strcmp(m.fingerprint, m2.fingerprint),
       "same seed, same model");
    double s = 0, s2 = 0;
    size_t n = (size_t)c.vocab_size * c.hidden;
    for (size_t i = 0; i < n; i++)
        s += m.w.word_emb[i], s2 += (double)m.w.word_emb[i] * m.w.word_emb[i];
    double sd = sqrt(s2 / (n - c.hidden));
    int zero_pad = 1, ln = 1;
    for (int j = 0; j < c.hidden; j++) zero_pad &= m.w.word_emb[j] == 0;
    for (int j = 0; j < c.hidden; j++)
        ln &=
            m.w.layer[1].ln2_w[j] == 1 && m.w.layer[1].ln2_b[j] == 0 && m.w.layer[0].ff1_b[j] == 0;
    ok(fabs(sd - 0.02) < 0.001, "embeddings ~ N(0, 0.02) (sd %.4f)", sd);
    ok(zero_pad && ln, "padding row zero, LayerNorm 1/0, biases 0");
    bert_free(&m2);
    bert_init_random(&m2, &c, 4);
    ok(memcmp(m.mem, m2.mem, m.nparams * 4) && strcmp(m.fingerprint, m2.fingerprint),
       "another seed, another model and fingerprint");
    bert_free(&m), bert_free(&m2);
}

/* A random model with weights large enough that attention and activations are non-trivial. */
static void tiny_model(bert *m, uint64_t seed) {
    bert_config c = tiny();
    bert_init_random(m, &c, seed);
    af_rng r;
    af_rng_seed(&r, seed + 100);
    /* weights N(0, 0.1), biases and LayerNorm offsets N(0, 0.05), LayerNorm scales 1 + N(0, 0.05)
     */
    for (size_t i = 0; i < m->nparams; i++) m->mem[i] = m->mem[i] * 5 + 0.05f * af_rng_normal(&r);
    for (int l = 0; l < c.layers; l++)
        for (int j = 0; j < c.hidden; j++)
            m->w.layer[l].ln1_w[j] = 1 + 0.05f * af_rng_normal(&r),
            m->w.layer[l].ln2_w[j] = 1 + 0.05f * af_rng_normal(&r);
    for (int j = 0; j < c.hidden; j++) m->w.emb_ln_w[j] = 1 + 0.05f * af_rng_normal(&r);
}

/* ---- padding, reuse, dropout ---- */

static void test_padding(void) {
    bert m;
    tiny_model(&m, 11);
    int H = m.cfg.hidden;
    /* sequence 0: 5 real tokens of 8; sequence 1: all 8 real */
    int ids[16] = {2, 5, 7, 9, 3, 0, 0, 0, 2, 4, 6, 8, 10, 12, 14, 3};
    int types[16] = {0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1};
    int mask[16] = {1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    bert_batch b = {2, 8, ids, types, mask};
    af_arena a;
    af_arena_init(&a, bert_acts_bytes(&m.cfg, 3, 9, 0));
    bert_acts *A = bert_acts_new(&a, &m.cfg, 3, 9, 0);
    float out1[16 * 16], out2[16 * 16];
    memcpy(out1, bert_forward(&m, A, &b, NULL, 0, NULL), sizeof out1);
    int ids2[16], types2[16];
    memcpy(ids2, ids, sizeof ids), memcpy(types2, types, sizeof types);
    for (int t = 5; t < 8; t++) ids2[t] = 17 + t % 3, types2[t] = 1;
    bert_batch b2 = {2, 8, ids2, types2, mask};
    memcpy(out2, bert_forward(&m, A, &b2, NULL, 0, NULL), sizeof out2);
    ok(!memcmp(out1, out2, 5 * H * 4) && !memcmp(out1 + 8 * H, out2 + 8 * H, 8 * H * 4),
       "changing padding tokens changes no real token's output (bit-identical)");
    /* the short sequence alone, without padding */
    bert_batch b3 = {1, 5, ids, types, mask};
    const float *o3 = bert_forward(&m, A, &b3, NULL, 0, NULL);
    double d = tap_maxdiff(o3, out1, 5 * H);
    ok(d < 1e-5, "a padded sequence equals the same sequence unpadded (max diff %.2g)", d);
    bert_batch b4 = {1, 8, ids + 8, types + 8, mask + 8};
    d = tap_maxdiff(bert_forward(&m, A, &b4, NULL, 0, NULL), out1 + 8 * H, 8 * H);
    ok(d < 1e-5, "a sequence does not depend on the others in its batch (%.2g)", d);

    /* acts sized 3x9 serve a 2x8 batch exactly like acts made for 2x8 */
    af_arena a2;
    af_arena_init(&a2, bert_acts_bytes(&m.cfg, 2, 8, 0));
    bert_acts *A2 = bert_acts_new(&a2, &m.cfg, 2, 8, 0);
    ok(!memcmp(bert_forward(&m, A2, &b, NULL, 0, NULL), out1, sizeof out1),
       "activations made for a larger shape give the same result");
    ok(a2.used == bert_acts_bytes(&m.cfg, 2, 8, 0), "bert_acts_bytes is exactly what is carved");
    bert_batch big = {3, 10, ids, types, mask};
    ok(bert_forward(&m, A2, &big, NULL, 0, NULL) == NULL, "a larger batch than the acts: NULL");
    af_rng rng;
    af_rng_seed(&rng, 1);
    ok(bert_forward(&m, A2, &b, NULL, 1, &rng) == NULL, "train on inference acts: NULL");
    ids2[3] = 20;
    af_err e;
    ok(bert_forward(&m, A2, &b2, NULL, 0, NULL) == NULL && bert_batch_check(&m, &b2, &e) == -1 &&
           contains(e.msg, "sequence 0 token 3: input_ids 20 out of range [0, 20)"),
       "out-of-range id refused: %s", e.msg);
    ids2[3] = 1, types2[1] = 2;
    ok(bert_batch_check(&m, &b2, &e) == -1 && contains(e.msg, "token_type_ids 2"),
       "out-of-range type id refused: %s", e.msg);
    types2[1] = 0;
    bert_batch longb = {1, 11, ids, types, mask};
    ok(bert_batch_check(&m, &longb, &e) == -1 && contains(e.msg, "max_position_embeddings 10"),
       "too long a sequence refused: %s", e.msg);
    af_arena_free(&a2);
    af_arena_free(&a);

    /* train mode: dropout 0 equals inference; dropout on is seeded and changes the output */
    af_arena_init(&a, bert_acts_bytes(&m.cfg, 2, 8, 1));
    A = bert_acts_new(&a, &m.cfg, 2, 8, 1);
    ok(a.used > bert_acts_bytes(&m.cfg, 2, 8, 0), "training keeps more activations");
    float p = m.cfg.hidden_dropout;
    m.cfg.hidden_dropout = m.cfg.attn_dropout = 0;
    ok(!memcmp(bert_forward(&m, A, &b, NULL, 1, &rng), out1, sizeof out1),
       "train mode with dropout 0 equals inference");
    m.cfg.hidden_dropout = m.cfg.attn_dropout = p;
    af_rng_seed(&rng, 1);
    memcpy(out2, bert_forward(&m, A, &b, NULL, 1, &rng), sizeof out2);
    ok(memcmp(out1, out2, sizeof out1) != 0, "dropout changes the output in train mode");
    af_rng_seed(&rng, 1);
    ok(!memcmp(bert_forward(&m, A, &b, NULL, 1, &rng), out2, sizeof out2),
       "same seed, same output");
    af_rng_seed(&rng, 2);
    ok(memcmp(bert_forward(&m, A, &b, NULL, 1, &rng), out2, sizeof out2) != 0,
       "another seed, another output");
    af_arena_free(&a);
    bert_free(&m);
}

/* ---- the whole encoder against finite differences ---- */

typedef struct {
    bert *m;
    bert_acts *A;
    const bert_batch *b;
    const bert_hooks *hk;
    const float *R;
    size_t n;
} enc_ctx;

static double enc_loss(void *p) {
    enc_ctx *c = p;
    af_rng r;
    af_rng_seed(&r, 77); /* the same dropout masks every call */
    const float *out = bert_forward(c->m, c->A, c->b, c->hk, 1, &r);
    return gc_dot(out, c->R, c->n);
}

#define ENC_TOL 1e-2

/* skip: the hooked sites, whose LayerNorm parameters belong to the hook (NULL: none) */
static void check_all(enc_ctx *c, bert_grads *g, const char *what, int (*skip)[BERT_NSITES]) {
    bert_weights *w = &c->m->w, *gw = &g->g;
    const bert_config *cf = &c->m->cfg;
    size_t H = cf->hidden, F = cf->ffn;
    double r;
    /* the padding row has no gradient by design (nn.Embedding padding_idx): skip row pad_id = 0 */
    r = gc_check(w->word_emb + H, gw->word_emb + H, (cf->vocab_size - 1) * H, 60, 1e-2f, enc_loss,
                 c);
    ok(r < ENC_TOL, "%s: word embeddings (%.2g)", what, r);
    r = gc_check(w->pos_emb, gw->pos_emb, cf->max_pos * H, 60, 1e-3f, enc_loss, c);
    ok(r < ENC_TOL, "%s: position embeddings (%.2g)", what, r);
    r = gc_check(w->type_emb, gw->type_emb, cf->type_vocab * H, 32, 1e-3f, enc_loss, c);
    ok(r < ENC_TOL, "%s: token type embeddings (%.2g)", what, r);
    r = gc_check(w->emb_ln_w, gw->emb_ln_w, H, 16, 1e-3f, enc_loss, c);
    ok(r < ENC_TOL, "%s: embeddings LayerNorm weight (%.2g)", what, r);
    r = gc_check(w->emb_ln_b, gw->emb_ln_b, H, 16, 1e-3f, enc_loss, c);
    ok(r < ENC_TOL, "%s: embeddings LayerNorm bias (%.2g)", what, r);
    for (int l = 0; l < cf->layers; l++) {
        bert_layer *W = &w->layer[l], *G = &gw->layer[l];
        struct {
            float *p, *g;
            size_t n;
            const char *name;
            int site;
        } t[] = {
            {W->qkv_w, G->qkv_w, 3 * H * H, "query/key/value weight", -1},
            {W->qkv_b, G->qkv_b, 3 * H, "query/key/value bias", -1},
            {W->ao_w, G->ao_w, H * H, "attention output weight", -1},
            {W->ao_b, G->ao_b, H, "attention output bias", -1},
            {W->ln1_w, G->ln1_w, H, "attention LayerNorm weight", BERT_SITE_ATTN},
            {W->ln1_b, G->ln1_b, H, "attention LayerNorm bias", BERT_SITE_ATTN},
            {W->ff1_w, G->ff1_w, F * H, "intermediate weight", -1},
            {W->ff1_b, G->ff1_b, F, "intermediate bias", -1},
            {W->ff2_w, G->ff2_w, H * F, "output weight", -1},
            {W->ff2_b, G->ff2_b, H, "output bias", -1},
            {W->ln2_w, G->ln2_w, H, "output LayerNorm weight", BERT_SITE_OUT},
            {W->ln2_b, G->ln2_b, H, "output LayerNorm bias", BERT_SITE_OUT},
        };
        for (size_t k = 0; k < sizeof t / sizeof *t; k++) {
            if (skip && t[k].site >= 0 && skip[l][t[k].site]) continue;
            r = gc_check(t[k].p, t[k].g, t[k].n, 60, 1e-3f, enc_loss, c);
            ok(r < ENC_TOL, "%s: layer %d %s (%.2g)", what, l, t[k].name, r);
        }
    }
}

static void test_encoder_fd(void) {
    bert m;
    tiny_model(&m, 21);
    int ids[10] = {2, 5, 7, 9, 3, 1, 4, 6, 0, 0};
    int types[10] = {0, 0, 1, 1, 1, 0, 1, 1, 0, 0};
    int mask[10] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    bert_batch b = {2, 5, ids, types, mask};
    int M = 10, H = m.cfg.hidden;
    af_arena a;
    af_arena_init(&a, bert_acts_bytes(&m.cfg, 2, 5, 1));
    bert_acts *A = bert_acts_new(&a, &m.cfg, 2, 5, 1);
    af_rng r;
    af_rng_seed(&r, 5);
    float *R = malloc((size_t)M * H * 4);
    for (int i = 0; i < M * H; i++) R[i] = af_rng_normal(&r);
    enc_ctx c = {&m, A, &b, NULL, R, (size_t)M * H};
    bert_grads g;
    bert_grads_init(&g, &m.cfg);

    /* full mode, dropout 0.1 everywhere (fixed masks) */
    enc_loss(&c);
    bert_backward(&m, A, R, NULL, &g);
    check_all(&c, &g, "full backward, dropout", NULL);

    /* frozen mode with a pass-through hook at layer 0's attention site: the input gradients of
     * every layer above equal the full mode's */
    float *full1 = malloc((size_t)M * H * 4);
    enc_loss(&c);
    bert_grads_zero(&g, &m.cfg);
    bert_backward(&m, A, R, NULL, &g);
    memcpy(full1, bert_dhidden(A, 0), (size_t)M * H * 4);
    testhook th;
    th_init(&th, m.cfg.layers, H, M, 0.0f);
    th.on[0][BERT_SITE_ATTN] = 1;
    bert_hooks hk = th_hooks(&th);
    c.hk = &hk;
    enc_loss(&c);
    bert_backward(&m, A, R, &hk, NULL);
    ok(bert_dhidden(A, 0) && !memcmp(bert_dhidden(A, 0), full1, (size_t)M * H * 4) &&
           bert_dhidden(A, -1) == NULL,
       "frozen mode gives the full mode's hidden gradients down to the hooked site, no further");

    /* full mode through a real hook (c = 0.5) at layer 0's output site and layer 1's attention
     * site; the hooked sites' LayerNorm parameters are the hook's to train, so not checked */
    th_free(&th);
    th_init(&th, m.cfg.layers, H, M, 0.5f);
    th.on[0][BERT_SITE_OUT] = th.on[1][BERT_SITE_ATTN] = 1;
    hk = th_hooks(&th);
    enc_loss(&c);
    bert_grads_zero(&g, &m.cfg);
    bert_backward(&m, A, R, &hk, &g);
    check_all(&c, &g, "full backward through hooked sites", th.on);
    th_free(&th);
    free(full1);
    free(R);
    bert_grads_free(&g);
    af_arena_free(&a);
    bert_free(&m);
}

/* The frozen plan (bert_acts_new_frozen: little kept, buffers shared with the hooks' scratch,
 * attention probabilities recomputed from S = 128 up, act' stored for u, hidden states rotating
 * when no attention site is hooked) against the general training acts: the same outputs, the same
 * gradients at and above the lowest hooked site, the same dh at the hooks, bit for bit; with
 * dropout and padding. attn: layer 1's hook sits at its attention site, else at its output;
 * sum: the hooks are sum_only (out = LN(h + r)) and the plan passes them h + r alone. */
static void frozen_plan_case(bert *m, int S, int cls, int attn, int sum) {
    const bert_config *c = &m->cfg;
    int B = 2, M = B * S, H = c->hidden, site1 = attn ? BERT_SITE_ATTN : BERT_SITE_OUT;
    int *ids = malloc(M * sizeof(int)), *mask = malloc(M * sizeof(int));
    af_rng r;
    af_rng_seed(&r, 3);
    for (int i = 0; i < M; i++)
        ids[i] = 1 + (int)af_rng_below(&r, 19), mask[i] = i % S < S - 2 * (i / S);
    bert_batch b = {B, S, ids, NULL, mask};
    float *dout = calloc((size_t)M * H, 4);
    for (int i = 0; i < M * H; i++)
        if (!cls || (i / H) % S == 0) dout[i] = af_rng_normal(&r);
    size_t MH = (size_t)M * H;
    float *out[2], *dh[2], *hk_dh[2];
    int refused = 1, flags = (attn ? BERT_PLAN_ATTN_HOOKS : 0) | (sum ? BERT_PLAN_SUM_HOOKS : 0);
    for (int v = 0; v < 2; v++) { /* 0: general acts, 1: frozen plan */
        testhook th;
        th_init(&th, c->layers, H, M, sum ? 0.0f : 0.5f);
        th.on[0][BERT_SITE_OUT] = th.on[2][BERT_SITE_OUT] = th.on[1][site1] = 1;
        bert_hooks hk = th_hooks(&th);
        af_arena a;
        af_arena_init(&a, v ? bert_acts_bytes_frozen(c, B, S, 1, cls, MH, flags)
                            : bert_acts_bytes(c, B, S, 1));
        bert_acts *A = v ? bert_acts_new_frozen(&a, c, B, S, 1, cls, MH, flags)
                         : bert_acts_new(&a, c, B, S, 1);
        bert_acts_cls_only(A, cls);
        if (v) memset(bert_acts_hook_scratch(A), 0x7f, MH * 4); /* the hooks' to scribble on */
        af_rng dr;
        af_rng_seed(&dr, 8);
        const float *h = bert_forward(m, A, &b, &hk, 1, &dr);
        out[v] = malloc(MH * 4);
        memcpy(out[v], h, MH * 4);
        bert_backward(m, A, dout, &hk, NULL);
        dh[v] = malloc(MH * 4);
        memcpy(dh[v], bert_dhidden(A, 0), MH * 4);
        hk_dh[v] = malloc(MH * 4);
        memcpy(hk_dh[v], th.dh[1][site1], MH * 4);
        if (v && sum) { /* a plan promised sum_only hooks refuses others */
            hk.sum_only = 0;
            refused &= bert_forward(m, A, &b, &hk, 1, &dr) == NULL;
            hk.sum_only = 1;
        }
        if (v && !attn) { /* a plan promised no attention hooks refuses one */
            th.on[1][BERT_SITE_ATTN] = 1;
            refused &= bert_forward(m, A, &b, &hk, 1, &dr) == NULL;
        }
        th_free(&th);
        af_arena_free(&a);
    }
    int same_out = 1;
    for (int i = 0; i < M; i++)
        if (!cls || i % S == 0)
            same_out &= !memcmp(out[0] + (size_t)i * H, out[1] + (size_t)i * H, H * 4);
    ok(same_out && !memcmp(dh[0], dh[1], MH * 4) && !memcmp(hk_dh[0], hk_dh[1], MH * 4) && refused,
       "frozen plan, S = %d%s, %s%s: outputs, hidden gradients and hooks' gradients as the "
       "general acts give them, bit for bit",
       S, cls ? ", [CLS] only" : "", attn ? "attention site hooked" : "hidden states rotating",
       sum ? ", hooks given h + r" : "");
    for (int v = 0; v < 2; v++) free(out[v]), free(dh[v]), free(hk_dh[v]);
    free(ids), free(mask), free(dout);
}

static void test_frozen_plan(void) {
    bert m;
    bert_config c = tiny();
    c.max_pos = 160, c.layers = 3;
    bert_init_random(&m, &c, 31);
    for (size_t i = 0; i < m.nparams; i++) m.mem[i] *= 5;
    for (int S = 7; S <= 130; S += 123)
        for (int cls = 0; cls < 2; cls++)
            for (int attn = 0; attn < 2; attn++)
                for (int sum = 0; sum < 2; sum++) frozen_plan_case(&m, S, cls, attn, sum);
    bert_free(&m);
}

static void rm_rf(const char *dir) {
    const char *subs[] = {"saved", "saved2", "plain", "bad", "as"};
    const char *files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 5; i++) {
        char d[512], f[600];
        snprintf(d, sizeof d, "%s/%s", dir, subs[i]);
        for (int j = 0; j < 2; j++) {
            snprintf(f, sizeof f, "%s/%s", d, files[j]);
            unlink(f);
        }
        rmdir(d);
    }
    rmdir(dir);
}

/* Every byte counts, also in a file of several MiB (a sampled hash once missed most of them),
 * and the digest is the same on one thread and on several. */
static void test_fingerprint_whole(void) {
    bert_config c = {0};
    c.vocab_size = 90000, c.hidden = 16, c.layers = 1, c.heads = 2, c.ffn = 32, c.max_pos = 16;
    c.type_vocab = 2, c.act = AF_ACT_GELU, c.ln_eps = 1e-12f;
    bert m;
    af_err e;
    bert_init_random(&m, &c, 5);
    char *d = path("%s/big", tmpdir), fp1[65], fp2[65], fp3[65];
    int good = bert_save(&m, d, NULL, &e) == 0 && bert_fingerprint(d, &c, fp1, &e) == 0;
    /* a value 2 KiB past a MiB boundary of the tensor data, and one in the last chunk */
    m.w.word_emb[(size_t)(3 << 20) / 4 + 512] += 1.0f;
    good = good && bert_save(&m, d, NULL, &e) == 0 && bert_fingerprint(d, &c, fp2, &e) == 0;
    ok(good && strcmp(fp1, fp2), "a weight outside any sampled block changes the fingerprint");
    af_set_threads(2);
    ok(bert_fingerprint(d, &c, fp3, &e) == 0 && !strcmp(fp2, fp3), "threads do not change it");
    af_set_threads(1);
    bert_free(&m);
}

/* A 16-bit base kept 16-bit (bert_load_16) gives the bits of one widened at load, in every
 * plan's forward and in a backward; an F32 base is loaded as bert_load does. */
static void test_load_16(void) {
    static const char *dirs[] = {"f16", "bf16", "f32"};
    for (int d = 0; d < 3; d++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/tests/fixtures/encoder/%s", top(), dirs[d]);
        bert a, b;
        af_err e;
        if (!ok(bert_load(&a, dir, &e) == 0 && bert_load_16(&b, dir, &e) == 0, "%s: both loads",
                dirs[d]))
            return diag("%s", e.msg);
        ok(!strcmp(a.fingerprint, b.fingerprint) && (b.w16_dtype != 0) == (d < 2) &&
               (b.we16_dtype != 0) == (d < 2),
           "%s: the same base; layers and word embeddings kept 16-bit: %d", dirs[d],
           b.w16_dtype != 0);
        enum { B = 3, S = 9 };
        int ids[B * S], mask[B * S];
        for (int i = 0; i < B * S; i++)
            ids[i] = 1 + (i * 7) % (a.cfg.vocab_size - 1), mask[i] = i % S < S - (i / S);
        bert_batch bb = {B, S, ids, NULL, mask};
        size_t n = (size_t)B * S * a.cfg.hidden;
        af_arena ra, rb;
        af_arena_init(&ra, bert_acts_bytes(&a.cfg, B, S, 1));
        af_arena_init(&rb, bert_acts_bytes(&b.cfg, B, S, 1));
        bert_acts *A = bert_acts_new(&ra, &a.cfg, B, S, 1),
                  *Bc = bert_acts_new(&rb, &b.cfg, B, S, 1);
        const float *oa = bert_forward(&a, A, &bb, NULL, 0, NULL);
        const float *ob = bert_forward(&b, Bc, &bb, NULL, 0, NULL);
        ok(oa && ob && !memcmp(oa, ob, n * sizeof(float)), "%s: forward, the same bits", dirs[d]);
        /* a backward reads every layer again, from the top */
        float *dout = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) dout[i] = (float)((i * 13) % 7) - 3.0f;
        bert_forward(&a, A, &bb, NULL, 1, NULL);
        bert_forward(&b, Bc, &bb, NULL, 1, NULL);
        bert_grads ga, gb;
        bert_grads_init(&ga, &a.cfg), bert_grads_init(&gb, &b.cfg);
        bert_backward(&a, A, dout, NULL, &ga);
        bert_backward(&b, Bc, dout, NULL, &gb);
        ok(!memcmp(ga.mem, gb.mem, a.nparams * sizeof(float)), "%s: backward, the same bits",
           dirs[d]);
        bert_grads_free(&ga), bert_grads_free(&gb);
        free(dout);
        af_arena_free(&ra), af_arena_free(&rb);
        bert_free(&a), bert_free(&b);
    }
}

/* f32 -> dtype -> f32, as bert_load_as holds an F32 base's weights. */
static void round_as(float *p, size_t n, int dtype) {
    for (size_t i = 0; i < n; i++)
        p[i] = dtype == ST_F16 ? st_f16_to_f32(st_f32_to_f16(p[i]))
                               : st_bf16_to_f32(st_f32_to_bf16(p[i]));
}

/* bert_load_as holds an F32 base's layers and word embeddings rounded to F16 or BF16: the same
 * bits as the float32 model with exactly those tensors rounded (the rounding itself is checked
 * edge by edge in safetensors.t); the fingerprint is the file's; F16's range is enforced. */
static void test_load_as(void) {
    bert_config c = {0};
    c.vocab_size = 300, c.hidden = 32, c.layers = 2, c.heads = 4, c.ffn = 64, c.max_pos = 40;
    c.type_vocab = 2, c.act = AF_ACT_GELU, c.ln_eps = 1e-12f;
    bert m;
    af_err e;
    bert_init_random(&m, &c, 21);
    char *d = path("%s/as", tmpdir);
    if (!ok(bert_save(&m, d, NULL, &e) == 0, "save an F32 base")) return diag("%s", e.msg);
    bert_free(&m);
    static const int dts[] = {ST_F16, ST_BF16};
    for (int k = 0; k < 2; k++) {
        bert a, r;
        if (!ok(bert_load(&a, d, &e) == 0 && bert_load_as(&r, d, dts[k], &e) == 0, "%s: loads",
                dts[k] == ST_F16 ? "f16" : "bf16"))
            return diag("%s", e.msg);
        size_t emb = (size_t)(a.w.layer[0].qkv_w - a.mem);
        round_as(a.w.word_emb, (size_t)c.vocab_size * c.hidden, dts[k]);
        round_as(a.mem + emb, a.nparams - emb, dts[k]);
        ok(!strcmp(a.fingerprint, r.fingerprint) && r.rounded && r.w16_dtype == dts[k] &&
               r.we16_dtype == dts[k],
           "%s: the file's fingerprint, held rounded", dts[k] == ST_F16 ? "f16" : "bf16");
        enum { B = 2, S = 11 };
        int ids[B * S];
        for (int i = 0; i < B * S; i++) ids[i] = (i * 37) % c.vocab_size;
        bert_batch bb = {B, S, ids, NULL, NULL};
        af_arena ra, rr;
        af_arena_init(&ra, bert_acts_bytes_lean(&c, B, S, 0));
        af_arena_init(&rr, bert_acts_bytes_lean(&c, B, S, 0));
        bert_acts *A = bert_acts_new_lean(&ra, &c, B, S, 0),
                  *R = bert_acts_new_lean(&rr, &c, B, S, 0);
        const float *oa = bert_forward(&a, A, &bb, NULL, 0, NULL);
        const float *orr = bert_forward(&r, R, &bb, NULL, 0, NULL);
        ok(oa && orr && !memcmp(oa, orr, (size_t)B * S * c.hidden * sizeof(float)),
           "%s: forward, the bits of the float32 model with those tensors rounded",
           dts[k] == ST_F16 ? "f16" : "bf16");
        af_arena_free(&ra), af_arena_free(&rr);
        bert_free(&a), bert_free(&r);
    }
    /* past F16's range: refused for F16 naming the tensor, fine for BF16 */
    bert_init_random(&m, &c, 21);
    m.w.layer[1].ff1_w[5] = 70000.0f;
    ok(bert_save(&m, d, NULL, &e) == 0, "save a base with a weight of 70000");
    bert_free(&m);
    ok(bert_load_as(&m, d, ST_F16, &e) == -1 &&
           contains(e.msg, "layer.1.intermediate.dense.weight") && contains(e.msg, "F16's range"),
       "f16: a weight past 65504 is an error naming the tensor: %s", e.msg);
    ok(bert_load_as(&m, d, ST_BF16, &e) == 0, "bf16 holds it");
    bert_free(&m);
    ok(bert_load_as(&m, d, 99, &e) == -1, "an unknown type is refused");
}

/* Inference through lean acts, in groups of sequences (several groups: B·S past the 512 rows
 * of a group), one at a time or two at once on two threads, or the batch at once, gives the
 * bits of the general forward, padded sequences and the [CLS]-only last layer included. */
static void test_lean_groups(void) {
    bert_config c = {0};
    c.vocab_size = 200, c.hidden = 32, c.layers = 2, c.heads = 4, c.ffn = 64, c.max_pos = 80;
    c.type_vocab = 2, c.act = AF_ACT_GELU, c.ln_eps = 1e-12f;
    bert m;
    bert_init_random(&m, &c, 8);
    /* 1260 rows: groups of 7 sequences (490 rows), 7, then 4; two at once: sequences 0-8 and
     * 9-17, each in a group of 7 then 2 */
    enum { B = 18, S = 70 };
    ok(bert_lean_rows(B, S, 1) == 512 && bert_lean_rows(B, S, 0) == B * S &&
           bert_lean_rows(2, 600, 1) == 600 && bert_lean_rows(900, 1, 1) == 900 &&
           bert_lean_rows(B, S, 2) == 512,
       "lean rows: 512, at least a sequence and the batch's first tokens");
    bert_config wide = c;
    wide.hidden = 768;
    ok(bert_lean_groups(&c, 2) == 2 && bert_lean_groups(&c, 1) == 1 &&
           bert_lean_groups(&wide, 2) == 1,
       "groups at once: one per thread for a narrow encoder, one for a wide one");
    int *ids = malloc(B * S * sizeof(int)), *mask = malloc(B * S * sizeof(int));
    for (int i = 0; i < B * S; i++)
        ids[i] = (i * 31 + 7) % c.vocab_size, mask[i] = i % S < S - 5 * (i / S);
    /* 18 sequences share out evenly between two groups at once; 13 do not, and run one group at
     * a time in the same acts */
    for (int threads = 1; threads <= 2; threads++)
        for (int nb = B; nb >= 13; nb -= 5) {
            bert_batch bb = {nb, S, ids, NULL, mask};
            af_set_threads(threads);
            for (int cls = 0; cls < 2; cls++) {
                af_arena rf, rg, rw, r2;
                af_arena_init(&rf, bert_acts_bytes(&c, B, S, 0));
                af_arena_init(&rg, bert_acts_bytes_lean(&c, B, S, 1));
                af_arena_init(&rw, bert_acts_bytes_lean(&c, B, S, 0));
                af_arena_init(&r2, bert_acts_bytes_lean(&c, B, S, 2));
                bert_acts *F = bert_acts_new(&rf, &c, B, S, 0),
                          *G = bert_acts_new_lean(&rg, &c, B, S, 1),
                          *W = bert_acts_new_lean(&rw, &c, B, S, 0),
                          *G2 = bert_acts_new_lean(&r2, &c, B, S, 2);
                bert_acts_cls_only(F, cls), bert_acts_cls_only(G, cls), bert_acts_cls_only(W, cls);
                bert_acts_cls_only(G2, cls);
                const float *of = bert_forward(&m, F, &bb, NULL, 0, NULL);
                const float *og = bert_forward(&m, G, &bb, NULL, 0, NULL);
                const float *ow = bert_forward(&m, W, &bb, NULL, 0, NULL);
                const float *o2 = bert_forward(&m, G2, &bb, NULL, 0, NULL);
                int same_g = 1, same_w = 1, same_2 = 1;
                for (int b = 0; of && og && ow && o2 && b < nb; b++) { /* [CLS]-only: first rows */
                    size_t at = (size_t)b * S * c.hidden, len = (cls ? 1 : (size_t)S) * c.hidden;
                    same_g &= !memcmp(of + at, og + at, len * sizeof(float));
                    same_w &= !memcmp(of + at, ow + at, len * sizeof(float));
                    same_2 &= !memcmp(of + at, o2 + at, len * sizeof(float));
                }
                ok(of && og && ow && o2 && same_g && same_w && same_2,
                   "lean inference%s, %d thread(s), %d sequences: in groups, two groups at once "
                   "and "
                   "at once, the general forward's bits",
                   cls ? ", [CLS]-only last layer" : "", threads, nb);
                af_arena_free(&rf), af_arena_free(&rg), af_arena_free(&rw), af_arena_free(&r2);
            }
        }
    af_set_threads(1);
    free(ids), free(mask);
    bert_free(&m);
}

int main(void) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/af-bert-XXXXXX", t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_config();
    test_load_save();
    test_fingerprint_whole();
    test_load_16();
    test_load_as();
    test_lean_groups();
    test_init();
    test_padding();
    test_encoder_fd();
    test_frozen_plan();
    rm_rf(tmpdir);
    return done_testing();
}
