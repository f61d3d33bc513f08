/* arch.c: the architecture table's names (HF state dicts, AdapterHub's adapters and fusion),
 * each architecture's config keys and defaults, save/load round trips, and the forward's
 * differences: RoBERTa's positions (padding never moves a real token's output), DistilBERT's
 * ignored token types and sinusoidal init. */
#include "arch.h"
#include "bert.h"
#include "ops.h"

#include "gradcheck.h"
#include "tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void name_is(const char *want, int rc, const char *got) {
    ok(rc == 0 && !strcmp(got, want), "%s (got %s)", want, rc ? "an error" : got);
}

static void test_names(void) {
    char b[256];
    const af_arch *bert = arch_get(ARCH_BERT), *rob = arch_get(ARCH_ROBERTA),
                  *dis = arch_get(ARCH_DISTILBERT);
    ok(arch_find("bert") == ARCH_BERT && arch_find("roberta") == ARCH_ROBERTA &&
           arch_find("distilbert") == ARCH_DISTILBERT && arch_find("gpt2") == -1,
       "arch_find by model_type");
    name_is("bert.encoder.layer.3.attention.self.query.weight",
            arch_tensor_name(b, sizeof b, bert, AT_Q_W, 3, 1), b);
    name_is("encoder.layer.3.attention.self.query.weight",
            arch_tensor_name(b, sizeof b, bert, AT_Q_W, 3, 0), b);
    name_is("roberta.encoder.layer.1.output.LayerNorm.bias",
            arch_tensor_name(b, sizeof b, rob, AT_LN2_B, 1, 1), b);
    name_is("roberta.embeddings.token_type_embeddings.weight",
            arch_tensor_name(b, sizeof b, rob, AT_TYPE, 0, 1), b);
    name_is("distilbert.transformer.layer.5.attention.v_lin.bias",
            arch_tensor_name(b, sizeof b, dis, AT_V_B, 5, 1), b);
    name_is("transformer.layer.0.sa_layer_norm.weight",
            arch_tensor_name(b, sizeof b, dis, AT_LN1_W, 0, 0), b);
    name_is("distilbert.transformer.layer.0.ffn.lin2.weight",
            arch_tensor_name(b, sizeof b, dis, AT_FF2_W, 0, 1), b);
    name_is("distilbert.embeddings.position_embeddings.weight",
            arch_tensor_name(b, sizeof b, dis, AT_POS, 0, 1), b);
    ok(arch_tensor_name(b, sizeof b, dis, AT_TYPE, 0, 1) == -1, "DistilBERT has no token types");
    ok(arch_tensor_name(b, 10, bert, AT_Q_W, 3, 1) == -1, "a buffer too small is an error");
    name_is("bert.encoder.layer.2.attention.output.adapters.x.adapter_up.weight",
            arch_adapter_name(b, sizeof b, bert, 2, BERT_SITE_ATTN, "x", "adapter_up.weight"), b);
    name_is("roberta.encoder.layer.2.output.adapters.x.adapter_down.0.weight",
            arch_adapter_name(b, sizeof b, rob, 2, BERT_SITE_OUT, "x", "adapter_down.0.weight"), b);
    name_is("distilbert.transformer.layer.2.attention_adapters.adapters.x.adapter_up.bias",
            arch_adapter_name(b, sizeof b, dis, 2, BERT_SITE_ATTN, "x", "adapter_up.bias"), b);
    name_is("distilbert.transformer.layer.0.output_adapters.adapter_fusion_layer.a,b.query.weight",
            arch_fusion_name(b, sizeof b, dis, 0, BERT_SITE_OUT, "a,b", "query.weight"), b);
    name_is("roberta.encoder.layer.11.output.adapter_fusion_layer.a,b.value.weight",
            arch_fusion_name(b, sizeof b, rob, 11, BERT_SITE_OUT, "a,b", "value.weight"), b);
    name_is("heads.t.4.bias", arch_head_name(b, sizeof b, "t", "4.bias"), b);
    ok(!strcmp(rob->mlm[AM_LN_W], "lm_head.layer_norm.weight") &&
           !strcmp(dis->mlm[AM_DENSE_W], "vocab_transform.weight") &&
           !strcmp(bert->mlm[AM_BIAS], "cls.predictions.bias"),
       "MLM head names");
}

