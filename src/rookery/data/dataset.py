"""Build a tiled YOLO data set from photos, points.csv and optional ignore masks.

Layout written into `out`:

    images/{train,val,test}/{photo}_{x0}_{y0}.jpg   tiles (ignore region filled black)
    labels/{train,val,test}/{photo}_{x0}_{y0}.txt   YOLO labels: `cls cx cy w h`, normalised to the tile
    data.yaml                                       for Ultralytics (absolute `path:`)
    manifest.json                                   inputs, parameters, counts, fingerprint (manifest.py)

Photos, not tiles, are split, so no photo's tiles are in two splits. The set is built in a sibling
folder and moved into place at the end: a failed build leaves a previous data set untouched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml

from rookery import __version__
from rookery.data.boxes import ESTIMATE_NOTE, estimate_box_sizes
from rookery.data.classes import Classes
from rookery.data.manifest import (
    SPLITS,
    BoxSizeEntry,
    Manifest,
    PhotoEntry,
    SkippedEntry,
    fingerprint,
    is_dataset,
)
from rookery.data.photo_tiles import BuildParams as BuildParams  # re-exported: callers build with it
from rookery.data.photo_tiles import PhotoJob, PhotoResult, input_digests, process_photo
from rookery.data.points_csv import read_points_csv
from rookery.data.scale import frame_px_of, photo_scales, scale_labels
from rookery.errors import InputError
from rookery.imaging import find_image, list_images
from rookery.parallel import map_items
from rookery.types import Points, Skipped


def build_dataset(
    points: Path,
    images: Path,
    classes: Classes,
    out: Path,
    masks: Path | None = None,
    params: BuildParams = BuildParams(),
    workers: int | None = None,
) -> Manifest:
    """Tile the photos of `images` named in points.csv (and those without points, as negatives) into `out`.

    A photo that cannot be used (missing, corrupt, mask of another size) is skipped with its reason in
    the manifest; points outside their photo are dropped and reported. Returns the manifest.
    """
    out = Path(out).resolve()
    images, points = Path(images), Path(points)
    _check_out(out, [p for p in (points, images, masks) if p is not None])
    labels = read_points_csv(points, classes)
    stems = sorted({p.stem for p in list_images(images)} | set(labels), key=_natural)
    if not stems:
        raise InputError(f"no photos: {images} holds no image and {points.name} names none")
    if masks is not None and not Path(masks).is_dir():
        raise InputError(f"masks folder {masks} does not exist")
    photo_files = {s: find_image(images, s) for s in stems}
    if params.resolution is not None and params.frame_px is None:  # recorded: the model counts by the same rule
        params = dataclasses.replace(params, frame_px=frame_px_of(photo_files, params))
    scales = photo_scales(photo_files, params)
    # Box sides in the tiles' pixels: estimated on the points brought to the tiles' resolution first, so photos
    # of different scales measure the same animals. classes.yaml's `box:` is at the photos' own scale.
    scaled_labels = [scale_labels(lab, scales.get(s, params.scale)) for s, lab in labels.items()]
    sizes = [
        float(spec.box) * (params.scale if params.resolution is None else 1.0) if spec.box is not None else z
        for spec, z in zip(classes, estimate_box_sizes(scaled_labels, classes), strict=True)
    ]
    warnings = [
        f"{c.name}: boxes of {z:.0f} px may be dropped from every tile (overlap "
        f"{params.overlap} px, min_visible {params.min_visible:g}); raise --overlap above the box size"
        for c, z in zip(classes, sizes, strict=True)
        if not _always_kept(z, params.overlap, params.min_visible)
    ]
    if masks is not None:
        unmasked = [s for s in stems if _mask_path(Path(masks), s) is None]
        if unmasked:
            warnings.append(
                f"{len(unmasked)} photo(s) have no mask in {masks} ({', '.join(unmasked[:5])}"
                f"{', ...' if len(unmasked) > 5 else ''}): the whole photo is taken as annotated"
            )

    work = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        staging = work / "staging"
        (staging / "labels").mkdir(parents=True)
        jobs = [
            PhotoJob(
                stem=s,
                image=photo_files[s],
                mask=None if masks is None else _mask_path(Path(masks), s),
                points=labels[s].points if s in labels else Points.empty(),
                sizes=tuple(sizes),
                classes=tuple(classes.names),
                params=params,
                staging=staging,
                scale=scales.get(s, params.scale),
            )
            for s in stems
        ]
        results: list[PhotoResult] = []
        skipped: list[SkippedEntry] = []
        done = map_items(process_photo, jobs, stems, "tiling photos", workers=workers)
        for job, (name, r) in zip(jobs, done, strict=True):
            if isinstance(r, Skipped):  # the worker reports its own failures; this is a safety net
                r = PhotoResult(name, input_digests(job), error=r.reason, skipped=[(name, r.reason)])
            skipped.extend(SkippedEntry(item=i, reason=why) for i, why in r.skipped)
            results.append(r)
        if not any(r.error is None for r in results):
            raise InputError(
                f"none of the {len(results)} photo(s) could be used"
                + (f" (first: {skipped[0].item}: {skipped[0].reason})" if skipped else "")
            )
        sources = (images.resolve(), None if masks is None else Path(masks).resolve())
        manifest = _assemble(work, out, results, skipped, jobs, classes, sizes, params, warnings, sources)
        _replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def assign_splits(names: Sequence[str], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Each photo's split: a seeded, machine-independent shuffle cut by the fractions (largest remainder).

    With two photos or more, train and val get at least one each (val only when its fraction is > 0).
    """
    order = sorted(names, key=lambda n: hashlib.sha256(f"{seed}\0{n}".encode()).hexdigest())
    n = len(order)
    exact = [f * n for f in fractions]
    counts = [int(np.floor(e)) for e in exact]
    for i in sorted(range(3), key=lambda i: (counts[i] - exact[i], i))[: n - sum(counts)]:
        counts[i] += 1
    if n >= 2 and fractions[1] > 0 and counts[1] == 0:
        counts[1] += 1
        counts[2 if counts[2] > 0 else 0] -= 1
    if n >= 1 and counts[0] == 0:
        counts[0] += 1
        counts[2 if counts[2] > 0 else 1] -= 1
    bounds = np.cumsum(counts)
    return {name: SPLITS[int(np.searchsorted(bounds, k, side="right"))] for k, name in enumerate(order)}


