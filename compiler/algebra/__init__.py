"""The algebra layer: factorizations of the matmul tensor and everything exact about them.

``factors`` (the ``Factorization`` type and its exact verification), ``constructions`` (basis
changes, Kronecker products, direct sums, symmetries), ``formats`` (reading and writing factor
files), ``safe_pickle``, ``library`` (the named algorithms in ``factors/``), ``records`` (best
known ranks) and ``stability``. Imports only numpy and the standard library.
"""
