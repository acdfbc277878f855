# The two front doors: `make demo` and `make test`. Both set up what is missing first.
SHELL := /bin/bash
DEMO_FIRST ?= 2026-01-01
DEMO_BEFORE ?= 2026-01-02
DEMO_DATE ?= 2026-01-03

.PHONY: setup demo test

setup:
	@bash setup/bootstrap.sh

# The history before the demo date in one application (backfill), then the demo date's nightly.
demo: setup
	./submit.sh generate --date $(DEMO_DATE)
	./submit.sh backfill --from $(DEMO_FIRST) --to $(DEMO_BEFORE)
	./submit.sh nightly --date $(DEMO_DATE)
	./submit.sh tables
	./submit.sh preview --date $(DEMO_DATE)

test: setup
	.venv/bin/python -m pytest tests
