/* mlmtrain.c: a pretraining run on the shared loop (mlmtrain.h). */
#include "mlmtrain.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "dist.h"
#include "lmtok.h"
#include "loop.h"
#include "ops.h"
#include "optim.h"
#include "pretrain.h"
#include "progress.h"
#include "runrec.h"

/* Per-micro-batch seeds, so a resumed run masks and drops out exactly as the original would. */
static uint64_t mix(uint64_t seed, uint64_t what, uint64_t k) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ULL ^ (what << 56) ^ (k * 0xBF58476D1CE4E5B9ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

typedef struct {
    double loss, acc;
    long n;
} dev_result;

/* Dev masks depend on the seed alone, so every evaluation scores the same positions. */
static int evaluate(pretrain *p, const mlm_packer *dev, mlm_masker *mk, const mlmtrain_opts *c,
                    dev_result *out, af_err *e) {
    dev_result r = {0};
    double loss = 0;
    long correct = 0;
    for (int s = 0; s < dev->nseq; s += c->batch) {
        int B = dev->nseq - s < c->batch ? dev->nseq - s : c->batch;
        const int *seqs[B];
        for (int i = 0; i < B; i++) seqs[i] = mlm_seq(dev, s + i);
        af_rng rng;
        af_rng_seed(&rng, mix(c->seed, 3, (uint64_t)s));
        p->masker = mk;
        pretrain_fill(p, seqs, dev->len + s, B, &rng);
        r.n += p->n;
        if (pretrain_run(p, 0, 0, NULL, &loss, &correct, e)) return -1;
    }
    r.loss = r.n ? loss / r.n : NAN;
    r.acc = r.n ? (double)correct / r.n : NAN;
    *out = r;
    return 0;
}

/* The facts of a run that a checkpoint must share with the run resuming it (runrec.h): every
 * option that changes what is computed, the model it starts from, the corpus and dev text. */
#define PRETRAIN_MAY_CHANGE                                                                        \
    "--threads, --log, --quiet, --checkpoint, -o, --save-every, --eval-every and the number of "   \
    "MPI ranks"
static char *run_json(const mlmtrain_opts *c, long total, const mlm_packer *train,
                      const mlm_packer *dev, const bert *m, const char *vocab_digest) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "seed", (double)c->seed);
    cJSON_AddNumberToObject(o, "max_len", c->max_len);
    cJSON_AddNumberToObject(o, "batch_size", c->batch);
    cJSON_AddNumberToObject(o, "accumulate", c->accum);
    cJSON_AddNumberToObject(o, "total_steps", total);
    cJSON_AddNumberToObject(o, "sequences", train->nseq);
    cJSON_AddNumberToObject(o, "corpus_tokens", (double)train->ntokens);
    cJSON_AddNumberToObject(o, "mask_prob", c->mask_prob);
    cJSON_AddBoolToObject(o, "whole_word", c->whole_word);
    cJSON_AddNumberToObject(o, "--lr", c->lr);
    cJSON_AddNumberToObject(o, "--warmup-ratio", c->warmup_ratio);
    cJSON_AddNumberToObject(o, "--weight-decay", c->wd);
    cJSON_AddNumberToObject(o, "--clip", c->clip);
    cJSON_AddBoolToObject(o, "--f16", c->f16);
    cJSON_AddBoolToObject(o, "--no-lowercase", !c->lower);
    if (c->base) {
        cJSON_AddStringToObject(o, "--base (fingerprint)", m->fingerprint);
    } else {
        cJSON_AddNumberToObject(o, "--layers", c->layers);
        cJSON_AddNumberToObject(o, "--hidden", c->hidden);
        cJSON_AddNumberToObject(o, "--heads", c->heads);
        cJSON_AddNumberToObject(o, "--ffn", c->ffn);
        cJSON_AddNumberToObject(o, "--max-pos", c->max_pos);
        cJSON_AddStringToObject(o, "--act", act_name(c->act));
        cJSON_AddNumberToObject(o, "--dropout", c->dropout);
    }
    cJSON_AddStringToObject(o, "--vocab (sha256)", vocab_digest);
    char d[65];
    pretrain_corpus_digest(train, d);
    cJSON_AddStringToObject(o, "corpus (sha256 of its sequences)", d);
    if (c->dev) pretrain_corpus_digest(dev, d);
    cJSON_AddStringToObject(o, "--dev (sha256 of its sequences)", c->dev ? d : "none");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* What the loop's hooks (loop.h) need of a pretraining run. */
