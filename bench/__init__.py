"""Benchmarks: ``python -m bench [module ...]``."""
