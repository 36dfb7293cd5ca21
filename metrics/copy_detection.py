"""Memorisation as calibrated copy detection: is a generated image a (transformed) copy of a training image?

A copy reproduces a training image, possibly flipped, turned by 90 degrees, cropped to as little as 50 % of the area,
resized (also to another aspect ratio), shifted in brightness/contrast/colour, blurred or JPEG re-encoded.
`make_transformed_copies` makes such copies (the positive control), `CopyDetector.match` finds each candidate's
best training match with a score, `calibrate_copy_detector` sets the threshold on real images the generator never
saw, and `compute_copy_rate` gives a candidate set's copy rate with a Wilson CI and the flagged pairs.

The rule (grey images at 128 px on the longest side; inputs up to any size are downsampled first):
1. Retrieval: 16-px band-passed thumbnails of every candidate in all 8 flips/rotations are compared (dot product on
   48 principal axes) with 129 windows of every training image (width and height 50-100 %, area >= 50 %, 4 positions
   per axis); the 8 best (training image, orientation) pairs go on.
2. Alignment: FFT normalised cross-correlation over every placement and a cross of width/height scales, at 24 and
   32 px on half-size images and at 64 px on the working images, keeping 3, then 1 hypothesis; sub-pixel peaks.
3. Verification (the score): mean over 6x6 tiles of the NCC of fine detail (band 0.5-2 px at 64 px) between the
   aligned training window and the candidate, ignoring the black field outside a dermoscope's circular view. 1.0 for
   an exact copy; ~0.14 (median) for a different isic-uda1 lesion.

Why this rule (measured on isic-uda1 halves, 277 transformed copies vs 278 held-out real images):
- Perceptual hashes (imagehash's pHash/dHash/wHash, the algorithms of imagededup's hash methods; its CNN variant
  downloads weights), best of the 8 orientations: at the distance that 1 % of different lesions reach, only 57 % /
  54 % / 45 % of copies are found, 12 % of cropped ones: a whole-frame hash does not survive a crop.
- Keypoints + RANSAC (OpenCV ORB at 256 px; scikit-image's ORB is the same detector at 0.07 s per image, ~7x
  slower): copies get a median of 170 inliers, but copies resized to 64-100 px get 8-20, and different lesions reach
  23 (99th percentile) to 46: not separable. SIFT finds ~40 keypoints on low-contrast dermoscopy.
- Whole-window NCC after alignment (even band-passed) is not enough either: different lesions aligned by the
  4-parameter search share the lesion's outline and the dermoscope's dark circle (held-out 99th percentile 0.85-0.93).
  Tiled fine detail plus the dark-field mask brings that to 0.37 (0.57 without the mask) while copies stay at 0.99.

Calibration (`python -m benchmarks.copy_detection`, seed 0; isic-uda1 de-duplicated by pixels and halved):
threshold 0.4383 (DEFAULT_THRESHOLD; split-conformal rank of the 278 held-out scores); false-copy rate on held-out
isic-uda1 0.7 % (2/278, cross-fitted 5-fold) [0.2, 2.6] Wilson 95 %; on pad-ufes-20 (never used to calibrate) 0/412
[0.0, 0.9]; detection of random compositions of transforms 99.3 % (275/277, matched to their own source) [97.4, 99.8];
each transform alone 100 % except crops alone 96.0 % (266/277) [93.0, 97.8].
Cost (same command; 2-core AMD EPYC shared with other jobs, load average ~3.3): 1,000 candidates against 557
training images in 31 s wall with one torch thread (index 5.7 s, match 25.4 s; 25 s CPU) and 24 s with `workers=2`;
two torch intra-op threads instead took 98 s (they spin against the other load), hence the default of one.

DEFAULT_THRESHOLD is for images of at least 128 px. With 64-px centre squares as training and held-out images (the
reference GANs' resolution) different lesions score higher (99th percentile 0.54, max 0.72; 3 of 140 above 0.4383)
while copies still score >= 0.69 (5th percentile): calibrate at the audit's own resolution with
`calibrate_copy_detector` (the reference split in halves) rather than relying on the default there.

Not covered: rotations other than 90 degrees, crops below 50 % of the area, perspective, local edits (inpainting,
collage). Two different photographs of one lesion were not measured (pad-ufes-20 has such pairs, but it served only as
a negative set against isic-uda1 here).
"""
from __future__ import annotations

import dataclasses
import functools
import io
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from torchvision.ops import roi_align

from metrics.image_io import ImageSource, open_rgb, sha256_array
from metrics.results import (
    ConfidenceInterval,
    InsufficientSamplesError,
    JsonResult,
    Seed,
    resolve_seed,
    wilson_interval,
)
from metrics.torch_threads import intra_op_threads

# ---------------------------------------------------------------------------------------------------------------
# Transformed copies: the positive control
# ---------------------------------------------------------------------------------------------------------------

TRANSFORM_KINDS = ("flip", "rot90", "crop", "colour", "blur", "resize", "jpeg")
MIN_CROP_AREA = 0.5
DEFAULT_THRESHOLD = 0.4383  # measured on isic-uda1, see the module docstring


