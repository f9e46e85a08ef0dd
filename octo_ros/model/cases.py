"""Case files in the golden README's key convention (``input/...``, ``ddpm/...``, outputs)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np

from .checkpoint import unflatten
from .policy import OctoPolicy, SampledActions


def read_case(path: Union[str, Path]) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def case_inputs(policy: OctoPolicy, case: dict) -> Tuple[dict, dict, Optional[dict]]:
    """(observations, tasks, noise) for a case dict; tasks are rebuilt with :meth:`create_tasks`."""
    inp = unflatten({k[len("input/"):]: v for k, v in case.items() if k.startswith("input/")})
    if "observation" not in inp:
        raise KeyError("case file has no input/observation/... arrays")
    obs = inp["observation"]
    task = inp.get("task", {})
    flags = task.get("pad_mask_dict", {})
    goals = {k: v for k, v in task.items() if k.startswith("image_") and np.asarray(flags.get(k, True)).all()}
    lang = task.get("language_instruction")
    has_lang = lang is not None and np.asarray(flags.get("language_instruction", True)).any()
    batch = next(iter(v for v in obs.values() if not isinstance(v, dict))).shape[0]
    tasks = policy.create_tasks(goals=goals or None, tokens=lang if has_lang else None, batch_size=batch)
    if has_lang and "language_instruction" in flags:  # per-sample flags (mixed batches)
        tasks["pad_mask_dict"]["language_instruction"] = np.asarray(flags["language_instruction"], dtype=bool)
    noise = None
    if "ddpm/initial_noise" in case and "ddpm/step_noise" in case:
        noise = {"initial_noise": case["ddpm/initial_noise"], "step_noise": case["ddpm/step_noise"]}
    return obs, tasks, noise


def case_outputs(out: SampledActions, stats: Optional[dict]) -> dict:
    result = {"head/readout_embedding": out.readout_embedding, "actions/normalized": out.normalized}
    if out.unnormalized is not None:
        result["actions/unnormalized"] = out.unnormalized
    if stats is not None:
        for k in ("mean", "std", "mask"):
            if k in stats:
                result[f"unnormalization_statistics/{k}"] = np.asarray(stats[k], dtype=bool if k == "mask" else np.float32)
    return result


def run_case(policy: OctoPolicy, case: dict, dataset_key: Optional[str] = None, seed: Optional[int] = None) -> dict:
    obs, tasks, noise = case_inputs(policy, case)
    stats = None
    if policy.dataset_statistics:
        from .normalization import select_statistics

        stats = select_statistics(policy.dataset_statistics, dataset_key)["action"]
    out = policy.sample_actions(obs, tasks, unnormalization_statistics=stats, noise=noise, seed=seed)
    return case_outputs(out, stats)
