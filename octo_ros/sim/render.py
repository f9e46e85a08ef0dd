"""A small software renderer (OpenCV) for the WidowX and UR5 simulators: an arm drawn as shaded
capsules over a table with a few objects, seen through a pinhole camera.

It is meant to make a closed loop *visible* (and recordable) at a few milliseconds per frame on
a CPU, not to be photorealistic: links are drawn far-to-near (painter's algorithm) with a
thickness that follows perspective, and every link, joint and object casts a soft vertical
"shadow" on the table so height is readable. The output is a pure function of the scene
(identical states give identical images).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from octo_ros.control.kinematics import ArmKinematics, rotation_exp, skew


@dataclass(frozen=True)
class PinholeCamera:
    """A camera at ``eye`` looking at ``target`` (world z up), vertical field of view ``fovy_deg``."""

    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    fovy_deg: float = 55.0
    width: int = 640
    height: int = 480

    def __post_init__(self):
        if self.width <= 0 or self.height <= 0:
            raise ValueError("image size must be positive")
        if not 1.0 < self.fovy_deg < 179.0:
            raise ValueError("fovy_deg must lie in (1, 179)")

    def world_to_camera(self) -> np.ndarray:
        """3×4 [R | t] mapping world points to camera coordinates (x right, y down, z forward)."""
        eye, target = np.asarray(self.eye, float), np.asarray(self.target, float)
        fwd = target - eye
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, (0.0, 0.0, 1.0))
        if np.linalg.norm(right) < 1e-9:  # looking straight down
            right = np.array([0.0, -1.0, 0.0])
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        R = np.stack([right, down, fwd])
        return np.hstack([R, (-R @ eye)[:, None]])

    @property
    def focal(self) -> float:
        return 0.5 * self.height / math.tan(math.radians(self.fovy_deg) / 2.0)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) world points → (N, 2) pixel coordinates and (N,) depths."""
        P = self.world_to_camera()
        pc = np.asarray(points, float) @ P[:, :3].T + P[:, 3]
        z = np.maximum(pc[:, 2], 1e-6)
        f = self.focal
        uv = np.stack([f * pc[:, 0] / z + self.width / 2.0, f * pc[:, 1] / z + self.height / 2.0], axis=1)
        return uv, pc[:, 2]


@dataclass(frozen=True)
class Capsule:
    """A link segment from ``a`` to ``b`` (world, m) with ``radius`` (m) and RGB colour."""

    a: tuple[float, float, float]
    b: tuple[float, float, float]
    radius: float
    color: tuple[int, int, int]


@dataclass(frozen=True)
class Box:
    """An axis-aligned box resting anywhere: centre, half sizes, yaw (rad) and RGB colour."""

    center: tuple[float, float, float]
    half: tuple[float, float, float]
    color: tuple[int, int, int]
    yaw: float = 0.0

    def corners(self) -> np.ndarray:
        hx, hy, hz = self.half
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
        return (signs * (hx, hy, hz)) @ R.T + np.asarray(self.center, float)


_BOX_FACES = ((0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5))
# Face index → shading factor (−x, +x, −y, +y, −z, +z faces).
_BOX_SHADE = (0.70, 0.85, 0.75, 0.90, 0.55, 1.0)


@dataclass(frozen=True)
class TableScene:
    """The static part of a scene: a table top (z = ``height``), floor colour and objects."""

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    height: float = 0.0
    table_color: tuple[int, int, int] = (168, 140, 108)
    grid_color: tuple[int, int, int] = (150, 124, 94)
    background: tuple[int, int, int] = (58, 62, 70)
    objects: tuple[Box, ...] = field(default_factory=tuple)
    grid_step: float = 0.1


_SS = 4  # sub-pixel bits for cv2 drawing (shift=_SS)


def _pt(uv) -> tuple[int, int]:
    return int(round(uv[0] * (1 << _SS))), int(round(uv[1] * (1 << _SS)))


def _shade(color, k: float) -> tuple[int, int, int]:
    return tuple(int(max(0, min(255, round(c * k)))) for c in color)


