# entropylab: `make demo` and `make test` work on a fresh machine.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
EXTRAS  ?= dev,notebooks,bench,trl

.PHONY: demo test test-slow venv lint figures bench clean chromium

$(STAMP): pyproject.toml constraints.txt
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/entropylab demo

# The token explorer is tested in a real headless browser: Debian's chromium, installed when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (Debian package) for the browser tests"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing and cannot be installed here: browser tests will fail"; fi; }

test: $(STAMP) chromium
	$(VPY) -m pytest -q -p no:cacheprovider -m "not recipe"

# The whole pre-training recipes (several minutes each on 2 cores): not part of `make test`.
test-slow: $(STAMP)
	$(VPY) -m pytest -q -p no:cacheprovider -m recipe

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Every figure of figures/; `make figures ONLY=sampling_frontier,pass_at_k` draws only those (and computes only
# what they need).
figures: $(STAMP)
	$(VENV)/bin/entropylab figures --out figures $(if $(ONLY),--only $(ONLY))

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(VPY) $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
