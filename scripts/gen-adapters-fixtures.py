#!/usr/bin/python3
"""gen-adapters-fixtures.py: directories in the layout of the newer `adapters` library, for
af-convert's tests (tests/fixtures/hub/adapters/).

    AT_SRC=build/hub-src /usr/bin/python3 scripts/gen-adapters-fixtures.py

The `adapters` library (github.com/adapter-hub/adapters) needs a newer transformers than this
machine has, so it cannot run here. What it writes was read from its source instead, version
1.2.0 (commit 88f18ebd6c127f0e0ddf7c76cb84b37a39b82c12, src/adapters/__init__.py __version__):

  - loading.py WeightsLoaderHelper.save_weights: safetensors.torch.save_file(state_dict, path),
    no metadata, as adapter.safetensors, model_head.safetensors,
    model_adapter_fusion.safetensors (utils.py SAFE_*_NAME); the state dict is the model's,
    filtered by name (AdapterLoader.filter_func: ".adapters.NAME."; PredictionHeadLoader:
    "heads.NAME"; AdapterFusionLoader: "adapter_fusion_layer.NAME"), so the tensor names are
    the model's own: "bert.encoder.layer.N.output.adapters.NAME.adapter_down.0.weight" on a
    BertAdapterModel (models/bert/mixin_bert.py: BertOutput is a BottleneckLayer, whose
    `adapters` ModuleDict holds methods/modeling.py Adapter: adapter_down = Sequential(Linear,
    activation), adapter_up = Linear), "encoder.layer.N...." without the prefix on a plain
    BertModel given adapters by adapters.init(model);
  - save_weights_config: json.dump(config, indent=2, sort_keys=True) of
    configuration/model_adapters_config.py build_full_config: model_type, hidden_size, the
    keyword arguments (model_name, name, model_class; a fusion adds adapter_names), "config"
    (the config dataclass's asdict: BnConfig's fields, which add dropout, init_weights_seed and
    stochastic_depth to adapter-transformers 3.2.1's and no longer write "architecture";
    AdapterFusionConfig's, which add dropout_prob; a head's config dict, which adds
    dropout_prob), and "version": "adapters." + __version__.

The weights are the same computation as adapter-transformers 3.2.1's for these configs, so the
real 3.2.1 (AT_SRC) builds the model and draws the weights, and its outputs on in.jsonl are the
reference (CASE.expected, one line per input, as gen-hub-fixtures.py writes them):

  pfeiffer/    SeqBnConfig "pa" (reduction 8, relu), classification head neg, pos
  houlsby/     DoubleSeqBnConfig "ha" (reduction 4, swish), multi-label head x, y, z
  bare/        SeqBnConfig "ba" saved from a plain BertModel: tensor names without "bert.", no
               head (af-infer needs one, so only the tensors are checked, against pfeiffer's
               layout)
  fa/, fb/, fusion/   DynamicAdapterFusionConfig over SeqBn "fa" (reduction 8), "fb" (16), with
               its head "fa,fb" (no, yes)
"""
import importlib.util
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("genhub", os.path.join(HERE, "gen-hub-fixtures.py"))
hub = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hub)  # AdapterHub 3.2.1 on sys.path, the base, the inputs

import stpy  # noqa: E402
from transformers.adapters import HoulsbyConfig, PfeifferConfig  # noqa: E402
from transformers.adapters.composition import Fuse  # noqa: E402

OUT = os.path.join(hub.OUT, "adapters")
VERSION = "adapters.1.2.0"

# configuration/adapter_config.py BnConfig's fields and defaults, and the two classes used here
BN = dict(original_ln_before=False, original_ln_after=True, ln_before=False, ln_after=False,
          init_weights="bert", init_weights_seed=None, is_parallel=False, scaling=1.0,
          use_gating=False, residual_before_ln=True, adapter_residual_before_ln=False,
          inv_adapter=None, inv_adapter_reduction_factor=None, cross_adapter=False, leave_out=[],
          dropout=0.0, phm_layer=False, phm_dim=4, factorized_phm_W=True, shared_W_phm=False,
          shared_phm_rule=True, factorized_phm_rule=False, phm_c_init="normal",
          phm_init_range=0.0001, learn_phm=True, hypercomplex_nonlinearity="glorot-uniform",
          phm_rank=1, phm_bias=True, stochastic_depth=0.0)
SEQ_BN = dict(BN, original_ln_before=True, mh_adapter=False, output_adapter=True,
              non_linearity="relu", reduction_factor=16)
DOUBLE_SEQ_BN = dict(BN, original_ln_before=False, mh_adapter=True, output_adapter=True,
                     non_linearity="swish", reduction_factor=16)
