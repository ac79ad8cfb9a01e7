"""Diagrams: block charts (block) and neural circuit diagrams (circuit)."""