@dataclass(frozen=True)
class TransformedCopy:
    image: np.ndarray  # uint8 (H, W, 3)
    source_index: int
    transforms: tuple[str, ...]  # e.g. ("rot90", "crop 62%", "jpeg q70"), in the order applied
    kinds: tuple[str, ...]  # the TRANSFORM_KINDS used, same order

    @property
    def description(self) -> str:
        return "+".join(self.transforms) if self.transforms else "identity"


def _pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(image), mode="RGB")


def _apply_transform(image: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    height, width = image.shape[:2]
    if kind == "flip":
        return (image[:, ::-1], "hflip") if rng.random() < 0.5 else (image[::-1], "vflip")
    if kind == "rot90":
        turns = int(rng.integers(1, 4))
        return np.rot90(image, turns), f"rot{90 * turns}"
    if kind == "crop":
        area = rng.uniform(MIN_CROP_AREA, 0.98)
        stretch = math.exp(rng.uniform(-math.log(1.33), math.log(1.33)))  # crops need not keep the aspect ratio
        fw, fh = math.sqrt(area * stretch), math.sqrt(area / stretch)
        if fw > 1.0:
            fw, fh = 1.0, area
        elif fh > 1.0:
            fw, fh = area, 1.0
        crop_w, crop_h = max(1, round(fw * width)), max(1, round(fh * height))
        left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
        kept = round(100 * crop_w * crop_h / (width * height))
        return image[top : top + crop_h, left : left + crop_w], f"crop {kept}%"
    if kind == "colour":
        brightness, contrast = rng.uniform(0.75, 1.25), rng.uniform(0.75, 1.25)
        gains = rng.uniform(0.9, 1.1, size=3)
        pixels = image.astype(np.float32)
        mean = pixels.mean()
        shifted = ((pixels - mean) * contrast + mean) * brightness * gains
        gains_text = ",".join(f"{g:.2f}" for g in gains)
        return (
            np.clip(np.rint(shifted), 0, 255).astype(np.uint8),
            f"colour b{brightness:.2f} c{contrast:.2f} rgb({gains_text})",
        )
    if kind == "blur":
        sigma = rng.uniform(0.5, 2.0)
        return np.asarray(_pil(image).filter(ImageFilter.GaussianBlur(sigma))), f"blur {sigma:.1f}px"
    if kind == "resize":
        longest = round(math.exp(rng.uniform(math.log(64), math.log(512))))
        if rng.random() < 1 / 3:  # a generator's square output: the aspect ratio changes
            new_w = new_h = longest
        else:
            scale = longest / max(height, width)
            new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        return np.asarray(_pil(image).resize((new_w, new_h), Image.Resampling.BICUBIC)), f"resize {new_w}x{new_h}"
    if kind == "jpeg":
        quality = int(rng.integers(40, 96))
        buffer = io.BytesIO()
        _pil(image).save(buffer, format="JPEG", quality=quality)
        return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")), f"jpeg q{quality}"
    raise ValueError(f"unknown transform {kind!r}; known: {', '.join(TRANSFORM_KINDS)}")


def make_transformed_copies(
    images: Sequence[ImageSource],
    seed: Seed,
    *,
    kinds: Sequence[str] = TRANSFORM_KINDS,
    copies_per_image: int = 1,
) -> list[TransformedCopy]:
    """Transformed copies of `images`, deterministic for `seed`.

    Each copy draws every kind in `kinds` with probability 1/2 (at least one), applied in TRANSFORM_KINDS order:
    geometry first (flip, 90-degree rotation, crop keeping 50-98 % of the area with the aspect ratio changed by up
    to 1.33x), then photometry at the crop's own resolution (brightness and contrast x0.75-1.25, per-channel gains
    x0.9-1.1, Gaussian blur sigma 0.5-2 px), then a resize (longest side 64-512 px; a third of them squashed to a
    square, as a generator's output would be) and a JPEG re-encode (quality 40-95). `kinds` with one entry gives
    that transform alone.
    """
    unknown = sorted(set(kinds) - set(TRANSFORM_KINDS))
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {TRANSFORM_KINDS}, got {tuple(kinds)}")
    arrays = _as_rgb_arrays(images, "images")
    _, rng = resolve_seed(seed)
    ordered = [kind for kind in TRANSFORM_KINDS if kind in kinds]
    copies = []
    for index, image in enumerate(arrays):
        for _ in range(copies_per_image):
            chosen = [kind for kind in ordered if rng.random() < 0.5] if len(ordered) > 1 else ordered
            if not chosen:
                chosen = [ordered[int(rng.integers(len(ordered)))]]
            out, labels = image, []
            for kind in chosen:
                out, label = _apply_transform(out, kind, rng)
                labels.append(label)
            copies.append(TransformedCopy(np.ascontiguousarray(out), index, tuple(labels), tuple(chosen)))
    return copies


def _as_rgb_arrays(images: Sequence[ImageSource], name: str) -> list[np.ndarray]:
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    if len(images) == 0:
        raise ValueError(f"{name} is empty: copy detection needs at least one image")
    arrays = []
    for position, image in enumerate(images):
        if isinstance(image, np.ndarray) and (image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3):
            raise ValueError(f"{name}[{position}] must be a uint8 HxWx3 RGB array, got {image.dtype} {image.shape}")
        array = np.asarray(open_rgb(image), dtype=np.uint8)
        if min(array.shape[:2]) < 8:
            raise ValueError(f"{name}[{position}] is {array.shape[1]}x{array.shape[0]} px; copy detection needs >= 8")
        arrays.append(array)
    return arrays


# ---------------------------------------------------------------------------------------------------------------
# The detector
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    work_size: int = 128  # longest side of the grey working image
    coarse_size: int = 16
    coarse_band: tuple[float, float] = (0.7, 2.0)
    coarse_components: int = 48  # principal components of the window descriptors kept for the coarse search
    coarse_fractions: tuple[float, ...] = (1.0, 0.85, 0.71, 0.6, 0.5)
    coarse_positions: int = 4
    hypotheses: int = 8  # best (training image, orientation) pairs of the coarse stage kept per candidate
    # template-matching passes: (level 1 = working size or 2 = half, template px, band, margin, scales, keep after)
    passes: tuple[tuple[int, int, tuple[float, float], float, tuple[float, ...], int], ...] = (
        (2, 24, (0.5, 2.0), 0.25, (0.92, 1.0, 1.08), 3),
        (2, 32, (0.5, 2.0), 0.1, (0.96, 1.0, 1.04), 1),
        (1, 64, (0.7, 3.0), 0.05, (0.98, 1.0, 1.02), 1),
    )
    final_size: int = 64
    score_band: tuple[float, float] = (0.5, 2.0)
    score_tiles: int = 6
    dark_fraction: float = 0.35


def _grey(image: np.ndarray, size: int) -> np.ndarray:
    grey = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    height, width = grey.shape
    if max(height, width) > size:
        scale = size / max(height, width)
        shape = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = np.asarray(Image.fromarray(grey, mode="F").resize(shape, Image.Resampling.BILINEAR))
    return grey


CANVAS_MARGIN = 32  # working pixels of edge-replicated border around every image (box coordinates start inside it)


def _canvas(greys: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, H, W) stack, each image at (CANVAS_MARGIN, CANVAS_MARGIN) in edge-replicated padding, and each
    image's (width, height). Replicated, not zero, padding: a search region that reaches past the image border must
    look to the band-pass like a template's own (replicated) border, or an exact copy would not score 1."""
    height, width = max(g.shape[0] for g in greys), max(g.shape[1] for g in greys)
    stack = np.empty((len(greys), 1, height + 2 * CANVAS_MARGIN, width + 2 * CANVAS_MARGIN), dtype=np.float32)
    for n, grey in enumerate(greys):
        after = (height - grey.shape[0] + CANVAS_MARGIN, width - grey.shape[1] + CANVAS_MARGIN)
        stack[n, 0] = np.pad(grey, ((CANVAS_MARGIN, after[0]), (CANVAS_MARGIN, after[1])), mode="edge")
    sizes = torch.tensor([(g.shape[1], g.shape[0]) for g in greys], dtype=torch.float32)
    return torch.from_numpy(stack), sizes


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), horizontal, groups=channels)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), vertical, groups=channels)


