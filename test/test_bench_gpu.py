"""bench/gpu.py without a GPU: its dry check (golden parity through its code path on the CPU) passes
with nothing of ROS, cv2 or yaml importable, and its on-device resize is Octo's Lanczos-3 resize."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT.parent / "shared" / "golden"

# run bench/gpu.py as __main__ with the packages a plain GPU box lacks made unimportable
BLOCKED_RUNNER = """
import runpy, sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"rclpy", "cv2", "yaml", "launch", "launch_ros", "octo_ros_msgs"}:
            raise ImportError(f"{name} is not installed on a plain GPU box")
sys.meta_path.insert(0, Blocked())
sys.argv = ["bench/gpu.py"] + sys.argv[1:]
runpy.run_path("bench/gpu.py", run_name="__main__")
"""


@pytest.mark.skipif(not (GOLDEN / "README.md").is_file(), reason=f"golden data not found at {GOLDEN}")
def test_dry_check_runs_without_ros_cv2_yaml():
    env = {"PYTHONPATH": ".", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    done = subprocess.run([sys.executable, "-c", BLOCKED_RUNNER], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dry check passed" in done.stdout
    if not torch.cuda.is_available():
        assert "SKIP: no CUDA device" in done.stdout
    assert "| yes |" in done.stdout  # the golden case's row


def test_device_resize_is_octos_lanczos_resize():
    sys.path.insert(0, str(ROOT / "bench"))
    from gpu import resize_on_device

    from octo_ros.perception.image_codec import resize_like_octo

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    frame[100:200, 300:400] = 255  # edges, where the kernel's lobes show
    for out_hw in ((256, 256), (128, 128)):
        ours = resize_on_device(torch.from_numpy(frame), out_hw, {}).numpy().astype(int)
        reference = resize_like_octo(frame, out_hw).astype(int)
        assert np.abs(ours - reference).max() <= 1, out_hw  # float32 sums in another order: at most one level
        assert (ours != reference).mean() < 0.01
