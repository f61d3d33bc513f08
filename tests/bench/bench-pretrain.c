/* bench-pretrain: MLM pretraining throughput (tokens/s), the figure that sizes `make base`.
 *
 *   bench-pretrain [--threads T] [--steps N]     (other options, meant for other benches, ignored)
 *
 * Each step is what af-pretrain does per micro-batch and optimizer step: mask 32 packed sequences
 * of 128 tokens, encoder + MLM head forward and backward, clip, AdamW. Random weights and random
 * tokens; the shapes are make-base.sh's (the base, and --short). */
#include "mlm.h"
#include "ops.h"
#include "optim.h"
#include "pretrain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int layers, hidden, heads, ffn, vocab;
} shape;

static void run(const shape *s, int steps, int threads) {
    enum { B = 32, S = 128 };
    bert_config cfg = {.vocab_size = s->vocab, .hidden = s->hidden, .layers = s->layers,
                       .heads = s->heads, .ffn = s->ffn, .max_pos = 512, .type_vocab = 2,
                       .act = AF_ACT_GELU, .ln_eps = 1e-12f};
    bert m;
    mlm_head h;
    bert_init_random(&m, &cfg, 1);
    mlm_init(&h, &cfg, 2);
    int special[] = {0, 1, 2, 3, 4};
    mlm_masker mk;
    af_err e;
    if (mlm_masker_init(&mk, NULL, s->vocab, special, 5, 4, 0.15f, 0, 0, &e)) {
        fprintf(stderr, "bench-pretrain: %s\n", e.msg);
        exit(1);
    }
    pretrain p;
    pretrain_init(&p, &m, &h, &mk, B, S);
    int nt = pretrain_tensors(&m, &p.g, &h, NULL);
    pretrain_tensor *t = malloc(nt * sizeof *t);
    pretrain_tensors(&m, &p.g, &h, t);
    optim o;
    optim_init(&o);
    int g = optim_add_group(&o, 1e-4, 0.01);
    for (int i = 0; i < nt; i++) optim_add_param(&o, g, t[i].name, t[i].w, t[i].g, t[i].n, t[i].decay);
    af_rng r;
    af_rng_seed(&r, 3);
    int *tok = malloc(B * S * sizeof(int)), lens[B];
    const int *seqs[B];
    for (int i = 0; i < B; i++) {
        for (int j = 0; j < S; j++) tok[i * S + j] = 5 + (int)af_rng_below(&r, s->vocab - 5);
        tok[i * S] = 2, tok[i * S + S - 1] = 3;
        seqs[i] = tok + i * S, lens[i] = S;
    }
    double t0 = 0;
    for (int k = -1; k < steps; k++) { /* one warm-up step */
        if (k == 0) t0 = af_now();
        optim_zero_grad(&o);
        pretrain_fill(&p, seqs, lens, B, &r);
        double loss = 0;
        long hit = 0;
        if (pretrain_run(&p, 1, 1.0f / (p.n ? p.n : 1), &r, &loss, &hit, &e)) {
            fprintf(stderr, "bench-pretrain: %s\n", e.msg);
            exit(1);
        }
        optim_clip_grad_norm(&o, 1.0);
        optim_step(&o);
    }
    double dt = (af_now() - t0) / steps;
    printf("%-6s %2d x %4d, %2d heads, ffn %4d, vocab %5d  %7.1f ms/step  %7.0f tokens/s  (%d threads)\n",
           s->name, s->layers, s->hidden, s->heads, s->ffn, s->vocab, dt * 1e3, B * S / dt, threads);
    free(t), free(tok);
    optim_free(&o);
    pretrain_free(&p);
    mlm_masker_free(&mk);
    mlm_free(&h);
    bert_free(&m);
}

int main(int argc, char **argv) {
    int threads = 2, steps = 5;
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--steps") == 0) steps = atoi(argv[++i]);
    }
    if (steps < 1) steps = 1;
    af_set_threads(threads);
    printf("MLM pretraining step (batch 32 x 128 tokens, masked 15%%, AdamW), make-base.sh shapes\n");
    shape s[] = {{"base", 4, 256, 4, 1024, 8192}, {"short", 2, 128, 2, 512, 4096}};
    for (int i = 0; i < 2; i++) run(&s[i], steps, threads);
    return 0;
}