def _band(x: torch.Tensor, band: tuple[float, float]) -> torch.Tensor:
    low, high = band
    smooth = _gaussian_blur(x, low) if low else x
    return smooth - _gaussian_blur(smooth, high)


@functools.lru_cache(maxsize=8)
def _band_matrix(size: int, band: tuple[float, float]) -> torch.Tensor:
    """(size^2, size^2) matrix M with _band(x).flatten() == x.flatten() @ M: for the many small coarse descriptors a
    matrix product is ~30x faster than batched convolutions."""
    basis = torch.eye(size * size).view(size * size, 1, size, size)
    return _band(basis, band).view(size * size, size * size)


def _coarse_descriptors(raw: torch.Tensor, band: tuple[float, float]) -> torch.Tensor:
    """Unit band-passed descriptors of (B, 1, S, S) or (B, S, S) thumbnails."""
    size = raw.shape[-1]
    return _unit(raw.reshape(-1, size * size) @ _band_matrix(size, band))


def _unit(x: torch.Tensor) -> torch.Tensor:
    x = x.flatten(1)
    x = x - x.mean(1, keepdim=True)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-6)


def _dihedral(x: torch.Tensor) -> torch.Tensor:
    """(N, S, S) -> (N, 8, S, S): op k = rot90^(k % 4) after hflip if k >= 4 (torch.rot90 on the last two dims)."""
    out = []
    for flipped in (False, True):
        y = torch.flip(x, (-1,)) if flipped else x
        out.extend(torch.rot90(y, turns, (-2, -1)) for turns in range(4))
    return torch.stack(out, 1)


def _resample(stack: torch.Tensor, index: torch.Tensor, boxes: torch.Tensor, size: int, level: int = 1) -> torch.Tensor:
    """(len(boxes), 1, size, size) resampling of boxes (x0, y0, x1, y1, image pixels) of stack[index], area-averaged;
    `level` 2 for the half-size stack."""
    rois = torch.cat([index.to(torch.float32)[:, None], boxes + CANVAS_MARGIN / level], 1)
    return roi_align(stack, rois, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)


