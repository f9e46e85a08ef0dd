"""bfloat16 on machines without native bf16: falls back to float32 with a warning (model/hardware.py)."""

import json
import logging

import numpy as np
import pytest
import torch

from octo_ros.model import OctoPolicy, hardware
from octo_ros.model.hardware import choose_dtype, cpu_flags, describe_bf16, native_bf16
from octo_ros.model.testing import make_random_checkpoint

AVX2_EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2
"""
SAPPHIRE_RAPIDS = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C
flags\t\t: fpu sse2 avx avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile amx_int8
"""
GRAVITON3 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics sve bf16 i8mm
"""


@pytest.fixture()
def cpu(monkeypatch, tmp_path):
    """Simulate the machine: what /proc/cpuinfo says."""

    def use(text):
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(hardware, "CPUINFO", path)

    return use


@pytest.mark.parametrize("text,native", [(AVX2_EPYC, False), (SAPPHIRE_RAPIDS, True), (GRAVITON3, True)])
def test_native_bf16_from_cpu_flags(cpu, text, native):
    cpu(text)
    assert native_bf16("cpu") is native
    assert ("no native bf16" in describe_bf16("cpu")) is not native


def test_unreadable_cpuinfo_is_unknown(monkeypatch, tmp_path):
    monkeypatch.setattr(hardware, "CPUINFO", tmp_path / "missing")
    assert cpu_flags() is None and native_bf16("cpu") is None
    assert choose_dtype("bfloat16", "cpu") == torch.bfloat16  # what cannot be told is not second-guessed


def test_choose_dtype(caplog):
    with caplog.at_level(logging.WARNING):
        assert choose_dtype("bfloat16", "cpu", native=lambda d: False) == torch.float32
    assert "no native bf16" in caplog.text
    caplog.clear()
    assert choose_dtype("bf16", "cpu", native=lambda d: True) == torch.bfloat16
    assert choose_dtype("float32", "cpu", native=lambda d: False) == torch.float32
    assert not caplog.text
    with pytest.raises(ValueError, match="float16"):
        choose_dtype("float16", "cpu")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path, _ = make_random_checkpoint(tmp_path_factory.mktemp("ck") / "tiny", "tiny", seed=2)
    return path


@pytest.mark.parametrize("text,expected", [(AVX2_EPYC, torch.float32), (SAPPHIRE_RAPIDS, torch.bfloat16)])
def test_policy_runs_the_dtype_the_cpu_can(cpu, checkpoint, text, expected):
    cpu(text)
    policy = OctoPolicy.load(checkpoint, dtype="bfloat16")
    assert policy.dtype == expected and policy.describe()["dtype"] == str(expected).replace("torch.", "")
    assert policy.module.transformer.blocks[0].mlp.fc1.weight.dtype == expected
    rng = np.random.default_rng(0)
    obs = {"image_primary": rng.integers(0, 256, (1, 2, 64, 64, 3), dtype=np.uint8),
           "image_wrist": rng.integers(0, 256, (1, 2, 32, 32, 3), dtype=np.uint8)}
    out = policy.sample_actions(obs, policy.create_tasks(batch_size=1), seed=0)
    assert out.normalized.shape == (1, 4, 7) and np.isfinite(out.normalized).all()


def test_cli_infer_bfloat16_on_an_avx2_cpu(cpu, checkpoint, tmp_path, capsys, caplog):
    from octo_ros.cli import main

    cpu(AVX2_EPYC)
    rng = np.random.default_rng(1)
    case = tmp_path / "case.npz"
    np.savez(case, **{"input/observation/image_primary": rng.integers(0, 256, (1, 2, 64, 64, 3), dtype=np.uint8),
                      "input/observation/image_wrist": rng.integers(0, 256, (1, 2, 32, 32, 3), dtype=np.uint8),
                      "input/observation/timestep_pad_mask": np.ones((1, 2), bool)})
    with caplog.at_level(logging.WARNING):
        assert main(["infer", str(checkpoint), str(case), str(tmp_path / "out.npz"), "--dtype", "bfloat16"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["dtype"] == "float32"
    assert "bfloat16 requested" in caplog.text and "running float32" in caplog.text
    with np.load(tmp_path / "out.npz") as out:
        assert out["actions/normalized"].shape == (1, 4, 7)
