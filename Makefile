# The front door: `make run` serves apps/hello, `make test` runs every suite.
# Both first install any Debian package the build needs (as root, idempotent).

PREFIX    ?= /usr/local
BUILD     ?= build
ASAN      ?= build-asan
JOBS      ?= $(shell nproc)
PORT      ?= 8888

# What the build and the tests need from Debian (DESIGN.md §8).
PACKAGES = cmake pkg-config gcc make libluajit2-5.1-dev luajit2 libevent-dev \
           node-llhttp libssl-dev zlib1g-dev libxxhash-dev lua-cjson \
           lua-busted lua-filesystem curl python3 clang libclang-rt-14-dev \
           nginx libnginx-mod-http-lua openssl lua-check pandoc clang-format \
           chromium libhiredis-dev redis-server redis-tools haproxy

.PHONY: all deps build asan run test test-c test-lua test-integration \
        test-asan install clean docs

all: build

deps:
	@missing=$$(for p in $(PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root to install packages" >&2; exit 1; fi; \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(BUILD)/Makefile: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: deps $(BUILD)/Makefile
	@$(MAKE) --no-print-directory -C $(BUILD) -j$(JOBS)

$(ASAN)/Makefile: CMakeLists.txt | deps
	cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DGUST_SANITIZE=ON >/dev/null

asan: deps $(ASAN)/Makefile
	@$(MAKE) --no-print-directory -C $(ASAN) -j$(JOBS)

run: build
	$(BUILD)/gust --port $(PORT) apps/hello/app.lua

# The browser tests' driver (tests/browser): puppeteer-core and what it
# needs, from npm, exactly as its package-lock.json pins them. Node.js and
# npm come from Debian when the machine has no npm (not in PACKAGES: a
# NodeSource nodejs brings its own npm and conflicts with Debian's).
BROWSER_NPM = tests/browser/node_modules/.package-lock.json

$(BROWSER_NPM): tests/browser/package.json tests/browser/package-lock.json | deps
	@command -v npm >/dev/null || { \
	  echo "installing: nodejs npm"; \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root to install packages" >&2; exit 1; fi; \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
	@# One retry: the registry has once answered a pinned version as missing
	@# (a stale index) just after serving it.
	npm ci --prefix tests/browser --no-audit --no-fund || \
	  { sleep 5; npm ci --prefix tests/browser --no-audit --no-fund; }

test: build asan $(BROWSER_NPM)
	@tests/run-all $(BUILD) $(ASAN)

# The user's guide and the reference as HTML, and the man page gust(1),
# into $(BUILD)/docs (pandoc).
docs: deps
	@docs/build.sh $(BUILD)

install: build docs
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(ASAN)
