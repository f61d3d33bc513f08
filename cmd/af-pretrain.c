/* af-pretrain: masked-language-model pretraining of a new BERT or RoBERTa, or continued
 * pretraining of a Hugging Face BERT, RoBERTa or DistilBERT checkpoint on one's own text; writes
 * a *ForMaskedLM directory. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "lmtok.h"
#include "mlm.h"
#include "mlmtrain.h"
#include "ops.h"
#include "outlock.h"
#include "pretrain.h"
#include "signals.h"

typedef struct {
    mlmtrain_opts t;
    int threads;
    char **inputs;
    int ninputs;
} config;

static void usage(void) {
    printf(
        "usage: af-pretrain --layers N --hidden N --heads N --ffn N --vocab FILE -o DIR [options] "
        "[FILE...]\n"
        "       af-pretrain --base DIR -o DIR [options] [FILE...]\n"
        "Masked-language-model pretraining of a BERT, RoBERTa or DistilBERT encoder.\n"
        "\n"
        "Input: raw text, one document per line, or tokenized JSONL (input_ids); gzip is\n"
        "read transparently; no FILE or '-' reads standard input.\n"
        "\n"
        "  --base DIR          continue pretraining a Hugging Face checkpoint (BERT, RoBERTa,\n"
        "                      DistilBERT; its vocab.json + merges.txt, or vocab.txt)\n"
        "  --layers N, --hidden N, --heads N, --ffn N\n"
        "                      shape of a new model\n"
        "  --vocab FILE        vocab.txt, or with --merges vocab.json (a new model: BERT,\n"
        "                      or RoBERTa with --merges; default for --base: DIR's)\n"
        "  --merges FILE       merges.txt: byte-level BPE as RobertaTokenizer\n"
        "  --max-pos N         position embeddings of a new model (default 512)\n"
        "  --act NAME          hidden_act of a new model (default gelu)\n"
        "  --dropout X         dropout of a new model (default 0.1)\n"
        "  --no-lowercase      the vocabulary is cased\n"
        "  --max-len N         tokens per packed sequence, [CLS] and [SEP] included (128)\n"
        "  --batch-size N      sequences per micro-batch (32)\n"
        "  --accumulate N      micro-batches per optimizer step (1)\n"
        "  --lr X              peak learning rate (1e-4)\n"
        "  --warmup-ratio X    share of the steps spent warming up (0.01)\n"
        "  --weight-decay X    AdamW weight decay, not on biases and LayerNorm (0.01)\n"
        "  --clip X            gradient clipping at this global norm (1.0; 0: off)\n"
        "  --steps N           optimizer steps (default: --epochs over the corpus)\n"
        "  --epochs N          passes over the corpus (1)\n"
        "  --mask-prob X       share of tokens chosen for prediction (0.15)\n"
        "  --whole-word        choose whole words (a token and its ## pieces; BPE: a token\n"
        "                      starting with a space and those up to the next)\n"
        "  --dev FILE          held-out text: MLM loss and accuracy, against the unigram baseline\n"
        "  --eval-every N      evaluate on --dev every N steps (default: at the end)\n"
        "  --log FILE          one JSON line per evaluation (appended to when resuming)\n"
        "  --save-every N      write a resumable checkpoint every N steps\n"
        "  --checkpoint DIR    where checkpoints go (default: OUT.ckpt)\n"
        "  --resume            continue from the checkpoint\n"
        "  --f16               write the model's weights as float16\n"
        "  --seed N            seed of the initialisation, data order, masks, dropout (42)\n"
        "  --threads N         OpenBLAS threads (default: all cores)\n"
        "  -o, --output DIR    the model directory to write\n"
        "  -q, --quiet         no progress on standard error\n"
        "  -h, --help          this help\n"
        "  -V, --version       version\n");
}

enum {
    O_BASE = 256,
    O_LAYERS,
    O_HIDDEN,
    O_HEADS,
    O_FFN,
    O_VOCAB,
    O_MAXPOS,
    O_ACT,
    O_DROPOUT,
    O_NOLOWER,
    O_MAXLEN,
    O_BATCH,
    O_ACCUM,
    O_LR,
    O_WARMUP,
    O_WD,
    O_CLIP,
    O_STEPS,
    O_EPOCHS,
    O_MASKP,
    O_WWM,
    O_DEV,
    O_EVAL,
    O_SAVE,
    O_CKPT,
    O_RESUME,
    O_F16,
    O_SEED,
    O_THREADS,
    O_VERSION,
    O_LOG,
    O_MERGES
};

static const struct option longopts[] = {{"base", required_argument, 0, O_BASE},
                                         {"layers", required_argument, 0, O_LAYERS},
                                         {"hidden", required_argument, 0, O_HIDDEN},
                                         {"heads", required_argument, 0, O_HEADS},
                                         {"ffn", required_argument, 0, O_FFN},
                                         {"vocab", required_argument, 0, O_VOCAB},
                                         {"max-pos", required_argument, 0, O_MAXPOS},
                                         {"act", required_argument, 0, O_ACT},
                                         {"dropout", required_argument, 0, O_DROPOUT},
                                         {"no-lowercase", no_argument, 0, O_NOLOWER},
                                         {"max-len", required_argument, 0, O_MAXLEN},
                                         {"batch-size", required_argument, 0, O_BATCH},
                                         {"accumulate", required_argument, 0, O_ACCUM},
                                         {"lr", required_argument, 0, O_LR},
                                         {"warmup-ratio", required_argument, 0, O_WARMUP},
                                         {"weight-decay", required_argument, 0, O_WD},
                                         {"clip", required_argument, 0, O_CLIP},
                                         {"steps", required_argument, 0, O_STEPS},
                                         {"epochs", required_argument, 0, O_EPOCHS},
                                         {"mask-prob", required_argument, 0, O_MASKP},
                                         {"whole-word", no_argument, 0, O_WWM},
                                         {"dev", required_argument, 0, O_DEV},
                                         {"eval-every", required_argument, 0, O_EVAL},
                                         {"save-every", required_argument, 0, O_SAVE},
                                         {"checkpoint", required_argument, 0, O_CKPT},
                                         {"resume", no_argument, 0, O_RESUME},
                                         {"f16", no_argument, 0, O_F16},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"output", required_argument, 0, 'o'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {"version", no_argument, 0, O_VERSION},
                                         {"log", required_argument, 0, O_LOG},
                                         {"merges", required_argument, 0, O_MERGES},
                                         {0, 0, 0, 0}};

/* An output directory holds these files (what pretrain_save writes): none may be an input. */
static void output_dir(pathguard *g, const char *what, const char *dir) {
    pathguard_output(g, what, dir);
    for (int i = 0; pretrain_file(i); i++) {
        char *p;
        if (asprintf(&p, "%s/%s", dir, pretrain_file(i)) < 0) die("out of memory");
        pathguard_output(g, what, p);
        free(p);
    }
}

