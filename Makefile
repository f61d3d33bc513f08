# af: AdapterFusion as a Unix toolchain.  `make`, `make check`, `make check SANITIZE=1`,
# `make bench`, `make demo`, `make study`, `make install PREFIX=/usr/local DESTDIR=`.
CC      ?= gcc
PREFIX  ?= /usr/local
DESTDIR ?=
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wno-unused-parameter
OPT     ?= -O2
CFLAGS  ?=
LIBS    := -lopenblas -lcjson -lz -lutf8proc -lm -lpthread

# MPI (data-parallel training under mpirun, lib/dist.c): MPI=1 builds with Open MPI's flags
# (from mpicc), MPI=0 without; by default it is on when mpicc is found, except in sanitizer
# builds (ASan reports Open MPI's own allocations as leaks).
ifeq ($(SANITIZE),1)
  MPI ?= 0
else
  MPI ?= $(if $(shell command -v mpicc 2>/dev/null),1,0)
endif
ifeq ($(MPI),1)
  MPI_CFLAGS := -DAF_MPI $(shell mpicc --showme:compile)
  MPI_LIBS   := $(shell mpicc --showme:link)
endif

# Sanitizer and MPI builds live in their own trees so objects never mix.
ifeq ($(SANITIZE),1)
  BUILD   := build/san
  BINDIR  := build/san/bin
  OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
  LDSAN   := -fsanitize=address,undefined
else
  BUILD   := build/rel$(if $(filter 1,$(MPI)),-mpi)
  BINDIR  := bin
endif
LIBS += $(MPI_LIBS)

# The programs are relinked when MPI is switched on or off (their objects are in another tree,
# older than the programs): BINDIR/.mpi records the build they are of.
MPI_MODE := $(shell mkdir -p $(BINDIR) && (echo $(MPI) | cmp -s - $(BINDIR)/.mpi || echo $(MPI) >$(BINDIR)/.mpi))

ALL_CFLAGS := $(CSTD) $(WARN) $(OPT) -Ilib -MMD -MP $(MPI_CFLAGS) $(CFLAGS)

LIB_SRC  := $(wildcard lib/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIBAF    := $(BUILD)/libaf.a
CMD_SRC  := $(wildcard cmd/af-*.c)
CMD_HELP := $(filter-out $(CMD_SRC),$(wildcard cmd/*.c))
CMD_HOBJ := $(CMD_HELP:%.c=$(BUILD)/%.o)
PROGS    := $(CMD_SRC:cmd/%.c=$(BINDIR)/%)
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%.t)
PAR_SRC  := $(wildcard tests/parity/*.c)
PAR_BIN  := $(PAR_SRC:tests/parity/%.c=$(BUILD)/tests/parity/%.t)
CLI_TESTS:= $(sort $(wildcard tests/cli/t*.sh))

# Keep objects make would otherwise delete as intermediates.
.SECONDARY:

.PHONY: all check bench demo base study install clean fuzz lint-man
all: $(LIBAF) $(PROGS)
	@if [ "$(BINDIR)" = bin ]; then ln -sf ../$(LIBAF) lib/libaf.a 2>/dev/null || true; fi

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIBAF): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Front-end helpers shared by the programs (cmd/common.c, ...) go in their own archive, so each
# program links only what it uses.
CMD_HLIB := $(BUILD)/libcmd.a
$(CMD_HLIB): $(CMD_HOBJ)
	@rm -f $@
	ar rcs $@ $^

$(BINDIR)/.mpi: ;
$(BINDIR)/%: $(BUILD)/cmd/%.o $(CMD_HLIB) $(LIBAF) $(BINDIR)/.mpi
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $< $(CMD_HLIB) $(LIBAF) $(LIBS)

$(BUILD)/tests/unit/%.t: tests/unit/%.c $(LIBAF) tests/tap.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests $(LDSAN) -o $@ $< $(LIBAF) $(LIBS)

$(BUILD)/tests/parity/%.t: tests/parity/%.c $(LIBAF) tests/tap.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests $(LDSAN) -o $@ $< $(LIBAF) $(LIBS)

# Every test speaks TAP; prove runs compiled tests and shell tests directly.
check: all $(UNIT_BIN) $(PAR_BIN)
	AF_BIN=$(abspath $(BINDIR)) AF_TOP=$(CURDIR) AF_MPI=$(MPI) OPENBLAS_NUM_THREADS=1 \
	  prove --exec '' $(PROVE_FLAGS) $(UNIT_BIN) $(PAR_BIN) $(CLI_TESTS)

# Benchmark programs: tests/bench/*.c, run by scripts/bench.sh.
BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/tests/bench/%)
$(BUILD)/tests/bench/%: tests/bench/%.c $(LIBAF)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests $(LDSAN) -o $@ $< $(LIBAF) $(LIBS)

bench: all $(BENCH_BIN)
	AF_BENCH=$(abspath $(BUILD)/tests/bench) scripts/bench.sh

demo: all
	scripts/demo.sh

base: all
	scripts/make-base.sh

# The learning-curve study (scripts/study.sh): about 40 CPU-minutes; results in scripts/study/.
study: all
	scripts/study.sh

# libFuzzer targets (clang): `make fuzz` builds them, `scripts/fuzz.sh` runs them.
FUZZ_SRC := $(wildcard tests/fuzz/*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
fuzz: $(FUZZ_BIN)
build/fuzz/%: tests/fuzz/%.c $(LIB_SRC)
	@mkdir -p $(dir $@)
	clang $(CSTD) -g -O1 -Ilib -fsanitize=fuzzer,address,undefined -o $@ $< $(LIB_SRC) $(LIBS)

lint-man:
	@for m in man/*.[15]; do mandoc -T lint -W warning $$m || exit 1; done

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(wildcard man/*.1) $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 $(wildcard man/*.5) $(DESTDIR)$(PREFIX)/share/man/man5/

clean:
	rm -rf build bin lib/libaf.a

-include $(shell find build -name '*.d' 2>/dev/null)
