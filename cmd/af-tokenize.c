/* af-tokenize: text (JSONL, TSV, CSV) to tokenized JSONL (af-files(5)), exactly as Hugging Face's
 * BertTokenizer (WordPiece, vocab.txt) or RobertaTokenizer (byte-level BPE, vocab.json and
 * merges.txt); or, with --build-vocab, a WordPiece vocabulary from raw text. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "bpe.h"
#include "common.h"
#include "jsonl.h"
#include "outbuf.h"
#include "records.h"
#include "tokenizer.h"
#include "tokenizer_train.h"

typedef struct {
    const char *vocab, *merges, *model, *output, *input;
    const char *text, *pair, *label, *id, *task;
    char **keep;
    int nkeep;
    int lower; /* -1: from the model's config, else HF's default (1) */
    int strip; /* -1: from the model's config, else as lower */
    int max_len, pad, header, tokens, quiet;
    rec_format fmt;
    long build_vocab;
    tok_options topt;
    int bpe;          /* byte-level BPE (vocab.json + merges.txt), else WordPiece */
    int prefix_space; /* --add-prefix-space: 1, else -1 (the model's config) */
    bpe_options bopt;
    char *owned[16]; /* strings taken from tokenizer_config.json, paths made from --model */
} config;

static void usage(void) {
    printf(
        "usage: af-tokenize --vocab FILE [--merges FILE] | --model DIR [options] [FILE|-]\n"
        "       af-tokenize --build-vocab N [-o FILE] [options] [FILE|-]\n"
        "Text to input ids (JSONL), as Hugging Face's BertTokenizer (WordPiece) or\n"
        "RobertaTokenizer (byte-level BPE).\n"
        "\n"
        "  --vocab FILE        vocab.txt: one token per line, id = line number (WordPiece);\n"
        "                      vocab.json: token -> id (BPE, with --merges)\n"
        "  --merges FILE       merges.txt: BPE merges, one pair a line, by rank\n"
        "  --model DIR         DIR/vocab.json and DIR/merges.txt (BPE) or DIR/vocab.txt\n"
        "                      (WordPiece), and DIR/tokenizer_config.json for the\n"
        "                      settings (do_lower_case, add_prefix_space, tokens, ...)\n"
        "  --add-prefix-space  BPE: a space before each text (default: the model's config)\n"
        "  --lowercase, --no-lowercase\n"
        "                      lower-case and strip accents (default: the model's config,\n"
        "                      else lower-case)\n"
        "  --strip-accents, --no-strip-accents\n"
        "                      NFD and drop accents (default: the model's config, else\n"
        "                      when lower-casing)\n"
        "  --max-len N         at most N ids, longest-first truncation (default 128;\n"
        "                      0: no limit)\n"
        "  --pad               pad with [PAD] up to --max-len\n"
        "  --jsonl, --tsv, --csv\n"
        "                      input format (default: JSONL if the first line starts\n"
        "                      with '{', else TSV)\n"
        "  --header            the first TSV/CSV line names the columns\n"
        "  --text F            the text field (default: text; TSV/CSV: column 1)\n"
        "  --pair F            a second text: [CLS] A [SEP] B [SEP] (BPE: <s> A </s></s> B </s>)\n"
        "  --label F, --id F   passed through as \"label\" and \"id\"\n"
        "  --keep F,...        other fields passed through under their own names\n"
        "  --task NAME         adds \"task\":NAME to every line\n"
        "  --tokens            write the word pieces as text, not JSON\n"
        "  --build-vocab N     build a vocabulary of N entries from the input text\n"
        "  -o, --output FILE   write FILE (atomically) instead of standard output\n"
        "  -q, --quiet         no summary on standard error\n"
        "  -h, --help          this help\n"
        "  -V, --version       version, and the Unicode version of the tables\n"
        "F is a JSON key, or a TSV/CSV column name (with --header) or 1-based number.\n");
}

enum {
    O_VOCAB = 256,
    O_MODEL,
    O_LOWER,
    O_NOLOWER,
    O_STRIP,
    O_NOSTRIP,
    O_MAXLEN,
    O_PAD,
    O_JSONL,
    O_TSV,
    O_CSV,
    O_HEADER,
    O_TEXT,
    O_PAIR,
    O_LABEL,
    O_ID,
    O_KEEP,
    O_TASK,
    O_TOKENS,
    O_BUILD,
    O_MERGES,
    O_PREFIX,
    O_VERSION
};

