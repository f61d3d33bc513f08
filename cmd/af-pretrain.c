/* af-pretrain: masked-language-model pretraining of a new BERT, or continued pretraining of a
 * Hugging Face checkpoint on one's own text; writes a BertForMaskedLM directory. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "loop.h"
#include "common.h"
#include "dist.h"
#include "mlm.h"
#include "ops.h"
#include "optim.h"
#include "outlock.h"
#include "pretrain.h"
#include "progress.h"
#include "runrec.h"
#include "signals.h"
#include "tokenizer.h"

typedef struct {
    const char *base, *vocab, *out, *dev, *ckpt, *log;
    int layers, hidden, heads, ffn, max_pos;
    int act;
    double dropout;
    int max_len, batch, accum, epochs;
    long steps, save_every, eval_every;
    double lr, warmup_ratio, wd, clip, mask_prob;
    int resume, whole_word, quiet, f16, lower, threads;
    uint64_t seed;
    char **inputs;
    int ninputs;
} config;

static void usage(void) {
    printf("usage: af-pretrain --layers N --hidden N --heads N --ffn N --vocab FILE -o DIR [options] [FILE...]\n"
           "       af-pretrain --base DIR -o DIR [options] [FILE...]\n"
           "Masked-language-model pretraining of a BERT encoder (BertForMaskedLM).\n"
           "\n"
           "Input: raw text, one document per line, or tokenized JSONL (input_ids); gzip is\n"
           "read transparently; no FILE or '-' reads standard input.\n"
           "\n"
           "  --base DIR          continue pretraining a Hugging Face BERT checkpoint\n"
           "  --layers N, --hidden N, --heads N, --ffn N\n"
           "                      shape of a new model\n"
           "  --vocab FILE        vocab.txt (a new model; default for --base: DIR/vocab.txt)\n"
           "  --max-pos N         position embeddings of a new model (default 512)\n"
           "  --act NAME          hidden_act of a new model (default gelu)\n"
           "  --dropout X         dropout of a new model (default 0.1)\n"
           "  --no-lowercase      the vocabulary is cased\n"
           "  --max-len N         tokens per packed sequence, [CLS] and [SEP] included (128)\n"
           "  --batch-size N      sequences per micro-batch (32)\n"
           "  --accumulate N      micro-batches per optimizer step (1)\n"
           "  --lr X              peak learning rate (1e-4)\n"
           "  --warmup-ratio X    share of the steps spent warming up (0.01)\n"
           "  --weight-decay X    AdamW weight decay, not on biases and LayerNorm (0.01)\n"
           "  --clip X            gradient clipping at this global norm (1.0; 0: off)\n"
           "  --steps N           optimizer steps (default: --epochs over the corpus)\n"
           "  --epochs N          passes over the corpus (1)\n"
           "  --mask-prob X       share of tokens chosen for prediction (0.15)\n"
           "  --whole-word        choose whole words (a token and its ## pieces)\n"
           "  --dev FILE          held-out text: MLM loss and accuracy, against the unigram baseline\n"
           "  --eval-every N      evaluate on --dev every N steps (default: at the end)\n"
           "  --log FILE          one JSON line per evaluation (appended to when resuming)\n"
           "  --save-every N      write a resumable checkpoint every N steps\n"
           "  --checkpoint DIR    where checkpoints go (default: OUT.ckpt)\n"
           "  --resume            continue from the checkpoint\n"
           "  --f16               write the model's weights as float16\n"
           "  --seed N            seed of the initialisation, data order, masks, dropout (42)\n"
           "  --threads N         OpenBLAS threads (default: all cores)\n"
           "  -o, --output DIR    the model directory to write\n"
           "  -q, --quiet         no progress on standard error\n"
           "  -h, --help          this help\n"
           "  -V, --version       version\n");
}

enum {
    O_BASE = 256, O_LAYERS, O_HIDDEN, O_HEADS, O_FFN, O_VOCAB, O_MAXPOS, O_ACT, O_DROPOUT,
    O_NOLOWER, O_MAXLEN, O_BATCH, O_ACCUM, O_LR, O_WARMUP, O_WD, O_CLIP, O_STEPS, O_EPOCHS,
    O_MASKP, O_WWM, O_DEV, O_EVAL, O_SAVE, O_CKPT, O_RESUME, O_F16, O_SEED, O_THREADS, O_VERSION, O_LOG
};

static const struct option longopts[] = {
    {"base", required_argument, 0, O_BASE},       {"layers", required_argument, 0, O_LAYERS},
    {"hidden", required_argument, 0, O_HIDDEN},   {"heads", required_argument, 0, O_HEADS},
    {"ffn", required_argument, 0, O_FFN},         {"vocab", required_argument, 0, O_VOCAB},
    {"max-pos", required_argument, 0, O_MAXPOS},  {"act", required_argument, 0, O_ACT},
    {"dropout", required_argument, 0, O_DROPOUT}, {"no-lowercase", no_argument, 0, O_NOLOWER},
    {"max-len", required_argument, 0, O_MAXLEN},  {"batch-size", required_argument, 0, O_BATCH},
    {"accumulate", required_argument, 0, O_ACCUM}, {"lr", required_argument, 0, O_LR},
    {"warmup-ratio", required_argument, 0, O_WARMUP},
    {"weight-decay", required_argument, 0, O_WD}, {"clip", required_argument, 0, O_CLIP},
    {"steps", required_argument, 0, O_STEPS},     {"epochs", required_argument, 0, O_EPOCHS},
    {"mask-prob", required_argument, 0, O_MASKP}, {"whole-word", no_argument, 0, O_WWM},
    {"dev", required_argument, 0, O_DEV},         {"eval-every", required_argument, 0, O_EVAL},
    {"save-every", required_argument, 0, O_SAVE}, {"checkpoint", required_argument, 0, O_CKPT},
    {"resume", no_argument, 0, O_RESUME},         {"f16", no_argument, 0, O_F16},
    {"seed", required_argument, 0, O_SEED},       {"threads", required_argument, 0, O_THREADS},
    {"output", required_argument, 0, 'o'},        {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'},                {"version", no_argument, 0, O_VERSION},
    {"log", required_argument, 0, O_LOG},
    {0, 0, 0, 0}};

/* An output directory holds these files (what pretrain_save writes): none may be an input. */
static void output_dir(pathguard *g, const char *what, const char *dir) {
    static const char *const files[] = {"config.json", "model.safetensors", "vocab.txt",
                                        "tokenizer_config.json", "trainer.safetensors"};
    pathguard_output(g, what, dir);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *p;
        if (asprintf(&p, "%s/%s", dir, files[i]) < 0) die("out of memory");
        pathguard_output(g, what, p);
        free(p);
    }
}

