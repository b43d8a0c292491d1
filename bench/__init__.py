"""Measurement: pytest-benchmark suites against torch.matmul, GPU sweeps, and reports."""