@dataclass(frozen=True)
class TrainingIndex:
    """Descriptors of the training images, computed once and reusable across `match` calls."""

    n: int
    working: torch.Tensor  # (N, 1, H, W) grey at the working size
    sizes: torch.Tensor  # (N, 2) width, height at the working size
    small: torch.Tensor  # half size, for the first template-matching level
    bank: torch.Tensor  # (N * windows, C) coarse window descriptors projected on their first C principal axes
    axes: torch.Tensor  # (D, C) those axes
    windows: torch.Tensor  # (windows, 4) fractions x0, y0, x1, y1


def _window_fractions(settings: _Settings) -> torch.Tensor:
    out = []
    for fw in settings.coarse_fractions:
        for fh in settings.coarse_fractions:
            if fw * fh < MIN_CROP_AREA - 1e-6:
                continue
            xs = [0.0] if fw == 1 else np.linspace(0, 1 - fw, settings.coarse_positions)
            ys = [0.0] if fh == 1 else np.linspace(0, 1 - fh, settings.coarse_positions)
            out.extend((x, y, x + fw, y + fh) for x in xs for y in ys)
    return torch.tensor(out, dtype=torch.float32)


def _index(images: list[np.ndarray], settings: _Settings) -> TrainingIndex:
    working, sizes = _canvas([_grey(image, settings.work_size) for image in images])
    small = F.avg_pool2d(working, 2, ceil_mode=True)
    windows = _window_fractions(settings)
    n = len(images)
    owner = torch.arange(n).repeat_interleave(len(windows))
    boxes = (windows[None] * sizes.repeat(1, 2)[:, None]).reshape(-1, 4)
    bank = _coarse_descriptors(_resample(small, owner, boxes / 2, settings.coarse_size, 2), settings.coarse_band)
    _, vectors = torch.linalg.eigh(bank.T @ bank)  # principal axes (uncentred: NCC is a plain dot product here)
    axes = vectors[:, -settings.coarse_components :].flip(1).contiguous()
    return TrainingIndex(n, working, sizes, small, bank @ axes, axes, windows)


def _templates(candidates: torch.Tensor, sizes: torch.Tensor, orientation: torch.Tensor, rows: torch.Tensor,
               size: int, level: int = 1) -> torch.Tensor:
    """(len(rows), 1, size, size) raw templates of candidates[rows], turned into the training frame."""
    boxes = torch.cat([torch.zeros(len(rows), 2), sizes[rows]], 1)
    raw = _resample(candidates, rows, boxes, size, level)[:, 0]
    turned = _dihedral(raw)[torch.arange(len(rows)), orientation]
    return turned[:, None]


def _band_transfer(span: int, band: tuple[float, float]) -> torch.Tensor:
    """Frequency response of `_band` (Gaussian low-pass minus its Gaussian-blurred self) for rfft2 of span x span."""
    fy, fx = torch.fft.fftfreq(span), torch.fft.rfftfreq(span)
    radius_sq = fy[:, None] ** 2 + fx[None, :] ** 2

    def gaussian(sigma: float) -> torch.Tensor:
        return torch.exp(-2 * math.pi**2 * sigma**2 * radius_sq)

    low, high = band
    smooth = gaussian(low) if low else torch.ones_like(radius_sq)
    return smooth * (1 - gaussian(high))


def _ncc_maps(regions: torch.Tensor, templates: torch.Tensor, band: tuple[float, float]) -> torch.Tensor:
    """NCC of each unit template (B, S*S) at every placement in its band-passed region (B, R, R): (B, R-S+1, R-S+1).

    The band-pass and the correlation both run in the frequency domain (one forward, two inverse transforms)."""
    batch, span = regions.shape[0], regions.shape[-1]
    size = int(round(math.sqrt(templates.shape[1])))
    placements = span - size + 1
    spectrum = torch.fft.rfft2(regions) * _band_transfer(span, band)
    detail = torch.fft.irfft2(spectrum, s=(span, span))
    product = spectrum * torch.conj(torch.fft.rfft2(templates.view(batch, size, size), s=(span, span)))
    numerator = torch.fft.irfft2(product, s=(span, span))[:, :placements, :placements]
    r = detail.to(torch.float64)
    integral = F.pad(r.cumsum(1).cumsum(2), (1, 0, 1, 0))
    integral_sq = F.pad((r * r).cumsum(1).cumsum(2), (1, 0, 1, 0))

    def patch_sums(table: torch.Tensor) -> torch.Tensor:
        return table[:, size:, size:] - table[:, :-size, size:] - table[:, size:, :-size] + table[:, :-size, :-size]

    total, total_sq = patch_sums(integral), patch_sums(integral_sq)
    norm = (total_sq - total * total / (size * size)).clamp_min(0).sqrt().to(torch.float32)
    return numerator / norm.clamp_min(1e-6)


