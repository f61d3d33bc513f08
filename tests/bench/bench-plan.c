/* bench-plan: the batches af-train-adapter trains on in one epoch, for the PyTorch side of the
 * real-data benchmark (scripts/bench-sst2.py) to train on exactly the same ones:
 *
 *   bench-plan [--batch N] [--seed N] [--epoch N] < lengths    (one token count per line)
 *
 * prints one batch per line, the example indices (0-based, input order) separated by spaces:
 * batch_plan_epoch with af's default length bucketing, as lib/train.c calls it. */
#include "batch.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int batch = 32, epoch = 0;
    unsigned long long seed = 42;
    static const struct option opts[] = {{"batch", required_argument, 0, 'b'},
                                         {"seed", required_argument, 0, 's'},
                                         {"epoch", required_argument, 0, 'e'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'b') batch = atoi(optarg);
        else if (ch == 's') seed = strtoull(optarg, NULL, 10);
        else if (ch == 'e') epoch = atoi(optarg);
        else if (ch == 'h') {
            puts("usage: bench-plan [--batch N] [--seed N] [--epoch N] < lengths");
            return 0;
        } else return 2;
    }
    int n = 0, cap = 1024, *len = malloc(cap * sizeof(int)), v;
    while (scanf("%d", &v) == 1) {
        if (n == cap) len = realloc(len, (cap *= 2) * sizeof(int));
        len[n++] = v;
    }
    if (!n || batch < 1) {
        fprintf(stderr, "bench-plan: no lengths on stdin\n");
        return 2;
    }
    batch_plan p = {0};
    batch_plan_epoch(&p, len, n, batch, BATCH_BUCKET_DEFAULT, seed, epoch);
    for (int b = 0; b < p.nbatches; b++) {
        const int *idx = batch_plan_batch(&p, b);
        for (int k = 0; k < batch_plan_size(&p, b); k++) printf(k ? " %d" : "%d", idx[k]);
        putchar('\n');
    }
    batch_plan_free(&p);
    free(len);
    return 0;
}