static const struct option longopts[] = {
    {"vocab", required_argument, 0, O_VOCAB},
    {"model", required_argument, 0, O_MODEL},
    {"lowercase", no_argument, 0, O_LOWER},
    {"no-lowercase", no_argument, 0, O_NOLOWER},
    {"strip-accents", no_argument, 0, O_STRIP},
    {"no-strip-accents", no_argument, 0, O_NOSTRIP},
    {"max-len", required_argument, 0, O_MAXLEN},
    {"pad", no_argument, 0, O_PAD},
    {"jsonl", no_argument, 0, O_JSONL},
    {"tsv", no_argument, 0, O_TSV},
    {"csv", no_argument, 0, O_CSV},
    {"header", no_argument, 0, O_HEADER},
    {"text", required_argument, 0, O_TEXT},
    {"pair", required_argument, 0, O_PAIR},
    {"label", required_argument, 0, O_LABEL},
    {"id", required_argument, 0, O_ID},
    {"keep", required_argument, 0, O_KEEP},
    {"task", required_argument, 0, O_TASK},
    {"tokens", no_argument, 0, O_TOKENS},
    {"build-vocab", required_argument, 0, O_BUILD},
    {"merges", required_argument, 0, O_MERGES},
    {"add-prefix-space", no_argument, 0, O_PREFIX},
    {"output", required_argument, 0, 'o'},
    {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, O_VERSION},
    {0, 0, 0, 0},
};

static void split_keep(config *c, const char *list) {
    char *s = af_strdup(list), *save = NULL;
    for (char *f = strtok_r(s, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        c->keep = af_realloc(c->keep, (size_t)(c->nkeep + 1) * sizeof *c->keep);
        c->keep[c->nkeep++] = af_strdup(f);
    }
    free(s);
}

/* A kept field must not write a key twice: the ids always, label/id/task when asked for. */
static void check_keep(const config *c) {
    for (int i = 0; i < c->nkeep; i++) {
        const char *f = c->keep[i];
        if (!strcmp(f, "input_ids") || !strcmp(f, "token_type_ids") ||
            !strcmp(f, "attention_mask") || (c->label && !strcmp(f, "label")) ||
            (c->id && !strcmp(f, "id")) || (c->task && !strcmp(f, "task")))
            usage_error("--keep %s: that key is written by af-tokenize itself", f);
        for (int j = 0; j < i; j++)
            if (!strcmp(f, c->keep[j])) usage_error("--keep %s: named twice", f);
    }
}

/* -o must not name what is read (the text, the vocabulary, the model directory's files). */
static void check_paths(const config *c) {
    pathguard g;
    pathguard_init(&g);
    pathguard_input(&g, "the input", c->input);
    pathguard_input(&g, "--vocab", c->vocab);
    pathguard_input(&g, "--merges", c->merges);
    pathguard_input_dir(&g, "--model", c->model);
    pathguard_output(&g, "-o", c->output);
    pathguard_done(&g);
}

static void parse_args(config *c, int argc, char **argv) {
    int o;
    c->lower = c->strip = c->prefix_space = -1;
    c->max_len = 128;
    c->fmt = REC_AUTO;
    while ((o = getopt_long(argc, argv, "o:qhV", longopts, NULL)) != -1) {
        switch (o) {
        case O_VOCAB:
            c->vocab = optarg;
            break;
        case O_MODEL:
            c->model = optarg;
            break;
        case O_MERGES:
            c->merges = optarg;
            break;
        case O_PREFIX:
            c->prefix_space = 1;
            break;
        case O_LOWER:
            c->lower = 1;
            break;
        case O_NOLOWER:
            c->lower = 0;
            break;
        case O_STRIP:
            c->strip = 1;
            break;
        case O_NOSTRIP:
            c->strip = 0;
            break;
        case O_MAXLEN:
            c->max_len = (int)opt_long("--max-len", optarg, 0, 1 << 20);
            break;
        case O_PAD:
            c->pad = 1;
            break;
        case O_JSONL:
            c->fmt = REC_JSONL;
            break;
        case O_TSV:
            c->fmt = REC_TSV;
            break;
        case O_CSV:
            c->fmt = REC_CSV;
            break;
        case O_HEADER:
            c->header = 1;
            break;
        case O_TEXT:
            c->text = optarg;
            break;
        case O_PAIR:
            c->pair = optarg;
            break;
        case O_LABEL:
            c->label = optarg;
            break;
        case O_ID:
            c->id = optarg;
            break;
        case O_KEEP:
            split_keep(c, optarg);
            break;
        case O_TASK:
            c->task = optarg;
            break;
        case O_TOKENS:
            c->tokens = 1;
            break;
        case O_BUILD:
            c->build_vocab = opt_long("--build-vocab", optarg, 5, 1 << 24);
            break;
        case 'o':
            c->output = optarg;
            break;
        case 'q':
            c->quiet = 1;
            break;
        case 'h':
            usage();
            exit(finish(0));
        case 'V':
        case O_VERSION:
            printf("af-tokenize %s (utf8proc %s, Unicode %s)\n", AF_VERSION, utf8proc_version(),
                   tok_unicode_version());
            exit(finish(0));
        default:
            fprintf(stderr, "Try 'af-tokenize --help' for more information.\n");
            exit(2);
        }
    }
    check_keep(c);
    if (optind + 1 < argc) usage_error("one input file at most ('%s' is extra)", argv[optind + 1]);
    c->input = optind < argc ? argv[optind] : "-";
    check_paths(c);
    if (c->max_len > 0 && c->max_len < 3)
        usage_error("--max-len %d: at least 3 (room for [CLS] and [SEP]), or 0 for no limit",
                    c->max_len);
    if (c->pad && c->max_len == 0) usage_error("--pad needs a --max-len");
    if (c->build_vocab) {
        if (c->pad || c->tokens || c->label || c->id || c->task || c->nkeep)
            usage_error("--build-vocab reads text only: it takes no --label, --id, --keep, "
                        "--task, --pad or --tokens");
        return;
    }
    if (!c->vocab && !c->model) usage_error("--vocab FILE or --model DIR is required");
    if (c->merges && !c->vocab) usage_error("--merges goes with --vocab vocab.json");
}

/* A special token in tokenizer_config.json: a string, or an AddedToken {"content": ...}. */
static const char *token_name(config *c, const cJSON *cfg, const char *key, int slot) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v)) return NULL;
    return c->owned[slot] = af_strdup(v->valuestring);
}

