"""hatch-neuron: compile declared PyTorch models at wheel-build time and load them at import.

The package is split by direction of flow: ``config`` (parse and validate ``[tool.neuron]``) ->
``plan`` (models x targets) -> ``compile`` (one module per target, run in child processes, with ``cache``) ->
``package`` (thin Hatchling and setuptools adapters over one shared pipeline) -> ``runtime`` (the loader that
built packages import; it depends on torch and the standard library only).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so that importing the build plugin does not import torch.
    if name == "dynamic_batch":
        from .runtime.dynamic import dynamic_batch

        return dynamic_batch
    raise AttributeError(f"module 'hatch_neuron' has no attribute {name!r}")
