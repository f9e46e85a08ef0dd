"""Training samples against Octo's trajectory transforms (finetune.md §A.7-A.9), re-derived here
from the formulas: observation windows with pad masks, action chunks repeating the last action,
the task_completed / action_pad_mask rule, uniform goal relabelling, task augmentation; and the
image augmentation's parameter sharing and padding rules."""
from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch

from octo_ros.finetune import augment as aug
from octo_ros.finetune.data import CameraSource, PreparedEpisode, SampleBuilder, split_episodes

T, A, SIZE = 7, 3, 8


class Frames:  # what SampleBuilder reads from a FrameStore
    def __init__(self, frames):
        self.frames = frames


def episode(instruction_id=1, length=T):
    action = np.arange(length * A, dtype=np.float32).reshape(length, A)
    frames = np.stack([np.full((SIZE, SIZE, 3), 10 + i, np.uint8) for i in range(length)])
    slots = np.arange(length)
    return PreparedEpisode(action, action[:, :2] * 0.5, instruction_id, {"primary": (Frames(frames), slots)})


def reference(t, length, window, horizon, goal):
    """chunk_act_obs written from the reference text."""
    idx = t - window + 1 + np.arange(window)
    pad = idx >= 0
    idx = np.maximum(idx, 0)
    action = np.arange(length * A, dtype=np.float32).reshape(length, A)
    chunk = np.stack([[action[min(j + h, length - 1)] for h in range(horizon)] for j in idx])
    completed = np.array([[goal - (t - (window + 1) + w + h) <= 0 for h in range(horizon)] for w in range(window)])
    return idx, pad, chunk, completed


@pytest.mark.parametrize("window,horizon", [(1, 4), (2, 4), (3, 2)])
def test_windows_chunks_and_pad_masks_follow_chunk_act_obs(window, horizon):
    b = SampleBuilder([episode()], [CameraSource("primary", (SIZE, SIZE), True)], window, horizon,
                      "language_conditioned", task_augmentation=False, language=True)
    rng = np.random.default_rng(0)
    for t in range(T):
        s = b.sample(0, t, rng, train=True)
        idx, pad, chunk, completed = reference(t, T, window, horizon, goal=T - 1)
        np.testing.assert_array_equal(s["observation"]["timestep_pad_mask"], pad)
        np.testing.assert_array_equal(s["observation"]["timestep"], idx)
        np.testing.assert_array_equal(s["observation"]["image_primary"][:, 0, 0, 0], 10 + idx)
        np.testing.assert_array_equal(s["observation"]["proprio"], np.arange(T * A, dtype=np.float32).reshape(T, A)[idx, :2] * 0.5)
        np.testing.assert_array_equal(s["action"], chunk)
        np.testing.assert_array_equal(s["observation"]["task_completed"], completed)
        np.testing.assert_array_equal(s["action_pad_mask"], np.broadcast_to(~completed[:, :, None], chunk.shape))
        # language-conditioned: no goal image (zeros, padding), language kept, goal step T - 1
        assert s["task"]["timestep"] == T - 1 and s["task"]["language_id"] == 1
        assert not s["task"]["pad_mask_dict"]["image_primary"] and not s["task"]["image_primary"].any()
    # the first step repeats the first frame and flags it; the last one repeats the last action
    s = b.sample(0, 0, rng, train=True)
    if window > 1:
        assert not s["observation"]["timestep_pad_mask"][0]
    s = b.sample(0, T - 1, rng, train=True)
    np.testing.assert_array_equal(s["action"][-1, -1], np.arange(T * A).reshape(T, A)[-1])


def test_uniform_goal_relabelling_and_its_end_mask():
    b = SampleBuilder([episode()], [CameraSource("primary", (SIZE, SIZE), True)], 2, 4, "multimodal",
                      task_augmentation=False, language=True)
    rng = np.random.default_rng(1)
    for t in range(T):
        goals = set()
        for _ in range(60):
            s = b.sample(0, t, rng, train=False)
            g = int(s["task"]["timestep"])
            goals.add(g)
            assert s["task"]["pad_mask_dict"]["image_primary"] and s["task"]["pad_mask_dict"]["language_instruction"]
            assert int(s["task"]["image_primary"][0, 0, 0]) == 10 + g  # the goal image is that step's frame
            np.testing.assert_array_equal(s["observation"]["task_completed"], reference(t, T, 2, 4, goal=g)[3])
        assert goals == set(range(t, T))  # a uniform future step, the current one included


