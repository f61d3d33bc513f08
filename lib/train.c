/* train.c: the shared training loop and evaluation; see train.h. */
#include "train.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "dist.h"
#include "layercache.h"
#include "loop.h"
#include "optim.h"
#include "progress.h"
#include "runrec.h"
#include "signals.h"

void train_opts_defaults(train_opts *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 10;
    o->batch_size = 32;
    o->max_len = 128;
    o->lr = 1e-4;
    o->adapter_lr = 1e-4;
    o->weight_decay = 0;
    o->warmup_ratio = 0;
    o->max_grad_norm = 1.0;
    o->beta1 = 0.9, o->beta2 = 0.999, o->eps = 1e-8;
    o->dropout = -1;
    o->seed = 42;
    o->micro_batch = TRAIN_PASS_AUTO;
    o->cache_memory = TRAIN_CACHE_MEMORY;
}

/* ---- data ---- */

static const char *task_of(const jl_example *x, const af_model *m) {
    return x->task ? x->task : (m->nheads == 1 ? m->heads[0].name : NULL);
}

/* The gold row width: 1, or the most labels of a multi-label head (model_run's ldg). */
static int gold_width(const af_model *m) {
    int G = 1;
    for (int h = 0; h < m->nheads; h++)
        if (m->heads[h].kind == HEAD_MULTILABEL && m->heads[h].L > G) G = m->heads[h].L;
    return G;
}

/* A multi-label line's names as 0/1 targets over the head's labels. */
static int gold_set(float *g, const jl_example *x, const model_head *hd, const char *name,
                    af_err *e) {
    memset(g, 0, hd->L * sizeof(float));
    const char *s = x->label_str;
    for (int k = 0; k < x->label_n; k++, s += strlen(s) + 1) {
        int id = model_label_id(hd, 0, 0, s);
        if (id < 0)
            return af_errf(e, "%s:%ld: label[%d] \"%s\" is not one of task %s's %d labels", name,
                           x->line, k, s, hd->name, hd->L);
        g[id] = 1;
    }
    return 0;
}

int train_gold(float *g, const jl_example *x, const model_head *hd, const char *name, af_err *e) {
    if (hd->kind == HEAD_MULTILABEL) {
        if (x->label_kind != JL_LABEL_LIST)
            return af_errf(e, "%s:%ld: task %s is multi-label: the label must be a list of names",
                           name, x->line, hd->name);
        return gold_set(g, x, hd, name, e);
    }
    if (x->label_kind == JL_LABEL_LIST)
        return af_errf(e, "%s:%ld: the label is a list, but task %s is not multi-label", name,
                       x->line, hd->name);
    if (hd->kind == HEAD_REGRESSION) {
        if (x->label_kind == JL_LABEL_STRING)
            return af_errf(e,
                           "%s:%ld: label \"%s\": task %s is a regression, a number is "
                           "expected",
                           name, x->line, x->label_str, hd->name);
        *g = (float)x->label_num;
        return 0;
    }
    if (x->label_kind == JL_LABEL_NUMBER)
        return af_errf(e, "%s:%ld: label %g: task %s has classes, not numbers", name, x->line,
                       x->label_num, hd->name);
    int id = model_label_id(hd, x->label_kind == JL_LABEL_INT, x->label_int, x->label_str);
    if (id < 0) {
        char buf[64];
        if (x->label_kind == JL_LABEL_INT) snprintf(buf, sizeof buf, "%ld", x->label_int);
        return af_errf(e, "%s:%ld: label %s%s%s is not one of task %s's %d labels", name, x->line,
                       x->label_kind == JL_LABEL_STRING ? "\"" : "",
                       x->label_kind == JL_LABEL_STRING ? x->label_str : buf,
                       x->label_kind == JL_LABEL_STRING ? "\"" : "", hd->name, hd->L);
    }
    *g = (float)id;
    return 0;
}

int train_data_build(train_data *d, const af_model *m, jl_set *s, const char *name, int max_len,
                     int need_labels, af_err *e) {
    memset(d, 0, sizeof *d);
    d->name = name;
    d->ex = s->ex;
    d->n = s->n;
    d->ldg = gold_width(m);
    d->head_of = af_malloc((s->n ? s->n : 1) * sizeof(int));
    d->len = af_malloc((s->n ? s->n : 1) * sizeof(int));
    int labelled = 0;
    for (int i = 0; i < s->n; i++) labelled |= s->ex[i].label_kind != JL_LABEL_NONE;
    if (need_labels || labelled)
        d->gold = af_calloc((size_t)(s->n ? s->n : 1) * d->ldg, sizeof(float));
    for (int i = 0; i < s->n; i++) {
        const jl_example *x = &s->ex[i];
        const char *task = task_of(x, m);
        int h = task ? model_head_index(m, task) : -1;
        if (h < 0) {
            if (!x->task)
                return af_errf(e, "%s:%ld: no \"task\" given, and the model has %d heads", name,
                               x->line, m->nheads);
            return af_errf(e, "%s:%ld: task \"%s\" has no head (heads: %s%s)", name, x->line,
                           x->task, m->nheads ? m->heads[0].name : "none",
                           m->nheads > 1 ? ", ..." : "");
        }
        d->head_of[i] = h;
        if (!d->gold) continue;
        if (x->label_kind == JL_LABEL_NONE) {
            if (need_labels || labelled)
                return af_errf(e, "%s:%ld: label missing", name, x->line);
            continue;
        }
        if (train_gold(d->gold + (size_t)i * d->ldg, x, &m->heads[h], name, e)) return -1;
    }
    d->truncated = batch_lengths(d->len, s->ex, s->n, max_len);
    return 0;
}

