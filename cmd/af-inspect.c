/* af-inspect: what is in a safetensors file, for people (tables, heatmaps) or programs (--json,
 * --csv).
 *
 * Each report is a function of one opened file (or, for --fusion-weights, of af-infer's
 * output); main() picks the report. */
#include "common.h"
#include "curves.h"
#include "hub.h"
#include "inspect.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int json, csv, diff, fusion_weights, by_label, curves;
    int colour;           /* hm_colour for terminal heatmaps */
    const char *png;      /* --png FILE */
    const char **tensors; /* --tensor NAME, repeatable */
    int ntensors;
} options;

static void usage(void) {
    printf("Usage: %s [--json] [--tensor NAME]... FILE...\n"
           "       %s --diff [--json] A B\n"
           "       %s --fusion-weights [--by-label] [--csv|--json|--png OUT] [FILE|-]...\n"
           "       %s --curves --png OUT STUDY.tsv\n"
           "Describe safetensors files: what each is (base, adapter, fusion, other), its\n"
           "metadata, its tensors (name, dtype, shape, parameters) and totals; for a fusion\n"
           "file with fixed (weighted) fusion, its weights over the adapters as a heatmap.\n"
           "\n"
           "  -j, --json         print one JSON document instead of tables\n"
           "  -t, --tensor NAME  print min, max, mean, std and L2 norm of tensor NAME\n"
           "  -d, --diff         compare two files tensor by tensor (max |a-b|, relative L2)\n"
           "Fusion weights (layers x adapters):\n"
           "  -w, --fusion-weights  read af-infer --fusion-weights output (FILE or stdin) and\n"
           "                     show the weights averaged over its lines\n"
           "  -b, --by-label     also one map per gold label\n"
           "  --csv              the weights as CSV (group,layer,adapter,value)\n"
           "  --png FILE         the heatmap as a PNG image\n"
           "Learning curves:\n"
           "  -c, --curves       draw a study's TSV (columns task, method, size, mean, sd;\n"
           "                     scripts/study.sh) as a PNG: a panel per task, a line per\n"
           "                     method, accuracy against log training size, bars of one sd\n"
           "  --color WHEN       auto (default: on a terminal, unless NO_COLOR is set),\n"
           "                     always or never; COLORTERM=truecolor gives 24-bit colour\n"
           "  -h, --help         show this help\n"
           "  -V, --version      show the version\n"
           "\n"
           "An invalid file is reported with the rule it breaks; the exit status is then 1.\n",
           af_prog, af_prog, af_prog, af_prog);
}

/* Text from a file goes to a terminal: control characters are shown, not obeyed. */
static void put_safe(const char *s, const char *newline) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n')
            fputs(newline, stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
}

static const char *shape_str(char *buf, size_t cap, const st_tensor *t) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < t->ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

static const char *human_bytes(char *buf, size_t cap, double n) {
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (n >= 1024 && u < 4) n /= 1024, u++;
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", n, unit[u]);
    return buf;
}

static void print_metadata(const st_file *f) {
    if (!f->nmeta) return;
    int w = 0;
    for (int i = 0; i < f->nmeta; i++) {
        int k = (int)strlen(f->meta[i].key);
        if (k > w) w = k;
    }
    char indent[128];
    snprintf(indent, sizeof indent, "\n%*s", w + 4, "");
    printf("metadata:\n");
    for (int i = 0; i < f->nmeta; i++) {
        printf("  ");
        put_safe(f->meta[i].key, "\\n");
        printf("%*s  ", w - (int)strlen(f->meta[i].key), "");
        cJSON *j = insp_meta_json(f->meta[i].value);
        char *pretty = j ? insp_print_json(j) : NULL;
        put_safe(pretty ? pretty : f->meta[i].value, indent);
        putchar('\n');
        free(pretty);
        cJSON_Delete(j);
    }
}

static void print_tensors(const st_file *f) {
    if (!f->ntensors) return;
    int wn = 4, ws = 5;
    char sh[256];
    for (int i = 0; i < f->ntensors; i++) {
        int k = (int)strlen(f->tensors[i].name);
        if (k > wn) wn = k;
        k = (int)strlen(shape_str(sh, sizeof sh, &f->tensors[i]));
        if (k > ws) ws = k;
    }
    printf("tensors:\n  %-*s  %-7s  %-*s  %12s\n", wn, "name", "dtype", ws, "shape", "parameters");
    for (int i = 0; i < f->ntensors; i++) {
        const st_tensor *t = &f->tensors[i];
        printf("  ");
        put_safe(t->name, "\\n");
        printf("%*s  %-7s  %-*s  %12lld\n", wn - (int)strlen(t->name), "", st_dtype_name(t->dtype),
               ws, shape_str(sh, sizeof sh, t), (long long)t->numel);
    }
}

