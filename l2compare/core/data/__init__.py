"""Data sets: by name (``sets``), from files (``files``), in the one format both frameworks read (``format``)."""
