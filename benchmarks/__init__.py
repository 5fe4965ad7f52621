"""Figures you can rerun: each module is one benchmark, run from the repository root as
``.venv/bin/python -m benchmarks.<name>`` (its docstring says what it prints)."""
