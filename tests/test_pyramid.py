"""The quick loop's selection: tests that start processes are marked ``integration`` from what they use."""

from __future__ import annotations

from types import ModuleType

import test_build_example
import test_cache
import test_config
from conftest import _starts_processes


def starts(module: ModuleType, test: str) -> bool:
    return _starts_processes(getattr(module, test), vars(module), set())


def test_tests_reaching_a_process_helper_are_found() -> None:
    assert starts(test_build_example, "test_python_build_wheel_frontend")
    assert starts(test_cache, "test_cache_off_and_verify")


def test_in_process_tests_are_not_marked() -> None:
    assert not starts(test_config, "test_malformed_factory")
    assert not starts(test_cache, "test_computation_digest_ignores_earlier_traces_in_the_process")
