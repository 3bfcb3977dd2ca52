# sembed - sentence-transformers, rebuilt in C.
#
#   make            build/sembed (the CLI), build/libsembed.a, build/libsembed.so
#   make check      the README test command: `make test`, `make asan`, `make tsan`
#   make test       unit + reference + CLI + set-up/packaging tests (optimised build)
#   make asan       the whole suite under AddressSanitizer + UBSan
#   make tsan       the concurrency tests under ThreadSanitizer
#   make fuzz       libFuzzer targets (clang), run briefly on the corpus
#   make bench      throughput benchmark (prints JSON)
#   make install    PREFIX (default /usr/local), DESTDIR; `make uninstall` undoes it
#
# Dependencies (Debian): libjansson-dev (JSON), libutf8proc-dev (Unicode data),
# libsqlite3-dev (the index file), zlib1g-dev (CRC-32; gzipped evaluation files),
# libmicrohttpd-dev (HTTP for `sembed serve`; the sembed binary only),
# libcurl4-openssl-dev and libssl-dev (the hub client: HTTP, and sha256 of downloads).
# CI builds with EXTRA_CFLAGS=-Werror (.ci/run); the tree is warning-free
# with gcc and clang.

CC       ?= cc
BUILD    ?= build
OPT      ?= -O2 -g
SAN      ?=
WARN     := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wcast-qual -Werror=implicit-function-declaration
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(OPT) $(SAN) $(WARN) $(EXTRA_CFLAGS) -Iinclude -fPIC -pthread
LIBS     := -ljansson -lutf8proc -lsqlite3 -lz -lcurl -lcrypto -lm -pthread
LDLIBS    = $(LIBS) $(SAN)

# The tests: one list per kind, each name once. tests/run.sh runs them in
# this order (the test target passes it the lists); adding a test is adding
# its name here.
#   TESTS         unit and reference tests: tests/NAME.c -> $(BUILD)/tests/NAME
#   TSAN_TESTS    the subset of TESTS also run under ThreadSanitizer (make tsan)
#   CLI_TESTS     black-box CLI tests: tests/NAME.py, given the sembed binary
#   SH_TESTS      set-up, packaging and build tests: tests/NAME.sh
#   FUZZ_TARGETS  libFuzzer targets tests/fuzz/NAME.c (make fuzz); their corpus
#                 is replayed by fuzz_replay in every test run
TESTS        := test_unicode test_kernels test_threadpool test_similarity test_tokenizer test_safetensors \
                test_model test_use test_index test_util test_sentencepiece \
                test_torch_bin test_archs test_rerank test_encode_api test_serve_float test_classify_fit \
                test_index_fts test_train_grad test_eval_ir_metrics test_index_recall test_train_kernels
TSAN_TESTS   := test_threadpool test_model test_tokenizer test_index test_train_grad
CLI_TESTS    := test_cli test_index_cli test_rerank_cli test_classify test_real_configs test_serve test_serve_index \
                test_serve_page test_serve_clients test_serve_scale test_python test_pull test_eval_ir test_train_cli
SH_TESTS     := test_setup test_packaging test_build
FUZZ_TARGETS := fuzz_safetensors fuzz_tokenizer fuzz_snapshot fuzz_spm_model fuzz_torch_bin fuzz_spm_folder \
                fuzz_serve_request
# SAN_SKIP      tests the sanitizer build (make asan) leaves out: they check
#               scripts and programs around the library (the set-up's package
#               step, build hygiene, the Python package's bindings over C calls
#               the C tests run under ASan, a browser, the JS clients and
#               nginx on routes test_serve runs under ASan), not new paths through our
#               code, and cost minutes under the sanitizers (test_python
#               preloads libasan into Python: 76 s)
SAN_SKIP     := test_setup test_build test_python test_serve_page test_serve_clients test_serve_scale
ifneq ($(filter-out $(TESTS),$(TSAN_TESTS)),)
$(error TSAN_TESTS names tests not in TESTS: $(filter-out $(TESTS),$(TSAN_TESTS)))
endif

