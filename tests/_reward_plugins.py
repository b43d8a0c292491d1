"""Helper plugins and broken backends for tests/test_rewards.py (imported by dotted path)."""

from __future__ import annotations

import os
import signal
import time


class NnzReward:
    """A user plugin: fewer nonzero coefficients is better."""

    def __init__(self, scale: float = 1.0) -> None:
        self.name = "nnz"
        self.scale = scale

    def __call__(self, f) -> float:
        return -self.scale * float(sum(f.nnz))


def crashing_backend(f, dtype, device):
    def matmul(a, b):
        os.kill(os.getpid(), signal.SIGSEGV)  # what a faulting kernel does to its process
    return matmul


def hanging_backend(f, dtype, device):
    def matmul(a, b):
        time.sleep(3600)
    return matmul


def wrong_backend(f, dtype, device):
    def matmul(a, b):
        return a @ b + 1
    return matmul
