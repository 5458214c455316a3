"""Loop centring from on-axis camera images: find the loop, then the moves that put it on the
rotation axis in the beam.

``find_loop`` reads one back-lit image: it flattens the illumination (a quadratic surface
fitted to the bright pixels), keeps pixels darker than the background by ``dark_fraction``,
and takes the largest dark structure entering from the pin side. Along the omega axis that
structure is the pin (thick), the fibre neck (thin: at most ``neck_max_um`` across) and the
loop (the ellipse of the rim, wider than the neck unless seen edge-on). The tip is its far
end; the loop starts where the neck widens; its vertical centre is the mean of the top and
bottom edges over the middle half of the loop. A structure with no thin neck is a bare pin
(no loop); no dark structure entering from the pin side means nothing is mounted.

``centring_moves`` combines views at two or more omegas. The loop length is the same in every
view (it lies along the omega axis), so the view that shows the loop widest gives it; the
vertical offset of the loop centre follows ``y(omega) = A cos(omega) + B sin(omega) + C``
with ``A = b + sampx`` and ``B = -(c + sampy)`` (docs/architecture.md, Geometry) and ``C`` the
height of the rotation axis above the beam (fitted from three views or more, else taken as
``phiz``). The moves cancel ``A``, ``B`` and the horizontal offset; ``phiz`` is left alone.
See docs/analysis.md for the method and its limits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

PIN_SIDES = ("left", "right")
TIP_TOLERANCE_MM = 0.01
"""Views whose loop tip falls short of the farthest one by more than this are left out."""


@dataclass(frozen=True)
class LoopParams:
    """Tuning of :func:`find_loop` (defaults fit a back-lit MD-class on-axis viewer)."""

    dark_fraction: float = 0.55
    """A pixel is dark when it transmits less than ``1 - dark_fraction`` of the background."""
    neck_max_um: float = 45.0
    """Columns at most this tall (across the axis) are thin: the fibre neck, or an edge-on loop.
    A pin is thicker, a loop seen at more than ~20 deg from edge-on too."""
    min_neck_um: float = 30.0
    """Shortest run of thin columns that counts as a neck."""
    edge_on_window_um: float = 40.0
    """For an edge-on loop (no widening), its centre height is read this close to the tip."""
    smooth_px: float = 1.0
    """Gaussian smoothing (sigma, px) before thresholding, against pixel noise."""
    min_pixels: int = 30
    """Smaller dark structures are ignored (dust, noise)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.dark_fraction < 1.0:
            raise ValueError(f"dark_fraction must be within 0..1, got {self.dark_fraction}")
        if not (self.neck_max_um > 0 and self.min_neck_um > 0 and self.edge_on_window_um > 0):
            raise ValueError(
                "neck_max_um, min_neck_um and edge_on_window_um must be > 0, got "
                f"{self.neck_max_um}, {self.min_neck_um}, {self.edge_on_window_um}"
            )


@dataclass(frozen=True)
class LoopView:
    """What one camera image shows. Pixel positions are (x = column, y = row)."""

    found: bool
    reason: str
    """Why no loop was found, or a short note on what was (e.g. ``edge-on``)."""
    pixel_size_um: float
    beam_position_px: tuple[float, float]
    pin_side: str = "left"
    tip_px: tuple[float, float] | None = None
    """Far end of the loop from the pin (outer edge of the rim)."""
    centre_px: tuple[float, float] | None = None
    """Loop centre; when the length is unknown (edge-on) its x is the tip's."""
    length_px: float | None = None
    """Extent along the omega axis, rim to rim; None when seen edge-on."""
    height_px: float = 0.0
    """Largest extent across the axis (loop width x |cos| of its angle to the view)."""
    bounding_box_px: tuple[int, int, int, int] | None = None
    """(x_min, y_min, x_max, y_max) of the loop, inclusive."""
    edge_on: bool = False
    clipped: bool = False
    """The loop touches the image border: its centre height may be off."""
    confidence: float = 0.0
    """0..1: contrast, halved when clipped, lower when edge-on."""

    @property
    def width_px(self) -> float | None:
        """Same as ``length_px``: the loop's extent along the image x axis."""
        return self.length_px