static void check_paths(const config *c) {
    pathguard g;
    pathguard_init(&g);
    pathguard_input(&g, "--base", c->base);
    pathguard_input_dir(&g, "--base", c->base);
    pathguard_input(&g, "--vocab", c->vocab);
    pathguard_input(&g, "--dev", c->dev);
    for (int i = 0; i < c->ninputs; i++) pathguard_input(&g, "the corpus", c->inputs[i]);
    output_dir(&g, "-o", c->out);
    char *ck = NULL;
    if (!c->ckpt && asprintf(&ck, "%s.ckpt", c->out) < 0) die("out of memory");
    output_dir(&g, "--checkpoint", c->ckpt ? c->ckpt : ck);
    pathguard_output(&g, "--log", c->log);
    free(ck);
    pathguard_done(&g);
}

static void parse(config *c, int argc, char **argv) {
    *c = (config){.max_pos = 512, .act = AF_ACT_GELU, .dropout = 0.1, .max_len = 128,
                  .batch = 32, .accum = 1, .epochs = 1, .lr = 1e-4, .warmup_ratio = 0.01,
                  .wd = 0.01, .clip = 1.0, .mask_prob = 0.15, .lower = 1, .seed = 42};
    int o, have_epochs = 0;
    while ((o = getopt_long(argc, argv, "o:qhV", longopts, NULL)) != -1) {
        switch (o) {
        case O_BASE: c->base = optarg; break;
        case O_LAYERS: c->layers = (int)opt_long("--layers", optarg, 1, 48); break;
        case O_HIDDEN: c->hidden = (int)opt_long("--hidden", optarg, 1, 8192); break;
        case O_HEADS: c->heads = (int)opt_long("--heads", optarg, 1, 128); break;
        case O_FFN: c->ffn = (int)opt_long("--ffn", optarg, 1, 65536); break;
        case O_VOCAB: c->vocab = optarg; break;
        case O_MAXPOS: c->max_pos = (int)opt_long("--max-pos", optarg, 2, 65536); break;
        case O_ACT:
            if ((c->act = act_parse(optarg)) < 0) usage_error("--act: unknown activation '%s'", optarg);
            break;
        case O_DROPOUT: c->dropout = opt_double("--dropout", optarg, 0, 0.99); break;
        case O_NOLOWER: c->lower = 0; break;
        case O_MAXLEN: c->max_len = (int)opt_long("--max-len", optarg, 8, 65536); break;
        case O_BATCH: c->batch = (int)opt_long("--batch-size", optarg, 1, 1 << 16); break;
        case O_ACCUM: c->accum = (int)opt_long("--accumulate", optarg, 1, 1 << 16); break;
        case O_LR: c->lr = opt_double("--lr", optarg, 0, 10); break;
        case O_WARMUP: c->warmup_ratio = opt_double("--warmup-ratio", optarg, 0, 1); break;
        case O_WD: c->wd = opt_double("--weight-decay", optarg, 0, 10); break;
        case O_CLIP: c->clip = opt_double("--clip", optarg, 0, 1e9); break;
        case O_STEPS: c->steps = opt_long("--steps", optarg, 1, 1L << 40); break;
        case O_EPOCHS: c->epochs = (int)opt_long("--epochs", optarg, 1, 100000), have_epochs = 1; break;
        case O_MASKP: c->mask_prob = opt_double("--mask-prob", optarg, 0.001, 0.999); break;
        case O_WWM: c->whole_word = 1; break;
        case O_DEV: c->dev = optarg; break;
        case O_EVAL: c->eval_every = opt_long("--eval-every", optarg, 1, 1L << 40); break;
        case O_SAVE: c->save_every = opt_long("--save-every", optarg, 1, 1L << 40); break;
        case O_CKPT: c->ckpt = optarg; break;
        case O_LOG: c->log = optarg; break;
        case O_RESUME: c->resume = 1; break;
        case O_F16: c->f16 = 1; break;
        case O_SEED: c->seed = (uint64_t)opt_long("--seed", optarg, 0, 0x7fffffffffffffffL); break;
        case O_THREADS: c->threads = (int)opt_long("--threads", optarg, 1, 1024); break;
        case 'o': c->out = optarg; break;
        case 'q': c->quiet = 1; break;
        case 'h': usage(); exit(finish(0));
        case 'V':
        case O_VERSION: printf("af-pretrain %s (%s)\n", AF_VERSION, dist_library()); exit(finish(0));
        default:
            usage_try(); /* getopt_long said which */
        }
    }
    if (!c->out) usage_error("-o DIR is required");
    int shape = c->layers || c->hidden || c->heads || c->ffn;
    if (c->base && shape) usage_error("--base and --layers/--hidden/--heads/--ffn exclude each other");
    if (!c->base && !(c->layers && c->hidden && c->heads && c->ffn && c->vocab))
        usage_error("a new model needs --layers, --hidden, --heads, --ffn and --vocab (or use --base)");
    if (!c->base && c->hidden % c->heads)
        usage_error("--hidden %d is not a multiple of --heads %d", c->hidden, c->heads);
    if (c->steps && have_epochs) usage_error("--steps and --epochs exclude each other");
    if (!c->base && c->max_len > c->max_pos)
        usage_error("--max-len %d exceeds --max-pos %d", c->max_len, c->max_pos);
    c->inputs = argv + optind, c->ninputs = argc - optind;
    check_paths(c);
}

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
static dev_result evaluate(pretrain *p, const mlm_packer *dev, mlm_masker *mk, const config *c) {
    dev_result r = {0};
    double loss = 0;
    long correct = 0;
    af_err e;
    for (int s = 0; s < dev->nseq; s += c->batch) {
        int B = dev->nseq - s < c->batch ? dev->nseq - s : c->batch;
        const int *seqs[B];
        for (int i = 0; i < B; i++) seqs[i] = mlm_seq(dev, s + i);
        af_rng rng;
        af_rng_seed(&rng, mix(c->seed, 3, (uint64_t)s));
        p->masker = mk;
        pretrain_fill(p, seqs, dev->len + s, B, &rng);
        r.n += p->n;
        if (pretrain_run(p, 0, 0, NULL, &loss, &correct, &e)) die_err(&e);
    }
    r.loss = r.n ? loss / r.n : NAN;
    r.acc = r.n ? (double)correct / r.n : NAN;
    return r;
}

