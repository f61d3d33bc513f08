# lib.sh: a small TAP library for af's shell tests, in the spirit of git's test-lib.sh.
# Each test runs in its own scratch directory; steps chain with && so any failing step fails it.
#   . "$(dirname "$0")/lib.sh"
#   test_expect_success 'name' 'cmd1 && cmd2'
#   test_done
set -u
AF_TOP=${AF_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
AF_BIN=${AF_BIN:-$AF_TOP/bin}
FIXTURES=$AF_TOP/tests/fixtures
PATH=$AF_BIN:$PATH
export PATH AF_TOP AF_BIN FIXTURES
export NO_COLOR=1 OPENBLAS_NUM_THREADS=1
# the programs say when OPENBLAS_CORETYPE holds OpenBLAS back: not on every test's stderr
unset OPENBLAS_CORETYPE
TEST_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/af-test.XXXXXX")
trap 'rm -rf "$TEST_ROOT"' EXIT
test_count=0
test_failed=0

test_expect_success() {
    test_count=$((test_count + 1))
    dir="$TEST_ROOT/t$test_count"
    mkdir -p "$dir"
    if (cd "$dir" && eval "$2") >"$TEST_ROOT/out.$test_count" 2>&1; then
        echo "ok $test_count - $1"
    else
        echo "not ok $test_count - $1"
        sed 's/^/#   /' "$TEST_ROOT/out.$test_count"
        test_failed=$((test_failed + 1))
    fi
}

# Runs a command that must fail with exit status $1.
test_exit() {
    want=$1
    shift
    "$@"
    got=$?
    if [ "$got" -ne "$want" ]; then
        echo "expected exit $want, got $got: $*" >&2
        return 1
    fi
    return 0
}

# test_grep PATTERN FILE: like grep -q, but shows the file when it does not match.
test_grep() {
    if grep -q -e "$1" "$2"; then return 0; fi
    echo "'$1' not found in $2:" >&2
    cat "$2" >&2
    return 1
}

# The numbers of af-infer output lines, in the layout of tests/fixtures/infer/*.expected: the
# probabilities (or the score), then "|" and the fusion weights ("layers", then
# "attention_layers"), blank-separated.
numbers() {
	awk '{
		out = ""
		if (match($0, /"probs":\[[^]]*\]/)) out = substr($0, RSTART + 9, RLENGTH - 10)
		else if (match($0, /"score":[^,}]*/)) out = substr($0, RSTART + 8, RLENGTH - 8)
		if (match($0, /"layers":\[[^"}]*\]/)) out = out " | " substr($0, RSTART + 9, RLENGTH - 9)
		if (match($0, /"attention_layers":\[[^"}]*\]/)) out = out " " substr($0, RSTART + 19, RLENGTH - 19)
		gsub(/[][,]/, " ", out)
		$0 = out
		$1 = $1
		print
	}' "$@"
}

# numbers_close EXPECTED GOT: the same layout, line by line, every number within 1e-4.
numbers_close() {
	awk 'NR == FNR { want[FNR] = $0; n = FNR; next }
	{
		got++
		m = split(want[FNR], w, " "); k = split($0, g, " ")
		if (m != k) { printf "line %d: %d fields expected, %d found\n", FNR, m, k; bad = 1; next }
		for (i = 1; i <= m; i++) {
			if (w[i] == "|" || g[i] == "|") {
				if (w[i] != g[i]) { printf "line %d: field %d: layout differs\n", FNR, i; bad = 1 }
				continue
			}
			d = w[i] - g[i]
			if (d < 0) d = -d
			if (d > 1e-4) { printf "line %d, field %d: %s expected, %s found\n", FNR, i, w[i], g[i]; bad = 1 }
		}
	}
	END { if (got != n) { printf "%d lines expected, %d found\n", n, got; bad = 1 }; exit bad }' "$1" "$2"
}

test_done() {
    echo "1..$test_count"
    [ "$test_failed" -eq 0 ]
}

# gen_separable SEED N: N lines of a two-class task that tests/fixtures/train/base makes learnable
# (t0400, t0500): 3-7 tokens between [CLS]=2 and [SEP]=3, all from 5..33 ("neg") or all from
# 34..62 ("pos"). The base's random attention carries enough of the tokens into [CLS] for an
# adapter of bottleneck 8 to separate them in 10-20 epochs.
gen_separable() {
	awk -v seed="$1" -v n="$2" '
	# the Park-Miller generator, exact in doubles: the same data from every awk (seed >= 1)
	function rnd() { x = (x * 16807) % 2147483647; return x / 2147483647 }
	BEGIN {
		x = seed
		for (i = 0; i < n; i++) {
			y = int(rnd() * 2); L = 3 + int(rnd() * 5); s = "[2"
			for (j = 0; j < L; j++) s = s "," (5 + 29 * y + int(rnd() * 29))
			printf "{\"input_ids\":%s,3],\"label\":\"%s\"}\n", s, y ? "pos" : "neg"
		}
	}'
}