typedef struct {
    const mlmtrain_opts *c;
    pretrain *p;
    optim *o;
    bert *m;
    mlm_head *head;
    mlm_masker *mk;
    const lmtok *tok;
    const mlm_packer *train, *dev;
    long per_epoch;  /* optimizer steps per epoch */
    batch_plan plan; /* of plan_epoch */
    int plan_epoch;
    const int **seqs; /* [batch] */
    int *lens;        /* [batch] */
    long long tokens_seen;
    double eval_loss; /* training loss summed since the last evaluation, over eval_n steps */
    long eval_n;
    double uni_acc, t_start;
    dev_result last;
    const char *run;
    FILE *logf;
    progress *pr;
} run_ctx;

/* One optimizer step: --accumulate micro-batches, each masked and dropped out by a seed of its
 * global index, so a resumed run masks exactly as the original would. */
static int mlm_step(void *ctx, long step, double *loss, double *weight, long *units, af_err *e) {
    run_ctx *r = ctx;
    const mlmtrain_opts *c = r->c;
    double step_loss = 0;
    long tokens = 0;
    for (int a = 0; a < c->accum; a++) {
        long k = step * c->accum + a; /* global micro-batch index */
        int epoch = (int)(k / (r->per_epoch * c->accum));
        int b = (int)(k % (r->per_epoch * c->accum));
        if (epoch != r->plan_epoch) {
            batch_plan_epoch(&r->plan, NULL, r->train->nseq, c->batch, 1, c->seed, epoch);
            r->plan_epoch = epoch;
        }
        const int *ix = batch_plan_batch(&r->plan, b);
        int B = batch_plan_size(&r->plan, b);
        for (int i = 0; i < B; i++)
            r->seqs[i] = mlm_seq(r->train, ix[i]), r->lens[i] = r->train->len[ix[i]];
        af_rng mrng, drng;
        af_rng_seed(&mrng, mix(c->seed, 1, (uint64_t)k));
        /* each rank's rows drop out by their own stream (the same stream would give row j of
         * every share the same masks) */
        af_rng_seed(&drng, mix(c->seed, 2, (uint64_t)k) ^
                               (dist_size() > 1 ? mix(c->seed, 4, (uint64_t)dist_rank()) : 0));
        pretrain_fill(r->p, r->seqs, r->lens, B, &mrng);
        /* HF: each micro-batch's mean over its masked tokens (all ranks' together), divided by
         * the accumulation count */
        int masked = r->p->n, lo, hi;
        dist_share(B, &lo, &hi);
        if (dist_size() > 1) pretrain_keep_rows(r->p, lo, hi);
        double l = 0;
        long hit = 0;
        float scale = masked ? 1.0f / ((float)masked * c->accum) : 0;
        if (hi > lo && pretrain_run(r->p, 1, scale, &drng, &l, &hit, e)) return -1;
        step_loss += masked ? l / masked / c->accum : 0;
        for (int i = lo; i < hi; i++) tokens += r->lens[i];
    }
    *weight = 1; /* normalised by the global batch's masked count already */
    r->tokens_seen += tokens;
    r->eval_loss += step_loss, r->eval_n++;
    *loss = step_loss;
    *units = tokens;
    return 0;
}

static int mlm_eval(void *ctx, long done, int epoch, af_err *e) {
    run_ctx *r = ctx;
    progress_pause(r->pr);
    if (evaluate(r->p, r->dev, r->mk, r->c, &r->last, e)) return -1;
    if (r->logf) {
        fprintf(r->logf,
                "{\"step\":%ld,\"tokens_seen\":%lld,\"lr\":%.6g,\"train_loss\":%.6g,"
                "\"dev_loss\":%.6g,\"dev_accuracy\":%.6g,\"dev_masked\":%ld,"
                "\"unigram_accuracy\":%.6g,\"elapsed\":%.1f}\n",
                done, r->tokens_seen, r->pr->lr, r->eval_loss / r->eval_n, r->last.loss,
                r->last.acc, r->last.n, r->uni_acc, af_now() - r->t_start);
        if (fflush(r->logf)) return af_errf(e, "%s: %s", r->c->log, strerror(errno));
    }
    r->eval_loss = 0, r->eval_n = 0;
    progress_note(r->pr, "dev step %ld: loss %.4f  accuracy %.4f  (%ld masked; unigram %.4f)", done,
                  r->last.loss, r->last.acc, r->last.n, r->uni_acc);
    progress_resume(r->pr);
    return 0;
}