/* The facts of a run that a checkpoint must share with the run resuming it (runrec.h): every
 * option that changes what is computed, the model it starts from, the corpus and dev text. */
#define PRETRAIN_MAY_CHANGE                                                                       \
    "--threads, --log, --quiet, --checkpoint, -o, --save-every, --eval-every and the number of "  \
    "MPI ranks"
static char *run_json(const config *c, long total, const mlm_packer *train, const mlm_packer *dev,
                      const bert *m, const char *vocab_digest) {
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
    const config *c;
    pretrain *p;
    optim *o;
    bert *m;
    mlm_head *head;
    mlm_masker *mk;
    const mlm_packer *train, *dev;
    long per_epoch; /* optimizer steps per epoch */
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
    const config *c = r->c;
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
        for (int i = 0; i < B; i++) r->seqs[i] = mlm_seq(r->train, ix[i]), r->lens[i] = r->train->len[ix[i]];
        af_rng mrng, drng;
        af_rng_seed(&mrng, mix(c->seed, 1, (uint64_t)k));
        af_rng_seed(&drng, mix(c->seed, 2, (uint64_t)k));
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
    r->last = evaluate(r->p, r->dev, r->mk, r->c);
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
    int rc = pretrain_save(r->c->ckpt, r->m, r->head, r->c->vocab, r->c->lower, 0, meta, 1, &sw, e);
    st_writer_free(&sw);
    return rc;
}

