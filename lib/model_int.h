/* model_int.h: what model.c shares with model_tree.c (inside libaf only; programs use model.h). */
#ifndef AF_MODEL_INT_H
#define AF_MODEL_INT_H

#include <cjson/cJSON.h>

#include "model.h"

int model_int_site_on(const af_model *m, int p); /* site p holds adapters (not left out) */
int model_int_site_rank(const af_model *m, int p);
int model_int_check_base(const af_model *m, const st_file *f, af_err *e);
cJSON *model_int_meta_json(const st_file *f, const char *key, af_err *e);
int model_int_read_fusion_config(const cJSON *cfg, const char *path, int H, int N,
                                 fusion_config *fc, float *T, af_err *e);
int model_int_leave_out_meta(const st_file *f, const cJSON *cfg, int L, uint64_t *mask, af_err *e);
int model_int_load_fusion_tensors(af_model *m, const st_file *f, const fusion_config *fc,
                                  const char *key, float *mem, af_err *e);
int model_int_load_adapter_tensors(af_model *m, const st_file *f, int i, af_err *e);

/* model_tree.c: the per-site trees of the loaded fusion inputs (after the root is allocated);
 * a hierarchical fusion file's own inputs (its "tree" record) checked against the loaded
 * adapters and fusion inputs, setting the root's inputs; the record to write; freeing. */
void model_tree_build(af_model *m);
int model_tree_root(af_model *m, const st_file *f, af_err *e);
char *model_tree_json(const af_model *m);
void model_tree_free(af_model *m);

#endif