def _subpixel(maps: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
    """(B, 2) x, y offsets in [-0.5, 0.5] of each map's maximum from a parabola through it and its neighbours."""
    side = maps.shape[-1]
    inner = peak.clamp(1, side - 2)
    rows = torch.arange(len(maps))
    offsets = []
    for axis in (0, 1):  # x (columns), then y (rows)
        shift = torch.zeros_like(inner)
        shift[:, axis] = 1
        before, after = inner - shift, inner + shift
        left = maps[rows, before[:, 1], before[:, 0]]
        centre = maps[rows, inner[:, 1], inner[:, 0]]
        right = maps[rows, after[:, 1], after[:, 0]]
        curvature = left - 2 * centre + right
        offset = torch.where(curvature < -1e-6, 0.5 * (left - right) / curvature.clamp_max(-1e-6), torch.zeros(()))
        at_edge = (peak[:, axis] != inner[:, axis])
        offsets.append(torch.where(at_edge, torch.zeros(()), offset.clamp(-0.5, 0.5)))
    return torch.stack(offsets, 1)


def _search(stack: torch.Tensor, owner: torch.Tensor, boxes: torch.Tensor, templates: torch.Tensor,
            scales: tuple[float, ...], margin: float, band: tuple[float, float], level: int = 1,
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Best NCC and box per hypothesis over a grid of (width, height) scales and every placement.

    boxes: (H, 4) current windows in `stack` pixels; templates: (H, 1, S, S) raw. The region searched is the window
    grown by `margin` of its size on every side (whole template pixels, so scale 1 keeps the pixel grid)."""
    count, size = len(boxes), templates.shape[-1]
    pad = max(1, round(size * margin))
    span = size + 2 * pad
    # A template's band-pass near its border sees padding where the training region sees real context: compare the
    # interior only (borders of 2 sigma), so that an exact copy scores 1.
    border = min(math.ceil(2 * band[1]), size // 4)
    units = _unit(_band(templates, band)[:, :, border : size - border, border : size - border])
    pairs = [(a, b) for a in scales for b in scales if a == 1.0 or b == 1.0]  # a cross, not the full grid
    scale_grid = torch.tensor(pairs, dtype=torch.float32)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    extent = boxes[:, 2:] - boxes[:, :2]
    best_score = torch.full((count,), -2.0)
    best_box = boxes.clone()
    for scale in scale_grid:
        width_height = extent * scale
        step = width_height / size
        region_origin = centre - width_height / 2 - pad * step
        regions = _resample(stack, owner, torch.cat([region_origin, region_origin + span * step], 1), span, level)
        maps = _ncc_maps(regions[:, 0], units, band)
        value, flat = maps.flatten(1).max(1)
        peak = torch.stack([flat % maps.shape[-1], flat // maps.shape[-1]], 1)
        origin = region_origin + (peak - border + _subpixel(maps, peak)) * step
        better = value > best_score
        best_score = torch.where(better, value, best_score)
        best_box = torch.where(better[:, None], torch.cat([origin, origin + width_height], 1), best_box)
    return best_score, best_box


def _masked_tile_score(window: torch.Tensor, template: torch.Tensor, settings: _Settings) -> torch.Tensor:
    """Mean tile NCC of fine-band detail, ignoring the black field outside a dermoscope's circular view.

    Different dermoscopic images share that circle's edge; aligned, it alone correlates strongly."""
    pair = torch.cat([window, template], 1)  # (B, 2, S, S)
    smooth = _gaussian_blur(pair, 2.0)
    bright = torch.quantile(pair.flatten(2), 0.9, dim=2)[:, :, None, None]
    dark = (smooth < settings.dark_fraction * bright).any(1, keepdim=True).to(torch.float32)
    valid = 1.0 - F.max_pool2d(dark, 7, stride=1, padding=3)
    detail = _band(pair, settings.score_band)
    tiles = settings.score_tiles
    side = window.shape[-1] // tiles

    def per_tile(x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, : side * tiles, : side * tiles]
        return x.unfold(2, side, side).unfold(3, side, side).flatten(4)  # (B, C, T, T, side*side)

    w = per_tile(valid)
    a, b = per_tile(detail[:, :1]), per_tile(detail[:, 1:])
    weight = w.sum(-1).clamp_min(1e-6)
    a = a - (w * a).sum(-1, keepdim=True) / weight[..., None]
    b = b - (w * b).sum(-1, keepdim=True) / weight[..., None]
    covariance = (w * a * b).sum(-1)
    ncc = covariance / ((w * a * a).sum(-1) * (w * b * b).sum(-1)).clamp_min(1e-12).sqrt()
    usable = (weight >= 0.5 * side * side).to(torch.float32)
    return ((ncc * usable).flatten(1).sum(1) / usable.flatten(1).sum(1).clamp_min(1.0))


def _match_chunk(index: TrainingIndex, images: list[np.ndarray], settings: _Settings) -> tuple[torch.Tensor, ...]:
    """Per candidate: best training index, orientation op, window (working px) and verification score."""
    count = len(images)
    working, sizes = _canvas([_grey(image, settings.work_size) for image in images])
    small = F.avg_pool2d(working, 2, ceil_mode=True)
    stacks = {1: (working, index.working), 2: (small, index.small)}
    rows = torch.arange(count)
    # 1. coarse: every orientation of every candidate against every window of every training image
    raw = _resample(small, rows, torch.cat([torch.zeros(count, 2), sizes / 2], 1), settings.coarse_size, 2)[:, 0]
    oriented = _coarse_descriptors(_dihedral(raw).flatten(0, 1), settings.coarse_band) @ index.axes
    n_windows = len(index.windows)
    per_pair, window = (oriented @ index.bank.T).view(count, 8 * index.n, n_windows).max(2)
    keep = min(settings.hypotheses, 8 * index.n)
    pair = per_pair.topk(keep, 1).indices  # best (orientation, training image) pairs
    window = window.gather(1, pair).flatten()
    orientation, owner = (pair // index.n).flatten(), (pair % index.n).flatten()
    candidate = rows.repeat_interleave(keep)
    boxes = index.windows[window] * index.sizes[owner].repeat(1, 2)
    # 2. template matching passes, each on fewer hypotheses with finer steps
    for level, size, band, margin, scales, kept in settings.passes:
        templates = _templates(stacks[level][0], sizes / level, orientation, candidate, size, level)
        score, boxes = _search(stacks[level][1], owner, boxes / level, templates, scales, margin, band, level)
        boxes = boxes * level
        per = len(owner) // count
        if kept < per:
            best = (score.view(count, per).topk(kept, 1).indices + (rows * per)[:, None]).flatten()
            owner, candidate, orientation, boxes = owner[best], candidate[best], orientation[best], boxes[best]
    # 3. verification of the aligned pair
    templates = _templates(working, sizes, orientation, candidate, settings.final_size)
    windows = _resample(index.working, owner, boxes, settings.final_size)
    final = _masked_tile_score(windows, templates, settings).view(count, -1)
    score, best = final.max(1)
    pick = best + rows * final.shape[1]
    return owner[pick], orientation[pick], boxes[pick], score


def _dihedral_names() -> tuple[str, ...]:
    """Name of the transform training -> candidate undone by each `_dihedral` op, in numpy terms, in the order
    applied (matching make_transformed_copies' descriptions): "identity", "rot90", ..., "rot90+hflip"."""
    probe = np.arange(9).reshape(3, 3)
    named = {}
    for turns in range(4):
        for flipped in (False, True):
            image = np.rot90(probe, turns)
            image = image[:, ::-1] if flipped else image
            name = "+".join(([f"rot{90 * turns}"] if turns else []) + (["hflip"] if flipped else [])) or "identity"
            named[name] = image
    names = []
    for op in range(8):
        for name, image in named.items():
            restored = _dihedral(torch.from_numpy(image.copy())[None])[0, op].numpy()
            if np.array_equal(restored, probe):
                names.append(name)
                break
    return tuple(names)


DIHEDRAL_NAMES = _dihedral_names()


@dataclass(frozen=True)
class CopyMatch(JsonResult):
    candidate_index: int
    training_index: int  # the training image this candidate matches best
    score: float  # verification score in [-1, 1]; 1 for an exact copy
    transform: str  # flip/rotation taking the training image to the candidate, e.g. "rot90+hflip"
    window: tuple[float, float, float, float]  # matched part of the training image: x0, y0, x1, y1 as fractions
    is_copy: bool  # score > threshold


@dataclass(frozen=True)
class CopyMatches(JsonResult):
    matches: tuple[CopyMatch, ...]  # one per candidate, in candidate order
    threshold: float
    n_training: int
    method: str
    seconds: float

    @property
    def scores(self) -> np.ndarray:
        return np.array([m.score for m in self.matches])

    @property
    def is_copy(self) -> np.ndarray:
        return np.array([m.is_copy for m in self.matches], dtype=bool)

    @property
    def training_index(self) -> np.ndarray:
        return np.array([m.training_index for m in self.matches], dtype=np.int64)


METHOD = (
    "grey 128-px working images; coarse: 16-px band-passed descriptors of each candidate in 8 flips/rotations vs "
    "129 windows per training image (50-100 % of the area), 48 principal axes, 8 best (image, orientation) pairs; "
    "FFT normalised cross-correlation over placement and width/height scale at 24, 32 and 64 px; score: mean "
    "6x6-tile NCC of fine detail (band 0.5-2 px at 64 px) of the aligned pair, outside a dermoscope's dark field"
)


class CopyDetector:
    """Best match of each candidate among training images over flips, 90-degree rotations, crops and rescaling,
    verified in pixels (see the module docstring). `threshold` separates copies (score > threshold)."""

    def __init__(
        self, threshold: float | None = None, *, threads: int | None = 1, workers: int = 1, chunk_size: int = 64
    ) -> None:
        """threads: torch intra-op threads (None: leave the process setting); workers: chunks of candidates matched
        in parallel Python threads (torch releases the GIL), the way to use several cores for this many small ops."""
        self.threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        self.threads = threads
        self.workers = max(1, workers)
        self.chunk_size = chunk_size
        self._settings = _Settings()

    def index(self, training: Sequence[ImageSource]) -> TrainingIndex:
        """Descriptors of the training images, reusable across `match` calls."""
        arrays = _as_rgb_arrays(training, "training")
        with intra_op_threads(self.threads), torch.inference_mode():
            return _index(arrays, self._settings)

    def match(self, candidates: Sequence[ImageSource], training: Sequence[ImageSource] | TrainingIndex) -> CopyMatches:
        start = time.perf_counter()
        arrays = _as_rgb_arrays(candidates, "candidates")
        index = training if isinstance(training, TrainingIndex) else self.index(training)
        chunks = [arrays[first : first + self.chunk_size] for first in range(0, len(arrays), self.chunk_size)]

        def run(chunk: list[np.ndarray]) -> tuple[torch.Tensor, ...]:
            with torch.inference_mode():  # thread-local, so inside each worker
                return _match_chunk(index, chunk, self._settings)

        with intra_op_threads(self.threads):
            if self.workers > 1 and len(chunks) > 1:
                with ThreadPoolExecutor(max_workers=self.workers) as pool:
                    parts = list(pool.map(run, chunks))
            else:
                parts = [run(chunk) for chunk in chunks]
        owner, orientation, boxes, score = (torch.cat(column) for column in zip(*parts))
        fractions = boxes / index.sizes[owner].repeat(1, 2)
        matches = tuple(
            CopyMatch(
                candidate_index=row,
                training_index=int(owner[row]),
                score=float(score[row]),
                transform=DIHEDRAL_NAMES[int(orientation[row])],
                window=tuple(round(float(v), 4) for v in fractions[row]),
                is_copy=bool(score[row] > self.threshold),
            )
            for row in range(len(arrays))
        )
        return CopyMatches(matches, self.threshold, index.n, METHOD, time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------------------------
# Calibration and the copy rate
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate(JsonResult):
    count: int
    n: int
    rate: float
    ci: ConfidenceInterval


def _rate(count: int, n: int, confidence: float) -> Rate:
    return Rate(int(count), int(n), count / n if n else math.nan, wilson_interval(int(count), n, confidence))


def conformal_threshold(null_scores: np.ndarray, target_rate: float) -> float:
    """The ceil((n + 1)(1 - target))-th smallest of n scores of non-copies: a new exchangeable non-copy exceeds it
    with probability <= target (split-conformal). Needs n >= 1/target - 1 scores."""
    scores = np.sort(np.asarray(null_scores, dtype=np.float64))
    rank = math.ceil((len(scores) + 1) * (1.0 - target_rate))
    if rank > len(scores):
        raise InsufficientSamplesError(
            f"a false-copy rate of {target_rate:g} needs at least {math.ceil(1 / target_rate - 1)} held-out real "
            f"images, got {len(scores)}"
        )
    return float(scores[rank - 1])


@dataclass(frozen=True)
class CopyCalibration(JsonResult):
    threshold: float  # copies score above it
    target_false_copy_rate: float
    target_detection_rate: float
    false_copies: Rate  # held-out real images above a threshold chosen without them (cross-fitted folds)
    in_sample_false_copies: Rate  # held-out real images above the final threshold (optimistic by construction)
    detection: Rate  # transformed copies above the threshold AND matched to their own source image
    detection_by_transform: dict[str, Rate]  # copies whose transforms include that kind
    misattributed_copies: int  # above the threshold but matched to another training image
    held_out_score_quantiles: dict[str, float]
    copy_score_quantiles: dict[str, float]
    passes: bool
    passes_rule: str
    n_training: int
    folds: int
    seed: int
    method: str
    seconds: float


def _quantiles(scores: np.ndarray, levels: dict[str, float]) -> dict[str, float]:
    return {name: float(np.quantile(scores, level)) for name, level in levels.items()}


def calibrate_copy_detector(
    training: Sequence[ImageSource],
    held_out_real: Sequence[ImageSource],
    transformed_copies: Sequence[TransformedCopy],
    target_false_copy_rate: float = 0.01,
    *,
    target_detection_rate: float = 0.95,
    detector: CopyDetector | None = None,
    folds: int = 5,
    seed: Seed = 0,
    confidence: float = 0.95,
) -> CopyCalibration:
    """Threshold from the scores of real images the generator never saw (different lesions), checked on
    transformed copies of the training images (`make_transformed_copies(training, ...)`).

    The threshold is the split-conformal order statistic of the held-out scores (`conformal_threshold`). The
    false-copy rate reported is cross-fitted: each of `folds` random folds is scored against a threshold chosen on
    the other folds, so it is not the in-sample rate that the choice guarantees (reported too). `passes` compares
    point estimates: cross-fitted false-copy rate <= target and detection rate >= target_detection_rate; the Wilson
    CIs stand beside them (with ~300 held-out images even 0 false copies has an upper bound of 1.3 %, so an
    upper-bound rule could not pass at this sample size).
    """
    start = time.perf_counter()
    if not transformed_copies:
        raise ValueError("transformed_copies is empty: the detection rate needs copies (make_transformed_copies)")
    detector = detector or CopyDetector()
    training_arrays = _as_rgb_arrays(training, "training")
    held_out = _as_rgb_arrays(held_out_real, "held_out_real")
    known = {sha256_array(image) for image in training_arrays}
    identical = sum(sha256_array(image) in known for image in held_out)
    if identical:
        raise ValueError(f"{identical} held-out images are pixel-identical to training images: de-duplicate first")
    if any(not 0 <= copy.source_index < len(training_arrays) for copy in transformed_copies):
        raise ValueError("a transformed copy's source_index is outside the training images")
    _check_held_out_size(len(held_out), target_false_copy_rate, folds)
    index = detector.index(training_arrays)
    held_out_matches = detector.match(held_out, index)
    copy_matches = detector.match([copy.image for copy in transformed_copies], index)
    result = calibrate_from_matches(
        held_out_matches, copy_matches, transformed_copies, target_false_copy_rate,
        target_detection_rate=target_detection_rate, folds=folds, seed=seed, confidence=confidence,
    )
    return dataclasses.replace(result, seconds=time.perf_counter() - start)


def _check_held_out_size(n: int, target_false_copy_rate: float, folds: int) -> None:
    needed = math.ceil(1 / target_false_copy_rate - 1)  # for the conformal threshold of each fold's complement
    if folds < 2 or n - math.ceil(n / folds) < needed:
        raise InsufficientSamplesError(
            f"{folds}-fold cross-fitting at a false-copy rate of {target_false_copy_rate:g} needs at least "
            f"{math.ceil(needed * folds / max(folds - 1, 1))} held-out real images, got {n}"
        )


def calibrate_from_matches(
    held_out: CopyMatches,
    copies: CopyMatches,
    transformed_copies: Sequence[TransformedCopy],
    target_false_copy_rate: float = 0.01,
    *,
    target_detection_rate: float = 0.95,
    folds: int = 5,
    seed: Seed = 0,
    confidence: float = 0.95,
) -> CopyCalibration:
    """`calibrate_copy_detector` on matches already computed against the same training images."""
    _check_held_out_size(len(held_out.matches), target_false_copy_rate, folds)
    if len(copies.matches) != len(transformed_copies) or not transformed_copies:
        raise ValueError("copies must be the (non-empty) matches of transformed_copies, in the same order")
    recorded_seed, rng = resolve_seed(seed)
    null = held_out.scores
    threshold = conformal_threshold(null, target_false_copy_rate)
    fold_of = rng.permutation(len(null)) % folds
    false_copies = 0
    for fold in range(folds):
        fold_threshold = conformal_threshold(null[fold_of != fold], target_false_copy_rate)
        false_copies += int(np.sum(null[fold_of == fold] > fold_threshold))
    sources = np.array([copy.source_index for copy in transformed_copies])
    above = copies.scores > threshold
    detected = above & (copies.training_index == sources)
    by_kind = {}
    for kind in TRANSFORM_KINDS:
        rows = np.array([kind in copy.kinds for copy in transformed_copies])
        if rows.any():
            by_kind[kind] = _rate(int(detected[rows].sum()), int(rows.sum()), confidence)
    false_rate = _rate(false_copies, len(null), confidence)
    detection = _rate(int(detected.sum()), len(detected), confidence)
    return CopyCalibration(
        threshold=threshold,
        target_false_copy_rate=target_false_copy_rate,
        target_detection_rate=target_detection_rate,
        false_copies=false_rate,
        in_sample_false_copies=_rate(int(np.sum(null > threshold)), len(null), confidence),
        detection=detection,
        detection_by_transform=by_kind,
        misattributed_copies=int(np.sum(above & ~detected)),
        held_out_score_quantiles=_quantiles(null, {"median": 0.5, "q90": 0.9, "q99": 0.99, "max": 1.0}),
        copy_score_quantiles=_quantiles(copies.scores, {"min": 0.0, "q01": 0.01, "q05": 0.05, "median": 0.5}),
        passes=bool(false_rate.rate <= target_false_copy_rate and detection.rate >= target_detection_rate),
        passes_rule=(
            f"point estimates: cross-fitted ({folds}-fold) false-copy rate <= {target_false_copy_rate:g} and "
            f"detection of transformed copies (matched to their source) >= {target_detection_rate:g}"
        ),
        n_training=held_out.n_training,
        folds=folds,
        seed=recorded_seed,
        method=held_out.method,
        seconds=held_out.seconds + copies.seconds,
    )


@dataclass(frozen=True)
class CopyRateResult(JsonResult):
    n_candidates: int
    n_training: int
    copies: int
    copy_rate: float
    copy_ci: ConfidenceInterval  # Wilson score
    threshold: float
    flagged: tuple[CopyMatch, ...]  # pairs above the threshold, highest score first, for side-by-side display
    rule: str
    seconds: float


def compute_copy_rate(
    candidates: Sequence[ImageSource],
    training: Sequence[ImageSource] | TrainingIndex,
    *,
    detector: CopyDetector | None = None,
    confidence: float = 0.95,
) -> CopyRateResult:
    """Share of `candidates` (generated images) that are copies of a training image, with a Wilson CI."""
    detector = detector or CopyDetector()
    matches = detector.match(candidates, training)
    flagged = tuple(sorted((m for m in matches.matches if m.is_copy), key=lambda m: -m.score))
    n = len(matches.matches)
    return CopyRateResult(
        n_candidates=n,
        n_training=matches.n_training,
        copies=len(flagged),
        copy_rate=len(flagged) / n,
        copy_ci=wilson_interval(len(flagged), n, confidence),
        threshold=detector.threshold,
        flagged=flagged,
        rule=f"copy when verification score > {detector.threshold:.4f} ({METHOD})",
        seconds=matches.seconds,
    )
