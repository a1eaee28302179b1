"""Helpers for vatt's own tests and for plugin authors' tests; nothing in the package's runtime imports them."""
