"""Per-frame cost of the observation pipeline: decode + Octo resize, and window assembly.

Run: .venv/bin/python bench/observation_buffer.py [--iters N]
Prints p50/p95 in milliseconds for 640x480 rgb8 / bgr8 / jpeg frames -> 256x256 (with the
primary-camera average crop) and -> 128x128, and for ObservationBuffer.assemble.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from octo_ros.perception.image_codec import (  # noqa: E402
    decode_compressed_image,
    decode_image,
    encode_compressed_image,
    encode_image,
    resize_like_octo,
)
from octo_ros.perception.observation import ObservationBuffer, ObservationConfig  # noqa: E402

MS = 1_000_000


def timeit(fn, iters, warmup=3):
    for _ in range(warmup):
        fn()
    out = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter()
        fn()
        out[i] = (time.perf_counter() - t0) * 1e3
    return np.percentile(out, 50), np.percentile(out, 95)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=50)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:480, 0:640]
    img = np.clip(np.stack([xx / 2.5, yy / 1.9, (xx + yy) / 4.4], -1) + rng.normal(0, 8, (480, 640, 3)), 0, 255)
    img = img.astype(np.uint8)
    raw = {e: encode_image(img, e) for e in ("rgb8", "bgr8")}
    jpg = encode_compressed_image(img, "jpeg", quality=90)

    rows = []

    def dec(e):
        f = raw[e]
        return lambda: decode_image(f.encoding, f.height, f.width, f.step, f.data)

    rows.append(("decode rgb8 640x480", *timeit(dec("rgb8"), args.iters)))
    rows.append(("decode bgr8 640x480", *timeit(dec("bgr8"), args.iters)))
    rows.append(("decode jpeg 640x480", *timeit(lambda: decode_compressed_image(jpg.format, jpg.data), args.iters)))
    rows.append(("resize 640x480->256x256 (+avg crop)", *timeit(lambda: resize_like_octo(img, (256, 256), True), args.iters)))
    rows.append(("resize 640x480->128x128", *timeit(lambda: resize_like_octo(img, (128, 128)), args.iters)))
    for e in ("rgb8", "bgr8"):
        f = raw[e]
        rows.append((f"decode+resize {e} -> 256x256", *timeit(
            lambda f=f: resize_like_octo(decode_image(f.encoding, f.height, f.width, f.step, f.data), (256, 256), True),
            args.iters)))
    rows.append(("decode+resize jpeg -> 256x256", *timeit(
        lambda: resize_like_octo(decode_compressed_image(jpg.format, jpg.data), (256, 256), True), args.iters)))

    # assembly: primary 640x480 + wrist 640x480 + joints, one new step per call (includes the resizes)
    cfg = ObservationConfig.from_dict({
        "cameras": {"image_primary": {"topic": "/cam"}, "image_wrist": {"topic": "/wrist"}},
        "joint_state": {"joints": [f"j{i}" for i in range(7)]},
    })
    buf = ObservationBuffer(cfg)
    names = [f"j{i}" for i in range(7)]
    state = {"t": 1000 * MS}

    def step():
        state["t"] += 200 * MS
        t = state["t"]
        buf.add_image("image_primary", t, img)
        buf.add_image("image_wrist", t + MS, img)
        buf.add_joint_state(t - MS, names, np.zeros(7))
        w = buf.assemble(t + 5 * MS)
        assert w.ready, w

    rows.append(("assemble (2 cams 640x480 -> 256+128, W=2)", *timeit(step, args.iters)))
    wrist_only = {"t": 0}

    def step_no_resize_cost():
        # same, but measure only the bookkeeping: one tiny image per camera
        wrist_only["t"] += 200 * MS
        t = wrist_only["t"]
        small.add_image("image_primary", t, img[:8, :8])
        small.add_image("image_wrist", t, img[:8, :8])
        small.add_joint_state(t, names, np.zeros(7))
        small.assemble(t)

    small = ObservationBuffer(ObservationConfig.from_dict({
        "cameras": {"image_primary": {"height": 8, "width": 8}, "image_wrist": {"height": 8, "width": 8}},
        "joint_state": {"joints": names}}))
    rows.append(("assemble bookkeeping only (8x8 images)", *timeit(step_no_resize_cost, args.iters)))

    w = max(len(r[0]) for r in rows)
    print(f"{'operation':<{w}} | {'p50 ms':>8} | {'p95 ms':>8}")
    print("-" * w + "-+-" + "-" * 8 + "-+-" + "-" * 8)
    for name, p50, p95 in rows:
        print(f"{name:<{w}} | {p50:8.2f} | {p95:8.2f}")


if __name__ == "__main__":
    main()
