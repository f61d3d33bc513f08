/* torchfile.h: PyTorch checkpoints of state dicts (`torch.save(state_dict, F)`, the zip format
 * of PyTorch >= 1.6), read into and written from af's safetensors structures.
 *
 * A checkpoint is a zip archive whose entries share one top directory (`archive/` for
 * torch.save to a path named archive, AdapterHub's files use the file's stem, e.g.
 * `pytorch_adapter/`): PREFIX/data.pkl (the pickle, pickle.h), PREFIX/data/KEY (each storage's
 * raw little-endian elements), PREFIX/version ("3"). Reading checks each tensor view (offset,
 * sizes, strides) against its storage's byte count and copies it out contiguous, so the result
 * is an st_file like any other: st_find, st_to_f32, st_close work on it. The legacy format
 * (PyTorch < 1.6: a bare pickle stream) is refused with the command that re-saves it. */
#ifndef AF_TORCHFILE_H
#define AF_TORCHFILE_H

#include "af.h"
#include "safetensors.h"

/* Reads an image (not kept: the tensors are copied); errors name `name`. f has no metadata;
 * f->map is an anonymous mapping st_close releases. */
int pt_parse(st_file *f, const void *data, size_t size, const char *name, af_err *e);
int pt_open(st_file *f, const char *path, af_err *e);
/* Whether the first bytes look like a zip archive (a checkpoint) rather than safetensors. */
int pt_is_zip(const void *data, size_t size);

/* Writes the writer's tensors (F32, F16 or BF16; metadata is not written: a checkpoint has no
 * place for it) as a checkpoint whose entries live under `prefix`, atomically. */
int pt_write(const st_writer *w, const char *path, const char *prefix, af_err *e);

#endif