static void report_summary(const st_file *f) {
    insp_totals tot;
    insp_totals_of(f, &tot);
    insp_kind kind = insp_kind_of(f);
    const char *fmt = st_meta_get(f, "format");
    char b1[32], b2[32];
    put_safe(f->path, "\\n");
    printf(": %s", insp_kind_name(kind));
    if (kind == INSP_ADAPTER || kind == INSP_FUSION) printf(" (%s)", fmt);
    printf("\n%d tensor%s, %lld parameter%s, %s of data, %zu-byte header, %s file\n", f->ntensors,
           f->ntensors == 1 ? "" : "s", (long long)tot.params, tot.params == 1 ? "" : "s",
           human_bytes(b1, sizeof b1, (double)tot.bytes), tot.header_bytes,
           human_bytes(b2, sizeof b2, (double)f->size));
    int first = 1;
    for (int d = 0; d < ST_NDTYPES; d++)
        if (tot.tensors_by_dtype[d]) {
            printf("%s%s %lld", first ? "parameters by dtype: " : ", ", st_dtype_name((st_dtype)d),
                   (long long)tot.params_by_dtype[d]);
            first = 0;
        }
    if (!first) putchar('\n');
    print_metadata(f);
    print_tensors(f);
}

static void print_stat(const char *k, double v) {
    if (isfinite(v))
        printf("  %-10s %.9g\n", k, v);
    else
        printf("  %-10s -\n", k);
}

static void report_stats(const st_tensor *t, const insp_stats *s) {
    char sh[256];
    put_safe(t->name, "\\n");
    printf(": %s %s, %lld value%s", st_dtype_name(t->dtype), shape_str(sh, sizeof sh, t),
           (long long)t->numel, t->numel == 1 ? "" : "s");
    if (s->nonfinite) printf(" (%lld not finite, left out)", (long long)s->nonfinite);
    putchar('\n');
    print_stat("min", s->min);
    print_stat("max", s->max);
    print_stat("mean", s->mean);
    print_stat("std", s->std);
    print_stat("l2", s->l2);
}
/* ---- fusion weights ---------------------------------------------------------------------------- */

static const char ROW_AXIS[] = "layer", COL_AXIS[] = "adapter";

/* Shows maps as asked: a PNG, CSV, JSON or a table on the terminal. Returns the exit status. */
static int show_maps(const heatmap *maps, int n, const options *o) {
    af_err e;
    if (o->png) {
        if (heatmap_png(o->png, maps, n, ROW_AXIS, COL_AXIS, &e)) {
            warnx("%s", e.msg);
            return 1;
        }
    } else if (o->csv) {
        heatmap_csv(stdout, maps, n, ROW_AXIS, COL_AXIS);
    } else if (o->json) {
        cJSON *j = heatmap_json(maps, n);
        char *s = insp_print_json(j);
        puts(s);
        free(s);
        cJSON_Delete(j);
    } else {
        heatmap_print(stdout, maps, n, ROW_AXIS, COL_AXIS, o->colour);
    }
    return 0;
}

static void free_maps(heatmap *maps, int n) {
    for (int i = 0; i < n; i++) heatmap_free(&maps[i]);
    free(maps);
}

/* af-infer --fusion-weights output, from every input together. */
static int report_fusion_weights(char **paths, int n, const options *o) {
    static char *stdin_only[] = {"-"};
    if (!n) paths = stdin_only, n = 1;
    insp_fw *a = insp_fw_new(o->by_label);
    af_err e;
    heatmap *maps = NULL;
    int nm = 0, status = 0;
    for (int i = 0; i < n && !status; i++)
        if (insp_fw_read(a, paths[i], &e)) status = 1;
    if (!status && (nm = insp_fw_maps(a, &maps, &e)) < 0) status = 1, nm = 0;
    if (status) {
        fflush(stdout);
        warnx("%s", e.msg);
    } else {
        status = show_maps(maps, nm, o);
    }
    free_maps(maps, nm);
    insp_fw_free(a);
    return status;
}

