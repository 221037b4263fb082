"""Bounded work per request: the tiling a client may ask for, and what one request may cost before any inference.

A request's cost is known from its photos' headers and its options before a single pixel is decoded:

* decoded pixels: width x height summed over the files (ROOKERY_MAX_REQUEST_MEGAPIXELS);
* network work: tiles x network input pixels summed over the files (ROOKERY_MAX_REQUEST_WORK_MEGAPIXELS), which
  is what a small tile with a large overlap blows up (tile 32, overlap 31: ~939,000 tiles on a 1000x1000 photo).

`check_tiling` refuses a tile under ROOKERY_MIN_TILE or an overlap of half the tile or more (422); a `Budget`
adds up the photos of one request and refuses the one that goes over (413). Both messages name the limit and the
setting that raises it. /api/v1/predict and /invocations use the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from rookery.data.tiling import tile_count
from rookery.errors import ConfigError
from rookery.serving.uploads import UploadTooLarge

MAX_FILES = 100  # per request, on every route that counts photos


class WorkTooLarge(UploadTooLarge):
    """A request whose photos together are more work than one request may be (413)."""

    kind = "too_much_work"


class BadTiling(ConfigError):
    status_code = 422
    kind = "bad_tiling"


@dataclass(frozen=True)
class Tiling:
    """The tiling of one request: tile and overlap in photo pixels, the network's input side per tile."""

    tile: int
    overlap: int
    net_side: int

    def tiles(self, width: int, height: int) -> int:
        """How many tiles rookery.data.tiling.tile_grid cuts a width x height photo into (without building them)."""
        return tile_count(width, height, self.tile, self.overlap)

    def work(self, width: int, height: int) -> int:
        """Network input pixels to count one photo."""
        return self.tiles(width, height) * self.net_side * self.net_side


def check_tiling(tile: int, overlap: int, min_tile: int) -> None:
    """422 (BadTiling) unless tile >= min_tile and 0 <= overlap < tile / 2."""
    if tile < min_tile:
        raise BadTiling(f"tile must be at least {min_tile} pixels (ROOKERY_MIN_TILE), got {tile}")
    if not 0 <= 2 * overlap < tile:
        raise BadTiling(f"overlap must be at least 0 and less than half the tile ({tile} / 2), got {overlap}")


def check_file_count(n_files: int) -> None:
    if n_files > MAX_FILES:
        raise UploadTooLarge(f"{n_files} files were sent; send at most {MAX_FILES} per request")


@dataclass
class Budget:
    """Pixels and network work of one request so far; `add` raises WorkTooLarge at the photo that goes over."""

    tiling: Tiling
    max_pixels: int  # decoded pixels over all files
    max_work: int  # tiles x network input pixels over all files
    pixels: int = 0
    work: int = 0

    def add(self, name: str, width: int, height: int) -> None:
        self.pixels += width * height
        self.work += self.tiling.work(width, height)
        if self.pixels > self.max_pixels:
            raise WorkTooLarge(
                f"the photos of this request have {self.pixels / 1e6:,.1f} megapixels up to {name}, more than the "
                f"limit of {self.max_pixels / 1e6:,.1f} per request (ROOKERY_MAX_REQUEST_MEGAPIXELS); "
                "send fewer photos per request"
            )
        if self.work > self.max_work:
            t = self.tiling
            raise WorkTooLarge(
                f"counting the photos of this request up to {name} takes {self.work / 1e6:,.1f} megapixels of network "
                f"input (tile {t.tile}, overlap {t.overlap}, network input {t.net_side} px), more than the limit of "
                f"{self.max_work / 1e6:,.1f} per request (ROOKERY_MAX_REQUEST_WORK_MEGAPIXELS); send fewer photos, "
                "a larger tile or a smaller overlap"
            )
