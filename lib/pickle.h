/* pickle.h: the pickle inside a PyTorch checkpoint (data.pkl), read by a restricted unpickler and
 * written for torch.load(..., weights_only=True).
 *
 * Pickle is a small stack machine whose GLOBAL and REDUCE opcodes import and call any Python
 * function: loading an untrusted pickle runs its author's code. This reader interprets only the
 * subset torch.save emits for a state dict of tensors (protocol 2, and the few protocol-4 forms
 * of the same things) and evaluates nothing: the only "callables" are five names it knows by
 * heart (collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch.FloatStorage,
 * torch.HalfStorage, torch.BFloat16Storage), and REDUCE on them builds a description, never a
 * call. Any other global, opcode or shape of data is refused with its name and byte offset.
 * No recursion (a hostile nesting depth costs nothing), memory linear in the pickle's size.
 *
 * The result is the dict's entries in order: a name, and a tensor as a view of a storage (a
 * zip entry "data/KEY" beside data.pkl): dtype, storage size, offset, sizes, strides. Nothing
 * here checks a view against its storage; torchfile.c does, when it has the bytes. */
#ifndef AF_PICKLE_H
#define AF_PICKLE_H

#include "af.h"
#include "safetensors.h"

#define PK_MAX_MEMO (1 << 20)

typedef struct {
    char *name;            /* the state dict key */
    st_dtype dtype;        /* ST_F32, ST_F16 or ST_BF16 */
    char *storage;         /* its key: the zip entry is PREFIX/data/KEY */
    int64_t storage_numel; /* elements in the storage */
    int64_t offset;        /* storage offset, in elements */
    int ndim;
    int64_t shape[ST_MAX_DIMS], stride[ST_MAX_DIMS];
} pk_tensor;

/* Reads a state dict from a pickle of n bytes; `what` names it in errors. */
int pk_read_state_dict(const unsigned char *p, size_t n, const char *what, pk_tensor **out,
                       int *nout, af_err *e);
void pk_free(pk_tensor *t, int n);

/* A pickle of a state dict (a plain dict, as AdapterHub saves) of contiguous tensors, tensor i
 * in storage "i"; what torch.load(..., weights_only=True) accepts. Returns a malloc'ed buffer. */
unsigned char *pk_write_state_dict(const pk_tensor *t, int n, size_t *len);

#endif
