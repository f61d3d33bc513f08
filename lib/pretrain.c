/* pretrain.c: an MLM step over encoder + head, and the HF names of every tensor (pretrain.h). */
#include "pretrain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put(pretrain_tensor *t, int *k, const char *name, float *w, float *g, int64_t d0,
                int64_t d1, int decay) {
    if (t) {
        pretrain_tensor *x = &t[*k];
        snprintf(x->name, sizeof x->name, "%s", name);
        x->w = w, x->g = g;
        x->ndim = d1 ? 2 : 1;
        x->shape[0] = d0, x->shape[1] = d1;
        x->n = (size_t)d0 * (d1 ? d1 : 1);
        x->decay = decay;
    }
    (*k)++;
}

/* g may be NULL (names and weights only). */
#define GP(field) (g ? g->g.field : NULL)
#define GL(l, field) (g ? g->g.layer[l].field : NULL)

int pretrain_tensors(const bert *m, const bert_grads *g, const mlm_head *h, pretrain_tensor *t) {
    const bert_config *c = &m->cfg;
    const bert_weights *w = &m->w;
    int64_t V = c->vocab_size, H = c->hidden, F = c->ffn;
    int k = 0;
    put(t, &k, "bert.embeddings.word_embeddings.weight", w->word_emb, GP(word_emb), V, H, 1);
    put(t, &k, "bert.embeddings.position_embeddings.weight", w->pos_emb, GP(pos_emb), c->max_pos, H, 1);
    put(t, &k, "bert.embeddings.token_type_embeddings.weight", w->type_emb, GP(type_emb),
        c->type_vocab, H, 1);
    put(t, &k, "bert.embeddings.LayerNorm.weight", w->emb_ln_w, GP(emb_ln_w), H, 0, 0);
    put(t, &k, "bert.embeddings.LayerNorm.bias", w->emb_ln_b, GP(emb_ln_b), H, 0, 0);
    static const char *qkv[3] = {"query", "key", "value"};
    char name[96];
    for (int l = 0; l < c->layers; l++) {
        const bert_layer *L = &w->layer[l];
#define NAME(suffix) (snprintf(name, sizeof name, "bert.encoder.layer.%d.%s", l, suffix), name)
        for (int j = 0; j < 3; j++) {
            char s[64];
            snprintf(s, sizeof s, "attention.self.%s.weight", qkv[j]);
            put(t, &k, NAME(s), L->qkv_w + j * H * H, g ? GL(l, qkv_w) + j * H * H : NULL, H, H, 1);
            snprintf(s, sizeof s, "attention.self.%s.bias", qkv[j]);
            put(t, &k, NAME(s), L->qkv_b + j * H, g ? GL(l, qkv_b) + j * H : NULL, H, 0, 0);
        }
        put(t, &k, NAME("attention.output.dense.weight"), L->ao_w, GL(l, ao_w), H, H, 1);
        put(t, &k, NAME("attention.output.dense.bias"), L->ao_b, GL(l, ao_b), H, 0, 0);
        put(t, &k, NAME("attention.output.LayerNorm.weight"), L->ln1_w, GL(l, ln1_w), H, 0, 0);
        put(t, &k, NAME("attention.output.LayerNorm.bias"), L->ln1_b, GL(l, ln1_b), H, 0, 0);
        put(t, &k, NAME("intermediate.dense.weight"), L->ff1_w, GL(l, ff1_w), F, H, 1);
        put(t, &k, NAME("intermediate.dense.bias"), L->ff1_b, GL(l, ff1_b), F, 0, 0);
        put(t, &k, NAME("output.dense.weight"), L->ff2_w, GL(l, ff2_w), H, F, 1);
        put(t, &k, NAME("output.dense.bias"), L->ff2_b, GL(l, ff2_b), H, 0, 0);
        put(t, &k, NAME("output.LayerNorm.weight"), L->ln2_w, GL(l, ln2_w), H, 0, 0);
        put(t, &k, NAME("output.LayerNorm.bias"), L->ln2_b, GL(l, ln2_b), H, 0, 0);
#undef NAME
    }
    if (h) {
        put(t, &k, "cls.predictions.transform.dense.weight", h->w.dense_w, h->g.dense_w, H, H, 1);
        put(t, &k, "cls.predictions.transform.dense.bias", h->w.dense_b, h->g.dense_b, H, 0, 0);
        put(t, &k, "cls.predictions.transform.LayerNorm.weight", h->w.ln_w, h->g.ln_w, H, 0, 0);
        put(t, &k, "cls.predictions.transform.LayerNorm.bias", h->w.ln_b, h->g.ln_b, H, 0, 0);
        put(t, &k, "cls.predictions.bias", h->w.bias, h->g.bias, V, 0, 0);
    }
    return k;
}

