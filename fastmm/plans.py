"""Typed plan descriptions: what one candidate for a product is.

A :class:`Plan` names everything that decides which code runs: the factorization (by name and
content digest), how many recursion levels, the schedule of the linear combinations, the
compiler backend, and the tile configuration of the leaf kernel. ``TORCH_MATMUL`` is the vendor
plan and is always a candidate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from compiler.algebra.factors import Factorization

VENDOR = "torch.matmul"


@dataclass(frozen=True)
class TileConfig:
    """Leaf-kernel tiling for generated (Triton/CUDA) leaves; all zero for BLAS leaves."""

    block_m: int = 0
    block_n: int = 0
    block_k: int = 0
    num_warps: int = 0
    num_stages: int = 0

    def is_default(self) -> bool:
        return self == TileConfig()

    def label(self) -> str:
        if self.is_default():
            return "blas-leaf"
        return f"{self.block_m}x{self.block_n}x{self.block_k}/w{self.num_warps}/s{self.num_stages}"


@dataclass(frozen=True)
class Plan:
    """One candidate: ``algorithm`` applied ``levels`` times by ``backend`` with ``schedule``."""

    algorithm: str                    # factorization name, or VENDOR
    digest: str = ""                  # Factorization.digest ("" for VENDOR)
    levels: int = 0
    schedule: str = "materialized"    # materialized | streamed | fused
    backend: str = VENDOR             # VENDOR, or a compiler backend name ("torch", "triton", ...)
    tile: TileConfig = field(default_factory=TileConfig)
    factorization: Factorization | None = field(default=None, compare=False, hash=False, repr=False)

    @property
    def is_vendor(self) -> bool:
        return self.backend == VENDOR

    @property
    def key(self) -> str:
        """A stable text id (also the custom op's plan argument)."""
        if self.is_vendor:
            return VENDOR
        return (f"{self.algorithm}@{self.digest[:16]}/L{self.levels}/{self.schedule}/{self.backend}"
                f"/{self.tile.label()}")

    def describe(self) -> str:
        if self.is_vendor:
            return "torch.matmul (vendor)"
        f = self.factorization
        rank = f"rank {f.rank} " if f is not None else ""
        return (f"{self.algorithm} ({rank}{'x'.join(map(str, f.shape)) if f is not None else ''}) × "
                f"{self.levels} level{'s' * (self.levels != 1)}, {self.schedule}, backend {self.backend}, "
                f"{self.tile.label()}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("factorization")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        d = dict(d)
        d["tile"] = TileConfig(**d.get("tile", {}))
        return cls(**d)


TORCH_MATMUL = Plan(VENDOR)
