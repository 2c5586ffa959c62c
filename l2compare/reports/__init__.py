"""Floor 4: tables, plots, PORTING.md and the results index, built from the records alone."""
