"""Floor 5, the roof: the ``l2compare`` command and the pipeline behind ``make results``."""
__version__ = "0.1.0"
