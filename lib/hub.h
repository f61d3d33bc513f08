/* hub.h: AdapterHub's directories (adapter-transformers 3.x and the `adapters` library) to and
 * from af's files.
 *
 * What AdapterHub's save_adapter / save_adapter_fusion / save_head write, one directory each:
 *   adapter:  adapter_config.json + pytorch_adapter.bin (or adapter.safetensors)
 *   head:     head_config.json + pytorch_model_head.bin (or model_head.safetensors), beside
 *             the adapter (or the fusion) it belongs to
 *   fusion:   adapter_fusion_config.json + pytorch_model_adapter_fusion.bin (or
 *             model_adapter_fusion.safetensors)
 * Each JSON file is {"config": {...}, "hidden_size", "model_class", "model_name", "model_type",
 * "name", "version"}. The weight files hold the tensors under the names af's own files use
 * (DESIGN §2), so the mapping is about configs, shapes and the few things af stores otherwise:
 *   - leave_out layers: af keeps an adapter in every layer; a left-out layer's is all zeros,
 *     which computes exactly what no adapter does (LN(0 + h + r) = LN(h + r));
 *   - a per-layer reduction factor: every layer gets the largest bottleneck, the smaller ones
 *     padded with zero rows and columns (act(0) = 0 for every activation af has: exact);
 *   - scaling: folded into adapter_up (up·s = (s·W)·a + s·b);
 *   - a fusion's softmax temperature (export): folded into the query (q·k/T = (q/T)·k).
 * The AdapterHub config an adapter came with is kept in the af file's "hub" metadata, so that
 * export writes the same leave_out and reduction factors back (and slices the padding off).
 * Whatever af does not compute is refused, naming the field and its value. */
#ifndef AF_HUB_H
#define AF_HUB_H

#include "af.h"
#include "bert.h"
#include "safetensors.h"

#define HUB_VERSION "3.2.1" /* the adapter-transformers whose layout export writes */
/* The `adapters` library whose layout --format safetensors writes, read from its source (commit
 * 88f18eb; scripts/gen-adapters-fixtures.py builds directories in it) */
#define HUB_ADAPTERS_VERSION "1.2.0"

/* The architecture's prefix of base tensor names in AdapterHub's files and af's ("bert",
 * "roberta", "distilbert"), and AdapterHub's model class for it ("BertAdapterModel"), from the
 * architecture table (arch.h) by model_type. */
const char *hub_arch_prefix(const char *model_type);
const char *hub_model_class(const char *model_type);
/* The model_type of a base (NULL base: "bert"). */
const char *hub_base_model_type(const bert *base);
/* Whether af reads bases of this AdapterHub model_type. */
int hub_model_type_known(const char *model_type);

/* The name of a tensor of adapter `name` at layer l, site s (BERT_SITE_*), parameter param
 * ("adapter_down.0.weight", ...), or of fusion `name` when fusion is set. */
void hub_tensor_name(char *buf, size_t n, const char *model_type, int fusion, int l, int s,
                     const char *name, const char *param);

typedef struct {
    const char *name; /* rename the adapter (and a head of the same name); NULL: keep */
    const char *head; /* import only this head; NULL: the directory's */
} hub_import_opts;

/* An AdapterHub adapter directory (with its head, when it has one) -> an af adapter file. */
int hub_import_adapter(bert *base, const char *dir, const hub_import_opts *o, const char *out,
                       af_err *e);
/* An AdapterHub fusion directory -> an af fusion file over the given af adapter files (which
 * must hold the fused adapters, in the fusion's order). */
int hub_import_fusion(bert *base, const char **adapters, int n, const char *dir,
                      const hub_import_opts *o, const char *out, af_err *e);

typedef struct {
    int safetensors;  /* write the `adapters` library's layout (its .safetensors names, config
                         fields and version) instead of adapter-transformers 3.2.1's .bin */
    const char *head; /* export only this head (an adapter file with several) */
} hub_export_opts;

/* An af adapter file -> OUTDIR as an AdapterHub adapter directory (with its head); an af fusion
 * file -> OUTDIR/fusion (with its head) and OUTDIR/NAME for each adapter file given. */
int hub_export(const char *file, const char **adapters, int n, const char *outdir,
               const hub_export_opts *o, af_err *e);

/* Whether path is a directory holding an AdapterHub config file. */
int hub_is_dir(const char *path);
/* What an AdapterHub directory holds, as text for people (af-inspect HUBDIR), and as JSON
 * (af-inspect --json HUBDIR): {"path", "kind": "adapterhub", "modules": [{"module": "adapter" |
 * "fusion" | "head", "config_file", "name", "version", "model_class", "model_type",
 * "hidden_size" (each null when the file lacks it), "adapter_names" (when given), "config",
 * "weights_file", "tensors": [{"name", "dtype", "shape", "params"}], "totals": {"tensors",
 * "params"}}]}; NULL with e set on error. */
int hub_describe(const char *dir, FILE *out, af_err *e);
typedef struct cJSON cJSON;
cJSON *hub_describe_json(const char *dir, af_err *e);

/* ---- shared by hub_*.c ---- */
/* Reads DIR/FILE as JSON (NULL and e set when missing or invalid; *missing set if absent). */
cJSON *hub_read_json(const char *dir, const char *file, int *missing, af_err *e);
/* Opens a directory's weights: DIR/BIN (a PyTorch checkpoint) or DIR/ST (safetensors). */
int hub_open_weights(st_file *f, const char *dir, const char *bin, const char *st, af_err *e);
/* Writes a JSON value to path atomically, pretty-printed with a final newline. */
int hub_write_json(const char *path, const cJSON *j, af_err *e);

#endif
