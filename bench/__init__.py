"""Benchmarks. Each prints figures and ratios; `python -m bench all` runs them all."""