void train_data_free(train_data *d) {
    free(d->head_of);
    free(d->gold);
    free(d->len);
    memset(d, 0, sizeof *d);
}

/* ---- head discovery ---- */

typedef struct {
    char *task;
    char **labels;
    int n, cap;
    int all_int, any_number, any_label, any_list;
} task_labels;

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_intstr(const void *a, const void *b) {
    long x = strtol(*(char *const *)a, NULL, 10), y = strtol(*(char *const *)b, NULL, 10);
    return (x > y) - (x < y);
}

static char **split_commas(const char *s, int *n) {
    char **v = NULL;
    *n = 0;
    const char *p = s;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        v = af_realloc(v, (*n + 1) * sizeof *v);
        v[*n] = af_malloc(len + 1);
        memcpy(v[*n], p, len);
        v[(*n)++][len] = 0;
        if (!c) break;
        p = c + 1;
    }
    return v;
}

static void free_strs(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static void add_name(task_labels *tl, const char *lab) {
    int j = 0;
    while (j < tl->n && strcmp(tl->labels[j], lab)) j++;
    if (j == tl->n) {
        if (tl->n == tl->cap)
            tl->labels = af_realloc(tl->labels, (tl->cap = tl->cap * 2 + 4) * sizeof(char *));
        tl->labels[tl->n++] = af_strdup(lab);
    }
}

int train_add_heads(af_model *m, const jl_set *train, const char *default_task,
                    const char *labels_opt, char **task_opts, int ntask_opts, int kind,
                    uint64_t seed, af_err *e) {
    task_labels *t = NULL;
    int nt = 0, rc = 0;
    for (int i = 0; i < train->n; i++) {
        const jl_example *x = &train->ex[i];
        const char *task = x->task ? x->task : default_task;
        int k = 0;
        while (k < nt && strcmp(t[k].task, task)) k++;
        if (k == nt) {
            t = af_realloc(t, (nt + 1) * sizeof *t);
            t[nt++] = (task_labels){af_strdup(task), NULL, 0, 0, 1, 0, 0, 0};
        }
        task_labels *tl = &t[k];
        if (x->label_kind == JL_LABEL_LIST) { /* a multi-label set: its names are labels */
            tl->any_list = tl->any_label = 1, tl->all_int = 0;
            const char *s = x->label_str;
            for (int j = 0; j < x->label_n; j++, s += strlen(s) + 1) add_name(tl, s);
            continue;
        }
        char buf[64];
        const char *lab = NULL;
        if (x->label_kind == JL_LABEL_INT) snprintf(buf, sizeof buf, "%ld", x->label_int), lab = buf;
        else if (x->label_kind == JL_LABEL_STRING) lab = x->label_str, tl->all_int = 0;
        else if (x->label_kind == JL_LABEL_NUMBER) tl->any_number = 1;
        if (x->label_kind != JL_LABEL_NONE) tl->any_label = 1;
        if (lab) add_name(tl, lab);
    }
    if (nt == 0) {
        t = af_calloc(1, sizeof *t);
        t[nt++] = (task_labels){af_strdup(default_task), NULL, 0, 0, 1, 0, 0, 0};
    }
    for (int k = 0; k < nt && !rc; k++) {
        task_labels *tl = &t[k];
        const char *given = NULL;
        int hk = kind;
        for (int j = 0; j < ntask_opts; j++) {
            const char *colon = strchr(task_opts[j], ':');
            if (colon && (size_t)(colon - task_opts[j]) == strlen(tl->task) &&
                !strncmp(task_opts[j], tl->task, colon - task_opts[j]))
                given = colon + 1;
        }
        if (!given && labels_opt && (nt == 1 || !strcmp(tl->task, default_task))) given = labels_opt;
        /* NAME:regression, NAME:multilabel, NAME:multilabel:a,b,c */
        if (given && !strcmp(given, "regression"))
            hk = HEAD_REGRESSION, given = NULL;
        else if (given && !strncmp(given, "multilabel", 10) && (given[10] == 0 || given[10] == ':'))
            hk = HEAD_MULTILABEL, given = given[10] ? given + 11 : NULL;
        /* lists in the data make a multi-label head and numbers a regression, unless told: given
         * labels win, and train_data_build then names the line whose label does not fit */
        if (hk == HEAD_CLASSIFICATION && tl->any_list)
            hk = HEAD_MULTILABEL;
        else if (hk == HEAD_CLASSIFICATION && !given && tl->any_number)
            hk = HEAD_REGRESSION;
        if (hk == HEAD_REGRESSION) {
            rc = model_add_head(m, tl->task, HEAD_REGRESSION, 1, NULL, seed, e);
        } else if (given && *given) {
            int n;
            char **v = split_commas(given, &n);
            rc = model_add_head(m, tl->task, hk, n, v, seed, e);
            free_strs(v, n);
        } else {
            if (!tl->any_label || (hk == HEAD_MULTILABEL && !tl->n)) {
                rc = af_errf(e, "task %s: no labels in the training data; give --labels", tl->task);
                break;
            }
            qsort(tl->labels, tl->n, sizeof(char *), tl->all_int ? cmp_intstr : cmp_str);
            rc = model_add_head(m, tl->task, hk, tl->n, tl->labels, seed, e);
        }
    }
    for (int k = 0; k < nt; k++) free(t[k].task), free_strs(t[k].labels, t[k].n);
    free(t);
    return rc;
}

/* ---- evaluation ---- */

static int argmax(const float *p, int n) {
    int b = 0;
    for (int j = 1; j < n; j++)
        if (p[j] > p[b]) b = j;
    return b;
}

int train_evaluate(af_model *m, const train_data *d, int batch_size, metrics_result *res,
                   double *loss, float *probs, int ldo) {
    int Lmax = 1, G = d->ldg > 0 ? d->ldg : 1;
    for (int h = 0; h < m->nheads; h++) Lmax = m->heads[h].L > Lmax ? m->heads[h].L : Lmax;
    metrics *mt = af_calloc(m->nheads, sizeof *mt);
    for (int h = 0; h < m->nheads; h++) {
        const model_head *hd = &m->heads[h];
        if (hd->kind == HEAD_MULTILABEL)
            metrics_init_multilabel(&mt[h], hd->L);
        else
            metrics_init(&mt[h], hd->kind == HEAD_REGRESSION ? 0 : hd->L);
    }
    batch_plan plan = {0};
    batch_plan_sequential(&plan, d->n, batch_size);
    batch_tokens bt;
    batch_tokens_init(&bt, batch_size, m->maxS);
    float *out = af_malloc((size_t)batch_size * Lmax * sizeof(float));
    float *pred = af_malloc((size_t)Lmax * sizeof(float));
    int *hof = af_malloc(batch_size * sizeof(int));
    float *gold = af_malloc((size_t)batch_size * G * sizeof(float));
    double lsum = 0;
    long ln = 0;
    for (int b = 0; b < plan.nbatches; b++) {
        const int *idx = batch_plan_batch(&plan, b);
        int n = batch_plan_size(&plan, b);
        batch_tokens_fill(&bt, d->ex, idx, n, m->base->cfg.pad_id);
        for (int k = 0; k < n; k++) {
            hof[k] = d->head_of[idx[k]];
            if (d->gold)
                memcpy(gold + (size_t)k * G, d->gold + (size_t)idx[k] * G, G * sizeof(float));
        }
        bert_batch bb = {bt.B, bt.S, bt.input_ids, bt.token_type_ids, bt.attention_mask};
        double l = model_run(m, &bb, hof, d->gold ? gold : NULL, G, 0, out, Lmax);
        if (d->gold) lsum += l * n, ln += n;
        for (int k = 0; k < n; k++) {
            const model_head *h = &m->heads[hof[k]];
            const float *o = out + (size_t)k * Lmax, *g = gold + (size_t)k * G;
            if (probs) memcpy(probs + (size_t)idx[k] * ldo, o, h->L * sizeof(float));
            if (!d->gold) continue;
            if (h->kind == HEAD_REGRESSION) {
                metrics_add_value(&mt[hof[k]], g[0], o[0]);
            } else if (h->kind == HEAD_MULTILABEL) {
                head_multilabel_predict(pred, o, h->L);
                metrics_add_set(&mt[hof[k]], g, pred);
            } else {
                metrics_add_class(&mt[hof[k]], (int)g[0], argmax(o, h->L));
            }
        }
    }
    if (res)
        for (int h = 0; h < m->nheads; h++) metrics_compute(&mt[h], &res[h]);
    if (loss) *loss = ln ? lsum / ln : NAN;
    for (int h = 0; h < m->nheads; h++) metrics_free(&mt[h]);
    free(mt), free(out), free(pred), free(hof), free(gold);
    batch_plan_free(&plan);
    batch_tokens_free(&bt);
    return 0;
}

static const char *default_metric(const af_model *m) {
    return metrics_default(m->nheads ? m->heads[0].kind : HEAD_CLASSIFICATION);
}

double train_score(const af_model *m, const metrics_result *res, const char *metric) {
    if (!metric) metric = default_metric(m);
    double s = 0;
    int n = 0;
    for (int h = 0; h < m->nheads; h++) {
        double v;
        if (res[h].n == 0 || metrics_get(&res[h], metric, &v, NULL)) continue;
        s += v, n++;
    }
    return n ? s / n : NAN;
}

/* ---- checkpoints ---- */

typedef struct {
    int epoch, batch;  /* where to continue: epoch (from 0) and batch index within it */
    long step;
    double best;
    long best_step;
    int bad_evals;
    long fusion_steps;
    af_rng rng;
} train_state;

static char *state_json(const train_state *s) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "epoch", s->epoch);
    cJSON_AddNumberToObject(j, "batch", s->batch);
    cJSON_AddNumberToObject(j, "step", s->step);
    cJSON_AddNumberToObject(j, "best", isfinite(s->best) ? s->best : 0);
    cJSON_AddBoolToObject(j, "has_best", isfinite(s->best));
    cJSON_AddNumberToObject(j, "best_step", s->best_step);
    cJSON_AddNumberToObject(j, "bad_evals", s->bad_evals);
    cJSON_AddNumberToObject(j, "fusion_steps", s->fusion_steps);
    char rng[4 * 17 + 1];
    for (int i = 0; i < 4; i++) snprintf(rng + 16 * i, 17, "%016" PRIx64, s->rng.s[i]);
    cJSON_AddStringToObject(j, "rng", rng);
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return out;
}

