# numamalloc — a NUMA-aware memory allocator.  See README.md.
#
#   make               build/libnumamalloc.so (replaces malloc), build/libnumamalloc.a, tests
#   make check         install missing test packages if no password is needed (tests/deps.sh
#                      --auto), then the whole test suite; ends with "N passed, N failed, N skipped"
#   make check-tsan    the stress tests against a -fsanitize=thread build
#   make fuzz          build the libFuzzer targets (tests/fuzz/, clang) and run each for
#                      FUZZ_SECONDS (default 60) seconds; make check runs each over its
#                      seed corpus once
#   make bench         benchmarks against glibc and the installed peers
#   make deps          install what the tests and benchmarks need (Debian/Ubuntu)
#   make install PREFIX=/usr/local [LIBDIR=PREFIX/lib] [DESTDIR=...]   (and make uninstall, the same way)
#   make fortran       build/libnumamalloc_fortran.a and build/fortran/numamalloc.mod (part of
#                      make; with gfortran, FC=...: skipped with a line where there is none)
#
# CC=clang works as well as gcc.

CC       ?= cc
CXX      ?= c++
PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
DESTDIR  ?=
MANDIR   ?= $(PREFIX)/share/man
BUILD    ?= build
CFLAGS   ?= -O2 -g
CXXFLAGS ?= -O2 -g
OBJCOPY  ?= objcopy

VERSION   = 0.1.0
SOVERSION = 0
WARN      = -Wall -Wextra -Werror
LIB_FLAGS = -std=gnu11 $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden -ftls-model=initial-exec \
            -fno-semantic-interposition -fno-plt -ffunction-sections -Iinclude -Isrc -pthread
TEST_FLAGS = -std=gnu11 $(WARN) $(CFLAGS) -Iinclude -Isrc -pthread

# Layers, bottom to top (see docs/design.md).  override.c alone defines the
# libc symbols (malloc, free, ...); everything else is the nm_ API.
LIB_SRC  = src/options.c src/os.c src/chunk.c src/topology.c src/policy.c src/segment.c src/arena.c src/page.c src/page_queue.c src/heap.c \
           src/large.c src/purge.c src/stats.c src/tier.c src/device.c src/region.c src/prof.c src/alloc.c src/override.c
