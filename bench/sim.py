"""Simulator timings (prints only): physics step, control period and camera renders.

    .venv/bin/python bench/sim.py
"""
from __future__ import annotations

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def timeit(fn, n: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1000.0


def main() -> None:
    from octo_ros.robots.ur5.sim import UR5Scene, UR5SceneConfig
    from octo_ros.robots.widowx.sim import WidowXSim, WidowXSimConfig

    for w, h in ((320, 240), (640, 480)):
        wx = WidowXSim(WidowXSimConfig(image_width=w, image_height=h))
        ur = UR5Scene(UR5SceneConfig(image_width=w, image_height=h))
        print(f"widowx render {w}x{h}: {timeit(wx.render, 20):.1f} ms")
        print(f"ur5 render {w}x{h}: {timeit(ur.render, 20):.1f} ms")
    ur = UR5Scene()
    poses = [[0.4 + 0.05 * math.sin(i / 5), 0.0, 0.25, 0.0, math.pi, 0.0] for i in range(50)]
    it = iter(poses * 10)
    print(f"ur5 TCP pose → IK: {timeit(lambda: ur.set_tcp_pose(next(it)), 40):.2f} ms")
    wx = WidowXSim()
    wx.command_joint_group("arm", [0.3, -0.3, 0.4, 0.0, 0.9, 0.0])
    t = [0.0]

    def wx_tick():
        t[0] += 0.01
        wx.update(t[0])

    print(f"widowx driver update (10 ms): {timeit(wx_tick, 200) * 1000:.1f} µs")
    try:
        from octo_ros.robots.bimanual.sim import AlohaRenderer, AlohaSim
    except ImportError as exc:
        print(f"aloha: skipped ({exc})")
        return
    sim = AlohaSim()
    sim.command_joint_group("left", "arm", [0.4, -0.5, 0.8, 0.0, 0.3, 0.2])
    print(f"aloha control period (10 physics steps): {timeit(lambda: sim.step(1), 100):.2f} ms")
    for quality in ("fast", "model"):
        for w, h in ((320, 240), (640, 480)):
            sim2 = AlohaSim()
            r = AlohaRenderer(sim2.model, w, h, quality=quality)
            q = sim.snapshot()
            print(f"aloha render top {w}x{h} {quality}: {timeit(lambda: r.render(q, 'top'), 5):.1f} ms")
            r.close()


if __name__ == "__main__":
    main()
