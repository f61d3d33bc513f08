/* mlm.c: the MLM head, masking and packing (see mlm.h). */
#include "mlm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

/* ---- the head ----------------------------------------------------------------------------- */

static void carve(mlm_weights *w, float *p, int H, int V) {
    w->dense_w = p, p += (size_t)H * H;
    w->dense_b = p, p += H;
    w->ln_w = p, p += H;
    w->ln_b = p, p += H;
    w->bias = p;
}

void mlm_init(mlm_head *h, const bert_config *cfg, uint64_t seed) {
    memset(h, 0, sizeof *h);
    h->V = cfg->vocab_size, h->H = cfg->hidden, h->act = cfg->act, h->eps = cfg->ln_eps;
    h->arch = cfg->arch;
    if (arch_get(cfg->arch)->mlm_act >= 0) h->act = arch_get(cfg->arch)->mlm_act;
    h->nparams = (size_t)h->H * h->H + 3 * (size_t)h->H + h->V;
    h->mem = af_calloc(h->nparams, sizeof(float));
    h->gmem = af_calloc(h->nparams, sizeof(float));
    carve(&h->w, h->mem, h->H, h->V);
    carve(&h->g, h->gmem, h->H, h->V);
    af_rng r;
    af_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)h->H * h->H; i++) h->w.dense_w[i] = 0.02f * af_rng_normal(&r);
    for (int i = 0; i < h->H; i++) h->w.ln_w[i] = 1.0f;
}

void mlm_free(mlm_head *h) {
    if (!h) return;
    free(h->mem);
    free(h->gmem);
    memset(h, 0, sizeof *h);
}

typedef struct {
    const char *name;
    float *dst;
    int ndim;
    int64_t shape[2];
} head_tensor;

static int head_tensors(const mlm_head *h, const mlm_weights *w, head_tensor *t) {
    int H = h->H, V = h->V;
    const char *const *nm = arch_get(h->arch)->mlm; /* the architecture's *ForMaskedLM names */
    t[0] = (head_tensor){nm[AM_DENSE_W], w->dense_w, 2, {H, H}};
    t[1] = (head_tensor){nm[AM_DENSE_B], w->dense_b, 1, {H, 0}};
    t[2] = (head_tensor){nm[AM_LN_W], w->ln_w, 1, {H, 0}};
    t[3] = (head_tensor){nm[AM_LN_B], w->ln_b, 1, {H, 0}};
    t[4] = (head_tensor){nm[AM_BIAS], w->bias, 1, {V, 0}};
    return 5;
}

/* Old TF-converted checkpoints name LayerNorm parameters gamma/beta. */
static const st_tensor *find_alt(const st_file *f, const char *name) {
    const st_tensor *t = st_find(f, name);
    if (t) return t;
    char alt[128];
    const char *p = strstr(name, "LayerNorm.");
    if (!p) return NULL;
    const char *what = strcmp(p + 10, "weight") == 0 ? "gamma" : "beta";
    snprintf(alt, sizeof alt, "%.*sLayerNorm.%s", (int)(p - name), name, what);
    return st_find(f, alt);
}

int mlm_load(mlm_head *h, const st_file *f, af_err *e) {
    head_tensor t[5];
    int n = head_tensors(h, &h->w, t), found = 0;
    for (int i = 0; i < n; i++) found += find_alt(f, t[i].name) != NULL;
    if (found == 0) return 0;
    for (int i = 0; i < n; i++) {
        const st_tensor *s = find_alt(f, t[i].name);
        if (!s)
            return af_errf(e, "%s: %s missing (the file has %d of the 5 MLM head tensors)", f->path,
                           t[i].name, found);
        int64_t want = t[i].shape[0] * (t[i].ndim == 2 ? t[i].shape[1] : 1);
        if (s->ndim != t[i].ndim || s->shape[0] != t[i].shape[0] ||
            (t[i].ndim == 2 && s->shape[1] != t[i].shape[1]))
            return af_errf(e, "%s: %s: shape [%lld%s] expected, %d dimensions [%lld, ...] found",
                           f->path, t[i].name, (long long)t[i].shape[0],
                           t[i].ndim == 2 ? ", H" : "", s->ndim, (long long)s->shape[0]);
        if (st_to_f32(s, t[i].dst, want, e)) return af_err_prefix(e, "%s: %s", f->path, t[i].name);
    }
    return 1;
}

