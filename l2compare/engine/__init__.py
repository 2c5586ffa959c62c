"""Floor 3: the run engine. Executes run specs and parity cells in worker processes (one per
framework column, found through ``l2compare.core.columns``) and records every result once in a store."""
