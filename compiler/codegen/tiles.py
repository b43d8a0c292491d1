"""The one tile-configuration type of every backend whose leaf is a generated kernel.

A plan (``fastmm.plans.Plan``) carries a ``TileConfig`` or ``None``; a backend says which it
accepts in its registry entry (``Backend.tiles``, the first being its default; none for a backend
whose leaves are BLAS/cuBLAS calls). It lives in the compiler layer so that ``kernels`` (which may
not import the runtime) and ``fastmm`` (which plans with it) share the same type.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CombineTile:
    """Tile of the element-wise combination kernels (``combine_a``/``_b``/``_c``)."""

    tile_r: int = 32
    tile_c: int = 64
    num_warps: int = 4
    tile_b: int = 1  # batch entries per tile: >1 pays off when nested levels make blocks small

    def label(self) -> str:
        return f"c{self.tile_r}x{self.tile_c}w{self.num_warps}b{self.tile_b}"


@dataclass(frozen=True)
class GemmTile:
    """Tile of the leaf GEMM kernels (``product_gemm``, ``fused_gemm``); all three sizes ≥ 16 for ``tl.dot``."""

    block_m: int = 64
    block_n: int = 64
    block_k: int = 32
    num_warps: int = 4
    num_stages: int = 3
    group_m: int = 8  # tile-rows per L2 group (8: the usual choice for square GEMMs on A100/H100)

    def label(self) -> str:
        return (f"g{self.block_m}x{self.block_n}x{self.block_k}w{self.num_warps}s{self.num_stages}"
                f"m{self.group_m}")


@dataclass(frozen=True)
class TileConfig:
    """The tiles of every kernel a schedule launches: one autotuning candidate, or one plan's tile."""

    combine: CombineTile = CombineTile()
    gemm: GemmTile = GemmTile()

    def label(self) -> str:
        return f"{self.combine.label()}-{self.gemm.label()}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TileConfig":
        return cls(CombineTile(**d.get("combine", {})), GemmTile(**d.get("gemm", {})))


__all__ = ["CombineTile", "GemmTile", "TileConfig"]
