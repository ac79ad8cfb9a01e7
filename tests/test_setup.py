"""The Quickstart's set-up (Makefile): `make demo` and `make test` install into a project
virtual environment made from $(PY), never into $(PY) itself, so that they work on an
interpreter that refuses pip installs (PEP 668's EXTERNALLY-MANAGED: Debian's and Ubuntu's
own python3). .ci/run runs the whole of it on /usr/bin/python3; these are the cheap checks."""
from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["setup", "setup-test", "demo", "test", "wheel-test", "gallery", "bench", "fmt", "fmt-check"]


def _dry_run(env_extra=None, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL")}
    env.update(env_extra or {})
    r = subprocess.run(["make", "-n", "-B", "-C", str(ROOT), *args, *TARGETS], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _python_runs(text):
    """Each (interpreter, rest of line) that runs Python in a recipe."""
    return re.findall(r"(?:^|[\s;|&{(])((?:[^\s\"'$(]*/)?python3?[\d.]*)\s+(-m\s+\S+.*|-c\s.*|\S+\.py\b.*)$", text, re.M)


def test_every_recipe_runs_the_project_environment_not_the_interpreter_it_was_made_from():
    out = _dry_run(None, "PY=/opt/base/bin/python3")
    assert "/opt/base/bin/python3 -m venv .venv" in out  # made from $(PY) ...
    runs = _python_runs(out)
    assert len(runs) > 10
    for exe, rest in runs:  # ... and then only used through it
        if exe == "/opt/base/bin/python3":
            assert rest.startswith("-m venv") or rest.startswith("-c 'import sys; print(\"%d.%d\""), rest
        else:
            assert exe == ".venv/bin/python", (exe, rest)
    assert not re.search(r"^\s*(pip3?|python3?) ", out, re.M)  # no bare pip / python from PATH
    assert re.search(r"^\.venv/bin/python -m pip install -q -c \.ci/constraints\.txt -e '\.\[test\]'$", out, re.M)
    assert re.search(r"^\.venv/bin/resdsl check examples/cifar_resnet\.res$", out, re.M)
    assert re.search(r"^PY=\.venv/bin/python \.ci/wheel_test\.sh$", out, re.M)


def test_an_active_virtual_environment_is_used_as_it_is(tmp_path):
    out = _dry_run({"VIRTUAL_ENV": str(tmp_path / "env")})
    assert "-m venv" not in out and ".venv/" not in out
    assert f"{tmp_path}/env/bin/python -m pip install" in out and f"{tmp_path}/env/bin/resdsl check" in out


def _tiny_wheel(folder: Path) -> Path:
    """A wheel of one module, made by hand: something pip can install with no index and no build."""
    files = {"tiny_pkg.py": b"VALUE = 42\n",
             "tiny_pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tiny-pkg\nVersion: 1.0\n",
             "tiny_pkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n"
                                             b"Tag: py3-none-any\n"}
    record = "".join(f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                     f"{len(data)}\n" for name, data in files.items()) + "tiny_pkg-1.0.dist-info/RECORD,,\n"
    whl = folder / "tiny_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        for name, data in {**files, "tiny_pkg-1.0.dist-info/RECORD": record.encode()}.items():
            z.writestr(name, data)
    return whl


def _system_python() -> str:
    """The system's own interpreter (what a fresh Debian/Ubuntu machine has), else this one's base."""
    if os.access("/usr/bin/python3", os.X_OK):
        return "/usr/bin/python3"
    return os.path.join(sys.base_prefix, "bin", "python3")


def test_the_bootstrap_makes_an_environment_pip_installs_into_on_the_system_python(tmp_path):
    py = _system_python()
    marker = subprocess.run([py, "-c", "import sysconfig, os; print(os.path.join(sysconfig.get_path('stdlib'), "
                                       "'EXTERNALLY-MANAGED'))"], capture_output=True, text=True).stdout.strip()
    managed = os.path.isfile(marker)
    whl = _tiny_wheel(tmp_path)
    if managed:  # what broke the Quickstart: pip refuses the interpreter itself
        r = subprocess.run([py, "-m", "pip", "install", "--dry-run", "--no-index", "--no-deps", str(whl)],
                           capture_output=True, text=True)
        assert r.returncode != 0 and "externally-managed-environment" in (r.stdout + r.stderr), r.stderr
    venv = tmp_path / "v"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL")}
    r = subprocess.run(["make", "-s", "-C", str(ROOT), f"PY={py}", f"VENV={venv}", f"{venv}/bin/python"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    vpy = str(venv / "bin" / "python")
    r = subprocess.run([vpy, "-c", "import sys, os; print(os.path.realpath(sys._base_executable), sys.prefix)"],
                       capture_output=True, text=True)
    assert r.stdout.split() == [os.path.realpath(py), str(venv)], r.stdout
    r = subprocess.run([vpy, "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(whl)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([vpy, "-c", "import tiny_pkg; print(tiny_pkg.VALUE)"], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.stdout.strip() == "42", r.stderr
    # made once, then reused: the rule has nothing to do
    r = subprocess.run(["make", "-s", "-q", "-C", str(ROOT), f"PY={py}", f"VENV={venv}", f"{venv}/bin/python"],
                       env=env)
    assert r.returncode == 0
