"""A corpus of real architectures (transformers' own model classes) compiled by hatch-neuron."""
