# Two commands: `make run` serves the chat, `make test` proves it.
# Each installs what is missing first (pinned versions, registries only).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

CARGO_LEPTOS_VERSION := 0.3.10
WASM_BINDGEN_VERSION := 0.2.130

# cargo-leptos finds wasm-bindgen and wasm-opt on PATH (it would try to
# download them otherwise, which fails offline).
export PATH := $(CURDIR)/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)

E2E_PORT ?= 3100
# The load runs' own ports, clear of the browser tests' and of `make run`'s.
BENCH_PORT ?= 3200
SMOKE_PORT ?= 3190

.PHONY: run dev test build tools wasm-target cargo-leptos wasm-bindgen node-modules chromium assets \
        services fmt-check clippy rust-test e2e fuzz bench bench-nodes bench-smoke clean

run: tools assets
	rm -f target/site/pkg/*.br target/site/pkg/*.gz
	cargo leptos build --release
	node precompress.mjs target/site target/release/hash.txt
	mkdir -p data
	LEPTOS_SITE_ROOT=target/site target/release/server

# Compressed copies of a release build would shadow the debug files.
dev: tools assets
	rm -f target/site/pkg/*.br target/site/pkg/*.gz
	cargo leptos watch

# Compressed copies of an older build would shadow the new files: gone
# before the build, written again after it.
build: tools assets
	rm -f target/site/pkg/*.br target/site/pkg/*.gz
	cargo leptos build --release
	node precompress.mjs target/site target/release/hash.txt

test: tools assets services fmt-check clippy rust-test build bench-smoke e2e

fmt-check:
	cargo fmt --all --check

# One side at a time: a workspace-wide build would switch `ssr` and `hydrate` on together.
clippy:
	cargo clippy -p app -p server --features app/ssr --all-targets -- -D warnings
	cargo clippy -p app -p frontend --features app/hydrate --target wasm32-unknown-unknown -- -D warnings

# The store tests use the machine's PostgreSQL (a schema of their own each).
rust-test: services
	cargo test -p app --features ssr
	cargo test -p server

# The property tests, far longer than in `make test` (stable Rust, no nightly needed).
fuzz:
	PROPTEST_CASES=100000 cargo test --release -p server --lib -- names:: inbound:: search::

# The chat against a bare axum broadcast loop, same load, same machine, one
# run (about 5 minutes on 2 cores with warm builds; not part of `make test`).
# Table and JSON in target/bench/.
bench: build services
	cargo build --release -p server --examples
	BENCH_PORT=$(BENCH_PORT) bench/run.sh full

# Fan-out on one server and on two sharing PostgreSQL and Redis (a part of
# `make bench`, alone).
bench-nodes: build services
	cargo build --release -p server --examples
	BENCH_PORT=$(BENCH_PORT) bench/run.sh nodes

# Five seconds of fan-out against the freshly built server: fails if a message
# or an ack is lost. The generator's debug build is enough for five users.
bench-smoke: build
	cargo build -p server --example chat-load
	BENCH_PORT=$(SMOKE_PORT) LOAD=target/debug/examples/chat-load bench/run.sh smoke

e2e: chromium services
	npx playwright test --config end2end/playwright.config.ts

# The machine's PostgreSQL and Redis: started when they are down, and a
# clear failure (never a skipped test) when one still cannot be reached.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 \
	  || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start \
	  || true
	@for _ in $$(seq 100); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 0.1; done; \
	  echo "PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1
	@redis-cli -h 127.0.0.1 -p 6379 ping > /dev/null 2>&1 \
	  || redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
	       --dir /var/lib/redis --logfile /var/log/redis/ci.log \
	  || true
	@for _ in $$(seq 100); do redis-cli -h 127.0.0.1 -p 6379 ping > /dev/null 2>&1 && exit 0; sleep 0.1; done; \
	  echo "Redis does not answer on 127.0.0.1:6379" >&2; exit 1

# --- tools -----------------------------------------------------------------

tools: wasm-target cargo-leptos wasm-bindgen node-modules

wasm-target:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

cargo-leptos:
	@cargo leptos --version 2>/dev/null | grep -qx "cargo-leptos $(CARGO_LEPTOS_VERSION)" \
	  || cargo install cargo-leptos --version $(CARGO_LEPTOS_VERSION) --locked

# Not --locked: that lock file names a yanked crate.
wasm-bindgen:
	@wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $(WASM_BINDGEN_VERSION)" \
	  || cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION)

node-modules: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

chromium:
	@test -x /usr/bin/chromium || { apt-get update && apt-get install -y chromium; }

# Bootstrap is served from the site itself (no CDN): copied from npm into public/.
assets: public/vendor/bootstrap.min.css

public/vendor/bootstrap.min.css: node_modules/.package-lock.json
	mkdir -p public/vendor
	cp node_modules/bootstrap/dist/css/bootstrap.min.css public/vendor/

clean:
	cargo clean
	rm -rf public/vendor end2end/test-results end2end/playwright-report
