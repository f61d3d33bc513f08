/* trainopts.c: options and flow shared by af-train-adapter and af-fuse. */
#include "trainopts.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "dist.h"
#include "metrics.h"
#include "outlock.h"

enum {
    O_BASE = 1000, O_NAME, O_DEV, O_EPOCHS, O_MAX_STEPS, O_LR, O_WD, O_BETA1, O_BETA2, O_EPS,
    O_WARMUP, O_CLIP, O_BATCH, O_EVAL_BATCH, O_MICRO, O_MAXLEN, O_DROPOUT, O_SEED, O_THREADS,
    O_EVAL_EVERY, O_METRIC, O_PATIENCE, O_RESUME, O_CHECKPOINT, O_LOG, O_LABELS, O_TASK,
    O_REGRESSION, O_MULTILABEL, O_VERSION, O_HELP, O_DROP, O_CACHE_MEMORY, O_CACHE_DIR, O_NO_CACHE
};

const struct option train_long_options[] = {
    {"base", required_argument, 0, O_BASE},
    {"name", required_argument, 0, O_NAME},
    {"output", required_argument, 0, 'o'},
    {"dev", required_argument, 0, O_DEV},
    {"epochs", required_argument, 0, O_EPOCHS},
    {"max-steps", required_argument, 0, O_MAX_STEPS},
    {"lr", required_argument, 0, O_LR},
    {"weight-decay", required_argument, 0, O_WD},
    {"adam-beta1", required_argument, 0, O_BETA1},
    {"adam-beta2", required_argument, 0, O_BETA2},
    {"adam-eps", required_argument, 0, O_EPS},
    {"warmup-ratio", required_argument, 0, O_WARMUP},
    {"max-grad-norm", required_argument, 0, O_CLIP},
    {"batch-size", required_argument, 0, O_BATCH},
    {"eval-batch-size", required_argument, 0, O_EVAL_BATCH},
    {"micro-batch", required_argument, 0, O_MICRO},
    {"max-len", required_argument, 0, O_MAXLEN},
    {"dropout", required_argument, 0, O_DROPOUT},
    {"seed", required_argument, 0, O_SEED},
    {"threads", required_argument, 0, O_THREADS},
    {"eval-every", required_argument, 0, O_EVAL_EVERY},
    {"metric", required_argument, 0, O_METRIC},
    {"patience", required_argument, 0, O_PATIENCE},
    {"resume", required_argument, 0, O_RESUME},
    {"checkpoint", required_argument, 0, O_CHECKPOINT},
    {"log", required_argument, 0, O_LOG},
    {"labels", required_argument, 0, O_LABELS},
    {"task", required_argument, 0, O_TASK},
    {"regression", no_argument, 0, O_REGRESSION},
    {"multilabel", no_argument, 0, O_MULTILABEL},
    {"drop-layers", required_argument, 0, O_DROP},
    {"cache-memory", required_argument, 0, O_CACHE_MEMORY},
    {"cache-dir", required_argument, 0, O_CACHE_DIR},
    {"no-cache", no_argument, 0, O_NO_CACHE},
    {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},
    {0, 0, 0, 0}};

const char train_options_help[] =
    "Data and heads:\n"
    "  --dev FILE             dev set (tokenized JSONL), scored every epoch\n"
    "  --labels a,b,...       label names of the task (default: those in the data, sorted)\n"
    "  --task NAME:a,b,...    labels of one task in multi-task data (NAME:regression,\n"
    "                         NAME:multilabel, NAME:multilabel:a,b,...)\n"
    "  --regression           one output, mean squared error\n"
    "  --multilabel           any set of the labels per example (a list), sigmoid outputs,\n"
    "                         binary cross-entropy\n"
    "  --max-len N            truncate longer inputs (default 128)\n"
    "Training:\n"
    "  --epochs N             (default 10)      --max-steps N   stop after N steps\n"
    "  --lr X                 peak learning rate\n"
    "  --batch-size N         (default 32)      --eval-batch-size N\n"
    "  --micro-batch N|auto   at most N examples per pass: less memory, the same steps\n"
    "                         (auto, the default: passes within 512 MiB; 0: whole batches)\n"
    "  --weight-decay X       AdamW decoupled weight decay, not on biases (default 0)\n"
    "  --adam-beta1 X --adam-beta2 X --adam-eps X   (0.9, 0.999, 1e-8)\n"
    "  --warmup-ratio X       linear warmup over this share of the steps (default 0)\n"
    "  --max-grad-norm X      clip the global gradient norm (default 1.0; 0: off)\n"
    "  --dropout X            dropout everywhere (default: the base's config)\n"
    "  --seed N               same seed, same bytes out (default 42)\n"
    "  --eval-every N         evaluate every N steps instead of every epoch\n"
    "  --metric NAME          accuracy, f1, mcc, pearson, spearman, mse (early stopping)\n"
    "  --patience N           stop after N evaluations without improvement (0: never)\n"
    "  --log FILE             one JSON line per evaluation\n"
    "  --checkpoint FILE      where Ctrl-C/SIGTERM saves a resumable state (default OUT.ckpt)\n"
    "  --resume FILE          continue from such a checkpoint\n"
    "  --threads N            (default: all cores)\n"
    "AdapterDrop:\n"
    "  --drop-layers K        no adapters (and no fusion) in layers 0..K-1; their output is\n"
    "                         computed once, in the first epoch, and kept (dropout off there)\n"
    "  --cache-memory MIB     keep it in memory up to MIB (default 2048), else in a file\n"
    "  --cache-dir DIR        where that file goes (default $TMPDIR, else /tmp; removed)\n"
    "  --no-cache             compute the lower layers every epoch instead\n"
    "  -q, --quiet            no progress on stderr\n"
    "  -h, --help             -V, --version\n";

