"""Framework-neutral harness, data, porting, reports and CLI of l2compare.

Importing this package imports no framework; ``comparisons.porting`` imports both.
"""
__version__ = "0.1.0"
