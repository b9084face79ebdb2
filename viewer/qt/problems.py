"""What the Problems panel lists: files skipped at the scan, series warnings, slices that failed, errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from viewer.core.scan import Skipped


@dataclass(frozen=True)
class SliceFailure:
    """A slice that could not be decoded while loading (it is shown blank)."""

    series: str
    index: int
    path: Path
    reason: str
    image: str = ""  # how the reader names the slice ("Im 26", else its stack position)


@dataclass(frozen=True)
class Problems:
    """Everything the Problems panel lists; one snapshot per change."""

    skipped: tuple[Skipped, ...] = ()
    not_dicom: int = 0
    series_warnings: tuple[tuple[str, str], ...] = ()
    slice_failures: tuple[SliceFailure, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        """Number of listed problems (the non-DICOM files are only counted, not listed)."""
        return len(self.skipped) + len(self.series_warnings) + len(self.slice_failures) + len(self.errors)