static int state_parse(train_state *s, const char *txt, const char *path, af_err *e) {
    cJSON *j = cJSON_Parse(txt);
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(j, "rng");
    if (!j || !cJSON_IsString(rng) || strlen(rng->valuestring) != 64) {
        cJSON_Delete(j);
        return af_errf(e, "%s: metadata 'resume' is damaged", path);
    }
#define NUM(k) cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, k))
    s->epoch = (int)NUM("epoch");
    s->batch = (int)NUM("batch");
    s->step = (long)NUM("step");
    s->best = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "has_best")) ? NUM("best") : NAN;
    s->best_step = (long)NUM("best_step");
    s->bad_evals = (int)NUM("bad_evals");
    s->fusion_steps = (long)NUM("fusion_steps");
#undef NUM
    for (int i = 0; i < 4; i++) {
        char h[17];
        memcpy(h, rng->valuestring + 16 * i, 16);
        h[16] = 0;
        s->rng.s[i] = strtoull(h, NULL, 16);
    }
    cJSON_Delete(j);
    return 0;
}

/* The trainable tensors of the output, copied aside when an evaluation is the best so far. */
typedef struct {
    float *mem;
    size_t n;
} snapshot;

static void snapshot_take(snapshot *s, const af_model *m, int groups) {
    size_t n = 0;
    for (int i = 0; i < m->nparams; i++)
        if (groups >> m->params[i].group & 1) n += m->params[i].n;
    if (!s->mem) s->mem = af_malloc((n ? n : 1) * sizeof(float)), s->n = n;
    float *p = s->mem;
    for (int i = 0; i < m->nparams; i++)
        if (groups >> m->params[i].group & 1) {
            memcpy(p, m->params[i].data, m->params[i].n * sizeof(float));
            p += m->params[i].n;
        }
}