static int exists(const char *dir, const char *file, char **path) {
    if (asprintf(path, "%s/%s", dir, file) < 0) die("out of memory");
    return access(*path, F_OK) == 0; /* not opened: a FIFO must not block here */
}

/* An AddedToken's flag in tokenizer_config.json ({"content": ..., "lstrip": true}), or dflt. */
static int token_flag(const cJSON *cfg, const char *key, const char *flag, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, flag) : NULL;
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* RobertaTokenizer's settings from DIR/tokenizer_config.json. */
static void load_bpe_config(config *c, const cJSON *cfg) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "add_prefix_space");
    if (cJSON_IsBool(v)) c->bopt.add_prefix_space = cJSON_IsTrue(v);
    c->bopt.unk = token_name(c, cfg, "unk_token", 0);
    c->bopt.sep = token_name(c, cfg, "sep_token", 1);
    c->bopt.pad = token_name(c, cfg, "pad_token", 2);
    c->bopt.cls = token_name(c, cfg, "cls_token", 3);
    c->bopt.mask = token_name(c, cfg, "mask_token", 4);
    c->bopt.bos = token_name(c, cfg, "bos_token", 6);
    c->bopt.eos = token_name(c, cfg, "eos_token", 7);
    c->bopt.mask_lstrip = token_flag(cfg, "mask_token", "lstrip", 1);
}

/* BertTokenizer's settings from DIR/tokenizer_config.json. */
static void load_wordpiece_config(config *c, const cJSON *cfg) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "do_lower_case");
    if (cJSON_IsBool(v)) c->topt.lower = cJSON_IsTrue(v);
    v = cJSON_GetObjectItemCaseSensitive(cfg, "strip_accents");
    if (cJSON_IsBool(v)) c->topt.strip_accents = cJSON_IsTrue(v);
    v = cJSON_GetObjectItemCaseSensitive(cfg, "tokenize_chinese_chars");
    if (cJSON_IsBool(v)) c->topt.chinese = cJSON_IsTrue(v);
    c->topt.unk = token_name(c, cfg, "unk_token", 0);
    c->topt.sep = token_name(c, cfg, "sep_token", 1);
    c->topt.pad = token_name(c, cfg, "pad_token", 2);
    c->topt.cls = token_name(c, cfg, "cls_token", 3);
    c->topt.mask = token_name(c, cfg, "mask_token", 4);
}

