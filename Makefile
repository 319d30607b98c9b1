# make demo: set everything up and run the engine over a generated sample archive.
# make test: set everything up and run the tests through tox.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
SAMPLE ?= sample-archive
DEMO_OUT ?= demo-out
PAGES ?= 24

.PHONY: demo test bench tesseract clean

$(BIN)/pagemill: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "pagemill needs Python 3.11 or newer: $(PYTHON) is $$($(PYTHON) --version 2>&1); run make PYTHON=python3.11"; exit 2; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "$(PYTHON) cannot make virtual environments: apt-get install -y python3-venv"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' tox
	touch $@

tesseract:
	@command -v tesseract >/dev/null 2>&1 || { \
	  echo "installing tesseract-ocr"; \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq tesseract-ocr; }

demo: $(BIN)/pagemill tesseract
	$(BIN)/pagemill sample $(SAMPLE) --pages $(PAGES)
	rm -rf $(DEMO_OUT)
	# the sample holds one broken file on purpose, so a partial run (exit 1) is the expected end
	$(BIN)/pagemill run $(SAMPLE)/scans --out $(DEMO_OUT); status=$$?; [ $$status -le 1 ]
	@echo "results: $(DEMO_OUT)/results.csv, $(DEMO_OUT)/review.csv, $(DEMO_OUT)/report.json"

test: $(BIN)/pagemill tesseract
	$(BIN)/tox

bench: $(BIN)/pagemill tesseract
	$(BIN)/tox -e bench

clean:
	rm -rf $(VENV) .tox $(SAMPLE) $(DEMO_OUT)