void mlm_save_add(const mlm_head *h, st_writer *w) {
    head_tensor t[5];
    int n = head_tensors(h, &h->w, t);
    for (int i = 0; i < n; i++) st_writer_add(w, t[i].name, ST_F32, t[i].ndim, t[i].shape, t[i].dst);
}

void mlm_acts_init(mlm_acts *a, const mlm_head *h, int maxn) {
    size_t H = h->H, n = maxn > 0 ? maxn : 1;
    a->maxn = (int)n;
    float *p = af_calloc(n * (7 * H + 2 + h->V), sizeof(float));
    a->x = p, p += n * H;
    a->u = p, p += n * H;
    a->a = p, p += n * H;
    a->t = p, p += n * H;
    a->dt = p, p += n * H;
    a->da = p, p += n * H;
    a->dx = p, p += n * H;
    a->mean = p, p += n;
    a->rstd = p, p += n;
    a->logits = p;
}

/* Grows the work space to n positions: the masked count of a batch varies (Bernoulli), and a
 * worst-case B·S buffer of logits would be large, so it grows the few times a batch needs more. */
static void reserve(mlm_acts *a, const mlm_head *h, int n) {
    if (n <= a->maxn) return;
    mlm_acts_free(a);
    mlm_acts_init(a, h, n + n / 8);
}

void mlm_acts_free(mlm_acts *a) {
    free(a->x);
    memset(a, 0, sizeof *a);
}

double mlm_forward(const mlm_head *h, mlm_acts *a, const float *hidden, const float *word_emb,
                   const int *pos, const int *labels, int n, int *correct) {
    int H = h->H, V = h->V;
    *correct = 0;
    if (n <= 0) return 0;
    reserve(a, h, n);
    for (int i = 0; i < n; i++) memcpy(a->x + (size_t)i * H, hidden + (size_t)pos[i] * H, H * sizeof(float));
    linear_forward(a->u, a->x, h->w.dense_w, h->w.dense_b, n, H, H);
    act_forward(a->a, a->u, (size_t)n * H, h->act);
    layernorm_forward(a->t, a->mean, a->rstd, a->a, h->w.ln_w, h->w.ln_b, n, H, h->eps);
    linear_forward(a->logits, a->t, word_emb, h->w.bias, n, H, V);
    double loss = 0;
    for (int i = 0; i < n; i++) {
        float *z = a->logits + (size_t)i * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (z[v] > z[best]) best = v;
        *correct += best == labels[i];
        /* log-softmax in double for the loss; the probabilities stay in place for backward */
        double mx = z[best], s = 0;
        for (int v = 0; v < V; v++) s += exp((double)z[v] - mx);
        loss += mx + log(s) - z[labels[i]];
        float inv = (float)(1.0 / s);
        for (int v = 0; v < V; v++) z[v] = (float)exp((double)z[v] - mx) * inv;
    }
    return loss;
}