void train_options_merge(struct option out[TRAIN_MAX_OPTIONS], const struct option *own) {
    int n = 0;
    for (const struct option *o = train_long_options; o->name; o++) out[n++] = *o;
    for (const struct option *o = own; o->name && n < TRAIN_MAX_OPTIONS - 1; o++) out[n++] = *o;
    out[n] = (struct option){0, 0, 0, 0};
}

void common_opts_init(common_opts *c) {
    memset(c, 0, sizeof *c);
    train_opts_defaults(&c->t);
    c->input = "-";
    pathguard_init(&c->guard);
}

int common_opts_handle(common_opts *c, int opt, const char *arg) {
    train_opts *t = &c->t;
    switch (opt) {
    case O_BASE: c->base = arg; break;
    case O_NAME: c->name = arg; break;
    case 'o': c->out = arg; break;
    case O_DEV: c->dev = arg; break;
    case O_EPOCHS: t->epochs = (int)opt_long("--epochs", arg, 1, 1000000); break;
    case O_MAX_STEPS: t->max_steps = opt_long("--max-steps", arg, 1, 1L << 40); break;
    case O_LR: t->lr = opt_double("--lr", arg, 0, 10); break;
    case O_WD: t->weight_decay = opt_double("--weight-decay", arg, 0, 10); break;
    case O_BETA1: t->beta1 = opt_double("--adam-beta1", arg, 0, 0.999999); break;
    case O_BETA2: t->beta2 = opt_double("--adam-beta2", arg, 0, 0.999999999); break;
    case O_EPS: t->eps = opt_double("--adam-eps", arg, 1e-30, 1); break; /* 0: 0/0 */
    case O_WARMUP: t->warmup_ratio = opt_double("--warmup-ratio", arg, 0, 1); break;
    case O_CLIP: t->max_grad_norm = opt_double("--max-grad-norm", arg, 0, 1e30); break;
    case O_BATCH: t->batch_size = (int)opt_long("--batch-size", arg, 1, 1 << 16); break;
    case O_EVAL_BATCH: t->eval_batch_size = (int)opt_long("--eval-batch-size", arg, 1, 1 << 16); break;
    case O_MICRO:
        t->micro_batch = !strcmp(arg, "auto") ? TRAIN_PASS_AUTO
                                              : (int)opt_long("--micro-batch", arg, 0, 1 << 16);
        break;
    case O_MAXLEN: t->max_len = (int)opt_long("--max-len", arg, 2, 1 << 16); break;
    case O_DROPOUT: t->dropout = opt_double("--dropout", arg, 0, 0.99); break;
    case O_SEED: t->seed = (uint64_t)opt_long("--seed", arg, 0, 1L << 62); break;
    case O_THREADS: c->threads = (int)opt_long("--threads", arg, 1, 1024); break;
    case O_EVAL_EVERY: t->eval_every = opt_long("--eval-every", arg, 1, 1L << 40); break;
    case O_METRIC:
        if (metrics_check(arg, METRICS_CLASSIFICATION, NULL) &&
            metrics_check(arg, METRICS_REGRESSION, NULL) &&
            metrics_check(arg, METRICS_MULTILABEL, NULL))
            usage_error("--metric: '%s' is not accuracy, f1, mcc, pearson, spearman, mse, "
                        "micro_f1 or exact_match",
                        arg);
        t->metric = arg;
        break;
    case O_PATIENCE: t->patience = (int)opt_long("--patience", arg, 0, 1 << 30); break;
    case O_RESUME: t->resume_path = arg; break;
    case O_CHECKPOINT: t->ckpt_path = arg; break;
    case O_LOG: t->log_path = arg; break;
    case O_LABELS: c->labels = arg; break;
    case O_TASK:
        if (!strchr(arg, ':') || strchr(arg, ':') == arg)
            usage_error("--task: NAME:label,label,..., NAME:regression or "
                        "NAME:multilabel[:label,...] expected, '%s' given",
                        arg);
        c->tasks = af_realloc(c->tasks, (c->ntasks + 1) * sizeof(char *));
        c->tasks[c->ntasks++] = (char *)arg;
        break;
    case O_REGRESSION:
    case O_MULTILABEL: {
        int k = opt == O_REGRESSION ? HEAD_REGRESSION : HEAD_MULTILABEL;
        if (c->head_kind != HEAD_CLASSIFICATION && c->head_kind != k)
            usage_error("--regression and --multilabel exclude each other");
        c->head_kind = k;
        break;
    }
    case O_DROP: c->drop_layers = (int)opt_long("--drop-layers", arg, 0, 63); break;
    case O_CACHE_MEMORY:
        t->cache_memory = (uint64_t)opt_long("--cache-memory", arg, 0, 1L << 40) << 20;
        break;
    case O_CACHE_DIR: t->cache_dir = arg; break;
    case O_NO_CACHE: t->no_cache = 1; break;
    case 'q': t->quiet = 1; break;
    default: return 0;
    }
    return 1;
}

