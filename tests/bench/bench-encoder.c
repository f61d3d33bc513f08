/* bench-encoder: throughput of the BERT encoder on random weights, one table row per (model,
 * mode): forward (inference), forward + frozen backward (input gradients down to the lowest
 * adapter site, as adapter training needs), forward + full backward (every weight gradient).
 *
 * GFLOP/s counts the matrix products only (what cblas_sgemm does), so it compares directly with
 * ../shared/peer/sgemm_peak.txt. To add a row, add a model to `models` or a mode to `modes`. */
#include "bert.h"
#include "ops.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int layers, hidden, heads, ffn;
} models[] = {
    {"mini", 4, 256, 4, 1024},
    {"base", 12, 768, 12, 3072},
};

enum { MODE_FWD, MODE_FROZEN, MODE_FULL, NMODES };
static const char *mode_names[NMODES] = {"forward", "fwd+bwd frozen", "fwd+bwd full"};

/* A pass-through hook at every FFN-output site (where Pfeiffer adapters sit): the same function
 * as the default site, but it makes the frozen backward run down to layer 0's output site. */
typedef struct {
    int H;
    float *z, *mean, *rstd, *tmp; /* z: (L, M, H), mean/rstd: (L, M), tmp: (M, H) */
    size_t M;
} passhook;

static int ph_active(void *ctx, int l, int site) {
    return site == BERT_SITE_OUT;
}

static void ph_forward(void *ctx, int l, int site, int slot, float *out, const float *h,
                       const float *r, const float *ln_w, const float *ln_b, float eps, int M) {
    passhook *p = ctx;
    float *z = p->z + (size_t)l * p->M * p->H;
    vec_add2(z, h, r, (size_t)M * p->H);
    layernorm_forward(out, p->mean + (size_t)l * p->M, p->rstd + (size_t)l * p->M, z, ln_w, ln_b, M,
                      p->H, eps);
}

static void ph_backward(void *ctx, int l, int site, float *dh, float *dr, const float *dout,
                        const float *h, const float *r, const float *ln_w, const float *ln_b,
                        float eps, int M) {
    passhook *p = ctx;
    layernorm_backward_set(dh, dr, NULL, dout, p->z + (size_t)l * p->M * p->H, NULL, ln_w,
                           p->mean + (size_t)l * p->M, p->rstd + (size_t)l * p->M, M, p->H);
}

/* Matrix-product FLOPs of one layer's forward: q/k/v, attention output, FFN, and the two
 * attention products per head. */
static double layer_flops(const bert_config *c, int B, int S) {
    double M = (double)B * S, H = c->hidden, F = c->ffn;
    return 2 * M * (4 * H * H + 2 * H * F) + 4.0 * B * S * S * H;
}

static double step_flops(const bert_config *c, int B, int S, int mode) {
    double f = layer_flops(c, B, S), L = c->layers;
    switch (mode) {
    case MODE_FWD:
        return L * f;
    case MODE_FROZEN:
        /* input gradients only: one product per linear, two per attention product; layer 0
         * stops at its output site */
        return L * f + (L - 1) * (f + 4.0 * B * S * S * c->hidden);
    default:
        /* input and weight gradients: two products per linear */
        return L * f + L * (2 * f);
    }
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench-encoder [--model mini|base|all] [--mode forward|frozen|full|all]\n"
               "                     [--batch N] [--seq N] [--threads N] [--min-time SECONDS]\n"
               "                     [--no-header]\n");
}

