/* af-train-adapter: phase 1 of AdapterFusion. Trains one bottleneck adapter and its task head(s)
 * on a frozen BERT from tokenized JSONL, and writes them as one safetensors file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "ops.h"
#include "trainopts.h"

enum { O_ARCH = 2000, O_REDUCTION, O_BOTTLENECK, O_NONLIN, O_HEAD_ONLY };

static void usage(void) {
    printf("Usage: %s --base DIR --name NAME -o OUT [options] [FILE|-]\n"
           "Train a bottleneck adapter and a task head on a frozen BERT base from tokenized\n"
           "JSONL (FILE or stdin; gzip is read too) and write them to OUT (safetensors).\n"
           "\n"
           "  --base DIR             Hugging Face BERT directory (config.json, model.safetensors)\n"
           "  --name NAME            adapter name (and the head's, unless examples carry \"task\")\n"
           "  -o, --output OUT       the adapter file to write\n"
           "Adapter:\n"
           "  --arch pfeiffer|houlsby    (default pfeiffer)\n"
           "  --head-only            no adapter: train the head alone on the frozen base\n"
           "                         (the baseline adapters are measured against)\n"
           "  --reduction-factor N   bottleneck = hidden / N (default 16)\n"
           "  --bottleneck N         bottleneck size, instead of a reduction factor\n"
           "  --non-linearity F      relu, gelu, swish, tanh (default: relu; swish for houlsby)\n"
           "%s",
           af_prog, train_options_help);
}

int main(int argc, char **argv) {
    af_prog = "af-train-adapter";
    dist_init(&argc, &argv); /* joins MPI under mpirun only (dist.h) */
    common_opts c;
    common_opts_init(&c);
    adapter_spec spec = {SITE_PFEIFFER, 16, 0, -1};
    static const struct option own[] = {
        {"arch", required_argument, 0, O_ARCH},
        {"reduction-factor", required_argument, 0, O_REDUCTION},
        {"bottleneck", required_argument, 0, O_BOTTLENECK},
        {"non-linearity", required_argument, 0, O_NONLIN},
        {"head-only", no_argument, 0, O_HEAD_ONLY},
        {0, 0, 0, 0}};
    struct option opts[TRAIN_MAX_OPTIONS];
    train_options_merge(opts, own);
    int o;
    while ((o = getopt_long(argc, argv, TRAIN_OPTSTRING, opts, NULL)) != -1) {
        if (common_opts_handle(&c, o, optarg)) continue;
        switch (o) {
        case O_ARCH:
            if ((spec.arch = site_arch_parse(optarg)) < 0 || spec.arch == SITE_NONE)
                usage_error("--arch: '%s' is not pfeiffer or houlsby", optarg);
            break;
        case O_REDUCTION: spec.reduction = (int)opt_long("--reduction-factor", optarg, 1, 1 << 20); break;
        case O_BOTTLENECK: spec.bottleneck = (int)opt_long("--bottleneck", optarg, 1, 1 << 20); break;
        case O_NONLIN:
            spec.act = act_parse(optarg);
            if (spec.act != AF_ACT_RELU && spec.act != AF_ACT_GELU && spec.act != AF_ACT_SWISH &&
                spec.act != AF_ACT_TANH)
                usage_error("--non-linearity: '%s' is not relu, gelu, swish or tanh", optarg);
            break;
        case O_HEAD_ONLY: spec.arch = SITE_NONE; break;
        case 'h': usage(); return finish(0);
        case 'V': printf("%s %s (%s)\n", af_prog, AF_VERSION, dist_library()); return finish(0);
        default:
            usage_try(); /* getopt_long said which */
        }
    }
    common_opts_finish(&c, argc, argv);
    if (spec.act < 0) spec.act = spec.arch == SITE_HOULSBY ? AF_ACT_SWISH : AF_ACT_RELU;
    c.t.format = MODEL_FORMAT_ADAPTER;
    c.t.save_groups = 1 << PG_ADAPTER | 1 << PG_HEAD;
    c.t.args_json = c.owned_args = common_args_json(&c, argc, argv);

    bert base;
    jl_set train, dev;
    common_load(&c, &base, &train, &dev);
    /* known only once the base is read, but still the command line's mistake */
    if (spec.arch != SITE_NONE && !spec.bottleneck && spec.reduction > base.cfg.hidden)
        usage_error("--reduction-factor %d exceeds the base's hidden size %d (a bottleneck of 0)",
                    spec.reduction, base.cfg.hidden);
    if (spec.arch != SITE_NONE && spec.bottleneck > base.cfg.hidden)
        usage_error("--bottleneck %d exceeds the base's hidden size %d", spec.bottleneck,
                    base.cfg.hidden);
    if (spec.arch == SITE_NONE && c.drop_layers)
        usage_error("--drop-layers: --head-only trains no adapter to leave out");
    af_model m;
    model_init(&m, &base);
    common_drop_layers(&c, &m);
    af_err e;
    if (model_new_adapter(&m, c.name, &spec, c.t.seed, &e) ||
        train_add_heads(&m, &train, c.name, c.labels, c.tasks, c.ntasks, c.head_kind, c.t.seed + 1,
                        &e))
        die_err(&e);
    m.train_adapters = 1, m.train_heads = 1;
    model_finalize(&m);
    int rc = common_train(&c, &m, &train, &dev);
    model_free(&m);
    jl_set_free(&train);
    jl_set_free(&dev);
    bert_free(&base);
    common_opts_free(&c);
    return finish(rc);
}