@dataclass(frozen=True)
class CentringMoves:
    """Motor positions that bring the loop point onto the rotation axis and into the beam."""

    found: bool
    reason: str
    positions: dict[str, float]
    """Target ``phiy``, ``sampx``, ``sampy`` (mm); the current ones when nothing was found."""
    moves: dict[str, float]
    """Target minus current (mm)."""
    axis_offset_mm: float
    """Height of the rotation axis above the beam in the image (``C``)."""
    axis_fitted: bool
    """``C`` fitted (three views or more) rather than taken as ``phiz``."""
    residual_um: float
    """RMS misfit of the loop centre heights to the sinusoid (0 with two views)."""
    loop_length_um: float | None
    n_views: int
    """Views used in the fit."""
    confidence: float
    notes: tuple[str, ...] = ()


def find_loop(
    image: np.ndarray,
    pixel_size_um: float,
    beam_position_px: tuple[float, float],
    pin_side: str = "left",
    params: LoopParams | None = None,
) -> LoopView:
    """The loop in one back-lit camera image (see the module docstring)."""
    p = params or LoopParams()
    if pin_side not in PIN_SIDES:
        raise ValueError(f"unknown pin side {pin_side!r}; known: {', '.join(PIN_SIDES)}")
    if not pixel_size_um > 0:
        raise ValueError(f"pixel size must be > 0 um, got {pixel_size_um!r}")
    frame = np.asarray(image)
    if frame.ndim != 2 or min(frame.shape) < 8:
        raise ValueError(f"expected a 2D grey image of at least 8x8 pixels, got {frame.shape}")
    width = frame.shape[1]
    mirrored = pin_side == "right"
    if mirrored:  # analyse as if the pin came from the left, mirror the answer back
        frame = frame[:, ::-1]

    def unmirror_x(x: float) -> float:
        return (width - 1) - x if mirrored else x

    def not_found(reason: str) -> LoopView:
        return LoopView(
            found=False,
            reason=reason,
            pixel_size_um=float(pixel_size_um),
            beam_position_px=(float(beam_position_px[0]), float(beam_position_px[1])),
            pin_side=pin_side,
        )

    ratio = _flattened(frame.astype(np.float32), p.smooth_px)
    dark = ratio < 1.0 - p.dark_fraction
    rows_dark = np.flatnonzero(dark.any(axis=1))
    if rows_dark.size == 0:
        return not_found("nothing in view: no dark structure against the back-light")
    # Closing bridges one-pixel breaks, e.g. where the neck meets an edge-on rim (done on
    # the rows holding dark pixels only: most of a back-lit image is empty).
    band = slice(max(0, rows_dark[0] - 2), rows_dark[-1] + 3)
    dark[band] |= ndimage.binary_closing(dark[band], np.ones((3, 3), dtype=bool))
    labels, n = ndimage.label(dark, structure=np.ones((3, 3), dtype=bool))
    entering = np.unique(labels[:, 0])
    entering = entering[entering > 0]
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    if entering.size == 0 or sizes[entering].max() < p.min_pixels:
        return not_found(f"no pin in view: no dark structure enters from the {pin_side}")
    structure = labels == entering[np.argmax(sizes[entering])]

    cols = np.flatnonzero(structure.any(axis=0))
    c0, c1 = int(cols[0]), int(cols[-1])
    sub = structure[:, c0 : c1 + 1]
    height = sub.shape[0]
    has = sub.any(axis=0)
    top = np.where(has, np.argmax(sub, axis=0), -1)
    bottom = np.where(has, height - 1 - np.argmax(sub[::-1], axis=0), -1)
    extent = np.where(has, bottom - top + 1, 0).astype(np.float64)

    pixel_um = float(pixel_size_um)
    neck_max_px = p.neck_max_um / pixel_um
    thin = has & (extent <= neck_max_px)
    neck = _first_run(thin, max(2, math.ceil(p.min_neck_um / pixel_um)))
    tip_col = c1 - c0
    if neck is None:
        return not_found(
            "pin without loop: no thin fibre neck beyond the pin "
            f"(the structure is at least {extent[has].min() * pixel_um:.0f} um across everywhere)"
        )
    neck_start, neck_end = neck
    level = float(np.median(extent[neck_start : neck_end + 1]))
    tip_x = c0 + tip_col + 0.5  # the rim's outer edge lies half a pixel beyond the last column
    tip_y = 0.5 * (top[tip_col] + bottom[tip_col])
    edge_on = neck_end >= tip_col
    if edge_on:
        window = max(2, round(p.edge_on_window_um / pixel_um))
        left = max(neck_start, tip_col - window)
        middle = np.arange(left, max(left + 1, tip_col - 1))
        length_px = None
        x_min = c0 + left
    else:
        widening = extent[: neck_end + 1] > level + max(2.0, 0.25 * level)
        left = neck_end + 1
        while left > neck_start and widening[left - 1]:
            left -= 1
        length_px = float(tip_col - left + 1)
        quarter = length_px / 4.0
        middle = np.arange(math.ceil(left + quarter), math.floor(tip_col - quarter) + 1)
        if middle.size == 0:
            middle = np.arange(left, tip_col + 1)
        x_min = c0 + left
    loop_cols = np.arange(x_min - c0, tip_col + 1)
    clipped = bool(
        (top[loop_cols] == 0).any() or (bottom[loop_cols] == height - 1).any() or c1 >= width - 1
    )
    centre_y = float(np.mean(0.5 * (top[middle] + bottom[middle])))
    height_px = float(extent[loop_cols].max())
    y_min, y_max = int(top[loop_cols].min()), int(bottom[loop_cols].max())
    centre_x = tip_x if length_px is None else tip_x - length_px / 2.0

    loop_mask = structure[y_min : y_max + 1, x_min : c0 + tip_col + 1]
    contrast = 1.0 - float(np.median(ratio[y_min : y_max + 1, x_min : c0 + tip_col + 1][loop_mask]))
    confidence = min(1.0, contrast / 0.5) * (0.5 if clipped else 1.0) * (0.6 if edge_on else 1.0)
    x_lo, x_hi = sorted((unmirror_x(x_min), unmirror_x(c0 + tip_col)))
    return LoopView(
        found=True,
        reason="loop seen edge-on" if edge_on else "loop found",
        pixel_size_um=float(pixel_size_um),
        beam_position_px=(float(beam_position_px[0]), float(beam_position_px[1])),
        pin_side=pin_side,
        tip_px=(unmirror_x(tip_x), tip_y),
        centre_px=(unmirror_x(centre_x), centre_y),
        length_px=length_px,
        height_px=height_px,
        bounding_box_px=(int(x_lo), y_min, int(x_hi), y_max),
        edge_on=edge_on,
        clipped=clipped,
        confidence=round(confidence, 3),
    )


