/* param.h: how a model part describes its parameters to whoever saves, loads or optimizes them.
 *
 * Each part (adapter, fusion, head) keeps all its parameters in one caller-provided float buffer
 * and publishes a table of param_desc: the tensor's name relative to the part's prefix (AdapterHub
 * names, e.g. "adapter_down.0.weight" under "bert.encoder.layer.3.output.adapters.NAME."), its
 * shape, and where it lives in the buffer. The gradient buffer has the same layout, so
 * buf + offset and grad + offset are a parameter and its gradient (optim_add_param's pair). */
#ifndef AF_PARAM_H
#define AF_PARAM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name; /* relative to the part's prefix; static storage */
    int ndim;         /* 1 or 2 */
    int64_t shape[2]; /* nn.Linear weights are [out, in] */
    size_t offset;    /* floats from the start of the part's buffer */
    size_t numel;
    int decay;     /* Hugging Face Trainer rule: 0 for biases (and LayerNorm weights) */
    int trainable; /* 0: kept as initialised (e.g. fixed fusion weights); not for the optimizer */
} param_desc;

#endif
