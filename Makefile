# The README's two commands are `make demo` and `make test`; the rest are their parts.
CARGO ?= cargo
# The local stack's binary as BUILD_LOCAL (release) and BUILD_LOCAL_FAST (the `local`
# profile, which compiles in about half the time) build it. Run directly, not through
# `cargo run`, whose feature unification differs from the build's and recompiles crates.
LOCAL = $${CARGO_TARGET_DIR:-target}/release/inventory-local
LOCAL_FAST = $${CARGO_TARGET_DIR:-target}/local/inventory-local
# The local stack runs the processor as Lambda does, from its own binary, which it finds next
# to its own (same profile directory); these build both.
BUILD_LOCAL_FAST := $(CARGO) build --profile local --locked -p inventory-local --bin inventory-local -p inventory-processor --bin processor
BUILD_LOCAL := $(CARGO) build --release --locked -p inventory-local --bin inventory-local -p inventory-processor --bin processor
# Operator tools (replay, soak), run as built (as LOCAL); they run the processor binary
# built next to them.
OPS = $${CARGO_TARGET_DIR:-target}/release/inventory-ops

.PHONY: demo dev console test lint infra-lint fuzz soak bench deploy deploy-dry-run destroy diagrams setup setup-test screenshot

## The pinned toolchain (rustup 1.28+ does not install it on first use), and for the tests
## Chromium, ChromeDriver and python3-venv: scripts/setup.sh.
setup:
	./scripts/setup.sh
setup-test:
	./scripts/setup.sh test

## Build everything, run the whole pipeline locally (embedded AWS emulators, no account),
## verify DynamoDB against the generator's model, then serve the console until Ctrl-C.
## The local stack and the processor binary are built first (the `local` profile) and the
## console in the background at a lower priority while the demo runs, so the first verdict
## waits only for the stack; the console appears at the demo's URL once built (log:
## target/console-build.log).
demo: setup
	$(BUILD_LOCAL_FAST)
	@mkdir -p target; echo "building the console in the background (target/console-build.log)…"; \
	nice -n 10 ./scripts/build-console.sh target/site >target/console-build.log 2>&1 & console=$$!; \
	$(LOCAL_FAST) demo --port 0 --events 20000 --products 200 --skew zipf:1.1 --rate 2000 \
		--duplicates 0.05 --malformed 0.01 --invalid 0.01 --serve; status=$$?; \
	wait $$console || echo "the console did not build: see target/console-build.log"; \
	exit $$status

## Keep the local stack, API and console running until Ctrl-C (prints the URLs and token).
dev: setup console
	$(BUILD_LOCAL_FAST)
	$(LOCAL_FAST) up

## The Leptos console as static files in target/site (what S3 serves).
console: setup
	./scripts/build-console.sh target/site

## Every check CI runs: formatting, lints, the template's lint, a bounded fuzz run, all
## tests including the fault suite and the real-browser test, then the API's contract
## (Schemathesis against the served OpenAPI document: scripts/api-contract.sh).
test: setup-test lint infra-lint console fuzz
	BROWSER_TEST=required $(CARGO) test --locked --workspace -- --include-ignored
	./scripts/api-contract.sh

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) clippy --locked -p inventory-console --target wasm32-unknown-unknown -- -D warnings

## Fuzz record decoding and validation for FUZZ_SECONDS (cargo-fuzz, pinned nightly).
FUZZ_SECONDS ?= 30
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./scripts/fuzz.sh

## Sustained load for SOAK (default 10m) at SOAK_RATE events/s, printing lag and memory
## every 5 s, then the verdict. Not part of `make test`.
SOAK ?= 10m
SOAK_RATE ?= 2000
soak:
	$(CARGO) build --release --locked -p inventory-ops --bin inventory-ops -p inventory-processor --bin processor
	$(OPS) soak --port 0 --duration $(SOAK) --rate $(SOAK_RATE)

## The benchmarks behind docs/performance.md (run on an otherwise idle machine): the
## processor's pure path (criterion), the whole local pipeline, the processor's start-up.
bench:
	$(CARGO) bench --locked -p inventory-processor --bench pure_path -- --warm-up-time 1 --measurement-time 4
	$(CARGO) build --release --locked -p inventory-processor -p inventory-bench --bin inventory-bench --bin processor
	$${CARGO_TARGET_DIR:-target}/release/inventory-bench run --drain-events 60000
	$${CARGO_TARGET_DIR:-target}/release/inventory-bench startup --runs 30

## cfn-lint, checkov, sam validate, offline package + SAM transform + IAM check of infra/.
infra-lint:
	./scripts/infra-lint.sh

## Build the arm64 Lambda zips and the console, lint and package the template, deploy the
## stack with SAM, upload the console and print the URLs (needs AWS credentials).
deploy:
	./scripts/deploy.sh

## Every deploy step up to the upload, without AWS: zips built and under 5 MB, console
## built, template linted, packaged and transformed.
deploy-dry-run:
	./scripts/deploy.sh --dry-run

## Empty the console bucket and delete the stack of $(STAGE) (default dev).
destroy:
	./scripts/destroy.sh

## The README's screenshot (docs/console.png): headless Chromium after a demo-sized simulation.
screenshot:
	./scripts/screenshot.sh

## Render docs/*.mmd to SVG (mermaid-cli from npm, pinned in tools/diagrams; Debian's chromium).
diagrams:
	./scripts/render-diagrams.sh
