/* bench-model: af's side of the peer comparison (../shared/peer/bench_torch.py). One measurement
 * per run, so the caller can read its peak RSS from getrusage of the child (bench-rss):
 *
 *   bench-model --model mini|base --mode MODE [--batch B] [--seq S]
 *               MODE: infer, infer_adapter, infer_fusion, adapter, fusion
 *               [--threads T] [--steps N] [--warmup N] [--peak GFLOPS] [--base DIR]
 *               [--micro-batch N|auto]   (training passes, as af-fuse --micro-batch: auto, the
 *                                         default, as the tools; 0: whole batches)
 *               [--drop-layers K]        (adapter, fusion: no adapters in layers 0..K-1, as
 *                                         --drop-layers; the batch's examples go through the
 *                                         layer cache, which the warmup steps fill, so the
 *                                         timed steps are those of a second epoch)
 *   bench-model --model mini|base --make-base DIR [--f16]   (writes the random base, F32, or
 *                                                           rounded to F16 as checkpoints ship)
 *   bench-model --measure-peak     (best sgemm GFLOP/s of BERT's FFN shape, and OpenBLAS's core)
 *
 * With --base the encoder is read from DIR as the tools read theirs (bert_load_16); the bench
 * script writes it first, in a process of its own, so that the measured process holds only what a
 * tool would.
 * The model is what the peer builds: BERT with random weights (vocab 30522, 512 positions), a
 * 2-label classification head; adapter: one Pfeiffer adapter per layer (reduction 16, relu)
 * trained with the head; fusion: attention fusion over 3 frozen random adapters, trained with the
 * head (and the value regulariser, as AdapterTrainer adds it). Every step is what af-train-adapter
 * and af-fuse do per batch: zero the gradients, model_run (forward + backward), clip, AdamW step;
 * inference is model_run without gradients, as af-infer runs it. Dropout 0.1 everywhere, as the
 * peer trains in train() mode.
 *
 * Prints one line of key=value pairs; GFLOP/s use the peer's flops_per_step accounting (matrix
 * products of the *unoptimised* computation), so the figures of both compare directly. */
#include "layercache.h"
#include "model.h"
#include "ops.h"
#include "optim.h"
#include "safetensors.h"
#include "train.h"

#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* infer: the base and a head; infer_adapter: with one adapter; infer_fusion: attention fusion over
 * three adapters (the peer's modes of the same names, and ONNX Runtime's adapter and fusion models) */
enum { MODE_INFER, MODE_INFER_ADAPTER, MODE_INFER_FUSION, MODE_ADAPTER, MODE_FUSION };
#define NADAPTERS 3
#define REDUCTION 16

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* bench_torch.py flops_per_step, transcribed. */
static double flops_per_step(const bert_config *c, int mode, double B, double S) {
    double H = c->hidden, F = c->ffn, L = c->layers, m = H / REDUCTION, N = NADAPTERS, T = B * S;
    double base = 8 * H * H + 4 * H * F, attn = 4 * S * H, ad = 4 * H * m;
    double fu = 2 * H * H + 4 * N * H * H + 4 * N * H;
    double head = B * (2 * H * H + 2 * H * 2 + 2 * H * H);
    if (mode == MODE_INFER) return T * L * (base + attn) + head;
    if (mode == MODE_INFER_ADAPTER) return T * L * (base + attn + ad) + head;
    if (mode == MODE_INFER_FUSION) return T * L * (base + attn + N * ad + fu) + head;
    if (mode == MODE_ADAPTER)
        return T * L * (base + attn + ad) + head + T * (L - 1) * (base + 2 * attn) +
               T * L * 2 * ad + 2 * B * (2 * H * H + 4 * H);
    double fu_lin = 2 * H * H + 4 * N * H * H;
    return T * L * (base + attn + N * ad + fu) + head + T * (L - 1) * (base + 2 * attn + N * ad) +
           T * L * (2 * fu_lin + 2 * 4 * N * H) + 2 * B * (2 * H * H + 4 * H);
}

/* The best of 5 runs of BERT-base's FFN-in product (2048x768 . 768x3072, as nn.Linear), the shape
 * at which sgemm_peak.txt finds OpenBLAS fastest, through af's gemm: split over af's pool of
 * --threads threads, each part a single-threaded OpenBLAS call (af_set_threads sets OpenBLAS to one
 * thread, so a bare cblas_sgemm here would measure one core). The ceiling when sgemm_peak.txt is
 * absent, and af's own rate beside it. */
