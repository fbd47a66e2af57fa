"""Example package for hatch-neuron. Its compiled models live in ``example_models.compiled``,
a module that the build generates."""