void mlm_backward(mlm_head *h, mlm_acts *a, float *dhidden, float *dword_emb,
                  const float *word_emb, const int *pos, const int *labels, int n, float scale) {
    int H = h->H, V = h->V;
    if (n <= 0) return;
    /* dlogits = scale · (softmax − onehot), in place over the probabilities */
    float *dz = a->logits;
    for (int i = 0; i < n; i++) {
        float *z = dz + (size_t)i * V;
        z[labels[i]] -= 1.0f;
        for (int v = 0; v < V; v++) z[v] *= scale;
    }
    size_t nh = (size_t)n * H;
    memset(a->dt, 0, nh * sizeof(float));
    memset(a->da, 0, nh * sizeof(float));
    memset(a->dx, 0, nh * sizeof(float));
    linear_backward(a->dt, dword_emb, h->g.bias, dz, a->t, word_emb, n, H, V);
    layernorm_backward(a->da, h->g.ln_w, h->g.ln_b, a->dt, a->a, h->w.ln_w, a->mean, a->rstd, n, H);
    /* dt is free now: reuse it for d(dense output) */
    memset(a->dt, 0, nh * sizeof(float));
    act_backward(a->dt, a->da, a->u, nh, h->act);
    linear_backward(a->dx, h->g.dense_w, h->g.dense_b, a->dt, a->x, h->w.dense_w, n, H, H);
    for (int i = 0; i < n; i++) vec_add(dhidden + (size_t)pos[i] * H, a->dx + (size_t)i * H, H);
}

/* ---- masking ------------------------------------------------------------------------------ */

int mlm_masker_init(mlm_masker *m, const char *const *tokens, int V, const int *special,
                    int nspecial, int mask_id, float prob, int whole_word, int bytelevel,
                    af_err *e) {
    memset(m, 0, sizeof *m);
    if (mask_id < 0 || mask_id >= V)
        return af_errf(e, "the vocabulary has no %s token (id %d of %d)",
                       bytelevel ? "<mask>" : "[MASK]", mask_id, V);
    if (!(prob > 0 && prob < 1)) return af_errf(e, "mask probability %g not in (0, 1)", prob);
    m->V = V, m->mask_id = mask_id, m->prob = prob, m->whole_word = whole_word;
    m->special = af_calloc(V, 1);
    m->cont = af_calloc(V, 1);
    m->normal = af_malloc((size_t)V * sizeof(int));
    for (int i = 0; i < nspecial; i++)
        if (special[i] >= 0 && special[i] < V) m->special[special[i]] = 1;
    m->special[mask_id] = 1;
    for (int v = 0; v < V; v++) {
        const char *t = tokens ? tokens[v] : NULL;
        if (t && bytelevel) {
            /* "Ġ" (U+0120, UTF-8 C4 A0) is the space before a word in byte-level BPE */
            m->cont[v] = !((unsigned char)t[0] == 0xC4 && (unsigned char)t[1] == 0xA0);
        } else if (t) {
            /* [unused17] and other bracketed entries are reserved, not words */
            if (t[0] == '[' && t[strlen(t) - 1] == ']') m->special[v] = 1;
            if (t[0] == '#' && t[1] == '#' && t[2]) m->cont[v] = 1;
        }
        if (!m->special[v]) m->normal[m->nnormal++] = v;
    }
    if (m->nnormal == 0) {
        mlm_masker_free(m);
        return af_errf(e, "the vocabulary has no ordinary tokens to predict");
    }
    return 0;
}

void mlm_masker_free(mlm_masker *m) {
    free(m->special);
    free(m->cont);
    free(m->normal);
    free(m->scratch);
    memset(m, 0, sizeof *m);
}

/* 80% [MASK], 10% a random ordinary token, 10% unchanged (BERT §3.1). */
static void replace(mlm_masker *m, int *ids, int j, af_rng *rng) {
    float r = af_rng_uniform(rng);
    if (r < 0.8f)
        ids[j] = m->mask_id;
    else if (r < 0.9f)
        ids[j] = m->normal[af_rng_below(rng, (uint32_t)m->nnormal)];
}

