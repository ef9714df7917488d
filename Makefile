# The two commands of the README: `make demo` and `make test`. Both do their own set-up.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp
NAME   ?= smoke
RUNS   ?= runs

.PHONY: setup demo test test-fast bench submit clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup_venv.sh
	bash scripts/setup_venv.sh
	touch $(STAMP)

# The main job on the bundled corpus: tokenizer + shards, then the smoke pipeline (train, quantise, evaluate).
# A second `make demo` replaces the previous demo run (--replace touches only a folder holding a run).
demo: setup
	$(PY) -m golf data demo --out $(RUNS)/demo-data
	$(PY) -m golf train --preset smoke --data $(RUNS)/demo-data --out $(RUNS)/demo --replace

test: setup
	$(PY) -m pytest -q -p no:cacheprovider

bench: setup
	$(PY) -m bench

submit: setup
	$(PY) -m golf submit --name $(NAME)

clean:
	rm -rf $(RUNS) .pytest_cache