def render_scene(camera: PinholeCamera, scene: TableScene, capsules: list[Capsule]) -> np.ndarray:
    """Draw the table, objects, shadows and arm capsules; returns (H, W, 3) uint8 RGB."""
    img = np.empty((camera.height, camera.width, 3), np.uint8)
    img[:] = scene.background
    z0 = scene.height
    x0, x1 = scene.x_range
    y0, y1 = scene.y_range

    # Table top and grid (clipped to the part in front of the camera by construction of the view).
    corners = np.array([[x0, y0, z0], [x1, y0, z0], [x1, y1, z0], [x0, y1, z0]])
    uv, _ = camera.project(corners)
    cv2.fillPoly(img, [np.array([_pt(p) for p in uv], np.int32)], scene.table_color, cv2.LINE_AA, _SS)
    n_x = int(round((x1 - x0) / scene.grid_step))
    n_y = int(round((y1 - y0) / scene.grid_step))
    lines = [((x0 + i * scene.grid_step, y0, z0), (x0 + i * scene.grid_step, y1, z0)) for i in range(1, n_x)]
    lines += [((x0, y0 + j * scene.grid_step, z0), (x1, y0 + j * scene.grid_step, z0)) for j in range(1, n_y)]
    for a, b in lines:
        (pa, pb), _ = camera.project(np.array([a, b]))
        cv2.line(img, _pt(pa), _pt(pb), scene.grid_color, 1, cv2.LINE_AA, _SS)

    # Shadows: everything dropped vertically onto the table, drawn with transparency.
    shadow = img.copy()
    for box in scene.objects:
        c = box.corners()
        c[:, 2] = z0
        uv, _ = camera.project(c)
        hull = cv2.convexHull(np.array([_pt(p) for p in uv], np.int32))
        cv2.fillConvexPoly(shadow, hull, (0, 0, 0), cv2.LINE_AA, _SS)
    for cap in capsules:
        a, b = np.array(cap.a, float), np.array(cap.b, float)
        a[2] = b[2] = z0
        (pa, pb), (da, db) = camera.project(np.array([a, b]))
        t = max(1, int(round(2 * cap.radius * camera.focal / max(0.5 * (da + db), 1e-3))))
        cv2.line(shadow, _pt(pa), _pt(pb), (0, 0, 0), t, cv2.LINE_AA, _SS)
    cv2.addWeighted(shadow, 0.35, img, 0.65, 0.0, dst=img)

    # Objects and links, far to near.
    items: list[tuple[float, int, object]] = []
    for i, box in enumerate(scene.objects):
        _, d = camera.project(np.asarray([box.center], float))
        items.append((float(d[0]), i, box))
    for i, cap in enumerate(capsules):
        (_, _), d = camera.project(np.array([cap.a, cap.b], float))
        items.append((float(np.mean(d)) - cap.radius, len(scene.objects) + i, cap))
    items.sort(key=lambda it: (-it[0], it[1]))
    cam_pos = np.asarray(camera.eye, float)
    for _, _, item in items:
        if isinstance(item, Box):
            _draw_box(img, camera, item, cam_pos)
        else:
            _draw_capsule(img, camera, item)
    return img


def _draw_box(img, camera: PinholeCamera, box: Box, cam_pos: np.ndarray) -> None:
    c = box.corners()
    uv, _ = camera.project(c)
    center = np.asarray(box.center, float)
    faces = []
    for k, face in enumerate(_BOX_FACES):
        fc = c[list(face)].mean(axis=0)
        normal = fc - center
        if np.dot(normal, cam_pos - fc) <= 0:  # back face
            continue
        faces.append((np.linalg.norm(cam_pos - fc), k, face))
    for _, k, face in sorted(faces, reverse=True):
        poly = np.array([_pt(uv[i]) for i in face], np.int32)
        cv2.fillConvexPoly(img, poly, _shade(box.color, _BOX_SHADE[k]), cv2.LINE_AA, _SS)


def _draw_capsule(img, camera: PinholeCamera, cap: Capsule) -> None:
    (pa, pb), (da, db) = camera.project(np.array([cap.a, cap.b], float))
    f = camera.focal
    ta = 2 * cap.radius * f / max(da, 1e-3)
    tb = 2 * cap.radius * f / max(db, 1e-3)
    t = max(1, int(round(0.5 * (ta + tb))))
    # Outline, body, then a highlight stripe: reads as a cylinder rather than a flat line.
    cv2.line(img, _pt(pa), _pt(pb), _shade(cap.color, 0.45), t + 2, cv2.LINE_AA, _SS)
    cv2.line(img, _pt(pa), _pt(pb), cap.color, t, cv2.LINE_AA, _SS)
    if t >= 4:
        cv2.line(img, _pt(pa), _pt(pb), _shade(cap.color, 1.35), max(1, t // 4), cv2.LINE_AA, _SS)
    for p, tt in ((pa, ta), (pb, tb)):
        r = max(1, int(round(0.5 * tt)))
        cv2.circle(img, _pt(p), r << _SS, _shade(cap.color, 0.8), -1, cv2.LINE_AA, _SS)


# --------------------------------------------------------------------------------- kinematic chains


def screw_exp(S: np.ndarray, theta: float) -> np.ndarray:
    """exp([S]θ) for a revolute screw S = [ω; v] with |ω| = 1."""
    w, v = S[:3], S[3:]
    W = skew(w)
    T = np.eye(4)
    T[:3, :3] = rotation_exp(w * theta)
    T[:3, 3] = (np.eye(3) * theta + (1.0 - math.cos(theta)) * W + (theta - math.sin(theta)) * W @ W) @ v
    return T


def joint_anchors(arm: ArmKinematics) -> np.ndarray:
    """One point on every joint axis at the home configuration, each the point of its axis
    closest to the previous anchor (the base origin for the first), so consecutive anchors are
    the natural link segments. Shape (n, 3)."""
    prev = np.zeros(3)
    out = []
    for i in range(arm.screw_axes.shape[1]):
        w, v = arm.screw_axes[:3, i], arm.screw_axes[3:, i]
        q0 = np.cross(w, v)  # point on the axis (v = −ω × q  →  q = ω × v for q ⟂ ω)
        p = q0 + w * np.dot(prev - q0, w)
        out.append(p)
        prev = p
    return np.array(out)


def chain_frames(arm: ArmKinematics, q) -> tuple[np.ndarray, np.ndarray]:
    """World positions of the joint anchors (n, 3) and the end-effector pose (4, 4) at ``q``."""
    anchors = joint_anchors(arm)
    T = np.eye(4)
    pts = []
    for i, theta in enumerate(np.asarray(q, float)):
        T = T @ screw_exp(arm.screw_axes[:, i], float(theta))
        pts.append(T[:3, :3] @ anchors[i] + T[:3, 3])  # joint i leaves its own anchor fixed
    return np.array(pts), T @ arm.home