LIB_HDR  = $(wildcard src/*.h) include/numamalloc.h
LIB_OBJ  = $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
TSAN_OBJ = $(LIB_SRC:src/%.c=$(BUILD)/tsan/%.o)

# The numamalloc command (tools/): linked with the static library, so it
# runs without it installed; it preloads the .so next to it or in ../lib.
TOOL_SRC   = $(wildcard tools/*.c)
TOOL       = $(BUILD)/numamalloc
TOOL_FLAGS = -std=gnu11 $(WARN) $(CFLAGS) -Iinclude -DNM_SONAME='"libnumamalloc.so.$(SOVERSION)"' -pthread
CMAKEDIR   = $(LIBDIR)/cmake/numamalloc

SO       = $(BUILD)/libnumamalloc.so
ARCHIVE  = $(BUILD)/libnumamalloc.a
TSAN_LIB = $(BUILD)/tsan/libnumamalloc-tsan.a

# Tests: the directory says how a test is built and run (tests/README.md).
UNIT_SRC    = $(wildcard tests/unit/*.c)
PRELOAD_SRC = $(wildcard tests/preload/*.c)
PRELOADXX   = $(wildcard tests/preload/*.cc)
TSAN_SRC    = $(wildcard tests/tsan/*.c)
UNIT_BIN    = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%)
PRELOAD_BIN = $(PRELOAD_SRC:tests/preload/%.c=$(BUILD)/tests/preload/%) \
              $(PRELOADXX:tests/preload/%.cc=$(BUILD)/tests/preload/%)
TSAN_BIN    = $(TSAN_SRC:tests/tsan/%.c=$(BUILD)/tests/tsan/%)
SCRIPT_TESTS = $(wildcard tests/programs/*.sh) bench/selftest.sh $(filter-out tests/vm/vm.sh,$(wildcard tests/vm/*.sh))

.PHONY: all lib tool tests fortran check check-tsan fuzz fuzz-targets bench bench-deps hot-layout deps install uninstall clean
all: lib tool tests fortran
lib: $(SO) $(ARCHIVE)
tool: $(TOOL)
tests: $(UNIT_BIN) $(PRELOAD_BIN)

# Code layout (docs/design.md): each function has a section of its own
# (-ffunction-sections), and those of the functions programs run, listed
# in src/hot.list (make hot-layout writes it), are renamed
# .text.sorted.NNNNN, which the link places first in .text, in that order.
HOT_ARGS = $(BUILD)/obj/hot.args
$(HOT_ARGS): src/hot.list | $(BUILD)/obj
	awk '!/^#/ && NF { printf "--rename-section %s=.text.sorted.%05d\n", $$1, ++n }' $< > $@.tmp
	mv $@.tmp $@

$(BUILD)/obj/%.o: src/%.c $(LIB_HDR) $(HOT_ARGS) | $(BUILD)/obj
	$(CC) $(LIB_FLAGS) -c $< -o $@.tmp
	$(OBJCOPY) @$(HOT_ARGS) $@.tmp $@ && rm -f $@.tmp

# -static-libgcc -u _Unwind_Backtrace: the heap profiler's unwinder
# (libgcc's, referenced weakly by prof.c) is linked in, so the library
# needs nothing at run time beyond libc.  A function of src/hot.list that
# no object has (renamed, or another compiler's name for a clone) is
# said, not an error: the code then works, laid out less well.
$(SO): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libnumamalloc.so.$(SOVERSION) -Wl,-z,now -Wl,--no-undefined \
	    -static-libgcc -Wl,-u,_Unwind_Backtrace -o $@ $(LIB_OBJ) -pthread
	@found=$$(for o in $(LIB_OBJ); do readelf -SW $$o; done | grep -o '\.text\.sorted\.[0-9]*' | sort -u | wc -l); \
	listed=$$(grep -c '^\.text\.' src/hot.list); \
	[ "$$found" -eq "$$listed" ] || \
	    echo "note: $$((listed - found)) of the $$listed functions in src/hot.list are in no object (make hot-layout writes it again)"
	ln -sf libnumamalloc.so $(BUILD)/libnumamalloc.so.$(SOVERSION)

$(ARCHIVE): $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $(LIB_OBJ)

$(TOOL): $(TOOL_SRC) tools/tool.h include/numamalloc.h $(ARCHIVE)
	$(CC) $(TOOL_FLAGS) $(TOOL_SRC) -o $@ $(ARCHIVE) -lm

$(BUILD)/obj $(BUILD)/tsan $(BUILD)/tests/unit $(BUILD)/tests/preload $(BUILD)/tests/tsan:
	mkdir -p $@

$(BUILD)/tests/unit/%: tests/unit/%.c $(ARCHIVE) tests/testutil.h | $(BUILD)/tests/unit
	$(CC) $(TEST_FLAGS) $< -o $@ $(ARCHIVE) -pthread

$(BUILD)/tests/preload/%: tests/preload/%.c tests/testutil.h include/numamalloc.h | $(BUILD)/tests/preload
	$(CC) $(TEST_FLAGS) $< -o $@ -pthread $(PRELOAD_LDFLAGS)

# A program that defines madvise to take the library's calls exports it.
$(BUILD)/tests/preload/madvise_hook: PRELOAD_LDFLAGS = -rdynamic

# Without a C++ compiler a C++ test is a stub that skips with the reason.
# The stamp names whether $(CXX) was found, so the tests are rebuilt when
# that changes (g++ installed after a build without it).
HAVE_CXX  := $(shell command -v $(CXX) 2>/dev/null)
CXX_STAMP  = $(BUILD)/tests/preload/.cxx-$(if $(HAVE_CXX),found,missing)

$(CXX_STAMP): | $(BUILD)/tests/preload
	rm -f $(BUILD)/tests/preload/.cxx-* && touch $@

$(BUILD)/tests/preload/%: tests/preload/%.cc $(CXX_STAMP) tests/testutil.h | $(BUILD)/tests/preload
ifneq ($(HAVE_CXX),)
	$(CXX) -std=gnu++17 $(WARN) $(CXXFLAGS) $< -o $@ -pthread
else
	printf '#!/bin/sh\necho "no C++ compiler ($(CXX)): make deps installs g++"\nexit 77\n' > $@ && chmod +x $@
endif

# Fortran bindings: the module numamalloc (bindings/fortran/numamalloc.F90,
# which includes numamalloc_array.inc once per array element type: a capital
# .F90 is run through the preprocessor by gfortran, ifx and flang alike)
# compiled into $(BUILD)/fortran/numamalloc.mod (what `use numamalloc`
# reads: -I$(BUILD)/fortran) and $(BUILD)/libnumamalloc_fortran.a (its
# code: link it before -lnumamalloc).  gfortran by default (make's own
# default FC, f77, is not taken); without it the target says so in one
# line and the Fortran tests skip.
ifeq ($(origin FC),default)
FC = gfortran
endif
FFLAGS      ?= -O2 -g
HAVE_FC     := $(shell command -v $(FC) 2>/dev/null)
FORTRAN_LIB  = $(BUILD)/libnumamalloc_fortran.a
FORTRAN_OBJ  = $(BUILD)/fortran/numamalloc.o
FORTRAN_WARN = $(if $(findstring gfortran,$(FC)),-std=f2008 $(WARN))

$(BUILD)/fortran:
	mkdir -p $@

ifneq ($(HAVE_FC),)
fortran: $(FORTRAN_LIB)

$(FORTRAN_OBJ): bindings/fortran/numamalloc.F90 bindings/fortran/numamalloc_array.inc | $(BUILD)/fortran
	$(FC) $(FORTRAN_WARN) $(FFLAGS) -fPIC -J$(BUILD)/fortran -c $< -o $@

$(FORTRAN_LIB): $(FORTRAN_OBJ)
	rm -f $@ && ar rcs $@ $(FORTRAN_OBJ)
else
fortran:
	@echo "no Fortran compiler ($(FC)): the Fortran bindings are not built (make deps installs gfortran)"
endif

# First what the tests need (tests/deps.sh --auto: installs missing packages
# when root or passwordless sudo can, else says to run make deps), then the
# build, which may use them (g++ for the C++ preload tests).
check:
	@NM_BUILD=$(BUILD) tests/deps.sh --auto
	@$(MAKE) --no-print-directory all fuzz-targets
	@tests/run.sh $(UNIT_BIN) $(PRELOAD_BIN) $(FUZZ_BIN) $(SCRIPT_TESTS)

# ThreadSanitizer: the whole library instrumented, override.c included, with
# its libc symbols under the prefix tsan_ (tsan_malloc, tsan_free,
# tsan__Znwm, ...).  They cannot keep their real names: TSan's runtime owns
# malloc and calls it while it starts, before instrumented code can run, so
# an instrumented malloc of the program's crashes it (tried with gcc 12 and
# clang 14, linked statically or preloaded).  The prefix changes the names
# only: the stress tests in tests/tsan/ call the exported entry points the
# way a program calls malloc (tests/tsan/dropin.h) and drive exactly the
# code that LD_PRELOAD puts under it, the fork handlers and the purge thread
# that its constructor sets up included; others use the nm_ API.
$(BUILD)/tsan/%.o: src/%.c $(LIB_HDR) | $(BUILD)/tsan
	$(CC) $(LIB_FLAGS) -fsanitize=thread -c $< -o $@

$(BUILD)/tsan/override.o: src/override.c $(LIB_HDR) | $(BUILD)/tsan
	$(CC) $(LIB_FLAGS) -fsanitize=thread -DNM_LIBC_PREFIX=tsan_ -c $< -o $@

$(TSAN_LIB): $(TSAN_OBJ)
	rm -f $@ && ar rcs $@ $(TSAN_OBJ)

$(BUILD)/tests/tsan/%: tests/tsan/%.c $(TSAN_LIB) tests/testutil.h tests/tsan/dropin.h | $(BUILD)/tests/tsan
	$(CC) $(TEST_FLAGS) -fsanitize=thread $< -o $@ $(TSAN_LIB) -pthread

check-tsan: $(TSAN_BIN)
	@TSAN_OPTIONS="halt_on_error=1 exitcode=66" tests/run.sh $(TSAN_BIN)

# Fuzzing: libFuzzer targets in tests/fuzz/, built with clang under
# AddressSanitizer and UndefinedBehaviorSanitizer and linked with the
# library's sources compiled the same way (with coverage for libFuzzer),
# without override.c (ASan owns malloc): they drive the nm_ API and the
# internal parsers.  make check runs each over its seed corpus
# (tests/fuzz/corpus/NAME/) once; make fuzz runs each for FUZZ_SECONDS,
# keeping what it finds in $(BUILD)/fuzz/corpus/NAME/ and crashes in
# $(BUILD)/fuzz/crashes/.  Without clang the targets are stubs that skip.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_SRC      = $(wildcard tests/fuzz/*.c)
FUZZ_BIN      = $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/tests/fuzz/%)
FUZZ_OBJ      = $(filter-out $(BUILD)/fuzz/obj/override.o,$(LIB_SRC:src/%.c=$(BUILD)/fuzz/obj/%.o))
FUZZ_LIB      = $(BUILD)/fuzz/libnumamalloc-fuzz.a
HAVE_FUZZ_CC := $(shell command -v $(FUZZ_CC) 2>/dev/null)
FUZZ_STAMP    = $(BUILD)/tests/fuzz/.clang-$(if $(HAVE_FUZZ_CC),found,missing)

$(BUILD)/fuzz/obj $(BUILD)/tests/fuzz:
	mkdir -p $@

$(FUZZ_STAMP): | $(BUILD)/tests/fuzz
	rm -f $(BUILD)/tests/fuzz/.clang-* && touch $@

$(BUILD)/fuzz/obj/%.o: src/%.c $(LIB_HDR) | $(BUILD)/fuzz/obj
	$(FUZZ_CC) $(LIB_FLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_LIB): $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $(FUZZ_OBJ)

ifneq ($(HAVE_FUZZ_CC),)
$(BUILD)/tests/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(FUZZ_LIB) $(FUZZ_STAMP)
	$(FUZZ_CC) $(TEST_FLAGS) $(FUZZ_SAN) -fsanitize=fuzzer $< -o $@ $(FUZZ_LIB) -pthread
else
$(BUILD)/tests/fuzz/%: tests/fuzz/%.c $(FUZZ_STAMP)
	printf '#!/bin/sh\necho "no $(FUZZ_CC) for the libFuzzer targets: make deps installs clang"\nexit 77\n' > $@ && chmod +x $@
endif

fuzz-targets: $(FUZZ_BIN)

fuzz: fuzz-targets
	@tests/fuzz/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

bench: lib
	@bench/run.sh

hot-layout: lib tests
	BENCH_BUILD=$(abspath $(BUILD))/bench bench/run.sh --build
	bench/hot-layout.sh $(BUILD)

deps:
	tests/deps.sh

bench-deps:
	bench/deps.sh

# The CMake package finds its tree from where it is (LIBDIR/cmake/numamalloc):
# the header's directory is given relative to LIBDIR.
LIB_TO_INCLUDE = $(shell realpath -m --relative-to='$(LIBDIR)' '$(PREFIX)/include')
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
            -e 's|@LIB_TO_INCLUDE@|$(LIB_TO_INCLUDE)|g' -e 's|@FMODDIR@|$(FMODDIR)|g'

# The Fortran module goes to LIBDIR/fortran, not to include/: a .mod file is
# compiled code, tied to the compiler (gfortran's module format changes
# between releases) and the architecture, so it belongs with the
# libraries, as Debian keeps modules under /usr/lib/TRIPLET/fortran.
# numamalloc-fortran.pc gives -I for it and the libraries to link.
FMODDIR ?= $(LIBDIR)/fortran

install: lib tool fortran
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(LIBDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
	    $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(CMAKEDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 644 include/numamalloc.h include/numamalloc.hpp $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(SO) $(DESTDIR)$(LIBDIR)/libnumamalloc.so.$(VERSION)
	ln -sf libnumamalloc.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libnumamalloc.so.$(SOVERSION)
	ln -sf libnumamalloc.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libnumamalloc.so
	install -m 644 $(ARCHIVE) $(DESTDIR)$(LIBDIR)/
	$(SUBST) numamalloc.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/numamalloc.pc
	for f in numamallocConfig numamallocConfigVersion; do \
	    $(SUBST) cmake/$$f.cmake.in > $(DESTDIR)$(CMAKEDIR)/$$f.cmake || exit 1; \
	done
	install -m 755 $(TOOL) $(DESTDIR)$(PREFIX)/bin/numamalloc
	install -m 644 man/numamalloc.1 $(DESTDIR)$(MANDIR)/man1/numamalloc.1
	install -m 644 man/numamalloc.3 $(DESTDIR)$(MANDIR)/man3/numamalloc.3
ifneq ($(HAVE_FC),)
	install -d $(DESTDIR)$(FMODDIR)
	install -m 644 $(BUILD)/fortran/numamalloc.mod $(DESTDIR)$(FMODDIR)/
	install -m 644 $(FORTRAN_LIB) $(DESTDIR)$(LIBDIR)/
	$(SUBST) bindings/fortran/numamalloc-fortran.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/numamalloc-fortran.pc
endif

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/numamalloc.h $(DESTDIR)$(PREFIX)/include/numamalloc.hpp \
	      $(DESTDIR)$(LIBDIR)/libnumamalloc.so* \
	      $(DESTDIR)$(LIBDIR)/libnumamalloc.a $(DESTDIR)$(LIBDIR)/pkgconfig/numamalloc.pc \
	      $(DESTDIR)$(LIBDIR)/libnumamalloc_fortran.a $(DESTDIR)$(LIBDIR)/pkgconfig/numamalloc-fortran.pc \
	      $(DESTDIR)$(FMODDIR)/numamalloc.mod \
	      $(DESTDIR)$(CMAKEDIR)/numamallocConfig.cmake $(DESTDIR)$(CMAKEDIR)/numamallocConfigVersion.cmake \
	      $(DESTDIR)$(PREFIX)/bin/numamalloc \
	      $(DESTDIR)$(MANDIR)/man1/numamalloc.1 $(DESTDIR)$(MANDIR)/man3/numamalloc.3
	rmdir $(DESTDIR)$(CMAKEDIR) $(DESTDIR)$(FMODDIR) 2>/dev/null || true

clean:
	rm -rf $(BUILD)

# Examples (examples/README.md): `make examples` builds them into
# $(BUILD)/examples/, linked with the shared library (rpath to it); the
# OpenMP ones (openmp, omp_memspace) only where $(CC) has OpenMP (omp.h and
# -fopenmp: clang needs libomp-dev), the MPI one only where mpicc is; a
# line says which were skipped.  make check builds and runs them on its own
# (tests/programs/examples.sh, example_mpi.sh, tests/vm/examples.sh).
OPENMP_EXAMPLES = openmp omp_memspace
HAVE_OPENMP   := $(shell printf '\043include <omp.h>\n' | $(CC) -fopenmp -x c -fsyntax-only - 2>/dev/null && echo yes)
EXAMPLES      = $(addprefix $(BUILD)/examples/,buffer_pool worker_pool bind_inspect near_device pipeline) \
                $(if $(HAVE_OPENMP),$(addprefix $(BUILD)/examples/,$(OPENMP_EXAMPLES))) \
                $(if $(shell command -v mpicc),$(BUILD)/examples/mpi) \
                $(if $(HAVE_FC),$(BUILD)/examples/fortran_onnode)
EXAMPLE_FLAGS = -std=gnu11 $(WARN) $(CFLAGS) -Iinclude
EXAMPLE_LINK  = -L$(BUILD) -lnumamalloc -Wl,-rpath,$(abspath $(BUILD))

.PHONY: examples
examples: $(EXAMPLES)
	$(if $(HAVE_OPENMP),,@echo "examples: $(OPENMP_EXAMPLES) skipped: $(CC) has no OpenMP (omp.h, -fopenmp)")

$(BUILD)/examples:
	mkdir -p $@

$(addprefix $(BUILD)/examples/,$(OPENMP_EXAMPLES)): $(BUILD)/examples/%: examples/%.c include/numamalloc.h $(SO) | $(BUILD)/examples
	$(CC) $(EXAMPLE_FLAGS) -fopenmp $< -o $@ $(EXAMPLE_LINK)

$(BUILD)/examples/mpi: examples/mpi.c include/numamalloc.h $(SO) | $(BUILD)/examples
	mpicc $(EXAMPLE_FLAGS) $< -o $@ $(EXAMPLE_LINK)

$(BUILD)/examples/fortran_onnode: examples/fortran_onnode.f90 $(FORTRAN_LIB) $(SO) | $(BUILD)/examples
	$(FC) $(FORTRAN_WARN) $(FFLAGS) -fopenmp -I$(BUILD)/fortran $< -o $@ $(FORTRAN_LIB) $(EXAMPLE_LINK)

$(BUILD)/examples/%: examples/%.c include/numamalloc.h $(SO) | $(BUILD)/examples
	$(CC) $(EXAMPLE_FLAGS) -pthread $< -o $@ $(EXAMPLE_LINK) -pthread
