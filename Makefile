# The two front doors: `make demo` and `make test`. Both set up what is missing first.
SHELL := /bin/bash
DEMO_FIRST ?= 2026-01-01
DEMO_BEFORE ?= 2026-01-02
DEMO_DATE ?= 2026-01-03

.PHONY: setup demo test

setup:
	@bash setup/bootstrap.sh

# In one Spark application (--then): the logs, the history before the demo date (backfill), the
# demo date's nightly, then what the warehouse holds and the lists of that night.
demo: setup
	./submit.sh generate --date $(DEMO_DATE) \
	  --then backfill --from $(DEMO_FIRST) --to $(DEMO_BEFORE) \
	  --then nightly --date $(DEMO_DATE) \
	  --then tables \
	  --then preview --date $(DEMO_DATE)

test: setup
	.venv/bin/python -m pytest tests
