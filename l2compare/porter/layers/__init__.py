"""The layer porters: the registry (``registry``), one module per layer family.

Importing this package imports every family, so each registers its Keras classes.
"""
from l2compare.porter.layers import (attention, conv, conv_transpose, core, merge, misc, norm, pooling,
                                     recurrent, shape)

# The order in which the families' notes are listed in a generated file.
FAMILIES = (core, conv, conv_transpose, pooling, shape, norm, misc, recurrent, attention, merge)