static void snapshot_restore(const snapshot *s, af_model *m, int groups) {
    const float *p = s->mem;
    for (int i = 0; i < m->nparams; i++)
        if (groups >> m->params[i].group & 1) {
            memcpy(m->params[i].data, p, m->params[i].n * sizeof(float));
            p += m->params[i].n;
        }
}

static int trained_groups(const af_model *m) {
    return (m->train_adapters ? 1 << PG_ADAPTER : 0) | (m->train_fusion ? 1 << PG_FUSION : 0) |
           (m->train_heads ? 1 << PG_HEAD : 0);
}

/* A checkpoint is an output file plus the optimizer state, the loop's position ("resume"
 * metadata) and the best evaluation's weights so far (best.* tensors). */
static int write_checkpoint(af_model *m, optim *o, const train_opts *opt, const train_state *s,
                            const snapshot *best, const char *run, af_err *e) {
    st_writer w;
    st_writer_init(&w);
    model_writer(m, &w, opt->format, opt->save_groups | trained_groups(m), opt->args_json);
    char **names = af_calloc(m->nparams, sizeof(char *));
    const float *bp = best->mem;
    for (int i = 0; bp && i < m->nparams; i++) {
        model_param *p = &m->params[i];
        if (!(opt->save_groups >> p->group & 1)) continue;
        size_t n = strlen(p->name) + 6;
        names[i] = af_malloc(n);
        snprintf(names[i], n, "best.%s", p->name);
        st_writer_add(&w, names[i], ST_F32, p->ndim, p->shape, bp);
        bp += p->n;
    }
    char *st = state_json(s);
    st_writer_meta(&w, "resume", st);
    st_writer_meta(&w, "run", run);
    free(st);
    optim_state_add(o, &w, "optim.");
    int rc = st_writer_write(&w, opt->ckpt_path, e);
    st_writer_free(&w);
    for (int i = 0; i < m->nparams; i++) free(names[i]);
    free(names);
    return rc;
}

