"""Helpers for vatt's tests and benchmarks; the package itself never imports them."""
