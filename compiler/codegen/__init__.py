"""The code-generation layer: schedules rendered into torch modules and Triton/CUDA kernels.

``emit_torch`` (the torch backend), ``gpu_lowering`` (the blocked plan the GPU kernels share),
``emit_triton``/``emit_cuda`` (their sources from ``templates/``), ``provenance`` (what every
generated header says: fastmm version, template hash, options, additions), ``generated`` (the one
generated-source type and its atomic writer), ``validate`` (translation validation), ``backends``
(the registry) and ``pipeline`` (``compiler.compile``). The runtime parts that launch GPU kernels
live in ``kernels/``.
"""
