# Two entry points (see README): `make demo` and `make test`. Both set up first.
PY ?= python3

.PHONY: setup setup-test demo test test-fast wheel-test bench gallery fmt fmt-check

# TeX for tests/test_latex.py (TikZ figures + minted listing; the smallest Debian set that has
# pdflatex, tikz, minted and standalone); node + vscode-textmate for tests/test_vscode.py.
TEX_PACKAGES = texlive-latex-base texlive-pictures texlive-latex-extra

setup:
	@command -v dot >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq graphviz >/dev/null; }
	$(PY) -m pip install -q -c .ci/constraints.txt -e '.[test]'

# what only the tests need: TeX (tests/test_latex.py) and vscode-textmate (tests/test_vscode.py)
setup-test: setup
	@{ command -v pdflatex && kpsewhich tikz.sty minted.sty standalone.sty; } >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEX_PACKAGES) >/dev/null; }
	@command -v npm >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
	@test -d editors/vscode/node_modules/vscode-textmate || npm ci --prefix editors/vscode --no-audit --no-fund --silent

demo: setup
	mkdir -p build
	resdsl check examples/cifar_resnet.res
	resdsl summary examples/cifar_resnet.res
	resdsl compile examples/cifar_resnet.res --target torch -o build/resnet20.py
	resdsl compile examples/cifar_resnet.res --target onnx -o build/resnet20.onnx
	resdsl render examples/cifar_resnet.res -o build/resnet20.svg
	$(PY) -c "import sys; sys.path.insert(0, 'build'); import torch, resnet20; m = resnet20.resnet20(seed=0).eval(); print('forward:', tuple(m(torch.randn(2, 3, 32, 32)).shape))"

test: setup-test
	$(PY) -m pytest -n 2 -q -p no:cacheprovider
	$(PY) docs/gallery/build.py --check
	$(PY) -m resdsl.cli fmt --check stdlib examples

# the fast loop while working: everything but the tests marked slow (full-size parity, fuzzing, ...)
test-fast:
	$(PY) -m pytest -n 2 -q -p no:cacheprovider -m "not slow"

# build the wheel, install it alone into a fresh venv, run the main job from an empty folder
wheel-test:
	PY=$(PY) .ci/wheel_test.sh

gallery: setup
	$(PY) docs/gallery/build.py

bench: setup
	$(PY) benchmarks/compile_time.py
	$(PY) benchmarks/onnx_export.py
	$(PY) benchmarks/optimize.py
	$(PY) benchmarks/render.py
	$(PY) benchmarks/startup.py

# `make fmt` rewrites every .res file in the canonical style; `make fmt-check` fails if one is not
fmt:
	$(PY) -m resdsl.cli fmt stdlib examples

fmt-check:
	$(PY) -m resdsl.cli fmt --check stdlib examples
