# study.mk: the learning-curve study (issue 22) as a Makefile: for every target task, training
# size and seed, a head alone on the frozen base, the target's own adapter, and fusion of source
# adapters (trained once, on all their data), each scored on the target's dev set. Run by
# scripts/study.sh (`make study`); every step is one plain command (scripts/study-run.sh), and
# independent runs go in parallel with -j.
#
#   make -f scripts/study.mk -j2 BASE=base DATA=data OUT=out TASKS="fortune rt" \
#        SOURCES_fortune=domain,gloss SOURCES_rt=sst2,cola,snli SIZES="50 100 all" SEEDS="1 2"
#
# DATA/TASK/train.tsv (and dev.tsv for a target) have the header `sentence[<TAB>pair]<TAB>label`.
# Results: OUT/study-runs.tsv (one row per run: task method size seed accuracy) and
# OUT/study.tsv (one row per task x method x size: n seeds, mean, sd).
#
# OUT is a cache keyed by names alone (task, method, size, seed): a run done is not redone when
# the data or an option changes, so that a study stopped early resumes where it stopped. After
# changing either, remove OUT (or OUT/runs and OUT/sub).

BASE    ?= base
DATA    ?= data
OUT     ?= out
BIN     ?= bin
SCRIPTS ?= $(dir $(lastword $(MAKEFILE_LIST)))
TASKS   ?= fortune
SIZES   ?= 50 100 300 1000 all
SEEDS   ?= 1 2 3 4 5
METHODS ?= head-only single attention weighted
MAXLEN  ?= 64
BATCH   ?= 16
# Each run sees at least MIN_PASSES examples (epochs = max(MIN_EPOCHS, MIN_PASSES / size)):
# a 50-example run gets the optimizer steps a few hundred would, or the small sizes would
# measure too few steps rather than too little data.
MIN_PASSES ?= 1200
MIN_EPOCHS ?= 2
SOURCE_EPOCHS ?= 3
ADAPTER_LR ?= 1e-3
FUSION_LR  ?= 5e-4
THREADS ?= 1

TRAIN = --base $(BASE) --threads $(THREADS) --quiet --batch-size $(BATCH) --max-len $(MAXLEN)
RUN   = BIN=$(BIN) BASE=$(BASE) OUT=$(OUT) MAXLEN=$(MAXLEN) BATCH=$(BATCH) THREADS=$(THREADS) \
        MIN_PASSES=$(MIN_PASSES) MIN_EPOCHS=$(MIN_EPOCHS) ADAPTER_LR=$(ADAPTER_LR) \
        FUSION_LR=$(FUSION_LR) $(SCRIPTS)study-run.sh

.PHONY: all runs
.DELETE_ON_ERROR:
.SECONDARY:

all: $(OUT)/study.tsv

comma := ,
adapters = $(foreach s,$(subst $(comma), ,$(SOURCES_$(1))),$(OUT)/adapters/$(s).safetensors)
runs = $(foreach m,$(METHODS),$(foreach n,$(SIZES),$(foreach s,$(SEEDS),$(OUT)/runs/$(1)/$(m)/$(n)-$(s).tsv)))
ALL_RUNS := $(foreach t,$(TASKS),$(call runs,$(t)))
# Built seed by seed: a study stopped early has every method and size for its first seeds.
BY_SEED := $(foreach s,$(SEEDS),$(foreach t,$(TASKS),$(foreach n,$(SIZES),$(foreach m,$(METHODS),\
    $(OUT)/runs/$(t)/$(m)/$(n)-$(s).tsv))))

# Tokenized: a `pair` column in the header makes a sentence pair.
$(OUT)/tok/%.jsonl:
	@mkdir -p $(@D)
	tsv=$(DATA)/$(subst .,/,$*).tsv; \
	pair=$$(head -n 1 $$tsv | tr '\t' '\n' | grep -qx pair && echo '--pair pair' || true); \
	$(BIN)/af-tokenize --model $(BASE) --tsv --header --text sentence $$pair --label label \
	    --max-len $(MAXLEN) -q -o $@ $$tsv

# Source adapters, once, on all their data, with the study's first seed.
$(OUT)/adapters/%.safetensors: $(OUT)/tok/%.train.jsonl
	@mkdir -p $(@D)
	$(BIN)/af-train-adapter $(TRAIN) --lr $(ADAPTER_LR) --epochs $(SOURCE_EPOCHS) --name $* -o $@ $<

# One run: task/method/size-seed; its prerequisites are the task's data and sources.
$(foreach t,$(TASKS),$(eval $(call runs,$(t)): $(OUT)/tok/$(t).train.jsonl \
    $(OUT)/tok/$(t).dev.jsonl $(call adapters,$(t))))
$(OUT)/runs/%.tsv:
	@$(RUN) $* $(call adapters,$(firstword $(subst /, ,$*)))

# One row per run, then mean and sample standard deviation over the seeds, in the order of
# TASKS, METHODS and sizes.
$(OUT)/study-runs.tsv: $(BY_SEED)
	@{ printf 'task\tmethod\tsize\tseed\taccuracy\n'; cat $(ALL_RUNS); } > $@.tmp && mv $@.tmp $@

$(OUT)/study.tsv: $(OUT)/study-runs.tsv
	@awk -F '\t' 'NR > 1 { k = $$1 "\t" $$2 "\t" $$3; if (!(k in n)) order[++K] = k; \
	    x[k, ++n[k]] = $$5; s[k] += $$5 } \
	    END { print "task\tmethod\tsize\tseeds\tmean\tsd"; \
	      for (i = 1; i <= K; i++) { k = order[i]; m = s[k] / n[k]; v = 0; \
	        for (j = 1; j <= n[k]; j++) v += (x[k, j] - m) ^ 2; \
	        sd = n[k] > 1 ? sqrt(v / (n[k] - 1)) : 0; \
	        printf "%s\t%d\t%.4f\t%.4f\n", k, n[k], m, sd } }' \
	    $< > $@.tmp && mv $@.tmp $@
	@column -t -s '	' $@
