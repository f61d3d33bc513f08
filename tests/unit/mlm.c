/* mlm.c: the MLM head's backward by finite differences, masking statistics and rules, packing. */
#include "mlm.h"
#include "ops.h"
#include "tap.h"

#include <math.h>
#include <string.h>

/* ---- head ------------------------------------------------------------------------------- */

enum { V = 23, H = 8, M = 10, N = 4 };

static void fill(float *x, size_t n, af_rng *r, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * af_rng_normal(r);
}

/* Central differences of f over every entry of x[n] against grad; relative L2 error < tol.
 * (Own copy rather than tests/gradcheck.h: the loss here is cheap enough to check every entry.) */
static int fd_check(const char *what, double (*f)(void *), void *ctx, float *x, const float *grad,
                    size_t n, float eps, double tol) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + eps;
        double fp = f(ctx);
        x[i] = keep - eps;
        double fm = f(ctx);
        x[i] = keep;
        double fd = (fp - fm) / (2.0 * eps), d = fd - grad[i];
        num += d * d;
        den += fd * fd;
    }
    double rel = sqrt(num) / (den > 1e-20 ? sqrt(den) : 1e-10);
    return ok(rel < tol && den > 1e-20, "%s: finite differences (rel err %.2e)", what, rel);
}

typedef struct {
    mlm_head h;
    mlm_acts a;
    float hidden[M * H], emb[V * H];
    int pos[N], labels[N];
    double scale;
} head_case;

static double head_loss(void *ctx) {
    head_case *c = ctx;
    int correct;
    return c->scale * mlm_forward(&c->h, &c->a, c->hidden, c->emb, c->pos, c->labels, N, &correct);
}

static void test_head(int act) {
    head_case c;
    bert_config cfg = {.vocab_size = V, .hidden = H, .act = act, .ln_eps = 1e-12f};
    mlm_init(&c.h, &cfg, 7);
    mlm_acts_init(&c.a, &c.h, 1); /* forward grows it */
    af_rng r;
    af_rng_seed(&r, 11);
    fill(c.hidden, M * H, &r, 1.0f);
    fill(c.emb, V * H, &r, 0.5f);
    /* a non-trivial head: the init's LN 1/0 and zero biases would hide some terms */
    fill(c.h.w.dense_w, H * H, &r, 0.4f);
    fill(c.h.w.dense_b, H, &r, 0.1f);
    fill(c.h.w.ln_w, H, &r, 0.3f);
    for (int i = 0; i < H; i++) c.h.w.ln_w[i] += 1.0f;
    fill(c.h.w.ln_b, H, &r, 0.1f);
    fill(c.h.w.bias, V, &r, 0.1f);
    int pos[N] = {1, 4, 5, 9}, labels[N] = {3, 0, 22, 3};
    memcpy(c.pos, pos, sizeof pos), memcpy(c.labels, labels, sizeof labels);
    c.scale = 1.0 / N;

    float dhidden[M * H] = {0}, demb[V * H] = {0};
    head_loss(&c);
    mlm_backward(&c.h, &c.a, dhidden, demb, c.emb, c.pos, c.labels, N, (float)c.scale);
    const char *an = act_name(act);
    char what[64];
    snprintf(what, sizeof what, "%s: d hidden", an);
    fd_check(what, head_loss, &c, c.hidden, dhidden, M * H, 1e-2f, 1e-2);
    snprintf(what, sizeof what, "%s: d word_emb (tied decoder)", an);
    fd_check(what, head_loss, &c, c.emb, demb, V * H, 1e-2f, 1e-2);
    snprintf(what, sizeof what, "%s: d transform.dense.weight", an);
    fd_check(what, head_loss, &c, c.h.w.dense_w, c.h.g.dense_w, H * H, 1e-2f, 1e-2);
    snprintf(what, sizeof what, "%s: d transform.dense.bias", an);
    fd_check(what, head_loss, &c, c.h.w.dense_b, c.h.g.dense_b, H, 1e-2f, 1e-2);
    snprintf(what, sizeof what, "%s: d transform.LayerNorm.weight", an);
    fd_check(what, head_loss, &c, c.h.w.ln_w, c.h.g.ln_w, H, 1e-2f, 1e-2);
    snprintf(what, sizeof what, "%s: d transform.LayerNorm.bias", an);
    fd_check(what, head_loss, &c, c.h.w.ln_b, c.h.g.ln_b, H, 1e-2f, 1e-2);
    snprintf(what, sizeof what, "%s: d predictions.bias", an);
    fd_check(what, head_loss, &c, c.h.w.bias, c.h.g.bias, V, 1e-2f, 1e-2);

    /* rows that are not masked get no gradient */
    int untouched = 1;
    for (int i = 0; i < M; i++) {
        if (i == 1 || i == 4 || i == 5 || i == 9) continue;
        for (int k = 0; k < H; k++) untouched &= dhidden[i * H + k] == 0.0f;
    }
    ok(untouched, "%s: unmasked rows get no gradient", an);
    mlm_acts_free(&c.a);
    mlm_free(&c.h);
}