def centring_moves(
    views: Sequence[tuple[float, LoopView]],
    positions: Mapping[str, float],
    tip_offset_fraction: float = 0.5,
    fit_axis: bool | None = None,
) -> CentringMoves:
    """Moves of ``phiy``, ``sampx``, ``sampy`` that bring the point ``tip_offset_fraction`` of
    the loop length back from the tip (0.5: the loop centre) onto the rotation axis and into
    the beam, from ``(omega_deg, LoopView)`` pairs at two or more omegas.

    ``positions`` are the motor positions (mm) at which the views were taken (they must not
    change between views except omega); ``phiz`` defaults to 0. ``fit_axis``: fit the axis
    height ``C`` (default: when three or more views are usable)."""
    if not 0.0 <= tip_offset_fraction <= 1.0:
        raise ValueError(f"tip_offset_fraction must be within 0..1, got {tip_offset_fraction}")
    missing = [m for m in ("phiy", "sampx", "sampy") if m not in positions]
    if missing:
        raise ValueError(f"positions lack {', '.join(missing)}; give phiy, sampx, sampy (mm)")
    current = {m: float(positions[m]) for m in ("phiy", "sampx", "sampy")}
    phiz = float(positions.get("phiz", 0.0))

    def failed(reason: str) -> CentringMoves:
        return CentringMoves(
            found=False,
            reason=reason,
            positions=dict(current),
            moves={m: 0.0 for m in current},
            axis_offset_mm=phiz,
            axis_fitted=False,
            residual_um=0.0,
            loop_length_um=None,
            n_views=0,
            confidence=0.0,
        )

    if not views:
        return failed("no views given")
    seen = [(float(omega), v) for omega, v in views if v.found]
    if not seen:
        reasons = sorted({v.reason for _, v in views})
        return failed("no loop in any view: " + "; ".join(reasons))
    notes: list[str] = []
    unclipped = [(w, v) for w, v in seen if not v.clipped]
    if len(unclipped) < len(seen) and _independent([w for w, _ in unclipped]):
        notes.append(f"left out {len(seen) - len(unclipped)} view(s) where the loop is clipped")
        seen = unclipped
    omegas = [w for w, _ in seen]
    if not _independent(omegas):
        return failed(
            f"need loop views at two omegas at least 20 deg apart (mod 180), got {sorted(omegas)}"
        )

    pixel_mm = seen[0][1].pixel_size_um * 1e-3
    pin_left = seen[0][1].pin_side == "left"
    beam_x, beam_y = seen[0][1].beam_position_px
    # The tip's x does not change with omega; a part of the loop can fade out of a view
    # (too thin to see) but none can appear, so the farthest tip is the reference.
    tips_x = np.array([v.tip_px[0] if v.tip_px else np.nan for _, v in seen])
    far = float(np.nanmax(tips_x)) if pin_left else float(np.nanmin(tips_x))
    agree = np.abs(tips_x - far) * pixel_mm <= TIP_TOLERANCE_MM
    if not agree.all() and _independent([w for (w, _), ok in zip(seen, agree, strict=True) if ok]):
        notes.append(
            f"left out {int((~agree).sum())} view(s) whose loop tip is more than "
            f"{TIP_TOLERANCE_MM * 1e3:.0f} um short of the others (part of the loop not seen)"
        )
        seen = [view for view, ok in zip(seen, agree, strict=True) if ok]
        tips_x = tips_x[agree]
    tip_x = float(np.median(tips_x))
    with_length = [v for _, v in seen if v.length_px is not None]
    if with_length:
        widest = max(with_length, key=lambda v: v.height_px)
        assert widest.length_px is not None
        length_px: float | None = widest.length_px
        target_x = tip_x - (1 if pin_left else -1) * tip_offset_fraction * widest.length_px
    else:
        length_px = None
        target_x = tip_x
        notes.append("loop edge-on in every view: its length is unknown, centred on the tip")

    w = np.radians([omega for omega, _ in seen])
    y_mm = np.array([(beam_y - v.centre_px[1]) * pixel_mm for _, v in seen if v.centre_px])
    weight = np.sqrt(np.array([max(v.confidence, 0.05) for _, v in seen]))
    fit_c = len(seen) >= 3 if fit_axis is None else fit_axis
    if fit_c and len(seen) < 3:
        return failed(f"fitting the axis height needs three views or more, got {len(seen)}")
    if fit_c:
        design = np.column_stack([np.cos(w), np.sin(w), np.ones_like(w)])
        target = y_mm
        if np.linalg.matrix_rank(design) < 3:
            return failed(
                f"omegas {sorted(float(np.degrees(x)) for x in w)} cannot tell the axis height "
                "from the loop offset; use three distinct omegas (mod 360), e.g. 0, 90, 180"
            )
    else:
        design = np.column_stack([np.cos(w), np.sin(w)])
        target = y_mm - phiz
    solution, *_ = np.linalg.lstsq(design * weight[:, None], target * weight, rcond=None)
    a, b = float(solution[0]), float(solution[1])
    c = float(solution[2]) if fit_c else phiz
    residuals = y_mm - (a * np.cos(w) + b * np.sin(w) + c)
    dof = len(seen) - design.shape[1]
    residual_um = float(np.sqrt(np.sum(residuals**2) / dof)) * 1e3 if dof > 0 else 0.0

    x_mm = (target_x - beam_x) * pixel_mm
    target_positions = {
        "phiy": current["phiy"] - x_mm,
        "sampx": current["sampx"] - a,
        "sampy": current["sampy"] + b,
    }
    if fit_c and abs(c - phiz) > 0.005:
        notes.append(
            f"rotation axis {1e3 * (c - phiz):+.0f} um from the beam height expected from phiz; "
            "phiz left unchanged"
        )
    confidence = float(np.mean([v.confidence for _, v in seen]))
    if residual_um > 10.0:
        confidence *= 0.5
        notes.append(f"loop heights fit the rotation poorly ({residual_um:.0f} um RMS)")
    return CentringMoves(
        found=True,
        reason="loop centred" if tip_offset_fraction == 0.5 else "loop point centred",
        positions=target_positions,
        moves={m: target_positions[m] - current[m] for m in current},
        axis_offset_mm=c,
        axis_fitted=bool(fit_c),
        residual_um=residual_um,
        loop_length_um=None if length_px is None else length_px * pixel_mm * 1e3,
        n_views=len(seen),
        confidence=round(confidence, 3),
        notes=tuple(notes),
    )


