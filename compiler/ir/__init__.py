"""The IR layer: programs of linear combinations and products, and the passes over them.

``program`` (nodes, programs, exact evaluation), ``lower`` (factorization → program, one or
more levels), ``cse`` (common subexpressions among the additions) and ``schedule`` (the order
of steps and the workspaces they use). Imports the algebra layer, never a code generator.
"""
