#!/bin/sh
# make study's machinery (scripts/study.sh, study.mk, study-run.sh) on a tiny random base and tiny
# tasks, 2 sizes x 2 seeds: every run happens, the TSVs have their shape, subsets are what the
# seed and size say, the plot is written; and what it refuses.
. "$(dirname "$0")/lib.sh"

STUDY=$AF_TOP/scripts/study.sh
D=$TEST_ROOT/data

# Sentences of words from a small lexicon; a label's words are likelier under it, so a task
# can be learned a little. gen_task NAME ROWS SEED [pair]
gen_task() {
	awk -v n="$2" -v seed="$3" -v pair="${4:-}" 'BEGIN {
		split("red green blue cold warm dark light loud soft fast slow old new big small", w, " ")
		x = seed
		printf "sentence\t%slabel\n", pair ? "pair\t" : ""
		for (i = 0; i < n; i++) {
			lab = i % 3
			s = ""
			for (k = 0; k < 6; k++) {
				x = (x * 16807) % 2147483647
				j = x % 15 + 1
				if (x % 2) j = lab * 5 + x % 5 + 1
				s = s (k ? " " : "") w[j]
			}
			printf "%s\t%s%s\n", s, pair ? "more words\t" : "", "c" lab
		}
	}'
}

test_expect_success 'setup: tiny tasks and a tiny random base' '
	mkdir -p "$D/tgt" "$D/s1" "$D/s2" &&
	gen_task tgt 60 11 >"$D/tgt/train.tsv" &&
	gen_task tgt 24 13 >"$D/tgt/dev.tsv" &&
	gen_task s1 48 17 >"$D/s1/train.tsv" &&
	gen_task s2 48 19 pair >"$D/s2/train.tsv" &&
	cat "$D"/*/train.tsv | cut -f1 >"$TEST_ROOT/text.txt" &&
	af-tokenize --build-vocab 60 -q -o "$TEST_ROOT/vocab.txt" "$TEST_ROOT/text.txt" &&
	af-pretrain --layers 1 --hidden 16 --heads 2 --ffn 32 --max-pos 64 \
	    --vocab "$TEST_ROOT/vocab.txt" --steps 1 --lr 0 --batch-size 2 --max-len 16 -q \
	    -o "$TEST_ROOT/base" "$TEST_ROOT/text.txt" &&
	cp "$TEST_ROOT/vocab.txt" "$TEST_ROOT/base/" &&
	test -s "$TEST_ROOT/base/model.safetensors"
'

ONE=$TEST_ROOT/one
run_study() {
	mkdir -p "$1" &&
	"$STUDY" --base "$TEST_ROOT/base" --data "$D" --tasks "tgt:s1,s2" --sizes "8 all" --seeds 2 \
	    --min-passes 16 --source-epochs 1 --work "$1/work" --results "$1/results" >"$1/out" 2>&1
}

test_expect_success 'the study runs: 4 methods x 2 sizes x 2 seeds, a TSV of means, a plot' '
	run_study "$ONE" &&
	cd "$ONE" && R=results &&
	test $(wc -l <$R/study-runs.tsv) = 17 &&
	test $(wc -l <$R/study.tsv) = 9 &&
	head -n 1 $R/study.tsv | grep -qx "task	method	size	seeds	mean	sd" &&
	head -n 1 $R/study-runs.tsv | grep -qx "task	method	size	seed	accuracy" &&
	awk -F "\t" "NR > 1 && !(\$1 == \"tgt\" && \$4 == 2 && \$5 >= 0 && \$5 <= 1 && \$6 >= 0) { bad++ }
	    END { exit bad > 0 }" $R/study.tsv &&
	cut -f2 $R/study.tsv | sed 1d | sort -u | paste -sd, - | grep -qx "attention,head-only,single,weighted" &&
	cut -f3 $R/study.tsv | sed 1d | sort -un | paste -sd, - | grep -qx "8,60" &&
	test_grep "plot: " out &&
	test $(grep -c "^tgt " $R/study-paired.txt) = 8 &&
	grep "^tgt  *8  *attention - single " $R/study-paired.txt | grep -q " [0-2]/2$" &&
	head -c 8 $R/study.png | od -An -c | grep -q "P   N   G"
'

test_expect_success 'the mean and sd are those of the per-seed rows' '
	cd "$ONE" && R=results &&
	awk -F "\t" "NR == FNR { if (FNR > 1) { k = \$1 \$2 \$3; s[k] += \$5; q[k] += \$5 * \$5; n[k]++ } next }
	    FNR > 1 { k = \$1 \$2 \$3; m = s[k] / n[k]; sd = sqrt((q[k] - n[k] * m * m) / (n[k] - 1));
	      if (sd != sd) sd = 0; if ((m - \$5) ^ 2 > 1e-8 || (sd - \$6) ^ 2 > 1e-6) { print; bad++ } }
	    END { exit bad > 0 }" $R/study-runs.tsv $R/study.tsv
'

test_expect_success 'subsets: the size asked for, every label in its share, another per seed' '
	cd "$ONE" && S=work/out/sub/tgt &&
	test $(wc -l <$S/8-1.jsonl) = 8 && test $(wc -l <$S/all-2.jsonl) = 60 &&
	for f in $S/8-1.jsonl $S/8-2.jsonl; do
		grep -o "\"label\":\"c[0-9]\"" $f | sort | uniq -c | awk "{ if (\$1 < 2) bad++ } END { exit bad > 0 || NR != 3 }" || return 1
	done &&
	! cmp -s $S/8-1.jsonl $S/8-2.jsonl &&
	sort $S/all-1.jsonl >a && sort work/out/tok/tgt.train.jsonl >b && cmp a b
'

test_expect_success 'the same seeds give the same study (subsets and accuracies)' '
	run_study "$TEST_ROOT/again" &&
	cmp "$ONE/results/study-runs.tsv" "$TEST_ROOT/again/results/study-runs.tsv" &&
	cmp "$ONE/work/out/sub/tgt/8-2.jsonl" "$TEST_ROOT/again/work/out/sub/tgt/8-2.jsonl"
'

test_expect_success 'without the shared data it says where it looked' '
	test_exit 1 "$STUDY" --shared "$TEST_ROOT/nowhere" --work w --results r >out 2>err &&
	test_grep "nowhere: no shared data" err
'

test_expect_success 'bad arguments are usage errors' '
	test_exit 2 "$STUDY" --tasks "tgt" --data "$D" --base "$TEST_ROOT/base" 2>err &&
	test_grep "TARGET:SOURCE1,SOURCE2 expected" err &&
	test_exit 2 "$STUDY" --seeds x 2>err && test_grep "seeds" err &&
	test_exit 2 "$STUDY" --bogus 2>err && test_grep "unknown argument" err
'

test_expect_success 'a target without a dev set is named' '
	mkdir -p d2/t d2/s1 d2/s2 && cp "$D/tgt/train.tsv" d2/t/ &&
	test_exit 1 "$STUDY" --base "$TEST_ROOT/base" --data d2 --tasks "t:s1,s2" --work w 2>err &&
	test_grep "d2/t/dev.tsv: not found" err
'

test_done