static int load_best(snapshot *s, const af_model *m, const st_file *f, int groups, af_err *e) {
    size_t n = 0;
    for (int i = 0; i < m->nparams; i++)
        if (groups >> m->params[i].group & 1) n += m->params[i].n;
    char name[600];
    snprintf(name, sizeof name, "best.%s", m->nparams ? m->params[0].name : "");
    int any = 0;
    for (int i = 0; i < m->nparams && !any; i++)
        if (groups >> m->params[i].group & 1) {
            snprintf(name, sizeof name, "best.%s", m->params[i].name);
            any = st_find(f, name) != NULL;
        }
    if (!any) return 0;
    s->mem = af_malloc((n ? n : 1) * sizeof(float));
    s->n = n;
    float *p = s->mem;
    for (int i = 0; i < m->nparams; i++) {
        const model_param *mp = &m->params[i];
        if (!(groups >> mp->group & 1)) continue;
        snprintf(name, sizeof name, "best.%s", mp->name);
        const st_tensor *t = st_find(f, name);
        if (!t || t->numel != (int64_t)mp->n)
            return af_errf(e, "%s: tensor %s missing or of the wrong size", f->path, name);
        if (st_to_f32(t, p, t->numel, e)) return -1;
        p += mp->n;
    }
    return 0;
}

static char *training_json(const af_model *m, const train_opts *o, const train_data *tr,
                           const train_data *dev, const train_state *s, double last_score) {
    cJSON *j = cJSON_CreateObject();
    cJSON *args = o->args_json ? cJSON_Parse(o->args_json) : NULL;
    if (args) cJSON_AddItemToObject(j, "args", args);
    cJSON_AddNumberToObject(j, "steps", s->step);
    cJSON_AddNumberToObject(j, "train_examples", tr->n);
    if (dev) {
        cJSON_AddNumberToObject(j, "dev_examples", dev->n);
        cJSON_AddStringToObject(j, "metric", o->metric ? o->metric : default_metric(m));
        if (isfinite(s->best)) {
            cJSON_AddNumberToObject(j, "best_dev", s->best);
            cJSON_AddNumberToObject(j, "best_step", s->best_step);
        }
    }
    if (isfinite(last_score)) cJSON_AddNumberToObject(j, "last_dev", last_score);
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return out;
}

/* ---- the run record (runrec.h) ---- */

/* What may differ between a checkpoint and the run resuming it: how the work is carried out,
 * not what it computes (--micro-batch and --eval-batch-size change sums only to rounding). */
#define TRAIN_MAY_CHANGE                                                                           \
    "--threads, --log, --quiet, --checkpoint, -o, --micro-batch, --eval-batch-size, "              \
    "--cache-memory, --cache-dir, --no-cache and the number of MPI ranks"

static void add_meta(cJSON *o, const st_writer *w, const char *key) {
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta[i].key, key) == 0) {
            cJSON *v = cJSON_Parse(w->meta[i].value);
            cJSON_AddItemToObject(o, key, v ? v : cJSON_CreateString(w->meta[i].value));
        }
}

/* Every option and fact that changes what a run computes. The model's own description (its
 * config, heads, base fingerprint, adapters' sha256) comes from what model_writer records, so
 * the record grows with the files' metadata. Built before any step and before a checkpoint is
 * loaded, so an interrupted run and its resumption build it alike. */
static char *run_record(af_model *m, const train_opts *o, const train_data *tr,
                        const train_data *dev) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", o->format);
    cJSON_AddNumberToObject(j, "--epochs", o->epochs);
    cJSON_AddNumberToObject(j, "--max-steps", (double)o->max_steps);
    cJSON_AddNumberToObject(j, "--batch-size", o->batch_size);
    cJSON_AddNumberToObject(j, "--max-len", o->max_len);
    cJSON_AddNumberToObject(j, "--lr", o->lr);
    cJSON_AddNumberToObject(j, "--adapter-lr", o->adapter_lr);
    cJSON_AddNumberToObject(j, "--weight-decay", o->weight_decay);
    cJSON_AddNumberToObject(j, "--warmup-ratio", o->warmup_ratio);
    cJSON_AddNumberToObject(j, "--max-grad-norm", o->max_grad_norm);
    cJSON_AddNumberToObject(j, "--adam-beta1", o->beta1);
    cJSON_AddNumberToObject(j, "--adam-beta2", o->beta2);
    cJSON_AddNumberToObject(j, "--adam-eps", o->eps);
    cJSON_AddNumberToObject(j, "--dropout", o->dropout);
    char seed[32];
    snprintf(seed, sizeof seed, "%" PRIu64, o->seed);
    cJSON_AddStringToObject(j, "--seed", seed);
    cJSON_AddNumberToObject(j, "--eval-every", (double)o->eval_every);
    cJSON_AddStringToObject(j, "--metric", o->metric ? o->metric : default_metric(m));
    cJSON_AddNumberToObject(j, "--patience", o->patience);
    st_writer w;
    st_writer_init(&w);
    model_writer(m, &w, o->format, o->save_groups, NULL);
    add_meta(j, &w, "config");
    add_meta(j, &w, "heads");
    add_meta(j, &w, "base");
    add_meta(j, &w, "adapters");
    st_writer_free(&w);
    char d[65];
    runrec_examples_digest(tr->ex, tr->n, d);
    cJSON_AddStringToObject(j, "training data (sha256 of its examples)", d);
    if (dev) runrec_examples_digest(dev->ex, dev->n, d);
    cJSON_AddStringToObject(j, "--dev (sha256 of its examples)", dev ? d : "none");
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