static void test_config(void) {
    bert_config c;
    af_err e;
    ok(bert_config_parse(&c, "{\"model_type\":\"roberta\"}", "c.json", &e) == 0 &&
           c.arch == ARCH_ROBERTA && c.pad_id == 1 && c.type_vocab == 2 && c.max_pos == 512 &&
           bert_max_len(&c) == 510 && bert_head_dropout(&c) == c.hidden_dropout,
       "RobertaConfig's defaults: pad 1, 510 tokens, the head's dropout the hidden one");
    ok(bert_config_parse(&c,
                         "{\"model_type\":\"roberta\",\"max_position_embeddings\":514,"
                         "\"type_vocab_size\":1,\"layer_norm_eps\":1e-5,"
                         "\"classifier_dropout\":0.3,\"hidden_dropout_prob\":0.1}",
                         "c.json", &e) == 0 &&
           bert_max_len(&c) == 512 && c.type_vocab == 1 && c.ln_eps == 1e-5f &&
           fabsf(bert_head_dropout(&c) - 0.3f) < 1e-7,
       "roberta-base's config: 512 tokens; classifier_dropout for the head");
    ok(bert_config_parse(&c, "{\"model_type\":\"distilbert\"}", "c.json", &e) == 0 &&
           c.arch == ARCH_DISTILBERT && c.layers == 6 && c.hidden == 768 && c.type_vocab == 0 &&
           c.ln_eps == 1e-12f && fabsf(bert_head_dropout(&c) - 0.2f) < 1e-7 && !c.sinusoidal,
       "DistilBertConfig's defaults: 6 layers, no token types, head dropout 0.2");
    ok(bert_config_parse(&c,
                         "{\"model_type\":\"distilbert\",\"dim\":64,\"n_layers\":3,\"n_heads\":4,"
                         "\"hidden_dim\":100,\"activation\":\"relu\",\"dropout\":0.05,"
                         "\"attention_dropout\":0.2,\"seq_classif_dropout\":0.4,"
                         "\"sinusoidal_pos_embds\":true,\"hidden_size\":999,"
                         "\"layer_norm_eps\":0.5}",
                         "c.json", &e) == 0 &&
           c.hidden == 64 && c.layers == 3 && c.heads == 4 && c.ffn == 100 &&
           c.act == AF_ACT_RELU && c.hidden_dropout == 0.05f && c.attn_dropout == 0.2f &&
           fabsf(bert_head_dropout(&c) - 0.4f) < 1e-7 && c.sinusoidal && c.ln_eps == 1e-12f,
       "DistilBERT's keys (dim, n_layers, ...); BERT's names and layer_norm_eps ignored");
    ok(bert_config_parse(&c, "{\"model_type\":\"distilbert\",\"dim\":10,\"n_heads\":4}", "c.json",
                         &e) == -1 &&
           strstr(e.msg, "\"dim\" 10 is not a multiple of \"n_heads\" 4"),
       "errors name DistilBERT's keys: %s", e.msg);
    ok(bert_config_parse(&c, "{\"model_type\":\"roberta\",\"max_position_embeddings\":2}", "c.json",
                         &e) == -1,
       "RoBERTa: positions must leave room after pad_token_id: %s", e.msg);
}

static bert_config tiny(int arch) {
    bert_config c;
    af_err e;
    const char *js[] = {"{\"model_type\":\"bert\"}", "{\"model_type\":\"roberta\"}",
                        "{\"model_type\":\"distilbert\",\"sinusoidal_pos_embds\":true}"};
    bert_config_parse(&c, js[arch], "tiny", &e);
    c.vocab_size = 40, c.hidden = 8, c.layers = 2, c.heads = 2, c.ffn = 16, c.max_pos = 20;
    c.hidden_dropout = c.attn_dropout = 0;
    if (arch == ARCH_ROBERTA) c.type_vocab = 1;
    return c;
}

