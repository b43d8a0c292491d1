"""fastmm runtime: ``fastmm.matmul(a, b)``, a drop-in for ``torch.matmul`` (see the runtime issue)."""

__version__ = "0.1.0"