def _flattened(image: np.ndarray, smooth_px: float) -> np.ndarray:
    """Image / illumination: a quadratic surface fitted to bright tiles (objects excluded)."""
    rows, cols = image.shape
    tile = max(4, min(rows, cols) // 32)
    n_r, n_c = rows // tile, cols // tile
    tiles = image[: n_r * tile, : n_c * tile].reshape(n_r, tile, n_c, tile)
    blocks = tiles.transpose(0, 2, 1, 3).reshape(n_r, n_c, tile * tile)
    rank = int(0.9 * (tile * tile - 1))
    level = np.partition(blocks, rank, axis=-1)[..., rank]
    yy, xx = np.meshgrid(
        (np.arange(n_r) + 0.5) * tile / rows - 0.5,
        (np.arange(n_c) + 0.5) * tile / cols - 0.5,
        indexing="ij",
    )
    x, y = xx.ravel(), yy.ravel()
    a = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1)
    z = level.ravel()
    keep = np.ones(z.size, dtype=bool)
    for _ in range(4):
        coef, *_ = np.linalg.lstsq(a[keep], z[keep], rcond=None)
        residual = z - a @ coef
        spread = 1.4826 * float(np.median(np.abs(residual[keep] - np.median(residual[keep]))))
        keep = residual > -3.0 * max(spread, 1e-6 * float(np.abs(z).max()) + 1e-9)
        if keep.sum() < 6:
            keep[:] = True
            break
    xf = ((np.arange(cols) + 0.5) / cols - 0.5)[np.newaxis, :]
    yf = ((np.arange(rows) + 0.5) / rows - 0.5)[:, np.newaxis]
    k0, kx, ky, kxx, kxy, kyy = (float(v) for v in coef)
    row_part = (k0 + kx * xf + kxx * xf * xf).astype(np.float32)
    col_part = (ky + kxy * xf).astype(np.float32)
    y32 = yf.astype(np.float32)
    background = row_part + col_part * y32 + np.float32(kyy) * y32 * y32
    smooth = ndimage.gaussian_filter(image, smooth_px, truncate=3.0) if smooth_px > 0 else image
    return smooth / np.maximum(background, np.float32(1e-6))


def _first_run(flags: np.ndarray, min_length: int) -> tuple[int, int] | None:
    """(start, end) inclusive of the first run of True at least ``min_length`` long."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    for start, end in zip(starts, ends, strict=True):
        if end - start + 1 >= min_length:
            return int(start), int(end)
    return None


def _independent(omegas: Sequence[float]) -> bool:
    """Two of the omegas differ by at least 20 deg modulo 180 (the sinusoid is determined)."""
    for i, first in enumerate(omegas):
        for second in omegas[i + 1 :]:
            if abs(math.sin(math.radians(first - second))) >= math.sin(math.radians(20.0)):
                return True
    return False