static void check_paths(common_opts *c) {
    pathguard *g = &c->guard;
    pathguard_input_dir(g, "--base", c->base);
    pathguard_input(g, "the training data", c->input);
    pathguard_input(g, "--dev", c->dev);
    /* resuming from the checkpoint this run will write is the normal case */
    if (c->t.resume_path && !af_same_file(c->t.resume_path, c->t.ckpt_path))
        pathguard_input(g, "--resume", c->t.resume_path);
    pathguard_output(g, "-o", c->out);
    pathguard_output(g, "--checkpoint", c->t.ckpt_path);
    pathguard_output(g, "--log", c->t.log_path);
    af_err e;
    if (pathguard_check(g, &e)) usage_error("%s", e.msg);
}

void common_opts_finish(common_opts *c, int argc, char **argv) {
    if (!c->base) usage_error("--base DIR is required");
    if (!c->name) usage_error("--name NAME is required");
    if (!c->out) usage_error("-o FILE is required");
    af_err ne;
    if (model_name_check("--name", c->name, NULL, &ne)) usage_error("%s", ne.msg);
    if (optind < argc) c->input = argv[optind++];
    if (optind < argc) usage_error("one input file at most ('%s' is extra)", argv[optind]);
    if (!c->t.ckpt_path) {
        size_t n = strlen(c->out) + 6;
        char *p = af_malloc(n);
        snprintf(p, n, "%s.ckpt", c->out);
        c->t.ckpt_path = c->owned_ckpt = p;
    }
    /* a finished run removes its checkpoint, and an interrupted one writes it: neither may be
     * the output (the same name, or another name for the same file) */
    struct stat so, sc;
    if (strcmp(c->t.ckpt_path, c->out) == 0 ||
        (stat(c->out, &so) == 0 && stat(c->t.ckpt_path, &sc) == 0 && so.st_dev == sc.st_dev &&
         so.st_ino == sc.st_ino))
        usage_error("--checkpoint %s is the output file", c->t.ckpt_path);
    c->t.out_path = c->out;
    check_paths(c);
}

void common_drop_layers(const common_opts *c, af_model *m) {
    if (!c->drop_layers) return;
    if (c->drop_layers >= m->L)
        usage_error("--drop-layers %d: the base has %d layers, so at most %d", c->drop_layers, m->L,
                    m->L - 1);
    af_err e;
    if (model_leave_out(m, (1ull << c->drop_layers) - 1, &e)) die_err(&e);
}

void common_opts_free(common_opts *c) {
    free(c->owned_ckpt);
    free(c->owned_args);
    free(c->tasks);
    pathguard_free(&c->guard);
    c->owned_ckpt = c->owned_args = NULL;
    c->tasks = NULL;
}

