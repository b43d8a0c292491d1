"""Typed plan descriptions: what one candidate for a product is.

A :class:`Plan` names everything that decides which code runs: the factorization (by name and
content digest), how many recursion levels, the schedule of the linear combinations, the
compiler backend, and the tile configuration of the leaf kernel (``None``: the backend's default,
which for the Triton backend means its own tile autotuner on a GPU; always ``None`` for a backend
whose leaves are BLAS calls), and the basis: ``""`` for the algorithm as written, or the digest
(``AltBasis.digest``) of its stored alternative basis (``factors/altbasis.json``: transforms once
per level, a sparser core; docs/altbasis.md). ``key``, ``to_dict``/``from_dict`` (the tuning
cache) and the custom op's plan argument round-trip every field, the tile and basis included.
``TORCH_MATMUL`` is the vendor plan and is always a candidate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.algebra.factors import Factorization
from compiler.codegen.tiles import CombineTile, GemmTile, TileConfig  # the one tile type, shared with kernels

NO_TILE = "default-tile"  # the key's tile part when the backend's own default (or autotuner) decides

VENDOR = "torch.matmul"

STANDARD = ""   # Plan.basis of the algorithm as written (its U, V, W)


@dataclass(frozen=True)
class Plan:
    """One candidate: ``algorithm`` applied ``levels`` times by ``backend`` with ``schedule``."""

    algorithm: str                    # factorization name, or VENDOR
    digest: str = ""                  # Factorization.digest ("" for VENDOR)
    levels: int = 0
    schedule: str = "materialized"    # one of the backend's declared schedules (Backend.schedules)
    backend: str = VENDOR             # VENDOR, or a compiler backend name ("torch", "triton", ...)
    tile: TileConfig | None = None    # one of the backend's declared tiles (Backend.tiles), or its default
    factorization: Factorization | None = field(default=None, compare=False, hash=False, repr=False)
    basis: str = STANDARD             # STANDARD, or the AltBasis.digest of the algorithm's stored basis

    @property
    def is_vendor(self) -> bool:
        return self.backend == VENDOR

    @property
    def is_alt_basis(self) -> bool:
        return self.basis != STANDARD

    @property
    def key(self) -> str:
        """A stable text id (also the custom op's plan argument); an alternative-basis plan ends in
        ``/alt@<basis digest>`` (a standard-basis key has no basis part)."""
        if self.is_vendor:
            return VENDOR
        return (f"{self.algorithm}@{self.digest[:16]}/L{self.levels}/{self.schedule}/{self.backend}"
                f"/{self.tile.label() if self.tile is not None else NO_TILE}"
                f"{f'/alt@{self.basis[:16]}' if self.is_alt_basis else ''}")

    def describe(self) -> str:
        if self.is_vendor:
            return "torch.matmul (vendor)"
        f = self.factorization
        rank = f"rank {f.rank} " if f is not None else ""
        return (f"{self.algorithm} ({rank}{'x'.join(map(str, f.shape)) if f is not None else ''}) × "
                f"{self.levels} level{'s' * (self.levels != 1)}, {self.schedule}, backend {self.backend}, "
                f"{self.tile.label() if self.tile is not None else NO_TILE}"
                f"{f', alternative basis {self.basis[:16]}' if self.is_alt_basis else ''}")

    def to_dict(self) -> dict:
        return {"algorithm": self.algorithm, "digest": self.digest, "levels": self.levels,
                "schedule": self.schedule, "backend": self.backend,
                "tile": None if self.tile is None else self.tile.to_dict(), "basis": self.basis}

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        d = dict(d)
        tile = d.pop("tile", None)
        return cls(**d, tile=None if tile is None else TileConfig.from_dict(tile))


TORCH_MATMUL = Plan(VENDOR)
