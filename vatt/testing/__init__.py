"""Helpers for vatt's tests, plugin authors' tests and the benchmarks: plain reference implementations of the
ops (`reference`) and tiny replicas of each dataset layout (`replicas`). The package itself never imports them."""
