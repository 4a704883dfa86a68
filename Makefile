# Two commands for a newcomer on Debian 12: `make run` and `make test`.
BUILD      ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= $(shell nproc)

FUZZ_SECONDS ?= 60

.PHONY: all deps configure build run test check-asan fuzz bench clean

all: build

deps:
	scripts/install-deps

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/cli/ufork hello --bind 127.0.0.1:7777

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j 2

check-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DUFORK_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)
	ctest --test-dir build-asan --output-on-failure -j 2

fuzz: deps
	tests/fuzz/run.sh $(CURDIR) $(CURDIR)/build-fuzz $(FUZZ_SECONDS)

bench: build
	$(BUILD)/bench/ufork_bench

clean:
	rm -rf $(BUILD) build-asan build-fuzz
