"""The sweeps each notebook runs, one module per notebook (:mod:`.pruning` for 01 ... :mod:`.combinations` for 06),
over the shared steps of :mod:`.common`."""
