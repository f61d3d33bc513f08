/* arch.c: the architecture table; see arch.h. Names and defaults are those of transformers
 * 4.26 (BertConfig, RobertaConfig, DistilBertConfig and their *Model state dicts) and of
 * adapter-transformers 3.2 (where the adapter modules are attached). */
#include "arch.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ops.h"

/* BERT and RoBERTa share BertLayer's module tree; RoBERTa differs in prefix, defaults and the
 * position ids. */
#define BERT_TENSORS                                                                               \
    {                                                                                              \
        "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",              \
            "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight",              \
            "embeddings.LayerNorm.bias", "encoder.layer.%d.attention.self.query.weight",           \
            "encoder.layer.%d.attention.self.query.bias",                                          \
            "encoder.layer.%d.attention.self.key.weight",                                          \
            "encoder.layer.%d.attention.self.key.bias",                                            \
            "encoder.layer.%d.attention.self.value.weight",                                        \
            "encoder.layer.%d.attention.self.value.bias",                                          \
            "encoder.layer.%d.attention.output.dense.weight",                                      \
            "encoder.layer.%d.attention.output.dense.bias",                                        \
            "encoder.layer.%d.attention.output.LayerNorm.weight",                                  \
            "encoder.layer.%d.attention.output.LayerNorm.bias",                                    \
            "encoder.layer.%d.intermediate.dense.weight",                                          \
            "encoder.layer.%d.intermediate.dense.bias", "encoder.layer.%d.output.dense.weight",    \
            "encoder.layer.%d.output.dense.bias", "encoder.layer.%d.output.LayerNorm.weight",      \
            "encoder.layer.%d.output.LayerNorm.bias"                                               \
    }
/* AdapterHub's heads take classifier_dropout when the config sets it, else hidden_dropout_prob. */
#define BERT_KEYS                                                                                  \
    {                                                                                              \
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",                   \
            "intermediate_size", "max_position_embeddings", "type_vocab_size", "pad_token_id",     \
            "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "layer_norm_eps", \
            "classifier_dropout", NULL                                                             \
    }

static const af_arch archs[ARCH_COUNT] =
    {
        [ARCH_BERT] =
            {
                .model_type = "bert",
                .display = "BERT",
                .class_name = "BertModel",
                .mlm_class = "BertForMaskedLM",
                .prefix = "bert",
                .body = {"embeddings.", "encoder."},
                .buffers = {"embeddings.position_ids", "embeddings.token_type_ids"},
                .tensor = BERT_TENSORS,
                .layer = "encoder.layer.%d",
                .site = {"attention.output", "output"},
                .key = BERT_KEYS,
                .dflt = {30522, 768, 12, 12, 3072, 512, 2, 0, 1e-12f, 0.1f, 0.1f, -1},
                .mlm = {"cls.predictions.transform.dense.weight",
                        "cls.predictions.transform.dense.bias",
                        "cls.predictions.transform.LayerNorm.weight",
                        "cls.predictions.transform.LayerNorm.bias", "cls.predictions.bias"},
                .mlm_act = -1,
                .pos = ARCH_POS_RANGE,
                .attn_out_dropout = 1,
            },
        [ARCH_ROBERTA] =
            {
                .model_type = "roberta",
                .display = "RoBERTa",
                .class_name = "RobertaModel",
                .mlm_class = "RobertaForMaskedLM",
                .prefix = "roberta",
                .body = {"embeddings.", "encoder."},
                .buffers = {"embeddings.position_ids", "embeddings.token_type_ids"},
                .tensor = BERT_TENSORS,
                .layer = "encoder.layer.%d",
                .site = {"attention.output", "output"},
                .key = BERT_KEYS,
                /* RobertaConfig keeps BertConfig's defaults but pad_token_id 1; roberta-base's
                 * config.json sets vocab 50265, 514 positions, one type, eps 1e-5 */
                .dflt = {30522, 768, 12, 12, 3072, 512, 2, 1, 1e-12f, 0.1f, 0.1f, -1},
                .mlm = {"lm_head.dense.weight", "lm_head.dense.bias", "lm_head.layer_norm.weight",
                        "lm_head.layer_norm.bias", "lm_head.bias"},
                .mlm_act = AF_ACT_GELU, /* RobertaLMHead: gelu whatever hidden_act says */
                .pos = ARCH_POS_FROM_PAD,
                .attn_out_dropout = 1,
            },
        [ARCH_DISTILBERT] =
            {
                .model_type = "distilbert",
                .display = "DistilBERT",
                .class_name = "DistilBertModel",
                .mlm_class = "DistilBertForMaskedLM",
                .prefix = "distilbert",
                .body = {"embeddings.", "transformer."},
                .buffers = {"embeddings.position_ids", NULL},
                .tensor =
                    {
                        "embeddings.word_embeddings.weight",
                        "embeddings.position_embeddings.weight",
                        NULL,
                        "embeddings.LayerNorm.weight",
                        "embeddings.LayerNorm.bias",
                        "transformer.layer.%d.attention.q_lin.weight",
                        "transformer.layer.%d.attention.q_lin.bias",
                        "transformer.layer.%d.attention.k_lin.weight",
                        "transformer.layer.%d.attention.k_lin.bias",
                        "transformer.layer.%d.attention.v_lin.weight",
                        "transformer.layer.%d.attention.v_lin.bias",
                        "transformer.layer.%d.attention.out_lin.weight",
                        "transformer.layer.%d.attention.out_lin.bias",
                        "transformer.layer.%d.sa_layer_norm.weight",
                        "transformer.layer.%d.sa_layer_norm.bias",
                        "transformer.layer.%d.ffn.lin1.weight",
                        "transformer.layer.%d.ffn.lin1.bias",
                        "transformer.layer.%d.ffn.lin2.weight",
                        "transformer.layer.%d.ffn.lin2.bias",
                        "transformer.layer.%d.output_layer_norm.weight",
                        "transformer.layer.%d.output_layer_norm.bias",
                    },
                .layer = "transformer.layer.%d",
                /* adapter-transformers' DistilBERT: attention adapters inside sa_layer_norm(sa +
                 * x), output adapters inside output_layer_norm(ffn + sa) */
                .site = {"attention_adapters", "output_adapters"},
                .key = {"vocab_size", "dim", "n_layers", "n_heads", "hidden_dim",
                        "max_position_embeddings", NULL, "pad_token_id", "activation", "dropout",
                        "attention_dropout", NULL, "seq_classif_dropout", "sinusoidal_pos_embds"},
                .dflt = {30522, 768, 6, 12, 3072, 512, 0, 0, 1e-12f, 0.1f, 0.1f, 0.2f},
                .mlm = {"vocab_transform.weight", "vocab_transform.bias", "vocab_layer_norm.weight",
                        "vocab_layer_norm.bias", "vocab_projector.bias"},
                .mlm_act = -1,
                .pos = ARCH_POS_RANGE,
                .attn_out_dropout = 0,
            },
};

