# sembed - sentence-transformers, rebuilt in C.
#
#   make            build/libsembed.a, build/libsembed.so, build/sembed
#   make check      the README test command: `make test`, `make asan`, `make tsan`
#   make test       unit + reference + CLI tests (optimised build)
#   make asan       the whole suite under AddressSanitizer + UBSan
#   make tsan       the concurrency tests under ThreadSanitizer
#   make fuzz       libFuzzer targets (clang), run briefly on the corpus
#   make bench      throughput benchmark (prints JSON)
#
# Dependencies (Debian): libjansson-dev (JSON), libutf8proc-dev (Unicode data),
# libsqlite3-dev (the index file), zlib1g-dev (CRC-32; gzipped evaluation files).

CC       ?= cc
BUILD    ?= build
OPT      ?= -O2 -g
WARN     := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wcast-qual -Werror=implicit-function-declaration
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(EXTRA_CFLAGS) -Iinclude -fPIC -pthread
LIBS     := -ljansson -lutf8proc -lsqlite3 -lz -lm -pthread

LIB_SRC  := src/alloc.c src/error.c src/json.c src/unicode.c src/tokenizer.c src/tokenizer_wordpiece.c \
            src/safetensors.c src/model_folder.c src/model_bert.c src/pool.c src/kernels.c src/kernels_avx2.c src/kernels_avx512.c src/kernels_bf16.c src/kernels_bf16dp.c src/kernels_int8.c \
            src/threadpool.c src/encode.c src/similarity.c src/util.c src/chunk.c src/vec_dist.c src/vec_index.c src/index.c \
            src/convert_use.c src/model_use.c src/tokenizer_unigram.c src/torch_bin.c
LIB_OBJ  := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
CLI_SRC  := src/cli.c src/cli_io.c src/cli_eval.c src/cli_bench.c src/cli_index.c
CLI_OBJ  := $(CLI_SRC:src/%.c=$(BUILD)/obj/%.o)
TESTS    := test_unicode test_tokenizer test_safetensors test_kernels test_model test_threadpool test_similarity test_use test_index test_util test_torch_bin
TEST_BIN := $(TESTS:%=$(BUILD)/tests/%)

.PHONY: all test check asan ubsan tsan fuzz bench clean

all: $(BUILD)/libsembed.a $(BUILD)/libsembed.so $(BUILD)/sembed

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) include/sembed.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DSE_BUILD -fvisibility=hidden -c $< -o $@

$(BUILD)/obj/kernels_avx2.o: src/kernels_avx2.c $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DSE_BUILD -fvisibility=hidden -mavx2 -mfma -c $< -o $@

$(BUILD)/obj/kernels_avx512.o: src/kernels_avx512.c $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DSE_BUILD -fvisibility=hidden -mavx512f -mfma -c $< -o $@

$(BUILD)/obj/kernels_bf16.o: src/kernels_bf16.c $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DSE_BUILD -fvisibility=hidden -mavx512f -mfma -c $< -o $@

$(BUILD)/obj/kernels_bf16dp.o: src/kernels_bf16dp.c $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DSE_BUILD -fvisibility=hidden -mavx512f -mavx512bf16 -mfma -c $< -o $@

$(BUILD)/obj/kernels_int8.o: src/kernels_int8.c $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DSE_BUILD -fvisibility=hidden -mavx512f -mavx512bw -mavx512vnni -mfma -c $< -o $@

$(BUILD)/obj/cli%.o: src/cli%.c src/cli_io.h include/sembed.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/libsembed.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libsembed.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LIBS)

$(BUILD)/sembed: $(CLI_OBJ) $(BUILD)/libsembed.a
	$(CC) -o $@ $(CLI_OBJ) $(BUILD)/libsembed.a $(LIBS) -lz

# Tests link the static library's objects directly so they can reach the
# private headers (src/*.h) for white-box checks.
$(BUILD)/tests/%: tests/%.c tests/test.h $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc -o $@ $< $(LIB_OBJ) $(LIBS)

$(BUILD)/tests/test_header_c: tests/test_header.c include/sembed.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -Iinclude -c tests/test_header.c -o $@.o && touch $@

$(BUILD)/tests/test_header_cpp: tests/test_header.c include/sembed.h
	@mkdir -p $(dir $@)
	g++ -x c++ -std=c++11 -Wall -Wextra -Werror -Iinclude -c tests/test_header.c -o $@.o && touch $@

test: all $(TEST_BIN) $(BUILD)/tests/test_header_c $(BUILD)/tests/test_header_cpp $(BUILD)/tests/fuzz_replay
	SEMBED=$(BUILD)/sembed BUILD=$(BUILD) sh tests/run.sh

check: test asan tsan

asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  LIBS="-ljansson -lutf8proc -lsqlite3 -lz -lm -pthread -fsanitize=address,undefined" test

ubsan: asan

tsan:
	$(MAKE) BUILD=build-tsan OPT="-O1 -g -fsanitize=thread" LIBS="-ljansson -lutf8proc -lsqlite3 -lz -lm -pthread -fsanitize=thread" \
	  build-tsan/tests/test_threadpool build-tsan/tests/test_model build-tsan/tests/test_tokenizer build-tsan/tests/test_index
	build-tsan/tests/test_threadpool && build-tsan/tests/test_model && build-tsan/tests/test_tokenizer && build-tsan/tests/test_index

# Fuzzing: libFuzzer targets (clang); their corpus is replayed by
# fuzz_replay in the normal suite.
FUZZ_TARGETS := fuzz_safetensors fuzz_tokenizer fuzz_torch_bin
$(BUILD)/tests/fuzz_replay: tests/fuzz/fuzz_safetensors.c tests/fuzz/fuzz_tokenizer.c tests/fuzz/fuzz_torch_bin.c tests/fuzz/replay.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc -o $@ tests/fuzz/replay.c tests/fuzz/fuzz_safetensors.c tests/fuzz/fuzz_tokenizer.c tests/fuzz/fuzz_torch_bin.c $(LIB_OBJ) $(LIBS)

fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang OPT="-O1 -g -fsanitize=address,undefined,fuzzer-no-link" \
	  LIBS="-ljansson -lutf8proc -lsqlite3 -lz -lm -pthread" build-fuzz/libsembed.a
	for t in $(FUZZ_TARGETS); do \
	  clang -std=c11 -D_GNU_SOURCE -DSE_FUZZ_MAIN -O1 -g -fsanitize=address,undefined,fuzzer -Iinclude -Isrc \
	    -o build-fuzz/$$t tests/fuzz/$$t.c build-fuzz/libsembed.a -ljansson -lutf8proc -lsqlite3 -lz -lm -pthread || exit 1; \
	  mkdir -p build-fuzz/corpus-$$t; \
	  build-fuzz/$$t -max_total_time=$${FUZZ_SECONDS:-60} build-fuzz/corpus-$$t tests/fuzz/corpus/$$t || exit 1; \
	done

bench: all $(BUILD)/bench/bench_encode
	$(BUILD)/bench/bench_encode

$(BUILD)/bench/bench_encode: bench/bench_encode.c $(BUILD)/libsembed.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc -o $@ $< $(BUILD)/libsembed.a $(LIBS)

clean:
	rm -rf build build-asan build-tsan build-fuzz
