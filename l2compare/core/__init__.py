"""Floor 0: the framework-neutral core of l2compare.

Run specs, seeds, data, records, machine facts, the registries of names and columns, the
process environment and the training-run template. Imports no ML framework (a test checks),
so every floor above, and the parent process of every run, can use it.
"""
