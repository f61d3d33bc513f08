/* af-infer: run adapters (and a fusion layer) over tokenized JSONL, one prediction line per input
 * line, streaming; optionally score the lines' gold labels and report the fusion weights. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "infer.h"

enum {
    O_BASE = 1000,
    O_ADAPTER,
    O_FUSION,
    O_FUSION_INPUT,
    O_ADAPTERS,
    O_TASK,
    O_BATCH,
    O_MAXLEN,
    O_THREADS,
    O_METRICS,
    O_METRICS_JSON,
    O_CONFUSION,
    O_FW,
    O_WEIGHTS
};

static void usage(void) {
    printf("Usage: %s --base DIR --adapter A [--adapter B ...] [--fusion F] [options] [FILE|-]\n"
           "Predict with trained adapters, or a fusion of them, from tokenized JSONL (FILE or\n"
           "stdin; gzip is read too): one JSON line per input line, in order, on stdout.\n"
           "\n"
           "  --base DIR             the base the adapters were trained on\n"
           "  --adapter FILE         an adapter file (repeat for a fusion)\n"
           "  --fusion FILE          a fusion file from af-fuse over those adapters\n"
           "  --fusion-input FILE    a fusion file under FILE (hierarchical fusion; repeat:\n"
           "                         every fusion under it, each once)\n"
           "  --adapters a,b,...     use only the adapters of these names\n"
           "  --task NAME            the head every line uses (default: the line's \"task\",\n"
           "                         or the only head)\n"
           "  --batch-size N         lines per forward (default 32)\n"
           "  --max-len N            keep the first N tokens of a line (default 128)\n"
           "  --threads N            (default: all cores)\n"
           "  --weights f32|f16|bf16 hold the base's weights so in memory (default: as stored,\n"
           "                         16-bit layers widened one at a time; see af-infer(1))\n"
           "Scoring (lines with a gold \"label\"):\n"
           "  --metrics              accuracy, macro-F1, MCC (Pearson, Spearman for\n"
           "                         regression) on stderr\n"
           "  --metrics-json FILE    the same as JSON, with the confusion matrix\n"
           "  --confusion            a confusion matrix on stderr (implies --metrics)\n"
           "Fusion:\n"
           "  --fusion-weights[=tokens]  add each line's weights over the adapters per layer\n"
           "                         (mean over its tokens; =tokens: every token's)\n"
           "  -q, --quiet            no warnings\n"
           "  -h, --help             -V, --version\n",
           af_prog);
}

typedef struct {
    const char *path, *text;
} json_out;

static int write_json(FILE *f, void *ctx, af_err *e) {
    const json_out *j = ctx;
    if (fputs(j->text, f) < 0 || fputc('\n', f) == EOF)
        return af_errf(e, "%s: write error", j->path);
    return 0;
}

int main(int argc, char **argv) {
    af_prog = "af-infer";
    static const struct option longopts[] = {{"base", required_argument, 0, O_BASE},
                                             {"adapter", required_argument, 0, O_ADAPTER},
                                             {"fusion", required_argument, 0, O_FUSION},
                                             {"fusion-input", required_argument, 0, O_FUSION_INPUT},
                                             {"adapters", required_argument, 0, O_ADAPTERS},
                                             {"task", required_argument, 0, O_TASK},
                                             {"batch-size", required_argument, 0, O_BATCH},
                                             {"max-len", required_argument, 0, O_MAXLEN},
                                             {"threads", required_argument, 0, O_THREADS},
                                             {"metrics", no_argument, 0, O_METRICS},
                                             {"metrics-json", required_argument, 0, O_METRICS_JSON},
                                             {"confusion", no_argument, 0, O_CONFUSION},
                                             {"fusion-weights", optional_argument, 0, O_FW},
                                             {"weights", required_argument, 0, O_WEIGHTS},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, 'h'},
                                             {"version", no_argument, 0, 'V'},
                                             {0, 0, 0, 0}};
    /* static: still reachable when usage_error exits (LeakSanitizer) */
    static const char **adapters, **fins;
    const char *base_dir = NULL, *fusion = NULL, *select = NULL, *task = NULL, *mjson = NULL;
    const char *input = "-";
    int threads = 0, metrics = 0, confusion = 0, quiet = 0, weights = 0;
    infer_opts io = {32, 128, -1, INFER_FW_NONE, 0};
    int nadapters = 0, nfins = 0, o;
    adapters = af_calloc((size_t)argc, sizeof *adapters);
    fins = af_calloc((size_t)argc, sizeof *fins);
    while ((o = getopt_long(argc, argv, "qhV", longopts, NULL)) != -1) {
        switch (o) {
        case O_BASE:
            base_dir = optarg;
            break;
        case O_ADAPTER:
            adapters[nadapters++] = optarg;
            break;
        case O_FUSION:
            fusion = optarg;
            break;
        case O_FUSION_INPUT:
            fins[nfins++] = optarg;
            break;
        case O_ADAPTERS:
            select = optarg;
            break;
        case O_TASK:
            task = optarg;
            break;
        case O_BATCH:
            io.batch_size = (int)opt_long("--batch-size", optarg, 1, 1 << 16);
            break;
        case O_MAXLEN:
            io.max_len = (int)opt_long("--max-len", optarg, 1, 1 << 16);
            break;
        case O_THREADS:
            threads = (int)opt_long("--threads", optarg, 1, 1024);
            break;
        case O_METRICS:
            metrics = 1;
            break;
        case O_METRICS_JSON:
            mjson = optarg;
            break;
        case O_CONFUSION:
            confusion = metrics = 1;
            break;
        case O_FW:
            if (!optarg || !strcmp(optarg, "mean"))
                io.fusion_weights = INFER_FW_MEAN;
            else if (!strcmp(optarg, "tokens"))
                io.fusion_weights = INFER_FW_TOKENS;
            else
                usage_error("--fusion-weights: '%s' is not mean or tokens", optarg);
            break;
        case O_WEIGHTS:
            if (!strcmp(optarg, "f32"))
                weights = ST_F32;
            else if (!strcmp(optarg, "f16"))
                weights = ST_F16;
            else if (!strcmp(optarg, "bf16"))
                weights = ST_BF16;
            else
                usage_error("--weights: '%s' is not f32, f16 or bf16", optarg);
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            usage();
            return finish(0);
        case 'V':
            printf("%s %s\n", af_prog, AF_VERSION);
            return finish(0);
        default:
            usage_try(); /* getopt_long said which */
        }
    }
    if (!base_dir) usage_error("--base DIR is required");
    if (!nadapters) usage_error("at least one --adapter FILE is required");
    if (optind < argc) input = argv[optind++];
    if (optind < argc) usage_error("one input file at most ('%s' is extra)", argv[optind]);
    if (nfins && !fusion)
        usage_error("--fusion-input %s: a fusion under which --fusion? (none given)", fins[0]);
    if (io.fusion_weights && !fusion)
        usage_error("--fusion-weights needs a --fusion file: a single adapter has no weights");
    io.metrics = metrics || mjson;
    {
        pathguard g;
        pathguard_init(&g);
        pathguard_input_dir(&g, "--base", base_dir);
        for (int i = 0; i < nadapters; i++) pathguard_input(&g, "--adapter", adapters[i]);
        pathguard_input(&g, "--fusion", fusion);
        for (int i = 0; i < nfins; i++) pathguard_input(&g, "--fusion-input", fins[i]);
        pathguard_input(&g, "the input", input);
        pathguard_output(&g, "--metrics-json", mjson);
        pathguard_done(&g);
    }

    af_err e;
    bert base;
    af_set_threads(threads);
    note_blas(quiet);
    /* a 16-bit base stays 16-bit; --weights holds it as asked */
    if (bert_load_as(&base, base_dir, weights, &e)) die_err(&e);
    af_model m;
    model_init(&m, &base);
    if (infer_load(&m, adapters, nadapters, fusion, fins, nfins, select, &e)) die_err(&e);
    if (task && (io.head = model_head_index(&m, task)) < 0) {
        char list[512];
        size_t n = 0;
        list[0] = 0;
        for (int i = 0; i < m.nheads && n < sizeof list; i++)
            n +=
                (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", m.heads[i].name);
        die("--task %s: %s has no such head (heads: %s)", task, fusion ? fusion : adapters[0],
            list);
    }
    infer_stats st = {0};
    int rc = infer_stream(&m, &io, input, stdout, &st, &e);
    if (rc) {
        /* the lines before the bad one are out; the message comes last */
        fflush(stdout);
        die_err(&e);
    }
    if (st.truncated && !quiet)
        warnx("%ld of %ld lines are longer than %d tokens and were truncated", st.truncated,
              st.lines,
              io.max_len < bert_max_len(&base.cfg) ? io.max_len : bert_max_len(&base.cfg));
    if (metrics) infer_metrics_print(stderr, "af-infer: ", &m, &st, confusion);
    if (mjson) {
        cJSON *j = infer_metrics_json(&m, &st);
        char *s = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        json_out jo = {mjson, s};
        rc = af_write_atomic(mjson, write_json, &jo, &e);
        free(s);
        if (rc) die_err(&e);
    }
    infer_stats_free(&st);
    model_free(&m);
    bert_free(&base);
    free(adapters);
    free(fins);
    return finish(0);
}