LIB_SRC  := src/alloc.c src/error.c src/json.c src/unicode.c \
            src/tokenizer.c src/tokenizer_vocab.c src/tokenizers/wordpiece.c src/tokenizers/unigram.c \
            src/sentencepiece_model.c src/normalizer_precompiled.c \
            src/safetensors.c src/torch_bin.c src/model_folder.c src/model.c src/model_weights.c src/model_gemm.c \
            src/model_blocks.c src/model_head.c src/models/models.c src/models/bert.c src/models/xlmr.c src/models/mpnet.c src/models/use_lite.c \
            src/pool.c src/kernels.c src/kernels_avx2.c src/kernels_avx512.c src/kernels_bf16.c src/kernels_bf16dp.c src/kernels_int8.c \
            src/threadpool.c src/encode.c src/rerank.c src/similarity.c src/util.c src/chunk.c src/vec_dist.c src/vec_index.c \
            src/index.c src/index_bm25.c src/index_fts.c src/index_fusion.c src/classify.c src/convert_use.c src/hub.c \
            src/hub_cache.c src/hub_http.c src/eval_ir.c \
            src/train/train_model.c src/train/train_kernels.c src/train/train_gemm.c src/train/train_attn_avx2.c src/train/train_adamw_avx2.c src/train/train_act_avx2.c src/train/train_drop_avx2.c src/train/train_norm_avx2.c src/train/train_forward.c src/train/train_backward.c \
            src/train/train_loss.c src/train/train_optim.c src/train/train_checkpoint.c src/train/train_data.c
LIB_OBJ  := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
CLI_SRC  := src/cli.c src/cli_io.c src/cli_eval.c src/cli_eval_ir.c src/cli_bench.c src/cli_index.c src/cli_rerank.c \
            src/cli_classify.c src/cli_pull.c src/cli_train.c \
            src/serve.c src/serve_req.c src/serve_batch.c src/serve_rerank.c src/serve_metrics.c src/serve_index.c \
            src/serve_page.c src/serve_float.c
CLI_OBJ  := $(CLI_SRC:src/%.c=$(BUILD)/obj/%.o)
TEST_BIN := $(TESTS:%=$(BUILD)/tests/%)
# JOBS: parallel compile jobs of check/asan/tsan's builds (the machine's cores)
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SRC := $(FUZZ_TARGETS:%=tests/fuzz/%.c)
# Program code (not in the library) that fuzz targets reach: the server's
# request binding and its float writer (fuzz_serve_request).
FUZZ_PROG_SRC := src/serve_req.c src/serve_float.c

# The library version (from sembed.h) and the shared library's names:
# libsembed.so.0.1.0, its SONAME libsembed.so.0, and the link libsembed.so.
VERSION  := $(shell sed -n 's/^\#define SE_VERSION_STRING "\(.*\)"$$/\1/p' include/sembed.h)
SONAME   := libsembed.so.$(firstword $(subst ., ,$(VERSION)))
SOFILE   := libsembed.so.$(VERSION)

# Where `make install` puts things (DESTDIR is prepended to each).
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
PCDIR      ?= $(LIBDIR)/pkgconfig

.PHONY: all test test-bins check asan ubsan tsan fuzz bench bench-serve clean install uninstall man print-%

all: $(BUILD)/libsembed.a $(BUILD)/libsembed.so $(BUILD)/$(SONAME) $(BUILD)/sembed

