/* af-convert: AdapterHub's adapter, head and fusion directories in and out of af's files. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "hub.h"
#include "model.h"
#include "pathguard.h"

enum { O_BASE = 1000, O_ADAPTER, O_TO_HUB, O_NAME, O_HEAD, O_FORMAT };

static void usage(void) {
    printf("Usage: %s --base DIR -o OUT.safetensors HUBDIR\n"
           "       %s --base DIR --adapter A.safetensors --adapter B.safetensors ... "
           "-o OUT.safetensors HUBDIR\n"
           "       %s --to-hub OUTDIR FILE.safetensors [--adapter A.safetensors ...]\n"
           "Convert AdapterHub's directories (adapter-transformers 3.x, the adapters library)\n"
           "to af's files and back.\n"
           "\n"
           "Import (HUBDIR holds adapter_config.json, or adapter_fusion_config.json):\n"
           "  --base DIR             the base the adapter was trained on (shapes are checked\n"
           "                         against it, its fingerprint is recorded)\n"
           "  --adapter FILE         for a fusion directory: the af files of its adapters, in\n"
           "                         the fusion's order (import them first)\n"
           "  -o, --output FILE      the af file to write\n"
           "  --name NAME            call the adapter (and its head of the same name) NAME\n"
           "  --head NAME            import only the head NAME\n"
           "Export:\n"
           "  --to-hub OUTDIR        write FILE (an af adapter, or an af fusion with its\n"
           "                         --adapter files) as AdapterHub directories under OUTDIR\n"
           "  --head NAME            the head to write, for a file with several\n"
           "  --format bin|safetensors  pytorch_*.bin (default: adapter-transformers 3.x reads\n"
           "                         nothing else) or the adapters library's .safetensors\n"
           "  -h, --help             -V, --version\n",
           af_prog, af_prog, af_prog);
}

int main(int argc, char **argv) {
    af_prog = "af-convert";
    static const struct option longopts[] = {
        {"base", required_argument, 0, O_BASE},     {"adapter", required_argument, 0, O_ADAPTER},
        {"output", required_argument, 0, 'o'},      {"to-hub", required_argument, 0, O_TO_HUB},
        {"name", required_argument, 0, O_NAME},     {"head", required_argument, 0, O_HEAD},
        {"format", required_argument, 0, O_FORMAT}, {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},           {0, 0, 0, 0}};
    /* static: still reachable when usage_error exits (LeakSanitizer) */
    static const char **adapters;
    const char *base_dir = NULL, *out = NULL, *to_hub = NULL;
    hub_import_opts io = {NULL, NULL};
    hub_export_opts eo = {0, NULL};
    int nadapters = 0, o;
    af_err e;
    adapters = af_calloc((size_t)argc, sizeof *adapters);
    while ((o = getopt_long(argc, argv, "o:hV", longopts, NULL)) != -1) {
        switch (o) {
        case O_BASE:
            base_dir = optarg;
            break;
        case O_ADAPTER:
            adapters[nadapters++] = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case O_TO_HUB:
            to_hub = optarg;
            break;
        case O_NAME:
            io.name = optarg;
            if (model_name_check("--name", optarg, NULL, &e)) usage_error("%s", e.msg);
            break;
        case O_HEAD:
            io.head = eo.head = optarg;
            break;
        case O_FORMAT:
            if (!strcmp(optarg, "bin"))
                eo.safetensors = 0;
            else if (!strcmp(optarg, "safetensors"))
                eo.safetensors = 1;
            else
                usage_error("--format: '%s' is not bin or safetensors", optarg);
            break;
        case 'h':
            usage();
            return finish(0);
        case 'V':
            printf("%s %s\n", af_prog, AF_VERSION);
            return finish(0);
        default:
            usage_error("unknown option");
        }
    }
    if (optind + 1 != argc) usage_error("exactly one %s expected", to_hub ? "FILE" : "HUBDIR");
    const char *src = argv[optind];
    if (to_hub) {
        if (out || base_dir || io.name) usage_error("--to-hub takes neither -o, --base nor --name");
        if (hub_export(src, adapters, nadapters, to_hub, &eo, &e)) die_err(&e);
        free(adapters);
        return finish(0);
    }
    if (!base_dir) usage_error("--base DIR is required");
    if (!out) usage_error("-o OUT.safetensors is required");
    struct stat sb;
    if (stat(src, &sb) || !S_ISDIR(sb.st_mode)) die("%s: not a directory", src);
    {
        pathguard g;
        af_err ge;
        pathguard_init(&g);
        pathguard_input_dir(&g, "--base", base_dir);
        pathguard_input_dir(&g, "the AdapterHub directory", src);
        for (int i = 0; i < nadapters; i++) pathguard_input(&g, "--adapter", adapters[i]);
        pathguard_output(&g, "-o", out);
        int bad = pathguard_check(&g, &ge);
        pathguard_free(&g);
        if (bad) usage_error("%s", ge.msg);
    }
    bert base;
    if (bert_load(&base, base_dir, &e)) die_err(&e);
    char *fcfg = af_malloc(strlen(src) + 40);
    sprintf(fcfg, "%s/adapter_fusion_config.json", src);
    int fusion = stat(fcfg, &sb) == 0;
    free(fcfg);
    int rc;
    if (fusion) {
        if (nadapters < 2)
            usage_error("%s is a fusion directory: give its adapters' af files with --adapter",
                        src);
        if (io.name) usage_error("--name renames an adapter; a fusion is named by its adapters");
        rc = hub_import_fusion(&base, adapters, nadapters, src, &io, out, &e);
    } else {
        if (nadapters) usage_error("--adapter belongs to fusion directories; %s is none", src);
        rc = hub_import_adapter(&base, src, &io, out, &e);
    }
    bert_free(&base);
    free(adapters);
    if (rc) die_err(&e);
    return finish(0);
}
