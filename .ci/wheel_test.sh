#!/usr/bin/env bash
# The packaging test: build the sdist and the wheel (the wheel from the sdist, as pip
# would), install the wheel alone into a fresh virtual environment (pinned by
# .ci/constraints.txt), and run the main job from an empty folder by stdlib names, never
# by repo paths, then every command and Python block of the docs (.ci/docs_run.py).
# A file missing from the package, or a doc that does not run as written, fails here, not
# in a user's hands.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/resdsl-wheel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
t0=$(date +%s)

# build from a copy of the tracked sources: no stale build/ or egg-info can leak in
mkdir -p "$WORK/src"
( cd "$ROOT" && tar cf - --exclude=__pycache__ pyproject.toml setup.py MANIFEST.in README.md LICENSE \
    CITATION.cff resdsl grammar stdlib ) | tar xf - -C "$WORK/src"
"$PY" -m build -q --outdir "$WORK/dist" "$WORK/src" >/dev/null
whl=$(ls "$WORK"/dist/*.whl)
sdist=$(ls "$WORK"/dist/*.tar.gz)
# (listings go to files: `tar t | grep -q` would fail under pipefail when grep exits early)
"$PY" -m zipfile -l "$whl" > "$WORK/wheel.txt"
tar tzf "$sdist" > "$WORK/sdist.txt"
for f in resdsl/grammar/res.lark resdsl/stdlib/resnet.res resdsl/stdlib/vit.res; do
    grep -q "^$f " "$WORK/wheel.txt" || { echo "wheel lacks $f"; exit 1; }
done
for f in grammar/res.lark stdlib/resnet.res LICENSE CITATION.cff; do
    grep -q "/$f\$" "$WORK/sdist.txt" || { echo "sdist lacks $f"; exit 1; }
done
t1=$(date +%s)

"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q -c "$ROOT/.ci/constraints.txt" "$whl"
t2=$(date +%s)

mkdir "$WORK/empty" && cd "$WORK/empty"
export PATH="$WORK/venv/bin:$PATH" PYTHONPATH= NO_COLOR=1
set -x
resdsl --version
python -m resdsl --version
resdsl check resnet50
resdsl check cifar.res -n resnet20_cifar --input-shape 2,3,32,32
resdsl compile resnet18 --target torch -o resnet18.py
resdsl compile resnet18 --target onnx -o resnet18.onnx
resdsl render resnet18 -o resnet18.svg
resdsl ir resnet18 -o resnet18.ir
python - <<'PY'
import sys
import onnx
import torch
import resdsl
sys.path.insert(0, ".")
import resnet18
assert resdsl.__file__.startswith(sys.prefix), resdsl.__file__  # the installed copy, not the repo
m = resdsl.build("resnet18", seed=0).eval()
f = resnet18.resnet18(seed=0).eval()
x = torch.randn(1, 3, 64, 64)
with torch.no_grad():
    assert torch.equal(m(x), f(x)), "build() and the compiled file differ"
torch.save(m.state_dict(), "ckpt.pt")
m2 = resdsl.create_model("resnet18", weights="ckpt.pt").eval()
with torch.no_grad():
    assert torch.equal(m2(x), m(x))
onnx.checker.check_model(onnx.load("resnet18.onnx"))
assert open("resnet18.svg").read().lstrip().startswith("<?xml") or "<svg" in open("resnet18.svg").read()
assert "resnet18" in resdsl.list_models("resnet*")
print("wheel test: main job ok")
PY
set +x
t3=$(date +%s)

# the docs as written: every shell command and Python block of README.md and docs/*.md, in
# order, each doc from an empty folder of its own, against this wheel (.ci/docs_run.py says how
# blocks are marked). What the docs' examples use beyond resdsl's dependencies comes first.
python -m pip install -q -c "$ROOT/.ci/constraints.txt" torchvision
# `pretrained=True` (README, docs) with no internet: torch.hub's cache holds a checkpoint made
# here under the file names of torchvision's resnet50 and resnet18 DEFAULT weights (a cached file is not
# hashed again; downloads themselves are tested against local servers in the test suite)
export TORCH_HOME="$WORK/torch_home"
mkdir -p "$TORCH_HOME/hub/checkpoints"
python - "$TORCH_HOME/hub/checkpoints" <<'PY'
import sys, torch, resdsl
for net, fname in (("resnet50", "resnet50-11ad3fa6.pth"), ("resnet18", "resnet18-f37072fd.pth")):
    assert resdsl.get_pretrained_cfg(net).url.endswith("/" + fname), (net, fname)
    torch.save(resdsl.build(net, seed=0).state_dict(), f"{sys.argv[1]}/{fname}")
PY
python "$ROOT/.ci/docs_run.py" --installed --work "$WORK/docs"
t4=$(date +%s)
echo "wheel test: build $((t1 - t0)) s, venv install $((t2 - t1)) s, main job $((t3 - t2)) s, docs $((t4 - t3)) s"
