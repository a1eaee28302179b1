"""Registered clip datasets: the generic manifest and one module per published layout."""
