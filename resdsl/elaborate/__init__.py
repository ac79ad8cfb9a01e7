"""AST -> IR elaboration."""
from .elaborator import elaborate, parse_value  # noqa: F401
from .loader import Program  # noqa: F401