/* ---- the loop ---- */

static void register_params(optim *o, af_model *m, const train_opts *opt) {
    /* group 0: what the run is about (adapter or fusion) and the heads; group 1: adapters
     * trained next to a fusion, at their own lr */
    int g0 = optim_add_group(o, opt->lr, opt->weight_decay);
    for (int i = 0; i < m->nparams; i++) {
        model_param *p = &m->params[i];
        if (!p->grad || !p->trainable) continue;
        if (m->fused && p->group == PG_ADAPTER) continue;
        optim_add_param(o, g0, p->name, p->data, p->grad, p->n, p->decay);
    }
    if (m->fused && m->train_adapters) {
        int g1 = optim_add_group(o, opt->adapter_lr, opt->weight_decay);
        for (int i = 0; i < m->nparams; i++) {
            model_param *p = &m->params[i];
            if (p->grad && p->group == PG_ADAPTER)
                optim_add_param(o, g1, p->name, p->data, p->grad, p->n, p->decay);
        }
    }
}

static int improved(double score, double best, const char *metric) {
    if (!isfinite(score)) return 0;
    if (!isfinite(best)) return 1;
    int up = !metric || metrics_higher_is_better(metric);
    return up ? score > best : score < best;
}

/* What an evaluation reads and updates of the loop's state. */
typedef struct {
    af_model *m;
    const train_data *dev;
    const train_opts *opt;
    int eval_batch;
    metrics_result *res; /* [nheads] */
    progress *pr;
    progress_log *log;
    train_state *s;
    snapshot *best;
    int groups;
    double last_score;
} eval_ctx;

/* One evaluation on the dev set: the summary and log lines, the best weights so far, early
 * stopping. Returns 1 when --patience has run out, 0 to go on, -1 when the log cannot be
 * written. */
static int evaluate_now(eval_ctx *c, int epoch, af_err *e) {
    if (!c->dev) return 0;
    af_model *m = c->m;
    train_state *s = c->s;
    progress_pause(c->pr);
    double dl;
    train_evaluate(m, c->dev, c->eval_batch, c->res, &dl, NULL, 0);
    c->last_score = train_score(m, c->res, c->opt->metric);
    int isbest = improved(c->last_score, s->best, c->opt->metric);
    if (isbest) {
        s->best = c->last_score, s->best_step = s->step, s->bad_evals = 0;
        snapshot_take(c->best, m, c->groups);
    } else {
        s->bad_evals++;
    }
    for (int h = 0; h < m->nheads; h++) {
        progress_eval_info ev;
        memset(&ev, 0, sizeof ev);
        progress_eval_fill(c->pr, &ev);
        ev.epoch = epoch + 1;
        ev.task = m->nheads > 1 ? m->heads[h].name : NULL;
        ev.dev_loss = dl;
        ev.m = c->res[h];
        ev.best = isbest;
        progress_eval(c->pr, &ev);
        if (c->log && progress_log_write(c->log, &ev, e)) return -1;
    }
    progress_resume(c->pr);
    return c->opt->patience > 0 && s->bad_evals >= c->opt->patience;
}

/* What the loop's hooks (loop.h) need of a training run. */
typedef struct {
    af_model *m;
    const train_data *tr;
    const train_opts *opt;
    optim *o;
    train_state *s;
    snapshot *best;
    const char *run;
    long per_epoch;
    batch_plan plan; /* of plan_epoch */
    int plan_epoch;
    batch_tokens bt;
    int *hof;    /* [batch_size] */
    float *gold; /* [batch_size, tr->ldg] */
    eval_ctx ev;
} train_ctx;

static int train_step(void *ctx, long k, double *loss, double *weight, long *units, af_err *e) {
    train_ctx *c = ctx;
    const train_data *tr = c->tr;
    int epoch = (int)(k / c->per_epoch), b = (int)(k % c->per_epoch);
    if (epoch != c->plan_epoch) {
        batch_plan_epoch(&c->plan, tr->len, tr->n, c->opt->batch_size, BATCH_BUCKET_DEFAULT,
                         c->opt->seed, epoch);
        c->plan_epoch = epoch;
    }
    /* every rank plans the whole global batch and runs its share of the rows (dist.h) */
    const int *all = batch_plan_batch(&c->plan, b);
    int n = batch_plan_size(&c->plan, b), lo, hi;
    dist_share(n, &lo, &hi);
    const int *idx = all + lo;
    int nr = hi - lo;
    *weight = (double)nr / n;
    *units = nr;
    /* dropout: the ranks' rows are different examples, so each rank draws from its own stream
     * (the same stream would give row j of every share the same masks); the model's generator
     * then moves on alike on every rank, so a checkpoint's is every rank's */
    af_rng common = c->m->rng;
    if (dist_size() > 1) {
        uint64_t seed = af_rng_u64(&common);
        af_rng_seed(&c->m->rng, seed ^ 0x9E3779B97F4A7C15ULL * (uint64_t)(dist_rank() + 1));
    }
    if (nr == 0) {
        c->m->rng = common;
        /* nothing to run here, but the annealing clock counts the batch as on every rank */
        if (c->m->fused) c->m->fusion_steps++;
        *loss = 0;
        return 0;
    }
    batch_tokens_fill(&c->bt, tr->ex, idx, nr, c->m->base->cfg.pad_id);
    size_t G = (size_t)tr->ldg;
    for (int i = 0; i < nr; i++) {
        c->hof[i] = tr->head_of[idx[i]];
        memcpy(c->gold + i * G, tr->gold + idx[i] * G, G * sizeof(float));
    }
    bert_batch bb = {c->bt.B, c->bt.S, c->bt.input_ids, c->bt.token_type_ids, c->bt.attention_mask};
    *loss = model_run_cached(c->m, &bb, idx, c->hof, c->gold, (int)G, 1, NULL, 0);
    if (dist_size() > 1) c->m->rng = common;
    if (c->m->cache && c->m->cache->failed) {
        *e = c->m->cache->err;
        return -1;
    }
    return 0;
}

