# Two entry points (see README): `make demo` and `make test`. Both set up first.
PY ?= python3

.PHONY: setup demo test bench gallery

setup:
	@command -v dot >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq graphviz >/dev/null; }
	$(PY) -m pip install -q -e '.[test]'

demo: setup
	mkdir -p build
	resdsl check examples/cifar_resnet.res
	resdsl compile examples/cifar_resnet.res --target torch -o build/resnet20.py
	$(PY) -c "import sys; sys.path.insert(0, 'build'); import torch, resnet20; m = resnet20.resnet20(seed=0); print(m(torch.randn(2, 3, 32, 32)).shape)"

test: setup
	$(PY) -m pytest -n 2 -q

bench: setup
	$(PY) benchmarks/compile_time.py