/* HF BertTokenizer's or RobertaTokenizer's settings from --model DIR (BPE when it holds
 * vocab.json and merges.txt, or --vocab names a .json file), then the flags over them. */
static void load_options(config *c) {
    tok_options_default(&c->topt);
    bpe_options_default(&c->bopt);
    size_t vl = c->vocab ? strlen(c->vocab) : 0;
    if (vl > 5 && !strcmp(c->vocab + vl - 5, ".json")) c->bpe = 1;
    if (c->model && !c->vocab) {
        char *j = NULL, *m = NULL;
        int has_j = exists(c->model, "vocab.json", &j), has_m = exists(c->model, "merges.txt", &m);
        if (has_j && has_m)
            c->bpe = 1, c->owned[5] = j, c->vocab = j, c->owned[8] = m;
        else
            free(j), free(m);
    }
    if (c->bpe && !c->merges) {
        if (!c->model) usage_error("--vocab %s (BPE) needs --merges FILE", c->vocab);
        if (!c->owned[8] && asprintf(&c->owned[8], "%s/merges.txt", c->model) < 0)
            die("out of memory");
        c->merges = c->owned[8];
    }
    if (c->merges && !c->bpe) usage_error("--merges goes with a BPE vocab.json");
    if (c->bpe && (c->lower >= 0 || c->strip >= 0))
        usage_error(
            "--lowercase and --strip-accents are WordPiece's (byte-level BPE keeps the text)");
    if (c->bpe && c->build_vocab) usage_error("--build-vocab builds WordPiece vocabularies only");
    if (c->model) {
        char *path, *data;
        size_t len;
        af_err e;
        if (asprintf(&path, "%s/tokenizer_config.json", c->model) < 0) die("out of memory");
        /* absent is fine (the defaults); anything else unreadable (a link loop, a FIFO) is not */
        if (access(path, F_OK) == 0 || errno != ENOENT) {
            if (af_read_file(path, &data, &len, &e) < 0) die_err(&e);
            cJSON *cfg = cJSON_ParseWithLength(data, len);
            if (!cJSON_IsObject(cfg)) die("%s: not a JSON object", path);
            if (c->bpe)
                load_bpe_config(c, cfg);
            else
                load_wordpiece_config(c, cfg);
            cJSON_Delete(cfg);
            free(data);
        }
        if (!c->vocab && asprintf(&c->owned[5], "%s/vocab.txt", c->model) >= 0)
            c->vocab = c->owned[5];
        free(path);
    }
    if (c->prefix_space >= 0) c->bopt.add_prefix_space = c->prefix_space;
    if (c->lower >= 0) c->topt.lower = c->lower;
    if (c->strip >= 0) c->topt.strip_accents = c->strip;
}

/* ---- tokenizing ---------------------------------------------------------------------------- */

typedef struct {
    config *c;
    tok_tokenizer *tok; /* WordPiece, or */
    bpe_tokenizer *bpe; /* byte-level BPE */
    rec_reader *in;
    int f_text, f_pair, f_label, f_id, *f_keep;
    long records, tokens;
} job;

static void die_at(const job *j, const char *fmt, const char *a, const char *b) {
    die("%s:%ld: %s%s%s", rec_name(j->in), rec_line(j->in), fmt, a ? a : "", b ? b : "");
}

/* A field that must be there, as text. */
static void get_text(const job *j, int field, rec_value *v) {
    if (!rec_get(j->in, field, v)) {
        if (rec_format_of(j->in) == REC_JSONL)
            die("%s:%ld: no field '%s'", rec_name(j->in), rec_line(j->in),
                rec_field_name(j->in, field));
        die("%s:%ld: no column '%s' (the line has %d)", rec_name(j->in), rec_line(j->in),
            rec_field_name(j->in, field), rec_ncols(j->in));
    }
    if (!v->s) die_at(j, "field '", rec_field_name(j->in, field), "' is not a string");
}

