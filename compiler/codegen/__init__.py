"""The code-generation layer: schedules rendered into torch modules and Triton/CUDA kernels.

``emit_torch`` (the torch backend), ``gpu_lowering`` (the blocked plan the GPU kernels share),
``emit_triton``/``emit_cuda`` (their sources from ``templates/``), ``backends`` (the registry)
and ``pipeline`` (``compiler.compile``). The runtime parts that launch GPU kernels live in
``kernels/``.
"""
