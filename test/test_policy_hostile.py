"""Hostile tasks and start-up errors of the policy (issue #12 items 5 and 10): instructions bounded
in characters and free of control characters for every way they arrive, what is logged escaped;
a broken checkpoint, config, device or statistics file is one FATAL line naming it, exit code 1."""
import shutil
import subprocess
import sys

import pytest
from support.ros_harness import REPO_ROOT

from octo_ros.inference.runtime import MAX_INSTRUCTION_CHARS, TaskError, check_device, log_text, validate_instruction
from octo_ros.model.policy import OctoPolicy
from octo_ros.model.testing import make_untrained_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_untrained_checkpoint(tmp_path_factory.mktemp("hostile_policy") / "ckpt")


@pytest.fixture(scope="module")
def policy(checkpoint):
    return OctoPolicy.load(str(checkpoint), device="cpu", tokenizer=str(checkpoint / "spiece.model"))


@pytest.mark.parametrize("text, words", [
    ("x" * 100_000, f"100000 characters long; at most {MAX_INSTRUCTION_CHARS}"),
    ("pick " * 200, "characters long"),
    ("pick up the \x1b[31mspoon\x1b[0m", r"control characters (\x1b)"),
    ("open\rthe drawer", r"control characters (\r)"),
    ("put it\x00 there", r"control characters (\x00)"),
    ("wave\u202ehand", r"control characters (\u202e)"),
])
def test_instructions_are_bounded_and_plain_text(policy, text, words):
    with pytest.raises(TaskError) as err:
        validate_instruction(policy, text)
    assert words in str(err.value)
    assert "\x1b" not in str(err.value) and len(str(err.value)) < 200


def test_logged_text_is_escaped_and_bounded():
    shown = log_text("pick \x1b[31mred\x1b[0m\n" + "y" * 500)
    assert "\x1b" not in shown and "\n" not in shown and "\\x1b[31m" in shown
    assert len(shown) < 160 and "(518 characters)" in shown


def test_device_without_cuda_is_refused_before_loading():
    with pytest.raises(ValueError, match="'cuda:7'"):
        check_device("cuda:7")
    with pytest.raises(ValueError, match="not a torch device"):
        check_device("gpu0")
    assert check_device("cpu") == "cpu"


def _broken(checkpoint, tmp_path, how):
    broken = tmp_path / how
    shutil.copytree(checkpoint, broken)
    if how == "truncated":
        path = broken / "0" / "default" / "checkpoint"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    elif how == "config":
        (broken / "config.json").write_text("{not json")
    elif how == "statistics":
        (broken / "dataset_statistics.json").unlink()
    return broken


STARTS = [  # (how the checkpoint is broken, extra parameters, words the FATAL line must contain)
    ("truncated", [], "0/default/checkpoint is truncated"),
    ("config", [], "config.json is not valid JSON"),
    ("statistics", [], "dataset_statistics.json is missing"),
    ("intact", ["device:=cuda:7"], "device 'cuda:7'"),
]


@pytest.mark.parametrize("how, params, words", STARTS, ids=[s[0] for s in STARTS])
def test_start_up_error_is_one_fatal_line_and_exit_1(checkpoint, tmp_path, how, params, words):
    path = checkpoint if how == "intact" else _broken(checkpoint, tmp_path, how)
    argv = [sys.executable, "-m", "octo_ros.ros.nodes.policy", "--ros-args", "-p", f"checkpoint:={path}",
            "-p", "dataset_statistics_key:=untrained"]
    for p in params:
        argv += ["-p", p]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=REPO_ROOT)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    fatal = [line for line in output.splitlines() if "[FATAL]" in line]
    assert len(fatal) == 1 and words in fatal[0], output
    assert "Traceback" not in output, output