# configuration/adapter_fusion_config.py DynamicAdapterFusionConfig
DYNAMIC_FUSION = dict(key=True, query=True, value=True, query_before_ln=False, regularization=True,
                      residual_before=False, temperature=False, value_before_softmax=True,
                      value_initialized=True, dropout_prob=None)


def full_config(config, name, **kw):
    """build_full_config for a BertAdapterModel (model_name: None for a model built from a
    config, as the 3.2.1 fixtures have it)."""
    d = {"model_type": "bert", "hidden_size": 32, "model_name": None, "name": name,
         "model_class": "BertAdapterModel"}
    d.update(kw)
    d["config"] = config
    d["version"] = VERSION
    return d


def write(d, config_name, config, weights_name, state):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, config_name), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    # save_file: no metadata; the header lists tensors by dtype, then name (all F32 here)
    stpy.save(os.path.join(d, weights_name),
              {k: state[k].detach().float().contiguous() for k in sorted(state)})


def head_config(m, name):
    c = dict(m.heads[name].config)
    c["dropout_prob"] = None  # ClassificationHead / MultiLabelClassificationHead in 1.2.0
    return full_config(c, name)


def select(m, pred):
    return {k: v for k, v in m.state_dict().items() if pred(k)}


def adapter_case(case, name, cfg3, cfg12, head, seed, strip_prefix=False):
    gen = torch.Generator().manual_seed(seed)
    m = hub.new_model()
    m.add_adapter(name, config=cfg3)
    if head:
        head(m, name)
    hub.randomize(m, "adapters." + name + ".", gen)
    hub.randomize(m, "heads." + name + ".", gen)
    d = os.path.join(OUT, case)
    shutil.rmtree(d, ignore_errors=True)
    w = select(m, lambda k: ".adapters.%s." % name in k)
    if strip_prefix:  # a plain BertModel's state dict: no "bert." (and no heads)
        w = {k[len("bert."):]: v for k, v in w.items()}
    write(d, "adapter_config.json", full_config(cfg12, name), "adapter.safetensors", w)
    if head:
        write(d, "head_config.json", head_config(m, name), "model_head.safetensors",
              select(m, lambda k: k.startswith("heads.%s." % name)))
        m.set_active_adapters(name)
        m.active_head = name
        hub.write_expected(os.path.join("adapters", case), hub.predict(m))


def fusion_case(seed):
    gen = torch.Generator().manual_seed(seed)
    m = hub.new_model()
    m.add_adapter("fa", config=PfeifferConfig(reduction_factor=8))
    m.add_adapter("fb", config=PfeifferConfig(reduction_factor=16))
    m.add_adapter_fusion(Fuse("fa", "fb"))
    m.add_classification_head("fa,fb", num_labels=2, id2label={0: "no", 1: "yes"})
    hub.randomize(m, "adapters.", gen)
    hub.randomize(m, "adapter_fusion_layer", gen)
    hub.randomize(m, "heads.", gen)
    for n, rf in (("fa", 8), ("fb", 16)):
        d = os.path.join(OUT, n)
        shutil.rmtree(d, ignore_errors=True)
        write(d, "adapter_config.json", full_config(dict(SEQ_BN, reduction_factor=rf), n),
              "adapter.safetensors", select(m, lambda k: ".adapters.%s." % n in k))
    d = os.path.join(OUT, "fusion")
    shutil.rmtree(d, ignore_errors=True)
    write(d, "adapter_fusion_config.json",
          full_config(DYNAMIC_FUSION, "fa,fb", adapter_names=["fa", "fb"]),
          "model_adapter_fusion.safetensors",
          select(m, lambda k: "adapter_fusion_layer.fa,fb." in k))
    write(d, "head_config.json", head_config(m, "fa,fb"), "model_head.safetensors",
          select(m, lambda k: k.startswith("heads.fa,fb.")))
    m.set_active_adapters(Fuse("fa", "fb"))
    m.active_head = "fa,fb"
    hub.write_expected(os.path.join("adapters", "fusion"), hub.predict(m))


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    adapter_case("pfeiffer", "pa", PfeifferConfig(reduction_factor=8),
                 dict(SEQ_BN, reduction_factor=8), hub.two_labels(["neg", "pos"]), 21)
    adapter_case("houlsby", "ha", HoulsbyConfig(reduction_factor=4),
                 dict(DOUBLE_SEQ_BN, reduction_factor=4),
                 lambda m, n: m.add_classification_head(
                     n, num_labels=3, multilabel=True, id2label={0: "x", 1: "y", 2: "z"}), 22)
    adapter_case("bare", "pa", PfeifferConfig(reduction_factor=8),
                 dict(SEQ_BN, reduction_factor=8), None, 21, strip_prefix=True)
    fusion_case(23)
    print("wrote", OUT)


if __name__ == "__main__":
    sys.exit(main())
