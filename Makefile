PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install system-deps eval bench bench-worker clean

$(BIN)/dedup: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,worker,web]'
	touch $@

install: $(BIN)/dedup

## Cluster the seed articles and print each story with what every variant adds.
demo: install
	$(BIN)/dedup cluster seeds/

## Install redis-server if missing, then run the whole test suite.
test: install system-deps
	$(BIN)/python -m pytest -q

system-deps:
	@./scripts/system-deps.sh

## Quality on the labelled data, stories and events (read from ../shared/data, never copied here).
eval: install
	$(BIN)/dedup eval ../shared/data/meter-dev.jsonl
	$(BIN)/dedup eval ../shared/data/meter-dev.jsonl ../shared/data/bbc-distractors.jsonl
	$(BIN)/dedup eval ../shared/data/semeval-dev-articles.jsonl --pairs ../shared/data/semeval-dev-pairs.jsonl
	$(BIN)/dedup eval --level event ../shared/data/meter-dev.jsonl ../shared/data/bbc-distractors.jsonl
	$(BIN)/dedup eval --level event ../shared/data/semeval-dev-articles.jsonl --pairs ../shared/data/semeval-dev-pairs.jsonl
	$(BIN)/dedup eval --novelty ../shared/data/novelty-dev-gold.json ../shared/data/novelty-dev.jsonl

bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/signing.py

## Stream worker: messages/s with 1 and 2 workers, p50/p99 enqueue-to-assignment latency.
bench-worker: install system-deps
	$(BIN)/python bench/worker.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
