"""SIGTERM to an `octo-ros` command that runs a graph (a supervisor stopping it, `kill`) stops the
graph's node processes too: they run in sessions of their own, so nothing else would."""
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

pytestmark = pytest.mark.timeout(400)


def test_sigterm_to_evaluate_stops_its_nodes(tmp_path):
    out = tmp_path / "eval"
    proc = subprocess.Popen([sys.executable, "-m", "octo_ros.cli", "evaluate", "widowx", "--checkpoint", "untrained",
                             "--seeds", "7000", "--no-progress", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 240
    nodes = []
    while time.monotonic() < deadline and proc.poll() is None:
        nodes = [p for p in parent.children(recursive=True) if "octo_ros.ros.nodes." in " ".join(p.cmdline())]
        if len(nodes) >= 5:
            break
        time.sleep(0.5)
    assert len(nodes) >= 5, f"the evaluation graph did not start: {proc.poll()}"
    time.sleep(2.0)  # the nodes are up and talking
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output[-3000:]
    assert "interrupted" in output
    gone, alive = psutil.wait_procs(nodes, timeout=30)
    assert not alive, f"node processes outlived the command: {[p.cmdline()[2] for p in alive]}"