# --- assembling the data set --------------------------------------------------------------------------


def _assemble(
    work: Path,
    out: Path,
    results: list[PhotoResult],
    skipped: list[SkippedEntry],
    jobs: list[PhotoJob],
    classes: Classes,
    sizes: list[float],
    params: BuildParams,
    warnings: list[str],
    sources: tuple[Path, Path | None],
) -> Manifest:
    names = classes.names
    by_stem = {j.stem: j for j in jobs}
    used = [r for r in results if r.error is None]
    splits = assign_splits([r.stem for r in used], params.split, params.seed)
    for sub in ("images", "labels"):
        for split in SPLITS:
            (work / sub / split).mkdir(parents=True)
    tiles = dict.fromkeys(SPLITS, 0)
    negatives = dict.fromkeys(SPLITS, 0)
    objects = {split: dict.fromkeys(names, 0) for split in SPLITS}
    photos = []
    for r in used:
        split = splits[r.stem]
        for name, negative in r.tiles:
            os.replace(work / "staging" / "images" / f"{name}.jpg", work / "images" / split / f"{name}.jpg")
            os.replace(work / "staging" / "labels" / f"{name}.txt", work / "labels" / split / f"{name}.txt")
            negatives[split] += negative
        tiles[split] += len(r.tiles)
        for c, n in zip(names, r.objects, strict=True):
            objects[split][c] += n
        job = by_stem[r.stem]
        photos.append(
            PhotoEntry(
                image=r.stem,
                file=r.file,
                sha256=str(r.digests["sha256"]),
                bytes=r.bytes,
                width=r.size[0],
                height=r.size[1],
                split=splits[r.stem],  # type: ignore[arg-type]
                mask=None if job.mask is None else job.mask.name,
                mask_sha256=r.digests["mask_sha256"],
                points=len(job.points),
                counts_in_mask=dict(zip(names, r.counts_in_mask, strict=True)),
                tiles=len(r.tiles),
                negatives=sum(neg for _, neg in r.tiles),
                scale=job.scale,
            )
        )
    shutil.rmtree(work / "staging")
    all_digests = {r.stem: r.digests for r in results}  # skipped photos too: they are inputs
    manifest = Manifest(
        rookery_version=__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        fingerprint=fingerprint(params.to_dict(), names, sizes, all_digests),
        classes=names,
        params=params.to_dict(),
        box_sizes={
            s.name: BoxSizeEntry(size=round(z, 3), estimated=s.box is None) for s, z in zip(classes, sizes, strict=True)
        },
        box_size_method=ESTIMATE_NOTE if any(s.box is None for s in classes) else "from classes.yaml",
        photos=photos,
        tiles=tiles,
        negatives=negatives,
        objects=objects,
        skipped=skipped,
        warnings=warnings,
        images_dir=str(sources[0]),
        masks_dir=None if sources[1] is None else str(sources[1]),
    )
    manifest.save(work)
    data_yaml = {
        "path": str(out),
        "train": "images/train",
        "val": "images/val",
        "test": "images/test",
        "names": dict(enumerate(names)),
    }
    (work / "data.yaml").write_text(yaml.safe_dump(data_yaml, sort_keys=False))
    return manifest


def _always_kept(side: float, overlap: int, min_visible: float) -> bool:
    """Whether a box of this side is kept in at least one tile wherever it lies.

    Along each axis some tile holds the box's centre at least overlap/2 from its edges, so at least
    (overlap + side) / (2 side) of the side is visible there (all of it when side <= overlap).
    """
    return side <= overlap or ((overlap + side) / (2 * side)) ** 2 >= min_visible


def _check_out(out: Path, inputs: list[Path]) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a folder")
    for p in inputs:
        if p.resolve().is_relative_to(out):
            raise InputError(f"input {p} is inside the output folder {out}, which the build replaces")
    if out.is_dir() and any(out.iterdir()) and not is_dataset(out):
        raise InputError(
            f"output folder {out} is not empty and is not a rookery data set; choose an empty or new folder"
        )


def _replace(work: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    os.replace(work, out)


def _mask_path(masks: Path, stem: str) -> Path | None:
    p = masks / f"{stem}.png"
    return p if p.is_file() else None


def _natural(name: str) -> tuple[int, int | str]:
    return (0, int(name)) if name.isdigit() else (1, name)
