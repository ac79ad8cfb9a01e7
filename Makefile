# Two entry points (see README): `make demo` and `make test`. Both set up first.
#
# Everything runs in a project virtual environment, .venv/, made from $(PY) on first use and
# reused after: a Python that refuses pip installs (PEP 668's EXTERNALLY-MANAGED: Debian's and
# Ubuntu's own python3) works as well as a user-installed one. Inside an active virtual
# environment ($$VIRTUAL_ENV) that one is used as it is. `make test PY=/usr/bin/python3` picks
# the interpreter the environment is made from; `make demo VENV=/tmp/v` another place for it.
PY ?= python3
VENV ?= .venv
ifneq ($(strip $(VIRTUAL_ENV)),)
VPY := $(VIRTUAL_ENV)/bin/python
MADE_VENV :=
else
VPY := $(VENV)/bin/python
MADE_VENV := $(VPY)
endif
RESDSL := $(dir $(VPY))resdsl

.PHONY: setup setup-test demo test test-fast wheel-test bench gallery fmt fmt-check

# the environment itself; Debian's python3 makes one only with python3-venv (ensurepip), which
# is installed when missing, as graphviz is below
ifneq ($(MADE_VENV),)
$(MADE_VENV):
	@$(PY) -m venv $(VENV) >/dev/null 2>&1 || { \
		rm -rf $(VENV); v=$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
		echo "$(PY) -m venv needs python$$v-venv: installing it"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python$$v-venv >/dev/null && \
		$(PY) -m venv $(VENV); }
endif

setup: $(MADE_VENV)
	@command -v dot >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq graphviz >/dev/null; }
	$(VPY) -m pip install -q -c .ci/constraints.txt -e '.[test]'

# TeX for tests/test_latex.py (TikZ figures + minted listing; the smallest Debian set that has
# pdflatex, tikz, minted and standalone); node + vscode-textmate for tests/test_vscode.py;
# Debian's chromium driven by playwright for the browser tests.
TEX_PACKAGES = texlive-latex-base texlive-pictures texlive-latex-extra

# what only the tests need (each step a no-op when it is there)
setup-test: setup
	@{ command -v pdflatex && kpsewhich tikz.sty minted.sty standalone.sty; } >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEX_PACKAGES) >/dev/null; }
	@command -v npm >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
	@test -d editors/vscode/node_modules/vscode-textmate -a -d editors/vscode/node_modules/vscode-languageclient || npm ci --prefix editors/vscode --no-audit --no-fund --silent
	@command -v chromium >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@$(VPY) -c 'import playwright' 2>/dev/null || $(VPY) -m pip install -q -c .ci/constraints.txt playwright

demo: setup
	mkdir -p build
	$(RESDSL) check examples/cifar_resnet.res
	$(RESDSL) summary examples/cifar_resnet.res
	$(RESDSL) compile examples/cifar_resnet.res --target torch -o build/resnet20.py
	$(RESDSL) compile examples/cifar_resnet.res --target onnx -o build/resnet20.onnx
	$(RESDSL) render examples/cifar_resnet.res -o build/resnet20.svg
	$(VPY) -c "import sys; sys.path.insert(0, 'build'); import torch, resnet20; m = resnet20.resnet20(seed=0).eval(); print('forward:', tuple(m(torch.randn(2, 3, 32, 32)).shape))"

# the environment's bin/ first on PATH, as if activated: tests run pygmentize, resdsl, torchrun
test: setup-test
	PATH="$(abspath $(dir $(VPY))):$$PATH" $(VPY) -m pytest -n 2 -q -p no:cacheprovider
	$(VPY) docs/gallery/build.py --check
	$(VPY) -m resdsl.cli fmt --check stdlib examples

# the fast loop while working: everything but the tests marked slow (full-size parity, fuzzing, ...)
test-fast: setup-test
	$(VPY) -m pytest -n 2 -q -p no:cacheprovider -m "not slow"

# build the wheel, install it alone into a fresh venv, run the main job and every command and
# Python block of the docs from an empty folder (.ci/docs_run.py)
wheel-test: setup-test
	PY=$(VPY) .ci/wheel_test.sh

gallery: setup
	$(VPY) docs/gallery/build.py

bench: setup
	$(VPY) benchmarks/compile_time.py
	$(VPY) benchmarks/onnx_export.py
	$(VPY) benchmarks/optimize.py
	$(VPY) benchmarks/render.py
	$(VPY) benchmarks/startup.py

# `make fmt` rewrites every .res file in the canonical style; `make fmt-check` fails if one is not
fmt: setup
	$(VPY) -m resdsl.cli fmt stdlib examples

fmt-check: setup
	$(VPY) -m resdsl.cli fmt --check stdlib examples
