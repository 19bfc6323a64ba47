# The two commands of the README: `make demo` and `make test`.
CARGO ?= cargo
LOCAL := $(CARGO) run --release --locked -p inventory-local --bin inventory-local --

.PHONY: demo dev test lint unit

## Run the whole pipeline locally (embedded AWS emulators, no account) and verify the result.
demo:
	$(LOCAL) demo --port 0 --events 20000 --products 200 --skew zipf:1.1 --rate 2000 \
		--duplicates 0.05 --malformed 0.01 --invalid 0.01

## Keep the local stack running (prints the AWS_ENDPOINT_URL to use) until Ctrl-C.
dev:
	$(LOCAL) up

## Every check CI runs: formatting, lints, all tests.
test: lint unit

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --locked --workspace
