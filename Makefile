# The two front doors: `make demo` and `make test`. Both set up what is missing first.
SHELL := /bin/bash
DEMO_DATE ?= 2026-01-03
DEMO_DAYS ?= 2026-01-01 2026-01-02 2026-01-03

.PHONY: setup demo test

setup:
	@bash setup/bootstrap.sh

demo: setup
	./submit.sh generate --date $(DEMO_DATE)
	@for d in $(DEMO_DAYS); do ./submit.sh nightly --date $$d || exit $$?; done
	./submit.sh tables
	./submit.sh preview --date $(DEMO_DATE)

test: setup
	.venv/bin/python -m pytest tests
