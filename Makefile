# Two entry points (see README): `make demo` and `make test`. Both set up first.
PY ?= python3

.PHONY: setup demo test wheel-test bench gallery

setup:
	@command -v dot >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq graphviz >/dev/null; }
	$(PY) -m pip install -q -c .ci/constraints.txt -e '.[test]'

demo: setup
	mkdir -p build
	resdsl check examples/cifar_resnet.res
	resdsl summary examples/cifar_resnet.res
	resdsl compile examples/cifar_resnet.res --target torch -o build/resnet20.py
	resdsl compile examples/cifar_resnet.res --target onnx -o build/resnet20.onnx
	resdsl render examples/cifar_resnet.res -o build/resnet20.svg
	$(PY) -c "import sys; sys.path.insert(0, 'build'); import torch, resnet20; m = resnet20.resnet20(seed=0).eval(); print('forward:', tuple(m(torch.randn(2, 3, 32, 32)).shape))"

test: setup
	$(PY) -m pytest -n 2 -q -p no:cacheprovider
	$(PY) docs/gallery/build.py --check

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
