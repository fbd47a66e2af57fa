"""The setuptools twin of example_project's package. Its compiled models live in ``twin_models.compiled``,
a module that the build generates."""
