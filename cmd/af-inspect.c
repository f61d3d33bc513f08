/* af-inspect: what is in a safetensors file, for people (tables) or programs (--json).
 *
 * Each report is a function of one opened file; main() picks the report. Later reports
 * (heatmaps, --diff) are new functions beside these. */
#include "common.h"
#include "inspect.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int json;
    const char **tensors; /* --tensor NAME, repeatable */
    int ntensors;
} options;

static void usage(void) {
    printf("Usage: %s [--json] [--tensor NAME]... FILE...\n"
           "Describe safetensors files: what each is (base, adapter, fusion, other), its\n"
           "metadata, its tensors (name, dtype, shape, parameters) and totals.\n"
           "\n"
           "  -j, --json         print one JSON document instead of tables\n"
           "  -t, --tensor NAME  print min, max, mean, std and L2 norm of tensor NAME\n"
           "  -h, --help         show this help\n"
           "  -V, --version      show the version\n"
           "\n"
           "An invalid file is reported with the rule it breaks; the exit status is then 1.\n",
           af_prog);
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

/* Reports on one file; returns 0, or 1 when a requested tensor is missing. */
static int inspect(const st_file *f, const options *o, cJSON *files, int nth) {
    int status = 0;
    if (o->ntensors == 0) {
        if (files)
            cJSON_AddItemToArray(files, insp_file_json(f));
        else {
            if (nth) putchar('\n');
            report_summary(f);
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

int main(int argc, char **argv) {
    af_prog = "af-inspect";
    static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
                                             {"tensor", required_argument, NULL, 't'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    static options o; /* static: still reachable when usage_error exits */
    o.tensors = af_calloc((size_t)argc, sizeof *o.tensors);
    int c;
    opterr = 0; /* usage_error says it, with the hint to --help */
    while ((c = getopt_long(argc, argv, ":jt:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            o.json = 1;
            break;
        case 't':
            o.tensors[o.ntensors++] = optarg;
            break;
        case 'h':
            usage();
            return finish(0);
        case 'V':
            printf("af-inspect (af) %s\n", AF_VERSION);
            return finish(0);
        case ':':
            usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind == argc) usage_error("no file given");

    int status = 0, shown = 0;
    cJSON *doc = NULL, *files = NULL;
    if (o.json) {
        doc = cJSON_CreateObject();
        files = cJSON_AddArrayToObject(doc, "files");
    }
    for (int i = optind; i < argc; i++) {
        st_file f;
        af_err e;
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