static void test_roundtrip(void) {
    char dir[] = "/tmp/af-arch-test.XXXXXX";
    if (!mkdtemp(dir)) return;
    for (int a = 0; a < ARCH_COUNT; a++) {
        bert_config c = tiny(a);
        bert m, l;
        af_err e;
        bert_init_random(&m, &c, 5);
        char d[300];
        snprintf(d, sizeof d, "%s/%s", dir, arch_get(a)->model_type);
        int rc = bert_save(&m, d, NULL, &e) || bert_load(&l, d, &e);
        if (!ok(rc == 0, "%s: save and load", arch_get(a)->model_type)) {
            diag("%s", e.msg);
            bert_free(&m);
            continue;
        }
        ok(l.cfg.arch == a && l.cfg.hidden == 8 && l.cfg.layers == 2 &&
               l.cfg.type_vocab == c.type_vocab && l.cfg.pad_id == c.pad_id &&
               l.nparams == m.nparams && !memcmp(l.mem, m.mem, m.nparams * sizeof(float)),
           "%s: the same config and weights back", arch_get(a)->model_type);
        if (a == ARCH_DISTILBERT)
            ok(fabsf(m.w.pos_emb[8] - sinf(1)) < 1e-6 && fabsf(m.w.pos_emb[9] - cosf(1)) < 1e-6 &&
                   fabsf(m.w.pos_emb[3 * 8 + 2] - sinf(3 / powf(10000, 2.0f / 8))) < 1e-6,
               "distilbert: sinusoidal position init (sin even, cos odd columns)");
        if (a == ARCH_ROBERTA) {
            int zero = 1;
            for (int i = 0; i < 8; i++) zero &= m.w.pos_emb[1 * 8 + i] == 0;
            ok(zero, "roberta: the padding position's row starts at zero");
        }
        char cpath[400];
        snprintf(cpath, sizeof cpath, "%s/config.json", d);
        unlink(cpath);
        snprintf(cpath, sizeof cpath, "%s/model.safetensors", d);
        unlink(cpath);
        rmdir(d);
        bert_free(&m), bert_free(&l);
    }
    rmdir(dir);
}

/* The last hidden states of sequence 0 (n real tokens) alone and padded to S with pad_id. */
static double pad_shift(const bert *m, const int *ids, int n, int S, const int *types) {
    int B = 1, pid = m->cfg.pad_id;
    int ids2[32], mask2[32], mask[32], ty2[32];
    for (int i = 0; i < S; i++)
        ids2[i] = i < n ? ids[i] : pid, mask2[i] = i < n, ty2[i] = types ? types[i % n] : 0;
    for (int i = 0; i < n; i++) mask[i] = 1;
    af_arena a1, a2;
    af_arena_init(&a1, bert_acts_bytes(&m->cfg, B, n, 0));
    af_arena_init(&a2, bert_acts_bytes(&m->cfg, B, S, 0));
    bert_acts *A1 = bert_acts_new(&a1, &m->cfg, B, n, 0),
              *A2 = bert_acts_new(&a2, &m->cfg, B, S, 0);
    bert_batch b1 = {B, n, ids, NULL, mask}, b2 = {B, S, ids2, types ? ty2 : NULL, mask2};
    const float *y1 = bert_forward(m, A1, &b1, NULL, 0, NULL),
                *y2 = bert_forward(m, A2, &b2, NULL, 0, NULL);
    double d = y1 && y2 ? tap_maxdiff(y1, y2, (size_t)n * m->cfg.hidden) : INFINITY;
    af_arena_free(&a1), af_arena_free(&a2);
    return d;
}

