"""Options for the fastmm benchmarks."""

from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption("--fastmm-rounds", type=int, default=3,
                     help="fewest timed rounds per fastmm benchmark entry (large sizes run this many)")


@pytest.fixture
def fastmm_rounds(request) -> int:
    return request.config.getoption("--fastmm-rounds")
