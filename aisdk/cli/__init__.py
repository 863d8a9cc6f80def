"""The `aisdk` command: the composition root on top of the runtime, the
generated contracts, the components, compat and bench. One module per
command group; nothing below this package imports it."""
