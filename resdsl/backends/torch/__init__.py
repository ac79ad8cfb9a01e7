"""The torch backend: a tree of torch modules (build), the standalone file (codegen)."""
