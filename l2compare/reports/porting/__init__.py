"""PORTING.md: the guide (``guide``) and its sections (``families``, ``backends``, ``snippets``)."""
