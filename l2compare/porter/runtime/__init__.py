"""Code copied verbatim into generated files: each helper here imports only torch."""