# Library objects. The kernel files that use wider instruction sets get
# their flags here (KFLAGS, per target); the CPU is checked at run time.
$(BUILD)/obj/kernels_avx2.o:   KFLAGS := -mavx2 -mfma
$(BUILD)/obj/train/train_gemm.o: KFLAGS := -mavx2 -mfma
$(BUILD)/obj/train/train_attn_avx2.o: KFLAGS := -mavx2 -mfma
$(BUILD)/obj/train/train_adamw_avx2.o: KFLAGS := -mavx2
$(BUILD)/obj/train/train_act_avx2.o: KFLAGS := -mavx2 -mfma
$(BUILD)/obj/train/train_drop_avx2.o: KFLAGS := -mavx2
$(BUILD)/obj/train/train_norm_avx2.o: KFLAGS := -mavx2 -mfma
$(BUILD)/obj/kernels_avx512.o: KFLAGS := -mavx512f -mfma
$(BUILD)/obj/kernels_bf16.o:   KFLAGS := -mavx512f -mfma
$(BUILD)/obj/kernels_bf16dp.o: KFLAGS := -mavx512f -mavx512bf16 -mfma
$(BUILD)/obj/kernels_int8.o:   KFLAGS := -mavx512f -mavx512bw -mavx512vnni -mfma

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h src/*/*.h) include/sembed.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc -DSE_BUILD -fvisibility=hidden $(KFLAGS) -c $< -o $@

# The CLI sees only the public header, as a user of the library (a static
# pattern rule: the implicit cli%.o pattern never matched cli.o itself).
$(CLI_OBJ): $(BUILD)/obj/%.o: src/%.c $(wildcard src/cli*.h src/serve*.h) include/sembed.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# The server's web page (src/web/index.html) as the bytes of a C array
# initialiser, which src/serve_page.c includes: od and sed (coreutils and
# sed, in every Debian system), so the build needs no xxd.
$(BUILD)/gen/serve_page_html.inc: src/web/index.html
	@mkdir -p $(dir $@)
	od -An -v -tx1 $< | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g' >$@.tmp && mv $@.tmp $@

$(BUILD)/obj/serve_page.o: $(BUILD)/gen/serve_page_html.inc

# `sembed train` drives the training engine, which has no public API yet:
# its file alone of the CLI sees the private headers (src/train/train.h).
$(BUILD)/obj/cli_train.o: CFLAGS_ALL += -Isrc
$(BUILD)/obj/cli_train.o: $(wildcard src/train/*.h src/*.h)
$(BUILD)/obj/serve_page.o: CFLAGS_ALL += -I$(BUILD)/gen

$(BUILD)/libsembed.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/$(SOFILE): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(LDLIBS)

$(BUILD)/$(SONAME): $(BUILD)/$(SOFILE)
	ln -sf $(SOFILE) $@

$(BUILD)/libsembed.so: $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $@

# The binary alone links libmicrohttpd (for `sembed serve`); the library
# stays free of it.
$(BUILD)/sembed: $(CLI_OBJ) $(BUILD)/libsembed.a
	$(CC) -o $@ $(CLI_OBJ) $(BUILD)/libsembed.a $(LDLIBS) -lmicrohttpd

# The man page, from the help texts of the binary.
$(BUILD)/sembed.1: $(BUILD)/sembed tools/gen_man.sh
	sh tools/gen_man.sh $(BUILD)/sembed >$@.tmp && mv $@.tmp $@

man: $(BUILD)/sembed.1

# Installs the binary, both libraries, the header, sembed.pc and the man
# page under $(DESTDIR)$(PREFIX); runs ldconfig when installing for real
# (no DESTDIR), so that programs linked with -lsembed find the library.
install: all $(BUILD)/sembed.1
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PCDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(BUILD)/sembed $(DESTDIR)$(BINDIR)/sembed
	install -m 644 $(BUILD)/libsembed.a $(DESTDIR)$(LIBDIR)/libsembed.a
	install -m 755 $(BUILD)/$(SOFILE) $(DESTDIR)$(LIBDIR)/$(SOFILE)
	ln -sf $(SOFILE) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libsembed.so
	install -m 644 include/sembed.h $(DESTDIR)$(INCLUDEDIR)/sembed.h
	install -m 644 $(BUILD)/sembed.1 $(DESTDIR)$(MANDIR)/man1/sembed.1
	printf '%s\n' 'prefix=$(PREFIX)' 'exec_prefix=$${prefix}' \
	  'libdir=$(patsubst $(PREFIX)/%,$${exec_prefix}/%,$(LIBDIR))' \
	  'includedir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))' '' \
	  'Name: sembed' 'Description: sentence-transformers, rebuilt in C' 'Version: $(VERSION)' \
	  'Requires.private: jansson libutf8proc sqlite3 zlib libcurl libcrypto' \
	  'Libs: -L$${libdir} -lsembed' 'Libs.private: -lm -pthread' 'Cflags: -I$${includedir}' \
	  >$(DESTDIR)$(PCDIR)/sembed.pc
	@if [ -z "$(DESTDIR)" ]; then ldconfig 2>/dev/null || /sbin/ldconfig 2>/dev/null || \
	  echo "note: run ldconfig as root, so that programs linked with -lsembed find $(LIBDIR)/$(SONAME)"; fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/sembed $(DESTDIR)$(LIBDIR)/libsembed.a $(DESTDIR)$(LIBDIR)/$(SOFILE) \
	  $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libsembed.so $(DESTDIR)$(INCLUDEDIR)/sembed.h \
	  $(DESTDIR)$(PCDIR)/sembed.pc $(DESTDIR)$(MANDIR)/man1/sembed.1
	@if [ -z "$(DESTDIR)" ]; then ldconfig 2>/dev/null || /sbin/ldconfig 2>/dev/null || true; fi

# Tests link the static library's objects directly so they can reach the
# private headers (src/*.h) for white-box checks.
$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc -o $@ $< $(LIB_OBJ) $(LDLIBS)

# test_serve_float checks the server's float writer, program code outside
# the library: linked from its source.
$(BUILD)/tests/test_serve_float: tests/test_serve_float.c src/serve_float.c src/serve.h tests/test.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc -o $@ tests/test_serve_float.c src/serve_float.c $(LDLIBS)

$(BUILD)/tests/test_header_c: tests/test_header.c include/sembed.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -Iinclude -c tests/test_header.c -o $@.o && touch $@

$(BUILD)/tests/test_header_cpp: tests/test_header.c include/sembed.h
	@mkdir -p $(dir $@)
	g++ -x c++ -std=c++11 -Wall -Wextra -Werror -Iinclude -c tests/test_header.c -o $@.o && touch $@

# test-bins: everything the suite runs, built (check, asan and tsan build
# them with -j$(JOBS) first, then run the tests one at a time: the build is
# most of a sanitizer pass's time on a small machine, the tests are timed)
test-bins: all $(TEST_BIN) $(BUILD)/tests/test_header_c $(BUILD)/tests/test_header_cpp $(BUILD)/tests/fuzz_replay

test: test-bins
	TESTS="$(TESTS)" CLI_TESTS="$(filter-out $(SKIP),$(CLI_TESTS))" SH_TESTS="$(filter-out $(SKIP),$(SH_TESTS))" \
	  SEMBED=$(BUILD)/sembed BUILD=$(BUILD) \
	  CC="$(CC)" SAN="$(SAN)" sh tests/run.sh

check:
	$(MAKE) -j$(JOBS) test-bins
	$(MAKE) test
	$(MAKE) asan
	$(MAKE) tsan

ASAN_VARS := BUILD=build-asan SAN="-fsanitize=address,undefined" \
	  OPT="-O1 -g -fno-omit-frame-pointer -fno-sanitize-recover=all"
asan:
	$(MAKE) -j$(JOBS) $(ASAN_VARS) test-bins
	$(MAKE) $(ASAN_VARS) SKIP="$(SAN_SKIP)" test

ubsan: asan

# The server's concurrent tests (test_serve's batching, test_serve_index's
# writer and readers) run against a TSan build of the binary too.
tsan:
	$(MAKE) -j$(JOBS) BUILD=build-tsan SAN="-fsanitize=thread" OPT="-O1 -g" $(TSAN_TESTS:%=build-tsan/tests/%) build-tsan/sembed
	for t in $(TSAN_TESTS); do build-tsan/tests/$$t || exit 1; done
	/usr/bin/python3 tests/test_serve.py build-tsan/sembed --concurrency-only
	/usr/bin/python3 tests/test_serve_index.py build-tsan/sembed --concurrency-only

# The Python package (python/): ships the shared library inside it, so that
# `pip install ./python` needs nothing else (see python/pyproject.toml).
.PHONY: python
python: $(BUILD)/$(SOFILE)
	cp $(BUILD)/$(SOFILE) python/sembed/$(SONAME)

# Fuzzing: libFuzzer targets (clang); their corpus is replayed by
# fuzz_replay in the normal suite (tests/fuzz/replay.c has a table of the
# targets' entry points).
$(BUILD)/tests/fuzz_replay: tests/fuzz/replay.c $(FUZZ_SRC) $(FUZZ_PROG_SRC) $(wildcard src/serve*.h) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc -o $@ tests/fuzz/replay.c $(FUZZ_SRC) $(FUZZ_PROG_SRC) $(LIB_OBJ) $(LDLIBS)

fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang SAN="-fsanitize=address,undefined,fuzzer-no-link" OPT="-O1 -g" build-fuzz/libsembed.a
	for t in $(FUZZ_TARGETS); do \
	  clang -std=c11 -D_GNU_SOURCE -DSE_FUZZ_MAIN -O1 -g -fsanitize=address,undefined,fuzzer -Iinclude -Isrc \
	    -o build-fuzz/$$t tests/fuzz/$$t.c $(FUZZ_PROG_SRC) build-fuzz/libsembed.a $(LIBS) || exit 1; \
	  mkdir -p build-fuzz/corpus-$$t; \
	  build-fuzz/$$t -max_total_time=$${FUZZ_SECONDS:-60} build-fuzz/corpus-$$t tests/fuzz/corpus/$$t || exit 1; \
	done

bench: all $(BUILD)/bench/bench_encode
	$(BUILD)/bench/bench_encode

# the load benchmark of `sembed serve` (bench/serve/README.md); BENCH_SERVE_ARGS=--quick: a minute
bench-serve: all
	sh bench/serve/run.sh $(BENCH_SERVE_ARGS)

$(BUILD)/bench/bench_encode: bench/bench_encode.c $(BUILD)/libsembed.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc -o $@ $< $(BUILD)/libsembed.a $(LDLIBS)

# the training step benchmark's driver over the engine (bench/train/README.md)
$(BUILD)/bench/bench_train: bench/train/bench_train.c $(BUILD)/libsembed.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc -o $@ $< $(BUILD)/libsembed.a $(LDLIBS)

clean:
	rm -rf build build-asan build-tsan build-fuzz

# `make print-TESTS` prints a variable (the shell tests read the lists).
print-%:
	@echo $($*)