/* A checkpoint directory: the model in F32 and trainer.safetensors (the optimizer's state, the
 * run record, the tokens seen), replaced in one rename. */
static int mlm_checkpoint(void *ctx, long done, af_err *e) {
    run_ctx *r = ctx;
    st_writer sw;
    st_writer_init(&sw);
    optim_state_add(r->o, &sw, "optim.");
    st_writer_meta(&sw, "run", r->run);
    char tsb[32];
    snprintf(tsb, sizeof tsb, "%lld", r->tokens_seen);
    st_writer_meta(&sw, "tokens_seen", tsb);
    st_meta meta[1] = {{"created_by", "af-pretrain " AF_VERSION " (checkpoint)"}};
    int rc = pretrain_save(r->c->ckpt, r->m, r->head, r->tok, 0, meta, 1, &sw, e);
    st_writer_free(&sw);
    return rc;
}

/* The steps of an epoch: its full micro-batches (the rest wait for the next), --accumulate to a
 * step. */
static long steps_per_epoch(const mlmtrain_opts *c, const mlm_packer *train) {
    return (long)(train->nseq / c->batch) / c->accum;
}

static int resume(const mlmtrain_opts *c, const char *run, optim *opt, bert *m, mlm_head *head,
                  long long *tokens, af_err *e) {
    char path[4300];
    snprintf(path, sizeof path, "%s/trainer.safetensors", c->ckpt);
    st_file f;
    if (st_open(&f, path, e)) return af_err_prefix(e, "cannot resume");
    int rc = runrec_compare(st_meta_get(&f, "run"), run, path, PRETRAIN_MAY_CHANGE, e);
    if (rc == 0) rc = optim_state_load(opt, &f, "optim.", e);
    const char *ts = st_meta_get(&f, "tokens_seen");
    *tokens = ts ? atoll(ts) : -1;
    st_close(&f);
    if (rc) return -1;
    bert m2;
    if (bert_load(&m2, c->ckpt, e)) return -1;
    memcpy(m->mem, m2.mem, m->nparams * sizeof(float));
    bert_free(&m2);
    snprintf(path, sizeof path, "%s/model.safetensors", c->ckpt);
    if (st_open(&f, path, e)) return -1;
    rc = mlm_load(head, &f, e);
    st_close(&f);
    if (rc < 0) return -1;
    if (rc != 1) return af_errf(e, "%s: no MLM head in the checkpoint", path);
    return 0;
}

/* The training record in the model file's metadata; no wall time, so the same run gives the
 * same bytes. */
static char *training_record(const mlmtrain_opts *c, const char *run, long total, long warmup,
                             const run_ctx *r, const bert *m, const mlm_packer *dev,
                             const mlmtrain_corpus *corpus) {
    cJSON *rec = cJSON_Parse(run);
    cJSON_AddNumberToObject(rec, "steps", total);
    cJSON_AddNumberToObject(rec, "tokens_seen", (double)r->tokens_seen);
    cJSON_AddNumberToObject(rec, "documents", corpus->docs);
    cJSON_AddNumberToObject(rec, "lr", c->lr);
    cJSON_AddNumberToObject(rec, "warmup_steps", warmup);
    cJSON_AddNumberToObject(rec, "weight_decay", c->wd);
    if (c->base) cJSON_AddStringToObject(rec, "base", m->fingerprint);
    if (c->dev) {
        cJSON_AddNumberToObject(rec, "dev_tokens", (double)dev->ntokens);
        cJSON_AddNumberToObject(rec, "dev_mlm_loss", r->last.loss);
        cJSON_AddNumberToObject(rec, "dev_mlm_accuracy", r->last.acc);
        cJSON_AddNumberToObject(rec, "unigram_accuracy", corpus->unigram_acc);
        cJSON_AddNumberToObject(rec, "unigram_loss", corpus->unigram_loss);
    }
    char *s = cJSON_PrintUnformatted(rec);
    cJSON_Delete(rec);
    return s;
}