/* The hint for fusion methods whose weights depend on the input. */
static void per_token_hint(const st_file *f, const char *why) {
    const char *msg = why;
    size_t n = strlen(f->path);
    if (!strncmp(msg, f->path, n) && !strncmp(msg + n, ": ", 2)) msg += n + 2;
    printf("fusion weights: %s; to see them:\n  af-infer --base DIR --adapter ... --fusion ", msg);
    put_safe(f->path, "\\n");
    printf(" --fusion-weights < DATA | af-inspect --fusion-weights -\n");
}

/* The fusion section of a fusion file's summary. */
static void report_fusion(const st_file *f, const options *o) {
    heatmap h;
    af_err e;
    int rc = insp_fusion_static(f, &h, &e);
    if (rc == 1) {
        per_token_hint(f, e.msg);
    } else if (rc == 0) {
        printf("fusion weights:\n");
        heatmap_print(stdout, &h, 1, ROW_AXIS, COL_AXIS, o->colour);
        heatmap_free(&h);
    } else {
        fflush(stdout);
        warnx("%s", e.msg);
    }
}

/* --csv / --png of a fusion file's own weights. */
static int fusion_file_maps(const st_file *f, const options *o) {
    heatmap h;
    af_err e;
    int rc = insp_fusion_static(f, &h, &e);
    if (rc) {
        fflush(stdout);
        if (rc == 1)
            warnx("%s: pass af-infer --fusion-weights output instead: af-infer ... --fusion %s "
                  "--fusion-weights < DATA | af-inspect --fusion-weights -",
                  e.msg, f->path);
        else
            warnx("%s", e.msg);
        return 1;
    }
    int status = show_maps(&h, 1, o);
    heatmap_free(&h);
    return status;
}

/* ---- reports on files -------------------------------------------------------------------------- */

/* Reports on one file; returns 0, or 1 when a requested tensor is missing. */
static int inspect(const st_file *f, const options *o, cJSON *files, int nth) {
    int status = 0;
    if (o->csv || o->png) return fusion_file_maps(f, o);
    if (o->ntensors == 0) {
        if (files) {
            cJSON *fj = insp_file_json(f);
            heatmap h;
            af_err e;
            if (insp_kind_of(f) == INSP_FUSION && insp_fusion_static(f, &h, &e) == 0) {
                cJSON_AddItemToObject(fj, "fusion_weights", heatmap_json(&h, 1));
                heatmap_free(&h);
            }
            cJSON_AddItemToArray(files, fj);
        } else {
            if (nth) putchar('\n');
            report_summary(f);
            if (insp_kind_of(f) == INSP_FUSION) report_fusion(f, o);
        }
        return 0;
    }
    cJSON *fj = NULL, *sj = NULL;
    if (files) {
        fj = cJSON_CreateObject();
        cJSON_AddStringToObject(fj, "path", f->path);
        sj = cJSON_AddArrayToObject(fj, "stats");
        cJSON_AddItemToArray(files, fj);
    } else if (nth) {
        putchar('\n');
    }
    for (int i = 0; i < o->ntensors; i++) {
        const st_tensor *t = st_find(f, o->tensors[i]);
        if (!t) {
            fflush(stdout);
            warnx("%s: no tensor named '%s'", f->path, o->tensors[i]);
            status = 1;
            continue;
        }
        insp_stats s;
        insp_stats_of(t, &s);
        if (files)
            cJSON_AddItemToArray(sj, insp_stats_json(t, &s));
        else {
            if (o->ntensors > 1 || nth) printf("%s: ", f->path);
            report_stats(t, &s);
        }
    }
    return status;
}

/* ---- --diff ------------------------------------------------------------------------------------- */