int main(int argc, char **argv) {
    const char *model = "all", *mode = "all";
    int B = 32, S = 128, threads = 2, header = 1;
    double min_time = 2.0;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"mode", required_argument, 0, 'o'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"seq", required_argument, 0, 's'},
                                         {"threads", required_argument, 0, 't'},
                                         {"min-time", required_argument, 0, 'T'},
                                         {"no-header", no_argument, 0, 'n'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'm':
            model = optarg;
            break;
        case 'o':
            mode = optarg;
            break;
        case 'b':
            B = atoi(optarg);
            break;
        case 's':
            S = atoi(optarg);
            break;
        case 't':
            threads = atoi(optarg);
            break;
        case 'T':
            min_time = atof(optarg);
            break;
        case 'n':
            header = 0;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (B < 1 || S < 1 || S > 512) {
        usage(stderr);
        return 2;
    }
    af_set_threads(threads);
    if (header)
        printf("%-5s %-15s %9s %3s %9s %8s %9s %8s\n", "model", "mode", "batch", "thr", "seq/s",
               "GFLOP/s", "ms/step", "acts MB");
    for (size_t mi = 0; mi < sizeof models / sizeof *models; mi++) {
        if (strcmp(model, "all") && strcmp(model, models[mi].name)) continue;
        bert_config c = {.vocab_size = 30522,
                         .hidden = models[mi].hidden,
                         .layers = models[mi].layers,
                         .heads = models[mi].heads,
                         .ffn = models[mi].ffn,
                         .max_pos = 512,
                         .type_vocab = 2,
                         .pad_id = 0,
                         .act = AF_ACT_GELU,
                         .ln_eps = 1e-12f,
                         .hidden_dropout = 0.1f,
                         .attn_dropout = 0.1f};
        bert m;
        bert_init_random(&m, &c, 1);
        int M = B * S;
        int *ids = malloc(M * sizeof(int)), *types = calloc(M, sizeof(int));
        int *mask = malloc(M * sizeof(int));
        af_rng rng;
        af_rng_seed(&rng, 2);
        for (int i = 0; i < M; i++) ids[i] = 1000 + (int)af_rng_below(&rng, 20000), mask[i] = 1;
        bert_batch b = {B, S, ids, types, mask};
        float *dout = malloc((size_t)M * c.hidden * sizeof(float));
        for (size_t i = 0; i < (size_t)M * c.hidden; i++) dout[i] = 1e-3f * af_rng_normal(&rng);
        passhook ph = {c.hidden, NULL, NULL, NULL, NULL, (size_t)M};
        bert_hooks hk = {&ph, ph_active, ph_forward, ph_backward, 0, 1};
        for (int md = 0; md < NMODES; md++) {
            if (strcmp(mode, "all") && !strstr(mode_names[md], mode)) continue;
            int train = md != MODE_FWD;
            af_arena a;
            af_arena_init(&a, bert_acts_bytes(&c, B, S, train));
            bert_acts *A = bert_acts_new(&a, &c, B, S, train);
            bert_grads g = {0};
            if (md == MODE_FULL) bert_grads_init(&g, &c);
            if (md == MODE_FROZEN) {
                ph.z = malloc((size_t)c.layers * M * c.hidden * sizeof(float));
                ph.mean = malloc((size_t)c.layers * M * sizeof(float));
                ph.rstd = malloc((size_t)c.layers * M * sizeof(float));
                ph.tmp = malloc((size_t)M * c.hidden * sizeof(float));
            }
            /* one untimed step first: it faults the arena's pages in */
            int steps = 0;
            double t0 = 0, el = 0;
            for (int it = 0;; it++) {
                if (it == 1) t0 = af_now();
                bert_forward(&m, A, &b, md == MODE_FROZEN ? &hk : NULL, train, &rng);
                if (md == MODE_FROZEN) bert_backward(&m, A, dout, &hk, NULL);
                if (md == MODE_FULL) bert_backward(&m, A, dout, NULL, &g);
                if (it >= 1) {
                    steps++;
                    el = af_now() - t0;
                    if (el >= min_time) break;
                }
            }
            double per = el / steps;
            printf("%-5s %-15s %5dx%-3d %3d %9.1f %8.1f %9.1f %8.0f\n", models[mi].name,
                   mode_names[md], B, S, threads, B / per, step_flops(&c, B, S, md) / per / 1e9,
                   per * 1e3, a.size / 1048576.0);
            fflush(stdout);
            if (md == MODE_FULL) bert_grads_free(&g);
            if (md == MODE_FROZEN) free(ph.z), free(ph.mean), free(ph.rstd), free(ph.tmp);
            af_arena_free(&a);
        }
        free(ids), free(types), free(mask), free(dout);
        bert_free(&m);
    }
    return 0;
}