void pretrain_init(pretrain *p, bert *m, mlm_head *head, mlm_masker *masker, int maxB, int maxS) {
    memset(p, 0, sizeof *p);
    p->m = m, p->head = head, p->masker = masker, p->maxB = maxB, p->maxS = maxS;
    bert_grads_init(&p->g, &m->cfg);
    af_arena_init(&p->arena, bert_acts_bytes(&m->cfg, maxB, maxS, 1));
    p->acts = bert_acts_new(&p->arena, &m->cfg, maxB, maxS, 1);
    /* 15% of the tokens on average; mlm_forward grows the work space for unlucky batches */
    mlm_acts_init(&p->ha, head, maxB * maxS / 5 + 16);
    size_t cells = (size_t)maxB * maxS;
    p->ids = af_malloc(5 * cells * sizeof(int));
    p->types = p->ids + cells, p->mask = p->ids + 2 * cells;
    p->pos = p->ids + 3 * cells, p->labels = p->ids + 4 * cells;
    p->dhidden = af_malloc(cells * m->cfg.hidden * sizeof(float));
}

void pretrain_free(pretrain *p) {
    bert_grads_free(&p->g);
    af_arena_free(&p->arena);
    mlm_acts_free(&p->ha);
    free(p->ids);
    free(p->dhidden);
    memset(p, 0, sizeof *p);
}

void pretrain_fill(pretrain *p, const int *const *seqs, const int *lens, int B, af_rng *rng) {
    int S = 0;
    for (int i = 0; i < B; i++)
        if (lens[i] > S) S = lens[i];
    p->B = B, p->S = S, p->n = 0;
    for (int i = 0; i < B; i++) {
        int *row = p->ids + (size_t)i * S;
        memcpy(row, seqs[i], (size_t)lens[i] * sizeof(int));
        for (int j = 0; j < S; j++) {
            if (j >= lens[i]) row[j] = p->m->cfg.pad_id;
            p->types[i * S + j] = 0;
            p->mask[i * S + j] = j < lens[i];
        }
        if (p->masker) mlm_mask(p->masker, row, lens[i], i * S, p->pos, p->labels, &p->n, rng);
    }
}

int pretrain_run(pretrain *p, int train, float scale, af_rng *dropout_rng, double *loss,
                 long *correct, af_err *e) {
    const bert_config *c = &p->m->cfg;
    bert_batch b = {p->B, p->S, p->ids, p->types, p->mask};
    if (bert_batch_check(p->m, &b, e)) return -1;
    const float *hidden = bert_forward(p->m, p->acts, &b, NULL, train, dropout_rng);
    if (!hidden) return af_errf(e, "encoder forward failed for a batch of %d × %d", p->B, p->S);
    int hit = 0;
    *loss += mlm_forward(p->head, &p->ha, hidden, p->m->w.word_emb, p->pos, p->labels, p->n, &hit);
    *correct += hit;
    if (!train || p->n == 0) return 0;
    size_t cells = (size_t)p->B * p->S * c->hidden;
    memset(p->dhidden, 0, cells * sizeof(float));
    mlm_backward(p->head, &p->ha, p->dhidden, p->g.g.word_emb, p->m->w.word_emb, p->pos,
                 p->labels, p->n, scale);
    bert_backward(p->m, p->acts, p->dhidden, NULL, &p->g);
    return 0;
}
