"""`python -m resdsl`: the `resdsl` command."""
try:
    from .cli import run
except KeyboardInterrupt:  # Ctrl-C while the command starts: quietly, as inside it (exit status 130)
    import os
    os._exit(130)

run()