static void encode(job *j, int field, tok_ids *ids) {
    rec_value v;
    af_err e;
    get_text(j, field, &v);
    ids->n = 0;
    if ((j->bpe ? bpe_encode(j->bpe, v.s, v.n, ids, &e) : tok_encode(j->tok, v.s, v.n, ids, &e)) <
        0)
        die("%s:%ld: field '%s': %s", rec_name(j->in), rec_line(j->in),
            rec_field_name(j->in, field), e.msg);
}

/* Writes a passed-through field: JSON as it was written; TSV/CSV text as a string, or for the
 * label as a number when it reads as one ("1" -> 1, "3.8" -> 3.8, "entailment" stays text). */
static void put_value(job *j, ob_writer *w, int field, const char *key, int required, int numbers) {
    rec_value v;
    if (!rec_get(j->in, field, &v)) {
        if (!required) return;
        get_text(j, field, &v); /* dies with the message */
    }
    ob_str(w, ",\"");
    ob_str(w, key);
    ob_str(w, "\":");
    if (rec_format_of(j->in) != REC_JSONL) {
        if (numbers && rec_is_json_number(v.s, v.n))
            ob_raw(w, v.s, v.n);
        else
            ob_json_string(w, v.s, v.n);
        return;
    }
    const char *raw;
    size_t n;
    if (rec_raw(j->in, field, &raw, &n)) {
        ob_raw(w, raw, n);
        return;
    }
    char *s = cJSON_PrintUnformatted(v.json);
    ob_str(w, s);
    free(s);
}

static int tokenize_all(FILE *f, void *ctx, af_err *e) {
    job *j = ctx;
    config *c = j->c;
    ob_writer w;
    ob_init(&w, f, 1 << 20);
    tok_ids a = {0}, b = {0};
    tok_input in = {0};
    int r;
    while ((r = rec_next(j->in, e)) > 0) {
        encode(j, j->f_text, &a);
        if (c->pair) encode(j, j->f_pair, &b);
        if ((j->bpe
                 ? bpe_assemble(j->bpe, &a, c->pair ? &b : NULL, c->max_len, c->pad, &in, e)
                 : tok_assemble(j->tok, &a, c->pair ? &b : NULL, c->max_len, c->pad, &in, e)) < 0)
            die("%s", e->msg);
        j->records++;
        j->tokens += a.n + (c->pair ? b.n : 0);
        if (c->tokens) {
            for (int i = 0; i < in.ids.n; i++) {
                if (i) ob_char(&w, ' ');
                ob_str(&w,
                       j->bpe ? bpe_token(j->bpe, in.ids.v[i]) : tok_token(j->tok, in.ids.v[i]));
            }
            ob_char(&w, '\n');
            continue;
        }
        ob_str(&w, "{\"input_ids\":");
        ob_ints(&w, in.ids.v, in.ids.n);
        ob_str(&w, ",\"token_type_ids\":");
        ob_ints(&w, in.types.v, in.types.n);
        ob_str(&w, ",\"attention_mask\":");
        ob_ints(&w, in.mask.v, in.mask.n);
        if (c->label) put_value(j, &w, j->f_label, "label", 1, 1);
        if (c->task) {
            ob_str(&w, ",\"task\":");
            ob_json_string(&w, c->task, strlen(c->task));
        }
        if (c->id) put_value(j, &w, j->f_id, "id", 1, 0);
        for (int i = 0; i < c->nkeep; i++) put_value(j, &w, j->f_keep[i], c->keep[i], 0, 0);
        ob_str(&w, "}\n");
    }
    tok_ids_free(&a);
    tok_ids_free(&b);
    tok_input_free(&in);
    int werr = ob_flush(&w);
    ob_free(&w);
    if (r < 0) return -1;
    if (werr) return af_errf(e, "%s: write error", c->output ? c->output : "stdout");
    return 0;
}

static int field(job *j, const char *spec) {
    af_err e;
    int k = rec_field(j->in, spec, &e);
    if (k < 0) die_err(&e);
    return k;
}

