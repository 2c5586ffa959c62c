"""Floor 2: the parity runner. Is a torch recipe the same computation as a Keras configuration?

Imports both ``*_impl`` packages in one process (``runner``, ``onestep``); ``grid`` lists the
cells of the verdict table and turns a parity run into a record.
"""