char *common_args_json(const common_opts *c, int argc, char **argv) {
    /* --resume is left out: it changes where a run starts, not what it computes, so a resumed
     * run writes the same bytes as one never interrupted. getopt_long left its argument as
     * argv[i] itself or inside "--resume=FILE" (argv is permuted, but pairs stay together). */
    const char *r = c->t.resume_path;
    cJSON *a = cJSON_CreateArray();
    for (int i = 1; i < argc; i++) {
        if (r && i + 1 < argc && argv[i + 1] == r) {
            i++;
            continue;
        }
        if (r && r > argv[i] && r <= argv[i] + strlen(argv[i])) continue;
        cJSON_AddItemToArray(a, cJSON_CreateString(argv[i]));
    }
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

void common_load(common_opts *c, bert *base, jl_set *train, jl_set *dev) {
    af_err e;
    if (dist_size() > 1 && strcmp(c->input, "-") == 0)
        usage_error("under mpirun standard input reaches rank 0 only: give the training data as "
                    "a file argument");
    af_set_threads(c->threads);
    note_blas(c->t.quiet || dist_rank() != 0); /* under mpirun, rank 0 speaks */
    if (bert_load_16(base, c->base, &e)) die_err(&e); /* frozen: a 16-bit base stays 16-bit */
    if (jl_read_all(train, c->input, base->cfg.vocab_size, &e)) die_err(&e);
    memset(dev, 0, sizeof *dev);
    if (c->dev && jl_read_all(dev, c->dev, base->cfg.vocab_size, &e)) die_err(&e);
}

/* The output and the checkpoint are written next to themselves (path.tmp.XXXXXX, renamed): try
 * that before training, so that a run of hours does not end in "cannot create temporary file". */
static void check_writable(const char *path) {
    size_t n = strlen(path) + 12;
    char *tmp = af_malloc(n);
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) die("%s: cannot write there: %s", path, strerror(errno));
    close(fd);
    unlink(tmp);
    free(tmp);
}

int common_train(common_opts *c, af_model *m, jl_set *train, jl_set *dev) {
    af_err e;
    /* under mpirun rank 0 alone writes files and speaks (dist.h) */
    int lead = dist_rank() == 0;
    if (!lead) c->t.quiet = 1;
    if (lead) {
        check_writable(c->out);
        check_writable(c->t.ckpt_path);
        /* one writer per output: a second run given the same -o (or --checkpoint) is refused
         * now, not after hours, when the last rename would silently win */
        outlock_hold(c->out);
        if (c->owned_ckpt == NULL) outlock_hold(c->t.ckpt_path);
    }
    train_data tr, dv;
    const char *tname = strcmp(c->input, "-") ? c->input : "stdin", *limit = "--max-len";
    /* a base with fewer positions than --max-len (default 128) truncates there, as af-infer does */
    if (c->t.max_len > bert_max_len(&m->base->cfg))
        c->t.max_len = bert_max_len(&m->base->cfg),
        limit = bert_max_len(&m->base->cfg) == m->base->cfg.max_pos
                    ? "the base's max_position_embeddings"
                    : "the base's positions";
    if (train_data_build(&tr, m, train, tname, c->t.max_len, 1, &e)) die_err(&e);
    if (c->dev && train_data_build(&dv, m, dev, c->dev, c->t.max_len, 1, &e)) die_err(&e);
    if (tr.truncated && lead)
        warnx("%d of %d training examples are longer than %s %d and were truncated",
              tr.truncated, tr.n, limit, c->t.max_len);
    if (c->t.metric)
        for (int h = 0; h < m->nheads; h++)
            if (metrics_check(c->t.metric, m->heads[h].kind, &e))
                usage_error("--metric: %s", e.msg);
    int rc = train_run(m, &tr, c->dev ? &dv : NULL, &c->t, &e);
    if (rc < 0) die_err(&e);
    /* the output supersedes any checkpoint of this run (one it resumed from included) */
    if (rc == 0 && lead && unlink(c->t.ckpt_path) && errno != ENOENT)
        warnx("%s: cannot remove the old checkpoint: %s", c->t.ckpt_path, strerror(errno));
    if (rc > 0 && lead)
        warnx("interrupted; checkpoint written to %s (continue with --resume %s)", c->t.ckpt_path,
              c->t.ckpt_path);
    train_data_free(&tr);
    if (c->dev) train_data_free(&dv);
    return rc;
}
