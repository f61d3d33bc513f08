# experiment.mk: an AdapterFusion experiment as a Makefile: GLUE-style TSVs -> tokenized JSONL ->
# one adapter per source task -> fusion over them for a target task -> metrics on its dev set.
# Copy it, set the variables, run it with -j: independent adapters train in parallel, and every
# step is one plain command you can read in the output and re-run by hand.
#
#   make -f scripts/experiment.mk -j2 BASE=bert-base-uncased DATA=glue \
#        SOURCES="SST-2 MRPC" TARGET=RTE TEXT=sentence1 PAIR=sentence2
#
# DATA/TASK/train.tsv and DATA/TASK/dev.tsv have a header row naming the columns TEXT (and PAIR)
# and LABEL. Results: OUT/results.tsv (one row per model) and OUT/fusion-*.json (metrics).

BASE    ?= base
DATA    ?= data
OUT     ?= out
BIN     ?= bin
SOURCES ?= domain gloss
TARGET  ?= fortune
METHODS ?= attention static multihead weighted gating
TEXT    ?= sentence
PAIR    ?=
LABEL   ?= label
MAXLEN  ?= 128
# options for every training run (e.g. --epochs 3 --batch-size 16), and per phase
TRAIN_FLAGS   ?=
ADAPTER_FLAGS ?= --lr 1e-4
FUSION_FLAGS  ?= --lr 5e-5
# threads per training run: with -jN, give each run cores/N
THREADS ?= 1

TOKENIZE = $(BIN)/af-tokenize --model $(BASE) --tsv --header --text $(TEXT) \
           $(if $(PAIR),--pair $(PAIR)) --label $(LABEL) --max-len $(MAXLEN)
TRAIN    = --base $(BASE) --threads $(THREADS) --quiet $(TRAIN_FLAGS)

ADAPTERS = $(SOURCES:%=$(OUT)/adapter-%.safetensors)
FUSIONS  = $(METHODS:%=$(OUT)/fusion-%.safetensors)
RESULTS  = $(OUT)/head-only.json $(OUT)/single.json $(METHODS:%=$(OUT)/fusion-%.json)

.PHONY: all adapters fusions clean
.DELETE_ON_ERROR:
.SECONDARY:

all: $(OUT)/results.tsv
adapters: $(ADAPTERS)
fusions: $(FUSIONS)

$(OUT)/%.train.jsonl: $(DATA)/%/train.tsv
	@mkdir -p $(OUT)
	$(TOKENIZE) -o $@ $<

$(OUT)/%.dev.jsonl: $(DATA)/%/dev.tsv
	@mkdir -p $(OUT)
	$(TOKENIZE) -o $@ $<

# Phase 1: one adapter per source task.
$(OUT)/adapter-%.safetensors: $(OUT)/%.train.jsonl $(OUT)/%.dev.jsonl
	$(BIN)/af-train-adapter $(TRAIN) $(ADAPTER_FLAGS) --name $* --dev $(OUT)/$*.dev.jsonl -o $@ $<

# Baselines on the target: a head on the frozen base, and the target's own adapter.
$(OUT)/head-only.safetensors: $(OUT)/$(TARGET).train.jsonl $(OUT)/$(TARGET).dev.jsonl
	$(BIN)/af-train-adapter $(TRAIN) $(ADAPTER_FLAGS) --head-only --name $(TARGET) \
	    --dev $(OUT)/$(TARGET).dev.jsonl -o $@ $<

$(OUT)/single.safetensors: $(OUT)/$(TARGET).train.jsonl $(OUT)/$(TARGET).dev.jsonl
	$(BIN)/af-train-adapter $(TRAIN) $(ADAPTER_FLAGS) --name $(TARGET) \
	    --dev $(OUT)/$(TARGET).dev.jsonl -o $@ $<

# Phase 2: fusion of the source adapters, one file per method.
$(OUT)/fusion-%.safetensors: $(ADAPTERS) $(OUT)/$(TARGET).train.jsonl $(OUT)/$(TARGET).dev.jsonl
	$(BIN)/af-fuse $(TRAIN) $(FUSION_FLAGS) $(ADAPTERS:%=--adapter %) --method $* \
	    --name $(TARGET) --dev $(OUT)/$(TARGET).dev.jsonl -o $@ $(OUT)/$(TARGET).train.jsonl

# Metrics on the target's dev set.
$(OUT)/head-only.json $(OUT)/single.json: $(OUT)/%.json: $(OUT)/%.safetensors $(OUT)/$(TARGET).dev.jsonl
	$(BIN)/af-infer --base $(BASE) --adapter $< --metrics-json $@ \
	    < $(OUT)/$(TARGET).dev.jsonl > $(OUT)/$*.predictions.jsonl

$(OUT)/fusion-%.json: $(OUT)/fusion-%.safetensors $(OUT)/$(TARGET).dev.jsonl
	$(BIN)/af-infer --base $(BASE) $(ADAPTERS:%=--adapter %) --fusion $< --fusion-weights \
	    --metrics-json $@ < $(OUT)/$(TARGET).dev.jsonl > $(OUT)/fusion-$*.predictions.jsonl

$(OUT)/results.tsv: $(RESULTS)
	@printf 'model\taccuracy\tmacro-F1\tMCC\n' > $@.tmp
	@for f in $(RESULTS); do \
	    tr -d ' \n' < $$f | sed 's/.*"accuracy":\([^,}]*\).*"f1":\([^,}]*\).*"mcc":\([^,}]*\).*/\1 \2 \3/' | \
	    awk -v m="$$(basename $$f .json)" '{ printf "%s\t%.3f\t%.3f\t%.3f\n", m, $$1, $$2, $$3 }'; \
	done >> $@.tmp
	@mv $@.tmp $@
	@column -t -s '	' $@

clean:
	rm -rf $(OUT)
