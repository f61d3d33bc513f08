/* af-fuse: phase 2 of AdapterFusion. Loads N >= 2 trained adapters, keeps them frozen (unless
 * --unfreeze-adapters), and trains a fusion layer and a head for a target task. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "trainopts.h"

enum {
    O_ADAPTER = 2000,
    O_FUSION_INPUT,
    O_METHOD,
    O_HEADS,
    O_TEMPERATURE,
    O_ANNEAL,
    O_FIXED,
    O_GATE,
    O_UNFREEZE,
    O_ADAPTER_LR
};

static void usage(void) {
    printf("Usage: %s --base DIR --adapter A --adapter B [...] --name NAME -o OUT [options]\n"
           "          [FILE|-]\n"
           "       %s --base DIR --fusion-input F --adapter A [...] --name NAME -o OUT ...\n"
           "Train an AdapterFusion layer over frozen adapters, and a head for the target task,\n"
           "from tokenized JSONL (FILE or stdin), and write it to OUT (safetensors).\n"
           "\n"
           "  --base DIR             the base the adapters were trained on\n"
           "  --adapter FILE         an adapter file from af-train-adapter (at least two)\n"
           "  --fusion-input FILE    a trained fusion file, one more input (hierarchical\n"
           "                         fusion; give the adapters and fusions under it too)\n"
           "  --name NAME            the target task (the head's name)\n"
           "  -o, --output OUT       the fusion file to write\n"
           "Fusion:\n"
           "  --method M             attention (default), static, multihead, weighted, gating\n"
           "  --heads N              multihead: attention heads (default 4)\n"
           "  --temperature T        attention/static/multihead softmax temperature (default 1)\n"
           "  --temperature-anneal   T from 50 down by 0.05 per step to 1 (AdapterHub)\n"
           "  --fixed-weights        weighted: a fixed uniform average (nothing learned)\n"
           "  --gate sigmoid|softmax gating: how gates are normalised (default sigmoid)\n"
           "  --unfreeze-adapters    train the adapters too, those under fusion inputs\n"
           "                         included (written into OUT; fusion inputs stay frozen)\n"
           "  --adapter-lr X         their learning rate (default 1e-4)\n"
           "%s"
           "The default --lr here is 5e-5.\n",
           af_prog, af_prog, train_options_help);
}

int main(int argc, char **argv) {
    af_prog = "af-fuse";
    dist_init(&argc, &argv); /* joins MPI under mpirun only (dist.h) */
    common_opts c;
    common_opts_init(&c);
    c.t.lr = 5e-5;
    fusion_config fc = {FUSION_ATTENTION, 0, 0, 4, 0, 0, 0};
    int anneal = 0, unfreeze = 0, nadapters = 0, nfins = 0, heads_given = 0, pos = 0;
    float temperature = 1;
    const char **adapters = NULL, **fins = NULL;
    int *apos = NULL, *fpos = NULL; /* places on the command line: the new fusion's input order */
    static const struct option own[] = {{"adapter", required_argument, 0, O_ADAPTER},
                                        {"fusion-input", required_argument, 0, O_FUSION_INPUT},
                                        {"method", required_argument, 0, O_METHOD},
                                        {"heads", required_argument, 0, O_HEADS},
                                        {"temperature", required_argument, 0, O_TEMPERATURE},
                                        {"temperature-anneal", no_argument, 0, O_ANNEAL},
                                        {"fixed-weights", no_argument, 0, O_FIXED},
                                        {"gate", required_argument, 0, O_GATE},
                                        {"unfreeze-adapters", no_argument, 0, O_UNFREEZE},
                                        {"adapter-lr", required_argument, 0, O_ADAPTER_LR},
                                        {0, 0, 0, 0}};
    struct option opts[TRAIN_MAX_OPTIONS];
    train_options_merge(opts, own);
    int o;
    while ((o = getopt_long(argc, argv, TRAIN_OPTSTRING, opts, NULL)) != -1) {
        if (common_opts_handle(&c, o, optarg)) continue;
        switch (o) {
        case O_ADAPTER:
            adapters = af_realloc(adapters, (nadapters + 1) * sizeof(char *));
            apos = af_realloc(apos, (nadapters + 1) * sizeof(int));
            apos[nadapters] = pos++;
            adapters[nadapters++] = optarg;
            pathguard_input(&c.guard, "--adapter", optarg);
            break;
        case O_FUSION_INPUT:
            fins = af_realloc(fins, (nfins + 1) * sizeof(char *));
            fpos = af_realloc(fpos, (nfins + 1) * sizeof(int));
            fpos[nfins] = pos++;
            fins[nfins++] = optarg;
            pathguard_input(&c.guard, "--fusion-input", optarg);
            break;
        case O_METHOD:
            if ((fc.method = fusion_method_parse(optarg)) < 0)
                usage_error("--method: '%s' is not attention, static, multihead, weighted or "
                            "gating",
                            optarg);
            break;
        case O_HEADS:
            fc.heads = (int)opt_long("--heads", optarg, 1, 4096);
            heads_given = 1;
            break;
        case O_TEMPERATURE: temperature = (float)opt_double("--temperature", optarg, 1e-3, 1e6); break;
        case O_ANNEAL: anneal = 1; break;
        case O_FIXED: fc.fixed = 1; break;
        case O_GATE:
            if (strcmp(optarg, "sigmoid") && strcmp(optarg, "softmax"))
                usage_error("--gate: '%s' is not sigmoid or softmax", optarg);
            fc.gate_softmax = !strcmp(optarg, "softmax");
            break;
        case O_UNFREEZE: unfreeze = 1; break;
        case O_ADAPTER_LR: c.t.adapter_lr = opt_double("--adapter-lr", optarg, 0, 10); break;
        case 'h': usage(); return finish(0);
        case 'V': printf("%s %s (%s)\n", af_prog, AF_VERSION, dist_library()); return finish(0);
        default:
            usage_try(); /* getopt_long said which */
        }
    }
    common_opts_finish(&c, argc, argv);
    if (nadapters < 2 && !nfins)
        usage_error("at least two --adapter files are needed, %d given", nadapters);
    if (nfins && nadapters < 1)
        usage_error(
            "--fusion-input needs the adapters under it (and beside it): no --adapter given");
    /* each method says which options are its own (fusion_method.h) */
    char which[128];
    if (fc.fixed && !fusion_method_takes(fc.method, "fixed_weights")) {
        fusion_methods_taking(which, sizeof which, "fixed_weights");
        usage_error("--fixed-weights is for --method %s", which);
    }
    if (heads_given && !fusion_method_takes(fc.method, "heads")) {
        fusion_methods_taking(which, sizeof which, "heads");
        usage_error("--heads is for --method %s", which);
    }
    c.t.format = MODEL_FORMAT_FUSION;
    c.t.save_groups = 1 << PG_FUSION | 1 << PG_HEAD | (unfreeze ? 1 << PG_ADAPTER : 0);
    c.t.args_json = c.owned_args = common_args_json(&c, argc, argv);

    bert base;
    jl_set train, dev;
    common_load(&c, &base, &train, &dev);
    fc.dropout = base.cfg.attn_dropout;
    /* known only once the base is read, but still the command line's mistake */
    if (fusion_method_takes(fc.method, "heads") && base.cfg.hidden % fc.heads)
        usage_error("--heads %d does not divide the base's hidden size %d", fc.heads, base.cfg.hidden);
    af_model m;
    model_init(&m, &base);
    m.temperature = temperature;
    af_err e;
    if (model_load_adapters(&m, adapters, nadapters, &e) ||
        model_load_fusion_inputs(&m, fins, nfins, apos, fpos, &e))
        die_err(&e);
    common_drop_layers(&c, &m);
    if (model_new_fusion(&m, &fc, anneal, c.t.seed, &e) ||
        train_add_heads(&m, &train, c.name, c.labels, c.tasks, c.ntasks, c.head_kind, c.t.seed + 1,
                        &e))
        die_err(&e);
    m.train_adapters = unfreeze, m.train_fusion = 1, m.train_heads = 1;
    model_finalize(&m);
    int rc = common_train(&c, &m, &train, &dev);
    model_free(&m);
    jl_set_free(&train);
    jl_set_free(&dev);
    bert_free(&base);
    free(adapters), free(fins), free(apos), free(fpos);
    common_opts_free(&c);
    return finish(rc);
}