static void print_diff(const st_file *a, const st_file *b, const insp_diff *d) {
    char sa[256], sb[256];
    printf("--- ");
    put_safe(a->path, "\\n");
    printf("\n+++ ");
    put_safe(b->path, "\\n");
    printf("\ntensors: %d equal, %d different, %d of another shape, %d only in A, %d only in B\n",
           d->count[INSP_SAME], d->count[INSP_DIFFERENT], d->count[INSP_SHAPE],
           d->count[INSP_ONLY_A], d->count[INSP_ONLY_B]);
    int w = 4;
    for (int i = 0; i < d->n; i++)
        if (d->items[i].status != INSP_SAME && (int)strlen(d->items[i].name) > w)
            w = (int)strlen(d->items[i].name);
    if (d->n > d->count[INSP_SAME])
        printf("  %-*s  %-11s  %-11s  %s\n", w, "name", "max |a-b|", "rel L2", "elements differing");
    for (int i = 0; i < d->n; i++) {
        const insp_diff_item *it = &d->items[i];
        if (it->status == INSP_SAME) continue;
        printf("  ");
        put_safe(it->name, "\\n");
        printf("%*s  ", w - (int)strlen(it->name), "");
        switch (it->status) {
        case INSP_DIFFERENT:
            printf("%-11.4g  %-11.4g  %lld of %lld\n", it->max_abs, it->rel_l2, (long long)it->ndiff,
                   (long long)it->a->numel);
            break;
        case INSP_SHAPE:
            printf("shape %s in A, %s in B\n", shape_str(sa, sizeof sa, it->a),
                   shape_str(sb, sizeof sb, it->b));
            break;
        case INSP_ONLY_A: printf("only in A\n"); break;
        default: printf("only in B\n"); break;
        }
    }
    if (d->nmeta) {
        printf("metadata that differs:");
        for (int i = 0; i < d->nmeta; i++) {
            printf("%s", i ? ", " : " ");
            put_safe(d->meta[i], "\\n");
        }
        putchar('\n');
    } else {
        printf("metadata: equal\n");
    }
}

static int report_diff(const char *pa, const char *pb, const options *o) {
    st_file a, b;
    af_err e;
    if (st_open(&a, pa, &e)) {
        warnx("%s", e.msg);
        return 1;
    }
    if (st_open(&b, pb, &e)) {
        warnx("%s", e.msg);
        st_close(&a);
        return 1;
    }
    insp_diff d;
    insp_diff_files(&a, &b, &d);
    if (o->json) {
        cJSON *j = insp_diff_json(&a, &b, &d);
        char *s = insp_print_json(j);
        puts(s);
        free(s);
        cJSON_Delete(j);
    } else {
        print_diff(&a, &b, &d);
    }
    insp_diff_free(&d);
    st_close(&a);
    st_close(&b);
    return 0;
}

/* ---- --curves -----------------------------------------------------------------------------------
 */

static int report_curves(const char *path, const char *png) {
    curves c;
    af_err e;
    int rc = curves_read(&c, path, &e) || curves_png(png, &c, &e);
    if (rc) warnx("%s", e.msg);
    curves_free(&c); /* curves_read leaves c empty when it fails */
    return rc;
}

/* ---- main ---------------------------------------------------------------------------------------- */

static int colour_mode(const char *when) {
    const char *nc = getenv("NO_COLOR"), *term = getenv("TERM"), *ct = getenv("COLORTERM");
    if (!strcmp(when, "never")) return HM_PLAIN;
    if (!strcmp(when, "auto") &&
        (!isatty(STDOUT_FILENO) || (nc && *nc) || (term && !strcmp(term, "dumb"))))
        return HM_PLAIN;
    return ct && (!strcmp(ct, "truecolor") || !strcmp(ct, "24bit")) ? HM_TRUECOLOR : HM_256;
}

enum { O_CSV = 1000, O_PNG, O_COLOR };