static int run_tokenize(config *c) {
    af_err e;
    job j = {.c = c};
    if (c->bpe ? bpe_open(&j.bpe, c->vocab, c->merges, &c->bopt, &e) < 0
               : tok_open(&j.tok, c->vocab, &c->topt, &e) < 0)
        die_err(&e);
    if (rec_open(&j.in, c->input, c->fmt, c->header, &e) < 0) die_err(&e);
    int jsonl = rec_format_of(j.in) == REC_JSONL;
    j.f_text = field(&j, c->text ? c->text : jsonl ? "text" : "1");
    if (c->pair) j.f_pair = field(&j, c->pair);
    if (c->label) j.f_label = field(&j, c->label);
    if (c->id) j.f_id = field(&j, c->id);
    j.f_keep = af_malloc(((size_t)c->nkeep + 1) * sizeof *j.f_keep);
    for (int i = 0; i < c->nkeep; i++) j.f_keep[i] = field(&j, c->keep[i]);
    double t0 = af_now();
    int r =
        c->output ? af_write_atomic(c->output, tokenize_all, &j, &e) : tokenize_all(stdout, &j, &e);
    if (r < 0) die_err(&e);
    if (!c->quiet && c->output)
        fprintf(stderr, "af-tokenize: %ld examples, %ld tokens, %.0f tokens/s\n", j.records,
                j.tokens, j.tokens / (af_now() - t0 + 1e-9));
    rec_close(j.in);
    tok_close(j.tok);
    bpe_close(j.bpe);
    free(j.f_keep);
    return 0;
}

/* ---- building a vocabulary ------------------------------------------------------------------ */

typedef struct {
    char **tokens;
    int n;
} vocab_out;

static int write_vocab(FILE *f, void *ctx, af_err *e) {
    vocab_out *v = ctx;
    for (int i = 0; i < v->n; i++)
        if (fputs(v->tokens[i], f) == EOF || fputc('\n', f) == EOF)
            return af_errf(e, "write error");
    return 0;
}

static void add_text(tok_trainer *t, const char *name, long line, const char *s, size_t n) {
    af_err e;
    if (tok_train_add(t, s, n, &e) < 0) die("%s:%ld: %s", name, line, e.msg);
}

static int run_build_vocab(config *c) {
    af_err e;
    tok_trainer *t = tok_train_new(&c->topt);
    /* Raw text, a document per line, unless fields or a format were named. */
    if (c->text || c->pair || c->header || c->fmt != REC_AUTO) {
        job j = {.c = c};
        if (rec_open(&j.in, c->input, c->fmt, c->header, &e) < 0) die_err(&e);
        int jsonl = rec_format_of(j.in) == REC_JSONL;
        j.f_text = field(&j, c->text ? c->text : jsonl ? "text" : "1");
        if (c->pair) j.f_pair = field(&j, c->pair);
        int r;
        rec_value v;
        while ((r = rec_next(j.in, &e)) > 0) {
            get_text(&j, j.f_text, &v);
            add_text(t, rec_name(j.in), rec_line(j.in), v.s, v.n);
            if (c->pair) {
                get_text(&j, j.f_pair, &v);
                add_text(t, rec_name(j.in), rec_line(j.in), v.s, v.n);
            }
        }
        if (r < 0) die_err(&e);
        rec_close(j.in);
    } else {
        af_lines *l;
        char *line;
        long n;
        if (af_lines_open(&l, c->input, &e) < 0) die_err(&e);
        while ((n = af_lines_next(l, &line, &e)) >= 0)
            add_text(t, af_lines_name(l), af_lines_lineno(l), line, (size_t)n);
        if (n == -2) die_err(&e);
        af_lines_close(l);
    }
    vocab_out v;
    if (tok_train_build(t, (int)c->build_vocab, 2, &v.tokens, &v.n, &e) < 0) die_err(&e);
    if (c->output) {
        if (af_write_atomic(c->output, write_vocab, &v, &e) < 0) die_err(&e);
    } else if (write_vocab(stdout, &v, &e) < 0) {
        die_err(&e);
    }
    if (!c->quiet)
        fprintf(stderr, "af-tokenize: vocabulary of %d entries from %ld words%s\n", v.n,
                tok_train_words(t), v.n < c->build_vocab ? " (no pair occurs twice any more)" : "");
    tok_train_free(t);
    return 0;
}

int main(int argc, char **argv) {
    af_prog = "af-tokenize";
    config c = {0};
    parse_args(&c, argc, argv);
    load_options(&c);
    int r = c.build_vocab ? run_build_vocab(&c) : run_tokenize(&c);
    for (int i = 0; i < c.nkeep; i++) free(c.keep[i]);
    free(c.keep);
    for (size_t i = 0; i < sizeof c.owned / sizeof *c.owned; i++) free(c.owned[i]);
    return finish(r);
}