static void check_paths(const config *c) {
    pathguard g;
    pathguard_init(&g);
    pathguard_input(&g, "--base", c->t.base);
    pathguard_input_dir(&g, "--base", c->t.base);
    pathguard_input(&g, "--vocab", c->t.vocab);
    pathguard_input(&g, "--merges", c->t.merges);
    pathguard_input(&g, "--dev", c->t.dev);
    for (int i = 0; i < c->ninputs; i++) pathguard_input(&g, "the corpus", c->inputs[i]);
    output_dir(&g, "-o", c->t.out);
    char *ck = NULL;
    if (!c->t.ckpt && asprintf(&ck, "%s.ckpt", c->t.out) < 0) die("out of memory");
    output_dir(&g, "--checkpoint", c->t.ckpt ? c->t.ckpt : ck);
    pathguard_output(&g, "--log", c->t.log);
    free(ck);
    pathguard_done(&g);
}

static void parse(config *c, int argc, char **argv) {
    *c = (config){.t = {.max_pos = 512, .act = AF_ACT_GELU, .dropout = 0.1, .max_len = 128,
                        .batch = 32, .accum = 1, .epochs = 1, .lr = 1e-4, .warmup_ratio = 0.01,
                        .wd = 0.01, .clip = 1.0, .mask_prob = 0.15, .lower = 1, .seed = 42}};
    int o, have_epochs = 0;
    while ((o = getopt_long(argc, argv, "o:qhV", longopts, NULL)) != -1) {
        switch (o) {
        case O_BASE: c->t.base = optarg; break;
        case O_LAYERS: c->t.layers = (int)opt_long("--layers", optarg, 1, 48); break;
        case O_HIDDEN: c->t.hidden = (int)opt_long("--hidden", optarg, 1, 8192); break;
        case O_HEADS: c->t.heads = (int)opt_long("--heads", optarg, 1, 128); break;
        case O_FFN: c->t.ffn = (int)opt_long("--ffn", optarg, 1, 65536); break;
        case O_VOCAB: c->t.vocab = optarg; break;
        case O_MERGES:
            c->t.merges = optarg;
            break;
        case O_MAXPOS: c->t.max_pos = (int)opt_long("--max-pos", optarg, 2, 65536); break;
        case O_ACT:
            if ((c->t.act = act_parse(optarg)) < 0)
                usage_error("--act: unknown activation '%s'", optarg);
            break;
        case O_DROPOUT: c->t.dropout = opt_double("--dropout", optarg, 0, 0.99); break;
        case O_NOLOWER: c->t.lower = 0; break;
        case O_MAXLEN: c->t.max_len = (int)opt_long("--max-len", optarg, 8, 65536); break;
        case O_BATCH: c->t.batch = (int)opt_long("--batch-size", optarg, 1, 1 << 16); break;
        case O_ACCUM: c->t.accum = (int)opt_long("--accumulate", optarg, 1, 1 << 16); break;
        case O_LR: c->t.lr = opt_double("--lr", optarg, 0, 10); break;
        case O_WARMUP: c->t.warmup_ratio = opt_double("--warmup-ratio", optarg, 0, 1); break;
        case O_WD: c->t.wd = opt_double("--weight-decay", optarg, 0, 10); break;
        case O_CLIP: c->t.clip = opt_double("--clip", optarg, 0, 1e9); break;
        case O_STEPS: c->t.steps = opt_long("--steps", optarg, 1, 1L << 40); break;
        case O_EPOCHS:
            c->t.epochs = (int)opt_long("--epochs", optarg, 1, 100000), have_epochs = 1;
            break;
        case O_MASKP: c->t.mask_prob = opt_double("--mask-prob", optarg, 0.001, 0.999); break;
        case O_WWM: c->t.whole_word = 1; break;
        case O_DEV: c->t.dev = optarg; break;
        case O_EVAL: c->t.eval_every = opt_long("--eval-every", optarg, 1, 1L << 40); break;
        case O_SAVE: c->t.save_every = opt_long("--save-every", optarg, 1, 1L << 40); break;
        case O_CKPT: c->t.ckpt = optarg; break;
        case O_LOG: c->t.log = optarg; break;
        case O_RESUME: c->t.resume = 1; break;
        case O_F16: c->t.f16 = 1; break;
        case O_SEED:
            c->t.seed = (uint64_t)opt_long("--seed", optarg, 0, 0x7fffffffffffffffL);
            break;
        case O_THREADS: c->threads = (int)opt_long("--threads", optarg, 1, 1024); break;
        case 'o': c->t.out = optarg; break;
        case 'q': c->t.quiet = 1; break;
        case 'h': usage(); exit(finish(0));
        case 'V':
        case O_VERSION:
            printf("af-pretrain %s (%s)\n", AF_VERSION, dist_library());
            exit(finish(0));
        default:
            usage_try(); /* getopt_long said which */
        }
    }
    if (!c->t.out) usage_error("-o DIR is required");
    int shape = c->t.layers || c->t.hidden || c->t.heads || c->t.ffn;
    if (c->t.base && shape)
        usage_error("--base and --layers/--hidden/--heads/--ffn exclude each other");
    if (!c->t.base && !(c->t.layers && c->t.hidden && c->t.heads && c->t.ffn && c->t.vocab))
        usage_error("a new model needs --layers, --hidden, --heads, --ffn and --vocab (or use --base)");
    if (c->t.merges && !c->t.vocab) usage_error("--merges needs --vocab (vocab.json)");
    size_t vl = c->t.vocab ? strlen(c->t.vocab) : 0;
    if (!c->t.merges && vl > 5 && !strcmp(c->t.vocab + vl - 5, ".json"))
        usage_error("--vocab %s: a BPE vocabulary needs --merges (merges.txt)", c->t.vocab);
    if (!c->t.base && c->t.hidden % c->t.heads)
        usage_error("--hidden %d is not a multiple of --heads %d", c->t.hidden, c->t.heads);
    if (c->t.steps && have_epochs) usage_error("--steps and --epochs exclude each other");
    if (!c->t.base && c->t.max_len > c->t.max_pos)
        usage_error("--max-len %d exceeds --max-pos %d", c->t.max_len, c->t.max_pos);
    c->inputs = argv + optind, c->ninputs = argc - optind;
    check_paths(c);
}

