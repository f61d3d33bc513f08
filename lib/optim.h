/* optim.h: AdamW over parameter groups, the linear warmup/decay schedule, global-norm gradient
 * clipping, and the optimizer state in resumable checkpoints.
 *
 * Numerically this is torch.optim.AdamW (PyTorch 1.13, single-tensor path) driven the way the
 * Hugging Face Trainer drives it: per optimizer step, clip_grad_norm_ over every trainable
 * parameter, then AdamW with lr = group lr × get_linear_schedule_with_warmup's factor.
 *
 * Typical use:
 *     optim o;
 *     optim_init(&o);
 *     int g = optim_add_group(&o, 5e-5, 0.0);           // fusion
 *     optim_add_param(&o, g, "....query.weight", w, dw, n, 1);
 *     optim_add_param(&o, g, "....query.bias", b, db, m, 0);  // HF: no decay on biases, LN
 *     optim_schedule(&o, total_steps, warmup_steps);
 *     for each batch: zero grads (optim_zero_grad), forward, backward,
 *                     optim_clip_grad_norm(&o, 1.0), optim_step(&o);
 *
 * Parameters and gradients stay owned by the caller (pointers into the model's one allocation);
 * the optimizer owns only the moments, one allocation carved per parameter. */
#ifndef AF_OPTIM_H
#define AF_OPTIM_H

#include "af.h"
#include "safetensors.h"

typedef struct {
    char *name;   /* tensor name, used to name its moments in checkpoints */
    float *param; /* [n] */
    float *grad;  /* [n] */
    size_t n;
    int decay;         /* 0: weight decay not applied (biases, LayerNorm weights) */
    float *exp_avg;    /* [n] into optim.state */
    float *exp_avg_sq; /* [n] into optim.state */
} optim_param;

typedef struct {
    double lr;           /* peak learning rate; the schedule scales it */
    double weight_decay; /* decoupled: p -= lr·wd·p before the Adam update */
    int first, count;    /* this group's parameters: params[first .. first+count) */
} optim_group;

typedef struct {
    double beta1, beta2, eps; /* 0.9, 0.999, 1e-8 */
    optim_group *groups;
    int ngroups;
    optim_param *params; /* in the order added; a group's parameters are contiguous */
    int nparams;
    float *state;      /* [2 * total]: every exp_avg then every exp_avg_sq */
    size_t total;      /* Σ n over all parameters */
    int64_t step;      /* optimizer steps taken (PyTorch's state['step']) */
    long total_steps;  /* schedule length T; 0: constant lr */
    long warmup_steps; /* W */
} optim;

void optim_init(optim *o);
void optim_free(optim *o);

/* Adds a group and returns its index. Groups must be added, and filled, one after the other:
 * optim_add_param always adds to the last group (g is checked). */
int optim_add_group(optim *o, double lr, double weight_decay);
/* Registers a parameter and its gradient (both [n], owned by the caller). name is copied.
 * Must precede the first optim_step / optim_state_* call, which allocates the moments. */
void optim_add_param(optim *o, int g, const char *name, float *param, float *grad, size_t n,
                     int decay);

/* Hugging Face get_linear_schedule_with_warmup: the factor for optimizer step k (counted from 0)
 * of T with W warmup steps: k/W while k < W, then (T−k)/(T−W) clamped at 0 (with W = 0 this is
 * (T−k)/T, lib/README.md, "The model"). T <= 0 means no schedule: factor 1. */
double optim_schedule_factor(long k, long T, long W);
/* Sets the schedule optim_step follows. */
void optim_schedule(optim *o, long total_steps, long warmup_steps);
/* The learning rate group g uses at the next optim_step (for progress lines and logs). */
double optim_lr(const optim *o, int g);

/* torch.nn.utils.clip_grad_norm_ over every registered gradient: total L2 norm; if max_norm > 0
 * the gradients are scaled by min(1, max_norm/(norm + 1e-6)). Returns the norm before clipping,
 * which may be inf or nan (the caller decides what a non-finite gradient means). */
double optim_clip_grad_norm(optim *o, double max_norm);
/* Sets every registered gradient to zero. */
void optim_zero_grad(optim *o);
/* One AdamW step at the scheduled learning rate, then step++. */
void optim_step(optim *o);

/* Resumable state in a safetensors file, under prefix (e.g. "optim."):
 *   <prefix>step                 I64 [1]
 *   <prefix>exp_avg.<name>       F32 [n]
 *   <prefix>exp_avg_sq.<name>    F32 [n]
 * optim_state_add references the optimizer's memory: keep o alive and unchanged until
 * st_writer_write. optim_state_load checks every tensor (presence, dtype, size) and that the
 * file holds no <prefix> tensor this optimizer does not know, so a checkpoint of another
 * configuration is refused rather than half-loaded. */
void optim_state_add(optim *o, st_writer *w, const char *prefix);
int optim_state_load(optim *o, const st_file *f, const char *prefix, af_err *e);

#endif
