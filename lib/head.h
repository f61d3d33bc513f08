/* head.h: the task head and its losses (AdapterHub's ClassificationHead with layers=2).
 *
 * On the [CLS] rows of the last hidden states, cls[B,H]:
 *     x0 = dropout(cls);  z = x0·W1ᵀ + b1;  t = tanh(z);  t0 = dropout(t);  logits = t0·W4ᵀ + b4
 * AdapterHub builds it as nn.Sequential(Dropout, Linear(H,H), Tanh, Dropout, Linear(H,L)), hence
 * the tensor names under "heads.NAME.": 1.weight (H,H), 1.bias (H), 4.weight (L,H), 4.bias (L).
 * Classification: mean cross-entropy over the batch. Regression (L = 1): mean squared error of
 * logits[:,0] (Hugging Face's MSELoss on the squeezed logits). Multi-label (AdapterHub's
 * MultiLabelClassificationHead: the same layers): each of the L logits is an independent yes/no,
 * BCEWithLogitsLoss (the mean over all B·L entries), predicted by sigmoid > 0.5. */
#ifndef AF_HEAD_H
#define AF_HEAD_H

#include "af.h"
#include "param.h"

#define HEAD_NPARAMS 4

/* What a head's outputs mean: one field, so that a fourth kind is one more value. */
typedef enum { HEAD_CLASSIFICATION, HEAD_REGRESSION, HEAD_MULTILABEL } head_kind;

/* "classification", "regression", "multilabel"; and back (-1 for another name). */
const char *head_kind_name(int kind);
int head_kind_parse(const char *name);

/* A view of a head's weights (or of their gradients: same struct, same layout). */
typedef struct {
    int H, L;       /* hidden size, outputs (labels; 1 for regression) */
    float dropout;  /* both dropouts, in training (the base's hidden_dropout_prob) */
    float *w1, *b1; /* (H,H), (H) 1.weight, 1.bias */
    float *w4, *b4; /* (L,H), (L) 4.weight, 4.bias */
} head;

size_t head_nparams(int H, int L);
int head_params(param_desc out[HEAD_NPARAMS], int H, int L);
/* Points hd's tensors into buf (head_nparams floats) per head_params. */
void head_carve(head *hd, float *buf, int H, int L, float dropout);
/* N(0, 0.02) weights, zero biases (AdapterHub init_bert_weights). */
void head_init(head *hd, af_rng *rng);

/* What forward keeps for backward, for up to B rows. */
typedef struct {
    int B;
    int dropped;     /* dropout was applied in the last forward */
    float *x0;       /* (B, H) cls after dropout */
    float *t;        /* (B, H) tanh output */
    float *t0;       /* (B, H) after dropout */
    float *dt0, *dz; /* (B, H) backward scratch */
    uint8_t *mask0;  /* (B, H) */
    uint8_t *mask1;  /* (B, H) */
} head_cache;

size_t head_cache_floats(int H, int B);
void head_cache_carve(head_cache *c, float *mem, int H, int B);

/* logits[B,L] from cls rows: row b is cls + b·ld (ld = H for a packed [B,H]; ld = S·H to read
 * the first token of each sequence of a [B·S, H] hidden state in place). rng non-NULL means
 * training: dropout with hd->dropout, masks drawn from rng. */
void head_forward(float *logits, head_cache *c, const float *cls, int ld, const head *hd, int B,
                  af_rng *rng);
/* Accumulates dcls (same row stride ld; NULL: not needed) and the weight gradients into g
 * (NULL: frozen) from dlogits[B,L]. */
void head_backward(float *dcls, int ld, head *g, head_cache *c, const float *dlogits,
                   const head *hd, int B);

/* Mean cross-entropy over B rows of L logits; labels in [0, L). probs[B,L] receives the
 * softmax (kept for backward). */
double head_ce_forward(float *probs, const float *logits, const int *labels, int B, int L);
/* dlogits += (probs − onehot(label)) / B */
void head_ce_backward(float *dlogits, const float *probs, const int *labels, int B, int L);

/* Mean squared error over B predictions (the [B,1] logits of a regression head). */
double head_mse_forward(const float *pred, const float *target, int B);
/* dpred += 2·(pred − target) / B */
void head_mse_backward(float *dpred, const float *pred, const float *target, int B);

/* probs[B,L] = sigmoid(logits): the multi-label head's per-label probabilities. */
void head_sigmoid_forward(float *probs, const float *logits, int B, int L);
/* pred[L] = 1 where probs[j] > 0.5 (AdapterHub's and scikit-learn's multi-label decision), else
 * 0. */
void head_multilabel_predict(float *pred, const float *probs, int L);
/* Mean binary cross-entropy with logits over B rows of L labels (PyTorch's BCEWithLogitsLoss,
 * reduction "mean": the mean over all B·L entries); targets[B,L] are 0 or 1. probs[B,L] receives
 * the sigmoids (kept for backward). */
double head_bce_forward(float *probs, const float *logits, const float *targets, int B, int L);
/* dlogits += (probs − targets) / (B·L) */
void head_bce_backward(float *dlogits, const float *probs, const float *targets, int B, int L);

#endif