int mlm_mask(mlm_masker *m, int *ids, int len, int base, int *pos, int *labels, int *n,
             af_rng *rng) {
    int chosen = 0;
    if (!m->whole_word) {
        for (int j = 0; j < len; j++) {
            if (m->special[ids[j]] || af_rng_uniform(rng) >= m->prob) continue;
            pos[*n] = base + j, labels[*n] = ids[j], (*n)++, chosen++;
            replace(m, ids, j, rng);
        }
        return chosen;
    }
    if (m->scratch_cap < 2 * len + 2) {
        m->scratch_cap = 2 * len + 2;
        m->scratch = af_realloc(m->scratch, (size_t)m->scratch_cap * sizeof(int));
    }
    /* words: start[w] .. start[w+1]; a continuation joins the word before it */
    int *start = m->scratch, *order = m->scratch + len + 1, nw = 0, ntok = 0;
    for (int j = 0; j < len; j++) {
        if (m->special[ids[j]]) continue;
        ntok++;
        if (!(m->cont[ids[j]] && nw > 0 && j > 0 && !m->special[ids[j - 1]]))
            start[nw++] = j;
    }
    if (nw == 0) return 0;
    for (int w = 0; w < nw; w++) order[w] = w;
    for (int w = nw - 1; w > 0; w--) {
        int k = (int)af_rng_below(rng, (uint32_t)(w + 1)), t = order[w];
        order[w] = order[k], order[k] = t;
    }
    int want = (int)lroundf(ntok * m->prob);
    if (want < 1) want = 1;
    int first = *n;
    for (int k = 0; k < nw && chosen < want; k++) {
        int w = order[k], s = start[w], end = s + 1;
        while (end < len && m->cont[ids[end]] && !m->special[ids[end]]) end++;
        if (chosen + (end - s) > want) continue;
        for (int j = s; j < end; j++) pos[*n] = base + j, labels[*n] = ids[j], (*n)++, chosen++;
    }
    /* positions in sequence order, then the 80/10/10 per token (HF's collator) */
    for (int i = first + 1; i < *n; i++)
        for (int k = i; k > first && pos[k - 1] > pos[k]; k--) {
            int tp = pos[k], tl = labels[k];
            pos[k] = pos[k - 1], labels[k] = labels[k - 1];
            pos[k - 1] = tp, labels[k - 1] = tl;
        }
    for (int i = first; i < *n; i++) replace(m, ids, pos[i] - base, rng);
    return chosen;
}

/* ---- packing ------------------------------------------------------------------------------ */

void mlm_packer_init(mlm_packer *p, int max_len, int cls_id, int sep_id) {
    memset(p, 0, sizeof *p);
    p->max_len = max_len, p->cls_id = cls_id, p->sep_id = sep_id;
    p->cur = af_malloc((size_t)max_len * sizeof(int));
}

void mlm_packer_free(mlm_packer *p) {
    free(p->ids);
    free(p->len);
    free(p->cur);
    memset(p, 0, sizeof *p);
}

static void close_seq(mlm_packer *p) {
    if (p->nseq == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 1024;
        p->ids = af_realloc(p->ids, (size_t)p->cap * p->max_len * sizeof(int));
        p->len = af_realloc(p->len, (size_t)p->cap * sizeof(int));
    }
    int *s = p->ids + (size_t)p->nseq * p->max_len;
    s[0] = p->cls_id;
    memcpy(s + 1, p->cur, (size_t)p->ncur * sizeof(int));
    s[p->ncur + 1] = p->sep_id;
    for (int j = p->ncur + 2; j < p->max_len; j++) s[j] = 0;
    p->len[p->nseq++] = p->ncur + 2;
    p->ncur = 0;
}

static void push(mlm_packer *p, int id) {
    p->cur[p->ncur++] = id;
    if (p->ncur == p->max_len - 2) close_seq(p);
}

void mlm_pack_doc(mlm_packer *p, const int *ids, int n) {
    if (n <= 0) return;
    /* a document boundary inside a sequence is a [SEP]; none at a sequence's start */
    if (p->ncur > 0) push(p, p->sep_id);
    for (int i = 0; i < n; i++) {
        push(p, ids[i]);
        p->ntokens++;
    }
}

void mlm_pack_finish(mlm_packer *p, int min_tokens) {
    if (p->ncur > 0 && p->ncur >= min_tokens) close_seq(p);
    p->ncur = 0;
}
