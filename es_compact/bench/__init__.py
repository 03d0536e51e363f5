"""Benchmarks: each measures side by side in one run and returns rows with ratios."""
