"""Registers the Hatchling build hook ``neuron`` (entry-point group ``hatch``)."""

from hatchling.plugin import hookimpl

from .hatch_hook import NeuronBuildHook


@hookimpl
def hatch_register_build_hook():
    return NeuronBuildHook
