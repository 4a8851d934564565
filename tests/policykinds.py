"""A small policy kind for tests, so kernel tests need no real service installed.

``register_test_kinds()`` makes ``TestPolicy`` known; calling it again is harmless.
"""

from __future__ import annotations

from datetime import timedelta

from csfabric.kernel import Duration
from csfabric.kernel.policy import PolicyBase, register_kind

TEST_KIND = "TestPolicy"


class TestPolicySpec(PolicyBase):
    """Spec of ``TestPolicy``: fields of each flavour the loader must handle."""

    __test__ = False  # not a pytest test class despite the name

    every: Duration = timedelta(minutes=15)
    action: str = "noop"
    retain: int = 3


def register_test_kinds() -> None:
    register_kind(TEST_KIND, TestPolicySpec)


__all__ = ["TEST_KIND", "TestPolicySpec", "register_test_kinds"]
