# Two commands for a newcomer on Debian 12: `make run` and `make test`.
BUILD      ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= $(shell nproc)

FUZZ_SECONDS ?= 60

.PHONY: all deps configure build run test tidy check-asan check-tsan fuzz bench clean deb deb-test

all: build

deps:
	scripts/install-deps

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/cli/ufork hello --bind 127.0.0.1:7777

# Every test, then clang-tidy, then every test again under ASan and UBSan,
# then, alone, the Debian packages installed on this machine and purged.
test: build
	ctest --test-dir $(BUILD) --output-on-failure -j 2
	$(MAKE) --no-print-directory tidy
	$(MAKE) --no-print-directory check-asan
	$(MAKE) --no-print-directory deb-test

# The Debian packages (cmake/package.cmake), in a build of their own laid out
# for /usr, with Debian's hardening flags (all of them; no LTO, no -g: the
# static libraries stay small): build-deb/*.deb, checked by lintian.
#   make deb && sudo apt install ./build-deb/*.deb
DEB_BUILD = build-deb
deb: deps
	export DEB_BUILD_MAINT_OPTIONS="hardening=+all optimize=-lto" DEB_CXXFLAGS_MAINT_STRIP=-g; \
	CXXFLAGS="$$(dpkg-buildflags --get CXXFLAGS) $$(dpkg-buildflags --get CPPFLAGS)" \
	LDFLAGS="$$(dpkg-buildflags --get LDFLAGS)" \
	cmake -S . -B $(DEB_BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DUFORK_DEBIAN=ON \
	  -DUFORK_BUILD_TESTS=OFF -DUFORK_BUILD_EXAMPLES=OFF
	cmake --build $(DEB_BUILD) -j $(JOBS)
	rm -f $(DEB_BUILD)/*.deb
	cd $(DEB_BUILD) && cpack -G DEB
	lintian --fail-on error,warning $(DEB_BUILD)/*.deb

# The packages installed with apt-get, used from /usr, purged (tests/package/deb-test.sh).
deb-test: deb
	tests/package/deb-test.sh $(CURDIR) $(DEB_BUILD)

# clang-tidy over our sources with .clang-tidy's checks; any finding fails.
tidy: build
	run-clang-tidy-14 -p $(BUILD) -j $(JOBS) -quiet '$(CURDIR)/(src|cli|python)/' > $(BUILD)/tidy.log 2>&1 \
	  || { grep -E '(error|warning):' $(BUILD)/tidy.log | sort -u | grep . || tail -20 $(BUILD)/tidy.log; \
	       echo "tidy: failed, above (all of it: $(BUILD)/tidy.log)"; exit 1; }
	@echo "tidy: clean"

# Every test under AddressSanitizer and UndefinedBehaviorSanitizer. ASan's
# reports go to files too, so that one from a process no test reads (a
# worker a test never hears from) fails the run as well; UBSan's go to
# stderr only, which the tests read (tests/support/harness.cpp).
ASAN_REPORTS = $(CURDIR)/build-asan/sanitizer-reports
check-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DUFORK_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)
	rm -rf $(ASAN_REPORTS) && mkdir -p $(ASAN_REPORTS)
	ASAN_OPTIONS=log_path=$(ASAN_REPORTS)/asan ctest --test-dir build-asan --output-on-failure -j 2; status=$$?; \
	if [ -n "$$(ls $(ASAN_REPORTS))" ]; then head -n 40 $(ASAN_REPORTS)/*; echo "check-asan: the reports above"; exit 1; fi; \
	exit $$status

# ThreadSanitizer on the threading of a host program: start(), stop(),
# status(), resize(), execute() and log() from the host's threads while the
# pool runs on its own. The workers are forked from that threaded process:
# TSan does not follow a fork of a threaded process (die_after_fork=0 lets
# them live; what runs in them is checked by check-asan, not here).
check-tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DUFORK_TSAN=ON -DUFORK_PYTHON=OFF
	cmake --build build-tsan -j $(JOBS) --target ufork_integration_tests
	TSAN_OPTIONS="halt_on_error=1 die_after_fork=0" build-tsan/tests/ufork_integration_tests \
	  --gtest_filter='arbiter_background.*:upgrade.is_refused_under_start'

fuzz: deps
	tests/fuzz/run.sh $(CURDIR) $(CURDIR)/build-fuzz $(FUZZ_SECONDS)

bench: build
	$(BUILD)/bench/ufork_bench

clean:
	rm -rf $(BUILD) build-asan build-fuzz