/* With a zero decoder the prediction is uniform: loss = n·log V, and the argmax is token 0. */
static void test_uniform(void) {
    bert_config cfg = {.vocab_size = V, .hidden = H, .act = AF_ACT_GELU, .ln_eps = 1e-12f};
    mlm_head h;
    mlm_acts a;
    mlm_init(&h, &cfg, 1);
    mlm_acts_init(&a, &h, 2);
    float hidden[M * H], emb[V * H] = {0};
    for (int i = 0; i < M * H; i++) hidden[i] = (float)(i % 7) - 3;
    int pos[3] = {0, 2, 3}, labels[3] = {0, 5, 0}, correct = -1;
    double loss = mlm_forward(&h, &a, hidden, emb, pos, labels, 3, &correct);
    ok(fabs(loss - 3 * log(V)) < 1e-5, "uniform logits: loss %.6f = 3 log V %.6f", loss,
       3 * log(V));
    ok(correct == 2, "uniform logits: argmax is the first token (2 of 3 correct), got %d", correct);
    ok(mlm_forward(&h, &a, hidden, emb, pos, labels, 0, &correct) == 0 && correct == 0,
       "no masked positions: loss 0");
    mlm_acts_free(&a);
    mlm_free(&h);
}

/* ---- masking ------------------------------------------------------------------------------ */

/* Vocabulary: 0 [PAD], 1 [UNK], 2 [CLS], 3 [SEP], 4 [MASK], 5..49 words, 50..99 "##" pieces. */
enum { MV = 100, PAD = 0, UNK = 1, CLS = 2, SEP = 3, MASK = 4 };
static char tokbuf[MV][16];
static const char *toks[MV];

