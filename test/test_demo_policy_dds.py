"""`octo-ros demo --robot widowx`: a WidowX policy through `octo-ros evaluate`'s graph over DDS on
the demo's seeds, a video of every episode (successes too), the success rate printed. Run here
with the untrained checkpoint (no trained policy ships yet): the path, not the policy, is tested."""
import json
from pathlib import Path

import pytest

from octo_ros.cli import main as cli
from octo_ros.ros.demo import DEMO_SEEDS

pytestmark = pytest.mark.timeout(600)


def test_the_widowx_demo_records_and_shows_every_episode(tmp_path, capsys):
    rc = cli(["demo", "--robot", "widowx", "--checkpoint", "untrained", "--episodes", "1", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert rc == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["episodes"] == 1 and summary["seeds"] == [DEMO_SEEDS]
    (episode,) = summary["per_episode"]
    assert Path(episode["video"]).is_file() and Path(episode["video"]).stat().st_size > 1000
    assert f"seed {DEMO_SEEDS}: \"{episode['instruction']}\"" in printed
    assert f"success rate {summary['success_rate']:.2f} ({summary['successes']}/1 episodes" in printed


def test_no_shipped_policy_is_said_so(tmp_path, capsys):
    from octo_ros.ros.evaluate import DEMO_CHECKPOINT

    if (DEMO_CHECKPOINT / "octo_ros.json").is_file():
        pytest.skip("a policy ships: the demo runs it")
    assert cli(["demo", "--robot", "widowx", "--episodes", "1", "--out", str(tmp_path)]) == 1
    assert "tools/train_demo_policy.sh makes one" in capsys.readouterr().err
