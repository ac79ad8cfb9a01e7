"""Package layout (everything else is in pyproject.toml).

grammar/ and stdlib/ stay at the repository root and ship inside the package as
resdsl/grammar and resdsl/stdlib (package data), where resdsl.frontend.parser and
resdsl.elaborate.loader look first."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["resdsl", "resdsl.*"]) + ["resdsl.grammar", "resdsl.stdlib"],
    package_dir={"resdsl.grammar": "grammar", "resdsl.stdlib": "stdlib"},
)
