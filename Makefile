# The README's two commands are `make demo` and `make test`; the rest are their parts.
CARGO ?= cargo
LOCAL := $(CARGO) run --release --locked -p inventory-local --bin inventory-local --

.PHONY: demo dev console test lint unit browser

## Build everything, run the whole pipeline locally (embedded AWS emulators, no account),
## verify DynamoDB against the generator's model, then serve the console until Ctrl-C.
demo: console
	$(LOCAL) demo --port 0 --events 20000 --products 200 --skew zipf:1.1 --rate 2000 \
		--duplicates 0.05 --malformed 0.01 --invalid 0.01 --serve

## Keep the local stack, API and console running until Ctrl-C (prints the URLs and token).
dev: console
	$(LOCAL) up

## The Leptos console as static files in target/site (what S3 serves).
console:
	./scripts/build-console.sh target/site

## Every check CI runs: formatting, lints, all tests including the real-browser test.
test: lint console
	BROWSER_TEST=required $(CARGO) test --locked --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) clippy --locked -p inventory-console --target wasm32-unknown-unknown -- -D warnings