static void read_inputs(mlm_packer *p, const config *c, tok_tokenizer *t, int V, long *docs) {
    af_err e;
    *docs = 0;
    int n = c->ninputs ? c->ninputs : 1;
    for (int i = 0; i < n; i++) {
        long d;
        if (pretrain_read_corpus(p, c->ninputs ? c->inputs[i] : "-", t, V, &d, &e)) die_err(&e);
        *docs += d;
    }
}

int main(int argc, char **argv) {
    af_prog = "af-pretrain";
    dist_init(&argc, &argv); /* joins MPI under mpirun only (dist.h) */
    config c;
    parse(&c, argc, argv);
    af_set_threads(c.threads);
    note_blas(c.quiet);
    af_err e;
    /* under mpirun, rank 0 alone speaks and writes; the others only compute */
    int lead = dist_rank() == 0;
    if (!lead) c.quiet = 1;
    for (int i = 0; dist_size() > 1 && i < (c.ninputs ? c.ninputs : 1); i++)
        if (!c.ninputs || strcmp(c.inputs[i], "-") == 0)
            usage_error("under mpirun standard input reaches rank 0 only: give the corpus as a "
                        "file argument");
    char ckpt_buf[4200];
    if (!c.ckpt) snprintf(ckpt_buf, sizeof ckpt_buf, "%s.ckpt", c.out), c.ckpt = ckpt_buf;
    /* before hours of training: -o and the checkpoint are replaced only when af-pretrain wrote
     * them, and only one run writes them at a time */
    if (lead && pretrain_check_output(c.out, &e)) die_err(&e);
    if (lead && pretrain_check_output(c.ckpt, &e)) die_err(&e);
    if (lead) outlock_hold(c.out);
    if (lead && c.ckpt != ckpt_buf) outlock_hold(c.ckpt);
    /* early, so a Ctrl-C while the corpus loads still ends in a checkpoint after one step */
    if (signals_install(&e)) die_err(&e);

    bert m;
    mlm_head head;
    char vocab_buf[4096];
    if (c.base) {
        if (bert_load(&m, c.base, &e)) die_err(&e);
        if (!c.vocab) snprintf(vocab_buf, sizeof vocab_buf, "%s/vocab.txt", c.base), c.vocab = vocab_buf;
        if (c.max_len > bert_max_len(&m.cfg))
            usage_error("--max-len %d exceeds the %d tokens the base takes", c.max_len,
                        bert_max_len(&m.cfg));
    }
    tok_options topt;
    tok_options_default(&topt);
    topt.lower = c.lower;
    tok_tokenizer *tok;
    if (tok_open(&tok, c.vocab, &topt, &e)) die_err(&e);
    int V = tok_vocab_size(tok);
    if (c.base) {
        if (V != m.cfg.vocab_size)
            die("%s: %d entries, but the base's vocab_size is %d", c.vocab, V, m.cfg.vocab_size);
        mlm_init(&head, &m.cfg, c.seed + 1);
        char path[4200];
        snprintf(path, sizeof path, "%s/model.safetensors", c.base);
        st_file f;
        if (st_open(&f, path, &e)) die_err(&e);
        if (mlm_load(&head, &f, &e) < 0) die_err(&e);
        st_close(&f);
    } else {
        int pad = tok_special(tok, TOK_PAD);
        bert_config cfg = {.vocab_size = V, .hidden = c.hidden, .layers = c.layers,
                           .heads = c.heads, .ffn = c.ffn, .max_pos = c.max_pos, .type_vocab = 2,
                           .pad_id = pad < 0 ? 0 : pad, .act = c.act, .ln_eps = 1e-12f,
                           .hidden_dropout = (float)c.dropout, .attn_dropout = (float)c.dropout};
        bert_init_random(&m, &cfg, c.seed);
        mlm_init(&head, &cfg, c.seed + 1);
    }

    /* masking: every bracketed entry and the tokenizer's specials are never predicted */
    const char **names = af_malloc((size_t)V * sizeof *names);
    for (int i = 0; i < V; i++) names[i] = tok_token(tok, i);
    int specials[TOK_NSPECIAL];
    for (int i = 0; i < TOK_NSPECIAL; i++) specials[i] = tok_special(tok, i);
    mlm_masker mk;
    if (mlm_masker_init(&mk, names, V, specials, TOK_NSPECIAL, tok_special(tok, TOK_MASK),
                        (float)c.mask_prob, c.whole_word, &e))
        die("%s: %s", c.vocab, e.msg);
    int cls = tok_special(tok, TOK_CLS), sep = tok_special(tok, TOK_SEP);

    double t0 = af_now();
    mlm_packer train, dev;
    mlm_packer_init(&train, c.max_len, cls, sep);
    mlm_packer_init(&dev, c.max_len, cls, sep);
    long docs, dev_docs = 0;
    read_inputs(&train, &c, tok, V, &docs);
    if (train.nseq < c.batch)
        die("%lld tokens make %d sequences of %d, fewer than one batch of %d", train.ntokens,
            train.nseq, c.max_len, c.batch);
    if (c.dev && pretrain_read_corpus(&dev, c.dev, tok, V, &dev_docs, &e)) die_err(&e);
    if (!c.quiet)
        fprintf(stderr, "%s: %ld documents, %lld tokens, %d sequences of %d (%.1fs)%s\n", af_prog,
                docs, train.ntokens, train.nseq, c.max_len, af_now() - t0,
                c.dev ? "" : "; no --dev");
    double uni_acc = NAN, uni_loss = NAN;
    if (c.dev) {
        pretrain_unigram(&train, &dev, &mk, &uni_acc, &uni_loss);
        if (!c.quiet)
            fprintf(stderr, "%s: dev: %ld documents, %lld tokens; unigram baseline: accuracy %.4f, loss %.4f\n",
                    af_prog, dev_docs, dev.ntokens, uni_acc, uni_loss);
    }

    int nb = train.nseq / c.batch; /* full micro-batches per epoch; the rest wait for the next */
    long per_epoch = nb / c.accum;
    if (per_epoch < 1) die("%d micro-batches per epoch, fewer than --accumulate %d", nb, c.accum);
    long total = c.steps ? c.steps : per_epoch * c.epochs;
    long warmup = (long)ceil(c.warmup_ratio * total);

    pretrain p;
    pretrain_init(&p, &m, &head, &mk, c.batch, c.max_len);
    int nt = pretrain_tensors(&m, &p.g, &head, NULL);
    pretrain_tensor *tens = af_malloc((size_t)nt * sizeof *tens);
    pretrain_tensors(&m, &p.g, &head, tens);
    optim opt;
    optim_init(&opt);
    int grp = optim_add_group(&opt, c.lr, c.wd);
    for (int i = 0; i < nt; i++)
        optim_add_param(&opt, grp, tens[i].name, tens[i].w, tens[i].g, tens[i].n, tens[i].decay);
    optim_schedule(&opt, total, warmup);

    char vocab_digest[65];
    if (af_sha256_file(c.vocab, vocab_digest, &e)) die_err(&e);
    char *run = run_json(&c, total, &train, &dev, &m, vocab_digest);
    long long resumed_tokens = 0;
    if (c.resume) {
        char path[4300];
        snprintf(path, sizeof path, "%s/trainer.safetensors", c.ckpt);
        st_file f;
        if (st_open(&f, path, &e)) die("cannot resume: %s", e.msg);
        if (runrec_compare(st_meta_get(&f, "run"), run, path, PRETRAIN_MAY_CHANGE, &e))
            die_err(&e);
        if (optim_state_load(&opt, &f, "optim.", &e)) die_err(&e);
        const char *ts = st_meta_get(&f, "tokens_seen");
        resumed_tokens = ts ? atoll(ts) : -1;
        st_close(&f);
        bert m2;
        if (bert_load(&m2, c.ckpt, &e)) die_err(&e);
        memcpy(m.mem, m2.mem, m.nparams * sizeof(float));
        bert_free(&m2);
        snprintf(path, sizeof path, "%s/model.safetensors", c.ckpt);
        if (st_open(&f, path, &e)) die_err(&e);
        if (mlm_load(&head, &f, &e) != 1) die("%s: no MLM head in the checkpoint", path);
        st_close(&f);
        if (!c.quiet) fprintf(stderr, "%s: resuming at step %lld of %ld\n", af_prog, (long long)opt.step, total);
    }

    run_ctx r = {.c = &c, .p = &p, .o = &opt, .m = &m, .head = &head, .mk = &mk, .train = &train,
                 .dev = &dev, .per_epoch = per_epoch, .plan_epoch = -1, .uni_acc = uni_acc,
                 .run = run, .last = {NAN, NAN, 0}};
    r.tokens_seen = resumed_tokens >= 0 ? resumed_tokens
                                        : (long long)opt.step * c.accum * c.batch * c.max_len;
    r.seqs = af_malloc((size_t)c.batch * sizeof *r.seqs);
    r.lens = af_malloc((size_t)c.batch * sizeof *r.lens);
    double t_start = af_now();
    r.t_start = t_start;
    if (lead && c.log && !(r.logf = fopen(c.log, c.resume ? "a" : "w")))
        die("%s: %s", c.log, strerror(errno));
    progress pr;
    progress_init(&pr, stderr, c.quiet, (int)((total + per_epoch - 1) / per_epoch), total,
                  (long)opt.step);
    pr.unit = "tok";
    r.pr = &pr;
    loop_opts lo = {.total_steps = total,
                    .steps_per_epoch = per_epoch,
                    .eval_every = c.dev ? c.eval_every : 0,
                    .eval_at_end = c.dev != NULL,
                    .save_every = c.save_every,
                    .max_grad_norm = c.clip,
                    .lr_group = grp};
    loop_hooks hooks = {&r, mlm_step, c.dev ? mlm_eval : NULL, mlm_checkpoint};
    long step = (long)opt.step;
    int status = loop_run(&opt, &lo, &hooks, &pr, &step, NULL, &e);
    if (status < 0) die_err(&e);
    if (status > 0 && lead)
        fprintf(stderr, "%s: interrupted at step %ld; checkpoint in %s (--resume)\n", af_prog, step,
                c.ckpt);
    long long tokens_seen = r.tokens_seen;
    dev_result last = r.last;
    char *recs = NULL;
    if (status) goto done;

    /* the training record, in the model file's metadata */
    cJSON *rec = cJSON_Parse(run);
    cJSON_AddNumberToObject(rec, "steps", total);
    cJSON_AddNumberToObject(rec, "tokens_seen", (double)tokens_seen);
    cJSON_AddNumberToObject(rec, "documents", docs);
    cJSON_AddNumberToObject(rec, "lr", c.lr);
    cJSON_AddNumberToObject(rec, "warmup_steps", warmup);
    cJSON_AddNumberToObject(rec, "weight_decay", c.wd);
    if (c.base) cJSON_AddStringToObject(rec, "base", m.fingerprint);
    if (c.dev) {
        cJSON_AddNumberToObject(rec, "dev_tokens", (double)dev.ntokens);
        cJSON_AddNumberToObject(rec, "dev_mlm_loss", last.loss);
        cJSON_AddNumberToObject(rec, "dev_mlm_accuracy", last.acc);
        cJSON_AddNumberToObject(rec, "unigram_accuracy", uni_acc);
        cJSON_AddNumberToObject(rec, "unigram_loss", uni_loss);
    }
    /* no wall time in the record: the same run must give the same bytes */
    recs = cJSON_PrintUnformatted(rec);
    cJSON_Delete(rec);
    st_meta meta[2] = {{"training", recs}, {"created_by", "af-pretrain " AF_VERSION}};
    if (lead && pretrain_save(c.out, &m, &head, c.vocab, c.lower, c.f16, meta, 2, NULL, &e))
        die_err(&e);
    if (!c.quiet) fprintf(stderr, "%s: wrote %s (%.0fs)\n", af_prog, c.out, af_now() - t_start);

done:
    if (r.logf && fclose(r.logf)) die("%s: %s", c.log, strerror(errno));
    free(recs), free(run), free(r.seqs), free(r.lens), free(tens), free(names);
    batch_plan_free(&r.plan);
    optim_free(&opt);
    pretrain_free(&p);
    mlm_packer_free(&train), mlm_packer_free(&dev);
    mlm_masker_free(&mk);
    mlm_free(&head);
    tok_close(tok);
    bert_free(&m);
    signals_restore();
    return status ? status : finish(0);
}
