"""The cross-framework proofs: ``pytest comparisons``.

Tests only. Each one runs Keras and PyTorch in one process and asserts, with explicit
tolerances, which torch recipe is the same computation as which Keras configuration.
"""
