"""Hostile-input figures (issue #12): the observation buffer's peak memory on the largest frame it
accepts and on refused decompression bombs, and the e-stop stop time per robot.

    .venv/bin/python bench/hostile.py

Memory: each case runs in a fresh process (peak RSS from getrusage, minus the same process's RSS
after imports and buffer set-up), feeding 40 frames through ``ObservationBuffer.add_image_msg`` and
``assemble`` as the node does. E-stop: on the devices' stand-ins (the UR controller stand-in with
its latency and servoStop deceleration; the xs_sdk driver stand-in behind the WidowX adapter; the
MuJoCo ALOHA follower sent its measured joints), "at rest" as each test states it (UR, WidowX:
not moving at all; ALOHA: every arm joint below 0.05 rad/s, MuJoCo joints never stand exactly still).
The ALOHA followers miss two control periods by their model, not by the hold command: gym-aloha's
arm actuators are P-only (kp 800-1600, wrists 10-50) against 30-60 N m of frictionloss, which MuJoCo
enforces as a soft constraint, so a joint creeps onto any hold goal with a time constant of about
0.1-0.2 s (sending the goal one period fresher, jumping the set point to it, a second hold once
braked, stiffer or softer friction, actuator damping: none settles under 100 ms on every joint).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "test")]

CASES = {  # name: (width, height, whether the header is all there is: a bomb)
    "largest accepted (3840x2160 JPEG)": (3840, 2160, False),
    "refused bomb (8192x8192 header, 691-byte-class JPEG)": (8192, 8192, True),
    "refused bomb (16384x16384 header)": (16384, 16384, True),
}


def _memory_case(name: str) -> dict:
    import cv2
    import numpy as np

    from octo_ros.perception.image_codec import PerceptionInputError
    from octo_ros.perception.observation import ObservationBuffer, ObservationConfig

    width, height, bomb = CASES[name]
    buf = ObservationBuffer(ObservationConfig.from_dict({"cameras": {"image_primary": {}}, "rate_hz": 4.0}))
    small = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    if bomb:
        data = bytearray(small)
        sof = data.index(b"\xff\xc0")
        data[sof + 5:sof + 7], data[sof + 7:sof + 9] = height.to_bytes(2, "big"), width.to_bytes(2, "big")
        data = bytes(data)
    else:
        rng = np.random.default_rng(0)
        data = cv2.imencode(".jpg", rng.integers(0, 256, (height, width, 3), dtype=np.uint8))[1].tobytes()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    refused = windows = 0
    for k in range(40):  # 10 s at 4 Hz
        msg = type("CompressedImage", (), {"format": "jpeg", "data": data})()
        msg.header = type("Header", (), {"stamp": type("Time", (), {"sec": 100 + k // 4, "nanosec": (k % 4) * 250_000_000})()})()
        try:
            buf.add_image_msg("image_primary", msg)
        except PerceptionInputError:
            refused += 1
        windows += buf.assemble(100 * 10**9 + k * 250_000_000).ready
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"case": name, "bytes": len(data), "refused": refused, "windows": windows,
            "peak_mb": peak / 1024, "growth_mb": (peak - base) / 1024}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--case":
        print(json.dumps(_memory_case(sys.argv[2])))
        return
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"CPU: {cpu}; load average {os.getloadavg()[0]:.1f}")
    print("\nobservation buffer, 40 frames at 4 Hz through add_image_msg + assemble (fresh process each)")
    print("| frame | payload bytes | refused | windows | peak RSS MB | growth MB |\n|---|---|---|---|---|---|")
    for name in CASES:
        out = subprocess.run([sys.executable, __file__, "--case", name], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {r['case']} | {r['bytes']} | {r['refused']} | {r['windows']} | {r['peak_mb']:.0f} | {r['growth_mb']:.0f} |")

    from support.estop import aloha_stop_time, ur_stop_time, widowx_stop_time

    print("\ne-stop: time from the e-stop call until the robot is at rest")
    print("| robot | moving at | at rest after | two control periods |\n|---|---|---|---|")
    stop, speed, travel = ur_stop_time()
    print(f"| UR5 (controller stand-in) | {speed:.3f} m/s | {stop * 1e3:.1f} ms ({travel * 1e3:.2f} mm travel) | 16 ms |")
    stop, speed, travel, period = widowx_stop_time()
    print(f"| WidowX (xs_sdk driver stand-in) | {speed:.2f} rad/s | {stop * 1e3:.1f} ms ({travel:.3f} rad travel) | "
          f"{2e3 * period:.0f} ms |")
    try:
        from octo_ros.robots.interbotix.kinematics import ARM_JOINTS

        for joint, name in enumerate(ARM_JOINTS):  # the follower turning one joint at full speed
            stop, speed, braked = aloha_stop_time(joint=joint)
            print(f"| bimanual (MuJoCo ALOHA follower, {name}) | {speed:.2f} rad/s | {stop * 1e3:.0f} ms "
                  f"(every joint below a tenth of that speed after {braked * 1e3:.0f} ms) | 40 ms |")
    except ImportError as err:
        print(f"| bimanual | - | not measured: {err} | 40 ms |")

if __name__ == "__main__":
    main()
