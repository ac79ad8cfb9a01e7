"""`python -m resdsl`: the `resdsl` command."""
from .cli import run

run()