static int train_eval(void *ctx, long done, int epoch, af_err *e) {
    train_ctx *c = ctx;
    return evaluate_now(&c->ev, epoch, e);
}

static int train_checkpoint(void *ctx, long done, af_err *e) {
    train_ctx *c = ctx;
    train_state *s = c->s;
    s->epoch = (int)(done / c->per_epoch), s->batch = (int)(done % c->per_epoch);
    s->rng = c->m->rng;
    s->fusion_steps = c->m->fusion_steps;
    return write_checkpoint(c->m, c->o, c->opt, s, c->best, c->run, e);
}

int train_run(af_model *m, const train_data *tr, const train_data *dev, const train_opts *opt,
              af_err *e) {
    if (tr->n == 0) return af_errf(e, "%s: no training examples", tr->name);
    int maxS = 1;
    for (int i = 0; i < tr->n; i++) maxS = tr->len[i] > maxS ? tr->len[i] : maxS;
    for (int i = 0; dev && i < dev->n; i++) maxS = dev->len[i] > maxS ? dev->len[i] : maxS;
    /* the encoder would refuse every batch, and the NaN loss would look like a bad --lr */
    if (maxS > bert_max_len(&m->base->cfg))
        return af_errf(e, "examples of %d tokens, but the base has %d positions: lower max_len", maxS,
                       bert_max_len(&m->base->cfg));
    int eb = opt->eval_batch_size > 0 ? opt->eval_batch_size : opt->batch_size;
    if (opt->dropout >= 0) {
        m->base->cfg.hidden_dropout = (float)opt->dropout;
        m->base->cfg.attn_dropout = (float)opt->dropout;
        m->dropout = (float)opt->dropout;
        m->fcfg.dropout = (float)opt->dropout;
        for (int p = 0; m->fused && p < 2 * m->L; p++) m->fw[p].cfg.dropout = (float)opt->dropout;
    }
    /* activations for the largest batch, or for passes of fewer rows (model_run takes larger
     * batches in passes): --micro-batch's, or as many as the budget holds */
    int rows = opt->batch_size > eb ? opt->batch_size : eb, whole = rows;
    if (opt->micro_batch > 0 && opt->micro_batch < rows) rows = opt->micro_batch;
    /* under MPI a rank runs its share of a batch; rank 0 evaluates in passes of as many */
    if (dist_size() > 1 && rows > (whole + dist_size() - 1) / dist_size())
        rows = whole = (whole + dist_size() - 1) / dist_size();
    if (opt->micro_batch == TRAIN_PASS_AUTO)
        rows = model_pass_rows(m, rows, maxS, TRAIN_PASS_BUDGET);
    model_prepare(m, rows, maxS, 1);

    batch_plan plan = {0};
    batch_plan_epoch(&plan, tr->len, tr->n, opt->batch_size, BATCH_BUCKET_DEFAULT, opt->seed, 0);
    long per_epoch = plan.nbatches;
    long total = (long)opt->epochs * per_epoch;
    if (opt->max_steps > 0 && opt->max_steps < total) total = opt->max_steps;
    long warmup = (long)ceil(opt->warmup_ratio * total);

    optim o;
    optim_init(&o);
    o.beta1 = opt->beta1, o.beta2 = opt->beta2, o.eps = opt->eps;
    register_params(&o, m, opt);
    optim_schedule(&o, total, warmup);

    char *run = run_record(m, opt, tr, dev);
    train_state s = {0, 0, 0, NAN, 0, 0, 0, {{0}}};
    af_rng_seed(&s.rng, opt->seed ^ 0x5eed5eedULL);
    int rc = 0, groups = opt->save_groups;
    snapshot best = {0};
    if (opt->resume_path) {
        st_file f;
        if (st_open(&f, opt->resume_path, e)) {
            free(run);
            return -1;
        }
        const char *rs = st_meta_get(&f, "resume");
        if (!rs) rc = af_errf(e, "%s: not a checkpoint (no 'resume' metadata)", opt->resume_path);
        if (!rc)
            rc = runrec_compare(st_meta_get(&f, "run"), run, opt->resume_path, TRAIN_MAY_CHANGE, e);
        if (!rc) rc = state_parse(&s, rs, opt->resume_path, e);
        if (!rc) rc = model_load_params(m, &f, trained_groups(m) | groups, 1, e);
        if (!rc) rc = optim_state_load(&o, &f, "optim.", e);
        if (!rc) rc = load_best(&best, m, &f, groups, e);
        st_close(&f);
        if (rc) {
            free(run);
            return -1;
        }
        m->fusion_steps = s.fusion_steps;
    }
    m->rng = s.rng;
    /* AdapterDrop: nothing trains below layer K, so what enters it is kept per example */
    int K = model_frozen_layers(m);
    layercache lc;
    int cached = K > 0 && K < m->L && !opt->no_cache;
    if (cached && layercache_open(&lc, tr->n, tr->len, m->H, opt->cache_memory, opt->cache_dir, e))
        rc = -1;
    if (rc) {
        free(run), free(best.mem);
        optim_free(&o);
        batch_plan_free(&plan);
        return -1;
    }
    if (cached) m->cache = &lc;

    progress pr;
    /* rank 0 alone speaks and writes (dist.h) */
    int lead = dist_rank() == 0;
    progress_init(&pr, stderr, opt->quiet || !lead, opt->epochs, total, s.step);
    if (opt->micro_batch == TRAIN_PASS_AUTO && rows < whole)
        progress_note(&pr,
                      "passes of %d examples: the activations of %d would take more than %zu MiB "
                      "(--micro-batch sets the size, 0: whole batches)",
                      rows, whole, TRAIN_PASS_BUDGET >> 20);
    if (K > 0 && K < m->L) {
        double mib = (double)layercache_bytes(tr->n, tr->len, m->H) / (1 << 20);
        if (!cached)
            progress_note(&pr,
                          "layers 0-%d hold no adapter: they run without dropout, every "
                          "epoch (--no-cache)",
                          K - 1);
        else
            progress_note(&pr,
                          "layers 0-%d hold no adapter: their output (%.0f MiB) is kept %s%s "
                          "after the first epoch, and they run without dropout",
                          K - 1, mib,
                          lc.where == LAYERCACHE_MEMORY ? "in memory" : "in a file under ",
                          lc.where == LAYERCACHE_MEMORY
                              ? ""
                              : (opt->cache_dir ? opt->cache_dir : "the temporary directory"));
    }
    progress_log *log = NULL;
    if ((lead && opt->log_path &&
         progress_log_open(&log, opt->log_path, opt->resume_path != NULL, e)) ||
        signals_install(e)) {
        progress_log_close(log, NULL);
        free(run), free(best.mem);
        optim_free(&o);
        batch_plan_free(&plan);
        if (cached) layercache_close(&lc), m->cache = NULL;
        return -1;
    }

    train_ctx c = {m, tr, opt, &o, &s, &best, run, per_epoch, plan, -1, {0}, NULL, NULL, {0}};
    batch_tokens_init(&c.bt, opt->batch_size, maxS);
    c.hof = af_malloc(opt->batch_size * sizeof(int));
    c.gold = af_malloc((size_t)opt->batch_size * tr->ldg * sizeof(float));
    metrics_result *res = af_calloc(m->nheads, sizeof *res);
    c.ev = (eval_ctx){m, dev, opt, eb, res, &pr, log, &s, &best, groups, NAN};
    loop_opts lo = {.total_steps = total,
                    .steps_per_epoch = per_epoch,
                    .eval_every = opt->eval_every,
                    .eval_each_epoch = opt->eval_every <= 0,
                    .max_grad_norm = opt->max_grad_norm,
                    .lr_group = 0};
    loop_hooks hooks = {&c, train_step, dev ? train_eval : NULL, train_checkpoint};
    rc = loop_run(&o, &lo, &hooks, &pr, &s.step, NULL, e);
    if (rc == 0 && lead) {
        char *tj = training_json(m, opt, tr, dev, &s, c.ev.last_score);
        if (best.mem) {
            snapshot_restore(&best, m, groups);
            m->fusion_steps = s.best_step; /* the annealed temperature the best weights had */
        }
        st_writer w;
        st_writer_init(&w);
        model_writer(m, &w, opt->format, groups, tj);
        rc = st_writer_write(&w, opt->out_path, e);
        st_writer_free(&w);
        free(tj);
    }
    if (rc == 0 && dist_size() > 1 && dist_bcast_int(rc) < 0)
        rc = af_errf(e, "rank 0 could not write %s", opt->out_path);
    if (progress_log_close(log, rc ? NULL : e) && rc == 0) rc = -1;
    signals_restore();
    free(c.hof), free(c.gold), free(res), free(best.mem), free(run);
    batch_plan_free(&c.plan);
    batch_tokens_free(&c.bt);
    optim_free(&o);
    if (cached) layercache_close(&lc), m->cache = NULL;
    return rc;
}
