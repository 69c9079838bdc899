"""ScoringOptions: what e(t) is made of, by name ('frame', 'patch32+overlap+smooth5').

Kept apart from the scoring code so the sidecar can record the options a calibration was
made with without importing numpy-heavy modules in a cycle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from clipwatch.errors import ClipwatchError


@dataclass(frozen=True)
class ScoringOptions:
    """How per-pixel errors become e(t). The defaults are the DESIGN.md definition."""

    patch: int = 0  # 0: sum over the whole frame; k: largest sum over any k x k window
    overlap: bool = False  # mean over every clip holding the frame (live: T-1 frames later)
    smooth: int = 1  # trailing mean over this many frames (1: none); causal, so live-ready

    def __post_init__(self) -> None:
        if self.patch < 0 or self.smooth < 1:
            raise ClipwatchError(f"invalid scoring options {self}")

    @property
    def measure(self) -> str:
        """The per-position error this option set reads: 'frame' or 'patchK'."""
        return f"patch{self.patch}" if self.patch else "frame"

    @property
    def name(self) -> str:
        parts = [self.measure]
        if self.overlap:
            parts.append("overlap")
        if self.smooth > 1:
            parts.append(f"smooth{self.smooth}")
        return "+".join(parts)

    @classmethod
    def parse(cls, name: str) -> ScoringOptions:
        """'frame', 'patch32', 'patch32+overlap+smooth5', ... (the inverse of `name`)."""
        patch, overlap, smooth = 0, False, 1
        try:
            first, *rest = name.split("+")
            if first.startswith("patch"):
                patch = int(first[5:])
            elif first != "frame":
                raise ValueError(first)
            for part in rest:
                if part == "overlap":
                    overlap = True
                elif part.startswith("smooth"):
                    smooth = int(part[6:])
                else:
                    raise ValueError(part)
        except ValueError:
            raise ClipwatchError(f"unknown scoring {name!r} (e.g. frame, patch32, "
                                 f"patch32+overlap+smooth5)") from None
        return cls(patch=patch, overlap=overlap, smooth=smooth)

    def to_dict(self) -> dict:
        return {"name": self.name, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> ScoringOptions:
        return cls(patch=int(data.get("patch", 0)), overlap=bool(data.get("overlap", False)),
                   smooth=int(data.get("smooth", 1)))