static void vocab(void) {
    const char *sp[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (int i = 0; i < MV; i++) {
        if (i < 5)
            snprintf(tokbuf[i], 16, "%s", sp[i]);
        else
            snprintf(tokbuf[i], 16, i < 50 ? "w%d" : "##p%d", i);
        toks[i] = tokbuf[i];
    }
}

static void test_mask_stats(void) {
    mlm_masker m;
    af_err e;
    int special[] = {PAD, UNK, CLS, SEP, MASK};
    ok(mlm_masker_init(&m, toks, MV, special, 5, MASK, 0.15f, 0, 0, &e) == 0, "masker init");
    enum { L = 128, R = 400 };
    int ids[L], orig[L], pos[L], labels[L];
    af_rng rng;
    af_rng_seed(&rng, 3);
    long chosen = 0, cand = 0, masked = 0, randomised = 0, kept = 0, bad = 0;
    for (int r = 0; r < R; r++) {
        for (int j = 0; j < L; j++) orig[j] = j == 0 ? CLS : j == L - 1 ? SEP : 5 + (int)af_rng_below(&rng, 95);
        orig[40] = SEP, orig[41] = UNK;
        memcpy(ids, orig, sizeof ids);
        int n = 0;
        chosen += mlm_mask(&m, ids, L, 1000, pos, labels, &n, &rng);
        cand += L - 4;
        for (int i = 0; i < n; i++) {
            int j = pos[i] - 1000;
            bad += j < 0 || j >= L || labels[i] != orig[j] || m.special[orig[j]];
            if (ids[j] == MASK)
                masked++;
            else if (ids[j] == orig[j])
                kept++;
            else
                randomised += !m.special[ids[j]];
        }
        for (int j = 0; j < L; j++) {
            int was_chosen = 0;
            for (int i = 0; i < n; i++) was_chosen |= pos[i] - 1000 == j;
            bad += !was_chosen && ids[j] != orig[j];
        }
    }
    double p = (double)chosen / cand;
    ok(fabs(p - 0.15) < 0.01, "15%% of ordinary tokens chosen (%.4f)", p);
    ok(bad == 0, "specials never chosen, labels are the originals, nothing else changed (%ld bad)",
       bad);
    double fm = (double)masked / chosen, fr = (double)randomised / chosen, fk = (double)kept / chosen;
    /* a random replacement equal to the original counts as kept: 10% × 1/95 */
    ok(fabs(fm - 0.8) < 0.02 && fabs(fr - 0.1) < 0.015 && fabs(fk - 0.1) < 0.015,
       "80/10/10: mask %.3f, random %.3f, keep %.3f", fm, fr, fk);
    mlm_masker_free(&m);
}

static void test_whole_word(void) {
    mlm_masker m;
    af_err e;
    int special[] = {PAD, UNK, CLS, SEP, MASK};
    ok(mlm_masker_init(&m, toks, MV, special, 5, MASK, 0.15f, 1, 0, &e) == 0, "wwm masker init");
    enum { L = 64 };
    int ids[L], orig[L], pos[L], labels[L];
    af_rng rng;
    af_rng_seed(&rng, 5);
    long split = 0, over = 0, total = 0, want_total = 0;
    for (int r = 0; r < 300; r++) {
        int ntok = 0;
        for (int j = 0; j < L; j++) {
            orig[j] = j == 0 ? CLS : j == L - 1 ? SEP
                      : (j > 1 && af_rng_uniform(&rng) < 0.4f) ? 50 + (int)af_rng_below(&rng, 50)
                                                                : 5 + (int)af_rng_below(&rng, 45);
            ntok += j > 0 && j < L - 1;
        }
        memcpy(ids, orig, sizeof ids);
        int n = 0, c = mlm_mask(&m, ids, L, 0, pos, labels, &n, &rng);
        int want = (int)lroundf(ntok * 0.15f);
        over += c > want;
        total += c, want_total += want;
        char in[L] = {0};
        for (int i = 0; i < n; i++) in[pos[i]] = 1;
        /* a word is chosen whole: a piece is in iff the token before it (same word) is */
        for (int j = 2; j < L - 1; j++)
            if (orig[j] >= 50) split += in[j] != in[j - 1];
    }
    ok(split == 0, "whole words: no word is partly chosen (%ld splits)", split);
    ok(over == 0 && total > 0.9 * want_total,
       "whole words: round(15%%) of tokens, never more (%ld of %ld)", total, want_total);
    mlm_masker_free(&m);
}

/* Byte-level BPE: 0 <s>, 1 <pad>, 2 </s>, 3 <unk>, 4 <mask>, 5..49 "Ġw" (a word's first token),
 * 50..99 pieces that continue a word (50 is "[x]": ordinary text in BPE, unlike WordPiece). */
static char bpebuf[MV][16];
static const char *bpetoks[MV];

static void test_whole_word_bpe(void) {
    const char *sp[] = {"<s>", "<pad>", "</s>", "<unk>", "<mask>"};
    for (int i = 0; i < MV; i++) {
        if (i < 5)
            snprintf(bpebuf[i], 16, "%s", sp[i]);
        else if (i == 50)
            snprintf(bpebuf[i], 16, "[x]");
        else
            snprintf(bpebuf[i], 16, i < 50 ? "\xc4\xa0w%d" : "p%d", i);
        bpetoks[i] = bpebuf[i];
    }
    enum { BOS = 0, BPAD = 1, EOS = 2, BUNK = 3, BMASK = 4 };
    mlm_masker m, wp;
    af_err e;
    int special[] = {BOS, EOS, BPAD, BMASK, BUNK};
    ok(mlm_masker_init(&m, bpetoks, MV, special, 5, BMASK, 0.15f, 1, 1, &e) == 0 &&
           mlm_masker_init(&wp, bpetoks, MV, special, 5, BMASK, 0.15f, 1, 0, &e) == 0,
       "byte-level wwm masker init");
    ok(!m.special[50] && wp.special[50] && m.nnormal == MV - 5,
       "byte-level: a bracketed entry is ordinary text (WordPiece: reserved)");
    ok(!m.cont[5] && m.cont[50] && m.cont[99], "byte-level: a word starts at a \"\\u0120\" token");
    enum { L = 64, MID = 30 };
    int ids[L], orig[L], pos[L], labels[L];
    af_rng rng;
    af_rng_seed(&rng, 7);
    long split = 0, over = 0, total = 0, want_total = 0, after_special = 0, bad = 0;
    for (int r = 0; r < 300; r++) {
        int ntok = 0;
        for (int j = 0; j < L; j++) {
            /* <s> text </s> text </s>: pieces follow words, and right after a special */
            orig[j] = j == 0                        ? BOS
                      : j == L - 1 || j == MID      ? EOS
                      : af_rng_uniform(&rng) < 0.4f ? 50 + (int)af_rng_below(&rng, 50)
                                                    : 5 + (int)af_rng_below(&rng, 45);
            ntok += j > 0 && j < L - 1 && j != MID;
        }
        orig[1] = orig[MID + 1] = 60; /* a word with no space before it, after <s> and </s> */
        memcpy(ids, orig, sizeof ids);
        int n = 0, c = mlm_mask(&m, ids, L, 0, pos, labels, &n, &rng);
        int want = (int)lroundf(ntok * 0.15f);
        over += c > want;
        total += c, want_total += want;
        char in[L] = {0};
        for (int i = 0; i < n; i++) in[pos[i]] = 1, bad += m.special[orig[pos[i]]];
        for (int j = 2; j < L - 1; j++)
            if (orig[j] >= 50 && j != MID + 1) split += in[j] != in[j - 1];
        /* the piece after </s> starts its own word: chosen apart from the word before </s> */
        after_special += in[MID + 1] != in[MID - 1];
    }
    ok(split == 0 && bad == 0,
       "byte-level whole words: no word partly chosen (%ld), no special (%ld)", split, bad);
    ok(over == 0 && total > 0.9 * want_total,
       "byte-level whole words: round(15%%) of tokens, never more (%ld of %ld)", total, want_total);
    ok(after_special > 0,
       "a piece after a special starts a word (%ld times apart from the one before)",
       after_special);
    mlm_masker_free(&m);
    mlm_masker_free(&wp);
}

/* ---- packing ------------------------------------------------------------------------------ */

static void test_pack(void) {
    mlm_packer p;
    mlm_packer_init(&p, 8, CLS, SEP);
    int d1[] = {10, 11, 12, 13, 14, 15, 16, 17, 18}, d2[] = {20, 21}, d3[] = {30};
    mlm_pack_doc(&p, d1, 9);
    mlm_pack_doc(&p, d2, 2);
    mlm_pack_doc(&p, NULL, 0);
    mlm_pack_doc(&p, d3, 1);
    mlm_pack_finish(&p, 1);
    /* body: 10..15 | 16 17 18 SEP 20 21 | 30 (no [SEP] at the start of a sequence) */
    int want[3][8] = {{CLS, 10, 11, 12, 13, 14, 15, SEP},
                      {CLS, 16, 17, 18, SEP, 20, 21, SEP},
                      {CLS, 30, SEP, 0, 0, 0, 0, 0}};
    int good = p.nseq == 3 && p.len[0] == 8 && p.len[1] == 8 && p.len[2] == 3;
    for (int i = 0; good && i < 3; i++) good = memcmp(mlm_seq(&p, i), want[i], sizeof want[i]) == 0;
    ok(good, "packing: [CLS] body [SEP], [SEP] between documents, full sequences");
    ok(p.ntokens == 12, "packing counts document tokens (%lld)", p.ntokens);
    mlm_packer_free(&p);
}

/* RobertaLMHead applies GELU whatever hidden_act says; BERT's and DistilBERT's head the config's.
 */
static void test_arch_act(void) {
    mlm_head h;
    int want[ARCH_COUNT] = {
        [ARCH_BERT] = AF_ACT_RELU, [ARCH_ROBERTA] = AF_ACT_GELU, [ARCH_DISTILBERT] = AF_ACT_RELU};
    for (int a = 0; a < ARCH_COUNT; a++) {
        bert_config cfg = {.arch = a, .vocab_size = V, .hidden = H, .act = AF_ACT_RELU};
        mlm_init(&h, &cfg, 1);
        ok(h.act == want[a], "%s head with hidden_act relu: %s", arch_get(a)->display,
           act_name(h.act));
        mlm_free(&h);
    }
}

int main(void) {
    vocab();
    test_arch_act();
    test_head(AF_ACT_GELU);
    test_head(AF_ACT_GELU_TANH);
    test_uniform();
    test_mask_stats();
    test_whole_word();
    test_whole_word_bpe();
    test_pack();
    return done_testing();
}