int mlmtrain_run(const mlmtrain_opts *c, bert *m, mlm_head *head, mlm_masker *mk, const lmtok *tok,
                 const mlm_packer *train, const mlm_packer *dev, const mlmtrain_corpus *corpus,
                 long *step, af_err *e) {
    long per_epoch = steps_per_epoch(c, train);
    if (per_epoch < 1)
        return af_errf(e, "%d micro-batches per epoch, fewer than --accumulate %d",
                       train->nseq / c->batch, c->accum);
    long total = c->steps ? c->steps : per_epoch * c->epochs;
    long warmup = (long)ceil(c->warmup_ratio * total);
    int lead = dist_rank() == 0;

    pretrain p;
    pretrain_init(&p, m, head, mk, c->batch, c->max_len);
    int nt = pretrain_tensors(m, &p.g, head, NULL);
    pretrain_tensor *tens = af_malloc((size_t)nt * sizeof *tens);
    pretrain_tensors(m, &p.g, head, tens);
    optim opt;
    optim_init(&opt);
    int grp = optim_add_group(&opt, c->lr, c->wd);
    for (int i = 0; i < nt; i++)
        optim_add_param(&opt, grp, tens[i].name, tens[i].w, tens[i].g, tens[i].n, tens[i].decay);
    optim_schedule(&opt, total, warmup);

    char vocab_digest[65];
    char *run = NULL, *rec = NULL;
    run_ctx r = {.c = c,
                 .p = &p,
                 .o = &opt,
                 .m = m,
                 .head = head,
                 .mk = mk,
                 .tok = tok,
                 .train = train,
                 .dev = dev,
                 .per_epoch = per_epoch,
                 .plan_epoch = -1,
                 .uni_acc = corpus->unigram_acc,
                 .last = {NAN, NAN, 0}};
    r.seqs = af_malloc((size_t)c->batch * sizeof *r.seqs);
    r.lens = af_malloc((size_t)c->batch * sizeof *r.lens);
    progress pr;
    progress_init(&pr, stderr, c->quiet, (int)((total + per_epoch - 1) / per_epoch), total, 0);
    pr.unit = "tok";
    r.pr = &pr;
    int status = lmtok_digest(tok, vocab_digest, e);
    if (status == 0) r.run = run = run_json(c, total, train, dev, m, vocab_digest);
    long long resumed_tokens = 0;
    if (status == 0 && c->resume) {
        status = resume(c, run, &opt, m, head, &resumed_tokens, e);
        if (status == 0)
            progress_note(&pr, "%s: resuming at step %lld of %ld", program_invocation_short_name,
                          (long long)opt.step, total);
    }
    r.tokens_seen = resumed_tokens >= 0 ? resumed_tokens
                                        : (long long)opt.step * c->accum * c->batch * c->max_len;
    if (status == 0 && lead && c->log && !(r.logf = fopen(c->log, c->resume ? "a" : "w")))
        status = af_errf(e, "%s: %s", c->log, strerror(errno));
    *step = (long)opt.step;
    if (status == 0) {
        progress_init(&pr, stderr, c->quiet, (int)((total + per_epoch - 1) / per_epoch), total,
                      *step);
        pr.unit = "tok";
        r.t_start = af_now();
        loop_opts lo = {.total_steps = total,
                        .steps_per_epoch = per_epoch,
                        .eval_every = c->dev ? c->eval_every : 0,
                        .eval_at_end = c->dev != NULL,
                        .save_every = c->save_every,
                        .max_grad_norm = c->clip,
                        .lr_group = grp};
        loop_hooks hooks = {&r, mlm_step, c->dev ? mlm_eval : NULL, mlm_checkpoint};
        status = loop_run(&opt, &lo, &hooks, &pr, step, NULL, e);
    }
    if (status == 0 && lead) {
        rec = training_record(c, run, total, warmup, &r, m, dev, corpus);
        st_meta meta[2] = {{"training", rec}, {"created_by", "af-pretrain " AF_VERSION}};
        status = pretrain_save(c->out, m, head, tok, c->f16, meta, 2, NULL, e);
    }
    if (r.logf && fclose(r.logf) && status == 0)
        status = af_errf(e, "%s: %s", c->log, strerror(errno));
    free(rec), free(run), free(r.seqs), free(r.lens), free(tens);
    batch_plan_free(&r.plan);
    optim_free(&opt);
    pretrain_free(&p);
    return status;
}
