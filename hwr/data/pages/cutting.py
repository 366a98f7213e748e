"""Cutting a text line out of a page scan with OpenCV: the polygon's bounding box, everything
outside the polygon filled with the page's background, rotated so that the baseline is level.

The one line cutter of training and prediction. Scaling to the model's height is left to
:func:`hwr.data.images.fit_to_geometry`, as for any line image.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

MAX_DESKEW_DEGREES = 30.0  # a steeper baseline is more likely a vertical line or a bad baseline
MIN_DESKEW_DEGREES = 0.2  # below this, rotating only blurs


class LineGeometryError(ValueError):
    """A line that cannot be cut: a polygon outside the page, or with no area."""


def page_background(page: np.ndarray) -> int:
    """The page's paper grey: the median of a ``(h, w)`` uint8 scan (paper covers most of a page)."""
    return int(np.median(page[::4, ::4]))


def baseline_angle(baseline: np.ndarray | None) -> float:
    """The baseline's slope in degrees (positive: descending to the right in image coordinates),
    by a least-squares line through its points; 0 for a missing, one-point or vertical baseline,
    or one steeper than :data:`MAX_DESKEW_DEGREES`."""
    if baseline is None or len(baseline) < 2 or np.ptp(baseline[:, 0]) == 0:
        return 0.0
    slope = np.polyfit(baseline[:, 0].astype(np.float64), baseline[:, 1].astype(np.float64), 1)[0]
    angle = math.degrees(math.atan(slope))
    return angle if MIN_DESKEW_DEGREES <= abs(angle) <= MAX_DESKEW_DEGREES else 0.0


def cut_line(page: np.ndarray, polygon: np.ndarray, baseline: np.ndarray | None = None,
             background: int | None = None) -> np.ndarray:
    """Cut one line out of a page.

    Args:
        page: ``(h, w)`` uint8 grayscale scan.
        polygon: ``(n, 2)`` int32 page pixels ``(x, y)``, n >= 3 (2 points: a box's corners).
        baseline: ``(m, 2)`` int32 page pixels or None; the line is rotated to level it.
        background: fill grey for outside the polygon (default :func:`page_background`).

    Returns:
        ``(line_h, line_w)`` uint8: the polygon's bounding box, clipped to the page.

    Raises:
        LineGeometryError: the polygon lies outside the page or encloses no pixel.
    """
    fill = page_background(page) if background is None else int(background)
    polygon = _as_polygon(polygon)
    x0, y0 = np.maximum(polygon.min(axis=0), 0)
    x1, y1 = np.minimum(polygon.max(axis=0) + 1, (page.shape[1], page.shape[0]))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise LineGeometryError(f"polygon {_extent(polygon)} lies outside the {page.shape[1]}x{page.shape[0]} page"
                                if x1 <= x0 or y1 <= y0 else f"polygon {_extent(polygon)} encloses no pixel")
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [polygon - (x0, y0)], 255)
    if not mask.any():
        raise LineGeometryError(f"polygon {_extent(polygon)} encloses no pixel")
    line = np.where(mask > 0, page[y0:y1, x0:x1], np.uint8(fill))
    angle = baseline_angle(baseline)
    return _level(line, mask, angle, fill) if angle else line


def _as_polygon(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.int32).reshape(-1, 2)
    if len(points) == 2:  # two corners of a box
        (ax, ay), (bx, by) = points
        points = np.array([[ax, ay], [bx, ay], [bx, by], [ax, by]], np.int32)
    if len(points) < 3:
        raise LineGeometryError(f"polygon of {len(points)} point(s)")
    return points


def _extent(polygon: np.ndarray) -> str:
    (x0, y0), (x1, y1) = polygon.min(axis=0), polygon.max(axis=0)
    return f"x {x0}..{x1}, y {y0}..{y1}"


def _level(line: np.ndarray, mask: np.ndarray, angle: float, fill: int) -> np.ndarray:
    """Rotate by ``angle`` degrees about the centre on a canvas large enough for the result, then
    crop to the rotated polygon's bounding box."""
    h, w = line.shape
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = int(math.ceil(h * sin + w * cos)), int(math.ceil(h * cos + w * sin))
    matrix[:, 2] += ((new_w - w) / 2.0, (new_h - h) / 2.0)
    rotated = cv2.warpAffine(line, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    inside = cv2.warpAffine(mask, matrix, (new_w, new_h), flags=cv2.INTER_NEAREST, borderValue=0)
    ys, xs = np.nonzero(inside)
    return rotated[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