int main(int argc, char **argv) {
    af_prog = "af-inspect";
    static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
                                             {"tensor", required_argument, NULL, 't'},
                                             {"diff", no_argument, NULL, 'd'},
                                             {"fusion-weights", no_argument, NULL, 'w'},
                                             {"by-label", no_argument, NULL, 'b'},
                                             {"curves", no_argument, NULL, 'c'},
                                             {"csv", no_argument, NULL, O_CSV},
                                             {"png", required_argument, NULL, O_PNG},
                                             {"color", required_argument, NULL, O_COLOR},
                                             {"colour", required_argument, NULL, O_COLOR},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    static options o; /* static: still reachable when usage_error exits */
    o.tensors = af_calloc((size_t)argc, sizeof *o.tensors);
    const char *when = "auto";
    int c;
    opterr = 0; /* usage_error says it, with the hint to --help */
    while ((c = getopt_long(argc, argv, ":jt:dwbchV", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': o.json = 1; break;
        case 't': o.tensors[o.ntensors++] = optarg; break;
        case 'd': o.diff = 1; break;
        case 'w': o.fusion_weights = 1; break;
        case 'b': o.by_label = 1; break;
        case 'c':
            o.curves = 1;
            break;
        case O_CSV: o.csv = 1; break;
        case O_PNG: o.png = optarg; break;
        case O_COLOR:
            if (strcmp(optarg, "auto") && strcmp(optarg, "always") && strcmp(optarg, "never"))
                usage_error("--color: '%s' is not auto, always or never", optarg);
            when = optarg;
            break;
        case 'h': usage(); return finish(0);
        case 'V': printf("af-inspect (af) %s\n", AF_VERSION); return finish(0);
        case ':': usage_error("option '%s' needs a value", argv[optind - 1]);
        default: usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    o.colour = colour_mode(when);
    int nfiles = argc - optind;
    if (o.png) {
        pathguard g;
        pathguard_init(&g);
        for (int i = optind; i < argc; i++) pathguard_input(&g, "the file", argv[i]);
        pathguard_output(&g, "--png", o.png);
        pathguard_done(&g);
    }
    if (o.json + o.csv + (o.png != NULL) > 1) usage_error("--json, --csv and --png exclude each other");
    if (o.by_label && !o.fusion_weights) usage_error("--by-label is for --fusion-weights");
    if (o.curves) {
        if (o.diff || o.fusion_weights || o.by_label || o.ntensors || o.json || o.csv)
            usage_error("--curves draws a study's TSV; --diff, --fusion-weights, --by-label, "
                        "--tensor, --json and --csv do not apply");
        if (!o.png) usage_error("--curves draws a PNG: give --png OUT");
        if (nfiles != 1) usage_error("--curves draws one TSV, %d given", nfiles);
        free(o.tensors);
        return finish(report_curves(argv[optind], o.png));
    }
    if (o.diff) {
        if (o.fusion_weights || o.ntensors || o.csv || o.png)
            usage_error("--diff compares two files; --tensor, --fusion-weights, --csv and --png "
                        "do not apply");
        if (nfiles != 2) usage_error("--diff needs two files, %d given", nfiles);
        int status = report_diff(argv[optind], argv[optind + 1], &o);
        free(o.tensors);
        return finish(status);
    }
    /* a safetensors file cannot come down a pipe (it is mapped): "-" is af-infer output */
    if (!o.diff && nfiles == 1 && !strcmp(argv[optind], "-")) o.fusion_weights = 1;
    if (o.fusion_weights) {
        if (o.ntensors) usage_error("--tensor does not apply to --fusion-weights");
        int status = report_fusion_weights(argv + optind, nfiles, &o);
        free(o.tensors);
        return finish(status);
    }
    if (nfiles == 0) usage_error("no file given");
    if ((o.csv || o.png) && o.ntensors) usage_error("--csv and --png show fusion weights, not --tensor");
    if (o.png && nfiles > 1) usage_error("--png draws one fusion file, %d given", nfiles);

    int status = 0, shown = 0;
    cJSON *doc = NULL, *files = NULL;
    if (o.json) {
        doc = cJSON_CreateObject();
        files = cJSON_AddArrayToObject(doc, "files");
    }
    for (int i = optind; i < argc; i++) {
        st_file f;
        af_err e;
        /* an AdapterHub directory (af-convert's input): what it holds */
        if (hub_is_dir(argv[i])) {
            if (o.ntensors)
                usage_error("%s: --tensor reads af's files, not AdapterHub directories", argv[i]);
            cJSON *hj = files ? hub_describe_json(argv[i], &e) : NULL;
            if (hj) {
                cJSON_AddItemToArray(files, hj);
            } else if (files || hub_describe(argv[i], stdout, &e)) {
                fflush(stdout);
                warnx("%s", e.msg);
                status = 1;
            }
            shown++;
            continue;
        }
        if (st_open(&f, argv[i], &e)) {
            fflush(stdout);
            warnx("%s", e.msg);
            status = 1;
            continue;
        }
        if (inspect(&f, &o, files, shown++)) status = 1;
        st_close(&f);
    }
    if (doc) {
        char *s = insp_print_json(doc);
        puts(s);
        free(s);
        cJSON_Delete(doc);
    }
    free(o.tensors);
    return finish(status);
}
