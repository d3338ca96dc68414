# Short task list. Everything here is also a plain command in README.md.
PYTHON ?= python

.PHONY: install proto compile test test-twin lint bench bench-save bench-guard dist check

install:            ## set up (editable install, builds the Cython codec)
	$(PYTHON) -m pip install -e ".[dev]"

proto:              ## regenerate src/mxgateway/generated/ from proto/
	$(PYTHON) scripts/generate_proto.py

compile:            ## rebuild the Cython extension in place after editing ext/
	$(PYTHON) setup.py build_ext --inplace

test:               ## the test suite, compiled codec then pure-Python twin
	$(PYTHON) -m pytest
	MXGATEWAY_NO_EXTENSIONS=1 MXGATEWAY_TEST_LOOP=asyncio $(PYTHON) -m pytest -m "not once"

lint:               ## ruff and mypy
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

bench:              ## benchmarks (pytest-benchmark)
	$(PYTHON) -m pytest bench --benchmark-only --benchmark-columns=min,median,mean,ops,rounds

bench-save:         ## the ratio benchmarks, best of three runs, as this machine's baseline
	$(PYTHON) -m bench.guard --save

bench-guard:        ## the ratio benchmarks compared with the baseline (CI's guard)
	$(PYTHON) -m bench.guard

dist:               ## sdist (with the generated C) and a wheel for this machine, in dist/
	$(PYTHON) -m build -o dist .

check: lint test    ## what CI runs, but the regeneration check
