# Deep Learning from Scratch: two commands for a new user.
#   make book   set up .venv and build the whole website, executing every cell
#   make test   set up .venv and run the test suite
# More: make chapter CH=book/<part>/<chapter>.md, make check-site, make check-colab, make clean

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JB_FLAGS ?= -W --keep-going

export DLSCRATCH_BOOK_BUILD := 1
export PYTHONHASHSEED := 0

.PHONY: book test chapter check-site check-colab export clean venv

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

export: $(STAMP)
	$(BIN)/python tools/vendor_mathjax.py
	$(BIN)/python tools/colab_export.py
	$(BIN)/python tools/cache_guard.py

book: export
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	$(BIN)/python tools/report_build.py

test: $(STAMP)
	$(BIN)/python -m pytest

# re-execute one chapter quickly (no cache, no site): make chapter CH=book/part1_foundations/ch01_pytorch_essentials.md
chapter: $(STAMP)
	@test -n "$(CH)" || (echo "usage: make chapter CH=book/<part>/<chapter>.md" && false)
	$(BIN)/python tools/run_chapter.py "$(CH)"

# checks on the built site: Colab links, a simulated Colab run, math and figures in Chromium
check-site: $(STAMP)
	$(BIN)/python tools/check_site.py

# every chapter's exported notebook, run in the simulated Colab (after make book; takes as long as the build)
check-colab: $(STAMP)
	$(BIN)/python tools/check_site.py --colab-all --skip-browser

clean:
	rm -rf _build _static/mathjax
	find book -name '*.ipynb' -delete