static void test_forward(void) {
    int ids[] = {0, 7, 9, 13, 2};
    bert m;
    bert_config c = tiny(ARCH_ROBERTA);
    bert_init_random(&m, &c, 9);
    ok(pad_shift(&m, ids, 5, 9, NULL) < 1e-6,
       "roberta: padding after a sequence changes none of it");
    /* positions with a pad id mid-sequence: tests/parity/arch.c, against PyTorch */
    af_arena a;
    af_arena_init(&a, 0);
    af_err e;
    int S = bert_max_len(&m.cfg) + 1, *big = calloc((size_t)S, sizeof(int));
    bert_batch bl = {1, S, big, NULL, NULL};
    ok(bert_batch_check(&m, &bl, &e) == -1 && strstr(e.msg, "pad_token_id + 1"),
       "roberta: %d tokens refused (positions from pad_token_id + 1): %s", S, e.msg);
    free(big);
    af_arena_free(&a);
    bert_free(&m);

    c = tiny(ARCH_DISTILBERT);
    bert_init_random(&m, &c, 10);
    int ty[] = {1, 0, 1, 1, 0};
    ok(pad_shift(&m, ids, 5, 7, ty) < 1e-6,
       "distilbert: token_type_ids (even out of range) and padding change nothing");
    bert_free(&m);
}

/* ---- finite differences through each architecture's forward, dropout on ---- */

typedef struct {
    bert *m;
    bert_acts *A;
    const bert_batch *b;
    const float *R;
    size_t n;
} fd_ctx;

static double fd_loss(void *p) {
    fd_ctx *c = p;
    af_rng r;
    af_rng_seed(&r, 77); /* the same dropout masks every call */
    return gc_dot(bert_forward(c->m, c->A, c->b, NULL, 1, &r), c->R, c->n);
}

static void test_fd(void) {
    for (int a = ARCH_ROBERTA; a <= ARCH_DISTILBERT; a++) {
        const char *nm = arch_get(a)->model_type;
        bert_config c = tiny(a);
        c.hidden_dropout = c.attn_dropout = 0.1f;
        bert m;
        bert_init_random(&m, &c, 31);
        for (size_t i = 0; i < m.nparams; i++) m.mem[i] *= 10; /* beyond 0.02: terms matter */
        int pad = c.pad_id, ids[10] = {0, 5, pad, 9, 2, 0, 7, 11, pad, pad};
        int types[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, mask[10] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
        bert_batch b = {2, 5, ids, types, mask};
        size_t M = 10, H = c.hidden;
        af_arena ar;
        af_arena_init(&ar, bert_acts_bytes(&c, 2, 5, 1));
        bert_acts *A = bert_acts_new(&ar, &c, 2, 5, 1);
        af_rng r;
        af_rng_seed(&r, 5);
        float *R = malloc(M * H * sizeof(float));
        for (size_t i = 0; i < M * H; i++) R[i] = af_rng_normal(&r);
        fd_ctx x = {&m, A, &b, R, M * H};
        bert_grads g;
        bert_grads_init(&g, &c);
        fd_loss(&x);
        bert_backward(&m, A, R, NULL, &g);
        /* rows past pad_token_id: the padding rows get no gradient by design (padding_idx) */
        size_t skip = (size_t)(pad + 1) * H;
        double e1 = gc_check(m.w.pos_emb + skip, g.g.pos_emb + skip, c.max_pos * H - skip, 60,
                             1e-3f, fd_loss, &x);
        double e2 = gc_check(m.w.word_emb + skip, g.g.word_emb + skip, c.vocab_size * H - skip, 60,
                             1e-3f, fd_loss, &x);
        double e3 = gc_check(m.w.layer[0].ao_w, g.g.layer[0].ao_w, H * H, 40, 1e-3f, fd_loss, &x);
        double e4 =
            gc_check(m.w.layer[1].ff2_w, g.g.layer[1].ff2_w, H * c.ffn, 40, 1e-3f, fd_loss, &x);
        ok(e1 < 1e-2 && e2 < 1e-2 && e3 < 1e-2 && e4 < 1e-2,
           "%s, dropout 0.1: backward = finite differences (positions %.2g, words %.2g, "
           "attention output %.2g, FFN output %.2g)",
           nm, e1, e2, e3, e4);
        bert_grads_free(&g);
        free(R);
        af_arena_free(&ar);
        bert_free(&m);
    }
}

int main(void) {
    test_names();
    test_config();
    test_roundtrip();
    test_forward();
    test_fd();
    return done_testing();
}