const af_arch *arch_get(int id) {
    return id >= 0 && id < ARCH_COUNT ? &archs[id] : &archs[ARCH_BERT];
}

int arch_find(const char *model_type) {
    for (int i = 0; i < ARCH_COUNT; i++)
        if (!strcmp(archs[i].model_type, model_type)) return i;
    return -1;
}

const char *arch_list(void) {
    return "bert, roberta, distilbert";
}

static int fmt(char *buf, size_t n, const char *f, ...) __attribute__((format(printf, 3, 4)));
static int fmt(char *buf, size_t n, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    int k = vsnprintf(buf, n, f, ap);
    va_end(ap);
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

int arch_tensor_name(char *buf, size_t n, const af_arch *a, int t, int layer, int prefixed) {
    if (t < 0 || t >= AT_COUNT || !a->tensor[t]) return -1;
    char rel[160];
    if (t >= AT_FIRST_LAYER ? fmt(rel, sizeof rel, a->tensor[t], layer)
                            : fmt(rel, sizeof rel, "%s", a->tensor[t]))
        return -1;
    return prefixed ? fmt(buf, n, "%s.%s", a->prefix, rel) : fmt(buf, n, "%s", rel);
}

static int layer_path(char *buf, size_t n, const af_arch *a, int layer) {
    return fmt(buf, n, a->layer, layer);
}

int arch_adapter_name(char *buf, size_t n, const af_arch *a, int layer, int site,
                      const char *adapter, const char *param) {
    char lp[64];
    if (layer_path(lp, sizeof lp, a, layer)) return -1;
    return fmt(buf, n, "%s.%s.%s.adapters.%s.%s", a->prefix, lp, a->site[site], adapter, param);
}

int arch_fusion_name(char *buf, size_t n, const af_arch *a, int layer, int site, const char *key,
                     const char *param) {
    char lp[64];
    if (layer_path(lp, sizeof lp, a, layer)) return -1;
    return fmt(buf, n, "%s.%s.%s.adapter_fusion_layer.%s.%s", a->prefix, lp, a->site[site], key,
               param);
}

int arch_head_name(char *buf, size_t n, const char *task, const char *param) {
    return fmt(buf, n, "heads.%s.%s", task, param);
}

const char *arch_site(const af_arch *a, int site) {
    return a->site[site];
}
