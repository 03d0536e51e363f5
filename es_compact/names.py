"""Names the CLI offers before it imports what they name, as plain tuples.

Building the `es-compact` command tree (and printing its --help) must not import NumPy, numba
or pandas, so the choices its options list live here, where nothing heavy is imported. Each
matches the registry it names (tests/test_cli_startup.py checks that they are equal).
"""

from __future__ import annotations

DATASETS = ("g50", "boston", "cpu", "insurance", "wine", "parkinson")
"""Every dataset of es_compact.datasets, in the order of the KAMA-NN paper's Figure 2."""

ESTIMATORS = ("urn", "orn", "horn", "kama")
"""The random-feature estimators of es_compact.features.ESTIMATORS, in its order."""
