#!/bin/sh
# The man pages: one per program, af-files(5), and each lints clean (mandoc -T lint).
. "$(dirname "$0")/lib.sh"

for prog in "$AF_TOP"/cmd/af-*.c; do
    name=$(basename "$prog" .c)
    test_expect_success "$name has a man page" "test -s '$AF_TOP/man/$name.1'"
done
test_expect_success 'af-files(5) exists' "test -s '$AF_TOP/man/af-files.5'"

if command -v mandoc >/dev/null 2>&1; then
    for page in "$AF_TOP"/man/*.[15]; do
        test_expect_success "$(basename "$page") lints clean" "
            mandoc -T lint -W warning '$page' >lint.out 2>&1; rc=\$?
            cat lint.out; test \$rc -eq 0 && ! test -s lint.out"
        test_expect_success "$(basename "$page") renders" "
            mandoc -T utf8 '$page' >page.txt && test \$(wc -l <page.txt) -gt 20"
    done
else
    echo "# mandoc not installed: lint skipped"
fi
# What man(1) shows a reader: groff on an 80-column UTF-8 terminal must not have to overflow a
# line (a name too long to break) or drop a glyph, and printed (groff's default device, where
# the block glyphs once went missing) no glyph may be lost either.
if command -v groff >/dev/null 2>&1; then
    for page in "$AF_TOP"/man/*.[15]; do
        test_expect_success "$(basename "$page") renders in groff without warnings" "
            groff -mandoc -ww -z -Tutf8 -rLL=80n -rLT=80n '$page' >groff.out 2>&1 &&
            groff -mandoc -Wall -wchar -z '$page' >>groff.out 2>&1 &&
            cat groff.out && ! test -s groff.out"
    done
else
    echo "# groff not installed: man rendering skipped"
fi
# Every long option a program accepts is documented in its man page.
for prog in "$AF_TOP"/cmd/af-*.c; do
    name=$(basename "$prog" .c)
    test_expect_success "$name: every --option in --help is in $name.1" "
        $name --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u >opts &&
        mandoc -T ascii '$AF_TOP/man/$name.1' | sed 's/.\\x08//g' >page &&
        missing=\$(while read o; do grep -q -- \"\$o\" page || echo \$o; done <opts)
        test -z \"\$missing\" || { echo \"undocumented: \$missing\"; false; }"
done
for prog in "$AF_TOP"/cmd/af-*.c; do
    name=$(basename "$prog" .c)
    test_expect_success "$name --help exits 0" "$name --help >help.txt && test -s help.txt"
done
test_done