static double measure_peak(void) {
    int M = 2048, K = 768, N = 3072;
    float *a = calloc((size_t)M * K, 4), *b = calloc((size_t)N * K, 4), *c = calloc((size_t)M * N, 4);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)(i % 5) * 0.1f;
    double best = 0;
    for (int r = 0; r < 6; r++) {
        double t0 = now();
        gemm(0, 1, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
        double gf = 2.0 * M * N * K / (now() - t0) * 1e-9;
        if (r && gf > best) best = gf;
    }
    free(a), free(b), free(c);
    return best;
}

static void die(const char *what, const af_err *e) {
    fprintf(stderr, "bench-model: %s: %s\n", what, e->msg);
    exit(1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Three random adapters written to files and read back, as af-fuse gets them. */
static void load_random_adapters(af_model *m, bert *base, const char *tmp) {
    char paths[NADAPTERS][600];
    const char *pp[NADAPTERS];
    af_err e;
    for (int i = 0; i < NADAPTERS; i++) {
        af_model a;
        model_init(&a, base);
        char name[16];
        snprintf(name, sizeof name, "a%d", i);
        adapter_spec spec = {SITE_PFEIFFER, REDUCTION, 0, AF_ACT_RELU};
        if (model_new_adapter(&a, name, &spec, 100 + i, &e)) die("adapter", &e);
        char *labels[] = {"0", "1"};
        if (model_add_head(&a, "h", HEAD_CLASSIFICATION, 2, labels, 7, &e)) die("head", &e);
        model_finalize(&a);
        st_writer w;
        st_writer_init(&w);
        model_writer(&a, &w, MODEL_FORMAT_ADAPTER, 1 << PG_ADAPTER | 1 << PG_HEAD, NULL);
        snprintf(paths[i], sizeof paths[i], "%s/a%d.safetensors", tmp, i);
        if (st_writer_write(&w, paths[i], &e)) die(paths[i], &e);
        st_writer_free(&w);
        model_free(&a);
        pp[i] = paths[i];
    }
    if (model_load_adapters(m, pp, NADAPTERS, &e)) die("load adapters", &e);
    for (int i = 0; i < NADAPTERS; i++) unlink(paths[i]);
}

int main(int argc, char **argv) {
    const char *model = "mini", *mode_s = "adapter";
    int B = 32, S = 64, threads = 2, steps = 10, warmup = 3, micro = TRAIN_PASS_AUTO, drop = 0;
    double peak = 0;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"mode", required_argument, 0, 'o'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"seq", required_argument, 0, 's'},
                                         {"threads", required_argument, 0, 't'},
                                         {"steps", required_argument, 0, 'n'},
                                         {"warmup", required_argument, 0, 'w'},
                                         {"peak", required_argument, 0, 'p'},
                                         {"measure-peak", no_argument, 0, 'P'},
                                         {"help", no_argument, 0, 'h'},
                                         {"base", required_argument, 0, 'B'},
                                         {"make-base", required_argument, 0, 'M'},
                                         {"f16", no_argument, 0, 'H'},
                                         {"micro-batch", required_argument, 0, 'u'},
                                         {"drop-layers", required_argument, 0, 'D'},
                                         {0, 0, 0, 0}};
    int peak_only = 0;
    const char *base_dir = NULL, *make_base = NULL;
    int f16 = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': model = optarg; break;
        case 'o': mode_s = optarg; break;
        case 'b': B = atoi(optarg); break;
        case 's': S = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'n': steps = atoi(optarg); break;
        case 'w': warmup = atoi(optarg); break;
        case 'p': peak = atof(optarg); break;
        case 'P': peak_only = 1; break;
        case 'B': base_dir = optarg; break;
        case 'M': make_base = optarg; break;
        case 'H':
            f16 = 1;
            break;
        case 'u': micro = !strcmp(optarg, "auto") ? TRAIN_PASS_AUTO : atoi(optarg); break;
        case 'D':
            drop = atoi(optarg);
            break;
        case 'h':
            puts("usage: bench-model [--model mini|base|roberta-base|distilbert-base]\n"
                 "                   [--mode infer|infer_adapter|infer_fusion|\n"
                 "                   adapter|fusion] [--batch B]\n"
                 "                   [--seq S] [--threads T] [--steps N] [--warmup N] [--peak GF]\n"
                 "                   [--base DIR] [--micro-batch N|auto] [--drop-layers K]\n"
                 "       bench-model [--model mini|base] --make-base DIR [--f16]\n"
                 "       bench-model --measure-peak [--threads T]");
            return 0;
        default: return 2;
        }
    }
    if (peak_only) {
        af_set_threads(threads);
        printf("%.1f %s\n", measure_peak(), openblas_get_corename());
        return 0;
    }
    static const char *const mode_names[] = {"infer", "infer_adapter", "infer_fusion", "adapter",
                                             "fusion"};
    int mode = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(mode_s, mode_names[i])) mode = i;
    /* roberta-base and distilbert-base: their Hugging Face configs, random weights */
    static const char *const arch_models[][2] = {
        {"roberta-base", "{\"model_type\":\"roberta\",\"vocab_size\":50265,"
                         "\"max_position_embeddings\":514,\"type_vocab_size\":1,"
                         "\"layer_norm_eps\":1e-5}"},
        {"distilbert-base", "{\"model_type\":\"distilbert\"}"},
    };
    const char *arch_json = NULL;
    for (int i = 0; i < 2; i++)
        if (!strcmp(model, arch_models[i][0])) arch_json = arch_models[i][1];
    int big = !strcmp(model, "base") || arch_json;
    int training = mode == MODE_ADAPTER || mode == MODE_FUSION;
    if (mode < 0 || (!big && strcmp(model, "mini")) || B < 1 || S < 1 || S > 512 || steps < 1 ||
        drop < 0 || drop >= (big ? 12 : 4) || (drop && (!training || warmup < 1))) {
        fprintf(stderr, "bench-model: bad arguments (see --help)\n");
        return 2;
    }
    af_set_threads(threads);
    bert_config c = {.vocab_size = 30522, .hidden = big ? 768 : 256, .layers = big ? 12 : 4,
                     .heads = big ? 12 : 4, .ffn = big ? 3072 : 1024, .max_pos = 512,
                     .type_vocab = 2, .pad_id = 0, .act = AF_ACT_GELU, .ln_eps = 1e-12f,
                     .hidden_dropout = 0.1f, .attn_dropout = 0.1f};
    bert base;
    af_err e;
    if (arch_json && bert_config_parse(&c, arch_json, model, &e)) die(model, &e);
    if (make_base) {
        bert_init_random(&base, &c, 1);
        if (bert_save(&base, make_base, NULL, &e)) die(make_base, &e);
        char wts[600];
        snprintf(wts, sizeof wts, "%s/model.safetensors", make_base);
        if (f16 && st_rewrite_f16(wts, &e)) die(wts, &e);
        bert_free(&base);
        return 0;
    }
    if (base_dir) {
        if (bert_load_16(&base, base_dir, &e)) die(base_dir, &e); /* as the tools load */
        base.cfg.hidden_dropout = base.cfg.attn_dropout = 0.1f;
    } else {
        bert_init_random(&base, &c, 1);
    }
    c = base.cfg;
    af_model m;
    model_init(&m, &base);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[512];
    snprintf(dir, sizeof dir, "%s/bench-model.XXXXXX", tmp);
    int with_adapter = mode == MODE_ADAPTER || mode == MODE_INFER_ADAPTER;
    int with_fusion = mode == MODE_FUSION || mode == MODE_INFER_FUSION;
    if (drop && model_leave_out(&m, (1ull << drop) - 1, &e)) die("--drop-layers", &e);
    if (with_adapter) {
        adapter_spec spec = {SITE_PFEIFFER, REDUCTION, 0, AF_ACT_RELU};
        if (model_new_adapter(&m, "a0", &spec, 3, &e)) die("adapter", &e);
    } else if (with_fusion) {
        if (!mkdtemp(dir)) {
            perror(dir);
            return 1;
        }
        uint64_t lo = m.leave_out;
        m.leave_out = 0; /* the adapters of every layer, then left out as af-fuse leaves them */
        load_random_adapters(&m, &base, dir);
        rmdir(dir);
        if (model_leave_out(&m, lo, &e)) die("--drop-layers", &e);
        fusion_config fc = {FUSION_ATTENTION, 0, 0, 4, 0, 0, c.attn_dropout};
        if (model_new_fusion(&m, &fc, 0, 5, &e)) die("fusion", &e);
        m.temperature = 1;
    }
    if (!with_fusion || m.nheads == 0) {
        char *labels[] = {"0", "1"};
        if (model_add_head(&m, "h", HEAD_CLASSIFICATION, 2, labels, 9, &e)) die("head", &e);
    }
    m.train_adapters = mode == MODE_ADAPTER;
    m.train_fusion = mode == MODE_FUSION;
    int train = mode == MODE_ADAPTER || mode == MODE_FUSION;
    m.train_heads = train;
    model_finalize(&m);
    /* rows per pass as train_run picks them */
    int rows = micro > 0 && micro < B ? micro : B;
    if (train && micro == TRAIN_PASS_AUTO) rows = model_pass_rows(&m, B, S, TRAIN_PASS_BUDGET);
    model_prepare(&m, rows, S, train);
    optim o;
    optim_init(&o);
    if (train) {
        int g = optim_add_group(&o, 1e-4, 0.01);
        for (int i = 0; i < m.nparams; i++)
            if (m.params[i].grad && m.params[i].trainable)
                optim_add_param(&o, g, m.params[i].name, m.params[i].data, m.params[i].grad,
                                m.params[i].n, m.params[i].decay);
        optim_schedule(&o, 0, 0);
    }
    /* inputs as the peer draws them: random ids over the whole vocabulary, no padding */
    int *ids = malloc((size_t)B * S * sizeof(int)), *hof = calloc(B, sizeof(int));
    float *gold = malloc(B * sizeof(float)), *out = malloc((size_t)B * 2 * sizeof(float));
    af_rng rng;
    af_rng_seed(&rng, 11);
    for (int i = 0; i < B * S; i++) ids[i] = (int)(af_rng_u64(&rng) % (uint64_t)c.vocab_size);
    for (int b = 0; b < B; b++) gold[b] = (float)(af_rng_u64(&rng) & 1);
    bert_batch bb = {B, S, ids, NULL, NULL};
    /* --drop-layers: the batch's rows are examples 0..B-1 of a training set, cached */
    int *ex = malloc(B * sizeof(int)), *lens = malloc(B * sizeof(int));
    for (int b = 0; b < B; b++) ex[b] = b, lens[b] = S;
    layercache lc;
    if (drop) {
        if (layercache_open(&lc, B, lens, c.hidden, TRAIN_CACHE_MEMORY, NULL, &e)) die("cache", &e);
        m.cache = &lc;
    }
    double *times = malloc((warmup + steps) * sizeof(double)), first = NAN, last = NAN;
    for (int it = 0; it < warmup + steps; it++) {
        double t0 = now(), loss;
        if (train) {
            optim_zero_grad(&o);
            loss = model_run_cached(&m, &bb, drop ? ex : NULL, hof, gold, 1, 1, NULL, 0);
            optim_clip_grad_norm(&o, 1.0);
            optim_step(&o);
        } else {
            loss = model_run(&m, &bb, hof, NULL, 1, 0, out, 2);
        }
        times[it] = now() - t0;
        if (it == 0) first = loss;
        last = loss;
    }
    qsort(times + warmup, steps, sizeof(double), cmp_double);
    double med = steps % 2 ? times[warmup + steps / 2]
                           : 0.5 * (times[warmup + steps / 2 - 1] + times[warmup + steps / 2]);
    double fl = flops_per_step(&c, mode, B, S), gf = fl / med * 1e-9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("impl=af model=%s mode=%s batch=%d seq=%d micro_batch=%d drop_layers=%d threads=%d "
           "median_step_s=%.5f min_step_s=%.5f ex_per_s=%.3f gflop_per_step=%.3f gflops=%.2f "
           "pct_sgemm_peak=%.1f loss_first=%.4f loss_last=%.4f maxrss_mib=%.1f "
           "arena_mib=%.1f\n",
           model, mode_s, B, S, rows, drop, threads, med, times[warmup], B / med, fl * 1e-9, gf,
           peak > 0 ? 100 * gf / peak : NAN, first, last, ru.ru_maxrss / 1024.0,
           m.arena.size / 1048576.0);
    optim_free(&o);
    model_free(&m);
    bert_free(&base);
    if (drop) layercache_close(&lc);
    free(ids), free(hof), free(gold), free(out), free(times), free(ex), free(lens);
    return 0;
}