def test_task_augmentation_drops_language_or_goal_image():
    b = SampleBuilder([episode()], [CameraSource("primary", (SIZE, SIZE), True)], 2, 4, "multimodal",
                      task_augmentation=True, language=True)
    rng = np.random.default_rng(2)
    kept_images = 0
    n = 400
    for _ in range(n):
        s = b.sample(0, 2, rng, train=True)
        lang, img = s["task"]["pad_mask_dict"]["language_instruction"], s["task"]["pad_mask_dict"]["image_primary"]
        assert lang != img  # exactly one of the two conditionings stays
        if img:
            kept_images += 1
            assert s["task"]["language_id"] == 0  # language replaced by "" (padding)
        else:
            assert s["task"]["timestep"] == T - 1 and not s["task"]["image_primary"].any()
    assert 0.4 < kept_images / n < 0.6  # keep_image_prob 0.5
    # empty instruction: the goal image is always kept
    b = SampleBuilder([episode(instruction_id=0)], [CameraSource("primary", (SIZE, SIZE), True)], 2, 4, "multimodal",
                      task_augmentation=True, language=True)
    assert all(b.sample(0, 1, rng, train=True)["task"]["pad_mask_dict"]["image_primary"] for _ in range(50))
    # image-conditioned: language always dropped
    b = SampleBuilder([episode()], [CameraSource("primary", (SIZE, SIZE), True)], 2, 4, "image_conditioned",
                      task_augmentation=True, language=True)
    assert all(not b.sample(0, 1, rng, train=True)["task"]["pad_mask_dict"]["language_instruction"] for _ in range(50))


def test_transitions_are_drawn_uniformly_and_episodes_split_by_seed():
    b = SampleBuilder([episode(length=3), episode(length=9)], [CameraSource("primary", (SIZE, SIZE), False)], 2, 2,
                      "language_conditioned", task_augmentation=False, language=False)
    assert b.num_transitions == 12
    counts = np.bincount(b.draw(np.random.default_rng(0), 12000), minlength=12)
    assert counts.min() > 800 and counts.max() < 1200
    assert split_episodes(20, 0.05, 0) == split_episodes(20, 0.05, 0)
    train, val = split_episodes(20, 0.05, 0)
    assert len(val) == 1 and sorted(train + val) == list(range(20))
    assert split_episodes(1, 0.05, 0) == ([0], [])


def test_image_augmentation_shares_parameters_and_keeps_padding():
    g = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (4, 1, 16, 16, 3), dtype=np.uint8)
    images = torch.from_numpy(np.repeat(base, 3, axis=1))  # the same frame three times per sample
    keep = torch.tensor([[True, True, False]] * 4)  # third one: a padding goal image
    out = aug.augment(images, aug.PRIMARY, g, keep)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert torch.equal(out[:, 0], out[:, 1])  # one draw per sample, shared by its frames
    assert torch.equal(out[:, 2], images[:, 2])  # padding untouched
    assert not torch.equal(out[0, 0], out[1, 0]) or not torch.equal(images[0, 0], images[1, 0])
    assert (out[:, 0].int() - images[:, 0].int()).abs().float().mean() > 1
    again = aug.augment(images, aug.PRIMARY, torch.Generator().manual_seed(0), keep)
    assert torch.equal(out, again)  # seeded


def test_colour_ops_match_their_definitions():
    x = torch.rand(2, 1, 3, 4, 5, generator=torch.Generator().manual_seed(1))
    hsv = aug.rgb_to_hsv(x)
    for n in range(2):
        r, gg, b = x[n, 0, :, 1, 2].tolist()
        np.testing.assert_allclose(hsv[n, 0, :, 1, 2].numpy(), colorsys.rgb_to_hsv(r, gg, b), atol=1e-6)
    torch.testing.assert_close(aug.hsv_to_rgb(hsv), x, atol=1e-5, rtol=0)
    # the full box is the identity crop; a half box samples TF's corner-aligned grid
    img = torch.arange(2 * 1 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 1, 3, 5, 5)
    torch.testing.assert_close(aug.crop_and_resize(img, torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 2)), img)
    half = aug.crop_and_resize(img, torch.tensor([[0.0, 0.0, 0.5, 0.5]] * 2))
    # y = y1*(H-1) + i*(y2-y1)*(H-1)/(H-1): rows 0, 0.5, 1, 1.5, 2
    torch.testing.assert_close(half[0, 0, 0, :, 0], torch.tensor([0.0, 2.5, 5.0, 7.5, 10.0]))
    # colour jitter only (no crop) keeps every pixel's colour relation: a grey image stays grey
    grey = torch.full((3, 1, 8, 8, 3), 100, dtype=torch.uint8)
    out = aug.augment(grey, aug.WRIST, torch.Generator().manual_seed(3))
    assert (out.max(-1).values - out.min(-1).values).max() <= 1
    assert out.float().std(dim=(2, 3)).max() < 1e-6  # uniform stays uniform
