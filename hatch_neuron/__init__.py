"""hatch-neuron: compile declared PyTorch models at wheel-build time and load them at import.

The package is split by direction of flow: ``config`` (parse and validate ``[tool.neuron]``) ->
``plan`` (models x targets) -> ``compile`` (one module per target, run in a child process) ->
``package`` (thin Hatchling adapter over one shared pipeline) -> ``runtime`` (the loader that
built packages import; it depends on torch and the standard library only).
"""

__version__ = "0.1.0"