static void read_inputs(mlm_packer *p, const config *c, lmtok *t, int V, long *docs) {
    af_err e;
    *docs = 0;
    int n = c->ninputs ? c->ninputs : 1;
    for (int i = 0; i < n; i++) {
        long d;
        if (pretrain_read_corpus(p, c->ninputs ? c->inputs[i] : "-", t, V, &d, &e)) die_err(&e);
        *docs += d;
    }
}

int main(int argc, char **argv) {
    af_prog = "af-pretrain";
    dist_init(&argc, &argv); /* joins MPI under mpirun only (dist.h) */
    config c;
    parse(&c, argc, argv);
    af_set_threads(c.threads);
    af_err e;
    /* under mpirun, rank 0 alone speaks and writes; the others only compute */
    int lead = dist_rank() == 0;
    if (!lead) c.t.quiet = 1;
    note_blas(c.t.quiet);
    for (int i = 0; dist_size() > 1 && i < (c.ninputs ? c.ninputs : 1); i++)
        if (!c.ninputs || strcmp(c.inputs[i], "-") == 0)
            usage_error("under mpirun standard input reaches rank 0 only: give the corpus as a "
                        "file argument");
    char ckpt_buf[4200];
    if (!c.t.ckpt) snprintf(ckpt_buf, sizeof ckpt_buf, "%s.ckpt", c.t.out), c.t.ckpt = ckpt_buf;
    /* before hours of training: -o and the checkpoint are replaced only when af-pretrain wrote
     * them, and only one run writes them at a time */
    if (lead && pretrain_check_output(c.t.out, &e)) die_err(&e);
    if (lead && pretrain_check_output(c.t.ckpt, &e)) die_err(&e);
    if (lead) outlock_hold(c.t.out);
    if (lead && c.t.ckpt != ckpt_buf) outlock_hold(c.t.ckpt);
    /* early, so a Ctrl-C while the corpus loads still ends in a checkpoint after one step */
    if (signals_install(&e)) die_err(&e);

    bert m;
    mlm_head head;
    lmtok *tok;
    if (c.t.base) {
        if (bert_load(&m, c.t.base, &e)) die_err(&e);
        if (c.t.max_len > bert_max_len(&m.cfg))
            usage_error("--max-len %d exceeds the %d tokens the base takes", c.t.max_len,
                        bert_max_len(&m.cfg));
    }
    /* the base's tokenizer, whichever kind its directory holds, unless --vocab names another */
    if (c.t.vocab ? lmtok_open(&tok, c.t.vocab, c.t.merges, c.t.lower, 0, &e)
                  : lmtok_open_dir(&tok, c.t.base, c.t.lower, &e))
        die_err(&e);
    int V = lmtok_size(tok), bpe = lmtok_kind(tok) == LMTOK_BPE;
    const char *voc_name = c.t.vocab ? c.t.vocab : c.t.base;
    if (c.t.base) {
        if (V != m.cfg.vocab_size)
            die("%s: %d entries, but the base's vocab_size is %d", voc_name, V, m.cfg.vocab_size);
        mlm_init(&head, &m.cfg, c.t.seed + 1);
        char path[4200];
        snprintf(path, sizeof path, "%s/model.safetensors", c.t.base);
        st_file f;
        if (st_open(&f, path, &e)) die_err(&e);
        if (mlm_load(&head, &f, &e) < 0) die_err(&e);
        st_close(&f);
    } else {
        int pad = lmtok_special(tok, LMTOK_PAD);
        if (pad < 0) pad = 0;
        /* BPE makes a RoBERTa as roberta-base's config has it: one token type, eps 1e-5, and
         * positions counted from pad + 1, so --max-pos tokens take max_position_embeddings
         * --max-pos + pad + 1 (514 for 512) */
        bert_config cfg = {.arch = bpe ? ARCH_ROBERTA : ARCH_BERT,
                           .vocab_size = V,
                           .hidden = c.t.hidden,
                           .layers = c.t.layers,
                           .heads = c.t.heads,
                           .ffn = c.t.ffn,
                           .max_pos = bpe ? c.t.max_pos + pad + 1 : c.t.max_pos,
                           .type_vocab = bpe ? 1 : 2,
                           .pad_id = pad,
                           .act = c.t.act,
                           .ln_eps = bpe ? 1e-5f : 1e-12f,
                           .hidden_dropout = (float)c.t.dropout,
                           .attn_dropout = (float)c.t.dropout};
        bert_init_random(&m, &cfg, c.t.seed);
        mlm_init(&head, &cfg, c.t.seed + 1);
    }

    /* masking: the tokenizer's specials (and in WordPiece every bracketed entry) are never
     * predicted */
    const char **names = af_malloc((size_t)V * sizeof *names);
    for (int i = 0; i < V; i++) names[i] = lmtok_token(tok, i);
    int specials[LMTOK_NROLES];
    for (int i = 0; i < LMTOK_NROLES; i++) specials[i] = lmtok_special(tok, i);
    mlm_masker mk;
    if (mlm_masker_init(&mk, names, V, specials, LMTOK_NROLES, lmtok_special(tok, LMTOK_MASK),
                        (float)c.t.mask_prob, c.t.whole_word, bpe, &e))
        die("%s: %s", voc_name, e.msg);
    int cls = lmtok_special(tok, LMTOK_CLS), sep = lmtok_special(tok, LMTOK_SEP);
    if (cls < 0 || sep < 0)
        die("%s: no %s token to frame the sequences with", voc_name,
            cls < 0 ? (bpe ? "<s>" : "[CLS]") : (bpe ? "</s>" : "[SEP]"));

    double t0 = af_now();
    mlm_packer train, dev;
    mlm_packer_init(&train, c.t.max_len, cls, sep);
    mlm_packer_init(&dev, c.t.max_len, cls, sep);
    long docs, dev_docs = 0;
    read_inputs(&train, &c, tok, V, &docs);
    if (train.nseq < c.t.batch)
        die("%lld tokens make %d sequences of %d, fewer than one batch of %d", train.ntokens,
            train.nseq, c.t.max_len, c.t.batch);
    if (c.t.dev && pretrain_read_corpus(&dev, c.t.dev, tok, V, &dev_docs, &e)) die_err(&e);
    if (!c.t.quiet)
        fprintf(stderr, "%s: %ld documents, %lld tokens, %d sequences of %d (%.1fs)%s\n", af_prog,
                docs, train.ntokens, train.nseq, c.t.max_len, af_now() - t0,
                c.t.dev ? "" : "; no --dev");
    double uni_acc = NAN, uni_loss = NAN;
    if (c.t.dev) {
        pretrain_unigram(&train, &dev, &mk, &uni_acc, &uni_loss);
        if (!c.t.quiet)
            fprintf(stderr, "%s: dev: %ld documents, %lld tokens; unigram baseline: accuracy %.4f, loss %.4f\n",
                    af_prog, dev_docs, dev.ntokens, uni_acc, uni_loss);
    }

    mlmtrain_corpus corpus = {docs, uni_acc, uni_loss};
    double t_start = af_now();
    long step = 0;
    int status = mlmtrain_run(&c.t, &m, &head, &mk, tok, &train, &dev, &corpus, &step, &e);
    if (status < 0) die_err(&e);
    if (status > 0 && lead)
        fprintf(stderr, "%s: interrupted at step %ld; checkpoint in %s (--resume)\n", af_prog, step,
                c.t.ckpt);
    if (status == 0 && !c.t.quiet)
        fprintf(stderr, "%s: wrote %s (%.0fs)\n", af_prog, c.t.out, af_now() - t_start);
    free(names);
    mlm_packer_free(&train), mlm_packer_free(&dev);
    mlm_masker_free(&mk);
    mlm_free(&head);
    lmtok_close(tok);
    bert_free(&m);
    signals_restore();
    return status ? status : finish(0);
}
