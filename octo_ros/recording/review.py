"""``octo-ros review BAG [--out DIR]``: look at a recorded rollout.

Writes into ``DIR`` (default ``<BAG>/review``):

* ``<bag>.mp4``: the cameras side by side (H.264, at the primary camera's frame rate), each
  frame overlaid with the instruction, the time, the index (sequence) of the chunk being
  executed, its row and who produced it (policy or teleop), and the gripper state commanded
  then (open/closed, value);
* ``actions.png``: the commanded (unnormalized) action per dimension over time, one subplot per
  arm or action group (translation, rotation, joints, grippers) with its unit, a grey mark
  where each chunk arrived;
* ``gripper.png``: the commanded gripper values (and the measured gripper state, if any);
* ``latency.png``: inference latency of each chunk, and the age of each chunk's observation
  when it arrived;
* ``safety.png``: safety clamps over time (from ``/diagnostics``) and the policy state.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from octo_ros.recording.reading import Episode, gripper_dim, load_episode
from octo_ros.timebase import ns_to_seconds


def _overlay(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    import cv2

    img = np.ascontiguousarray(frame)
    scale = max(0.35, img.shape[1] / 900)
    thickness = 1
    y = int(18 * scale / 0.5)
    for text in lines:
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        cv2.rectangle(img, (2, y - h - 3), (6 + w, y + base), (0, 0, 0), -1)
        cv2.putText(img, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
        y += h + base + 6
    return img


def _side_by_side(frames: list[np.ndarray]) -> np.ndarray:
    h = max(f.shape[0] for f in frames)
    padded = [np.pad(f, ((0, h - f.shape[0]), (0, 0), (0, 0))) for f in frames]
    return np.concatenate(padded, axis=1)


def render_video(ep: Episode, path: Path) -> int:
    """One video frame per frame of the first camera; returns the number of frames."""
    from octo_ros.recording.export import VideoWriter

    primary = ep.cameras[0]
    times = primary.times
    if len(times) == 0:
        return 0
    fps = max(1, int(round((len(times) - 1) / max(ns_to_seconds(times[-1] - times[0]), 1e-9)))) if len(times) > 1 else 1
    g = gripper_dim(ep)
    writer = None
    for i, t in enumerate(times):
        frames = [primary.frame(i)] + [c.frame(j) for c in ep.cameras[1:] if (j := c.index_at(int(t))) >= 0]
        frame = _side_by_side(frames)
        lines = [f"{ep.instruction or '(no instruction)'}", f"t = {ns_to_seconds(t - ep.start_ns):6.2f} s"]
        if ep.chunks is not None:
            a, ci, row = ep.chunks.action_at(int(t))
            if a is None:
                lines.append("chunk: none yet")
            else:
                lines.append(f"chunk {ep.chunks.sequence[ci]} row {row} ({ep.chunks.source[ci]})")
                if g is not None:
                    lines.append(f"gripper {'open' if a[g] >= 0.5 else 'closed'} ({a[g]:.2f})")
        frame = _overlay(frame, lines)
        if writer is None:
            writer = VideoWriter(path, fps, frame.shape[:2], "libx264")
        writer.write(frame)
    writer.close()
    return len(times)


def _grid(start_ns: int, end_ns: int, n: int) -> np.ndarray:
    """n times from start to end, exact in integer nanoseconds (float64 can't hold epoch ns)."""
    return int(start_ns) + np.round(np.linspace(0, int(end_ns) - int(start_ns), n)).astype(np.int64)


def _seconds(ep: Episode, t: np.ndarray) -> np.ndarray:
    return ns_to_seconds(np.asarray(t, dtype=np.float64) - ep.start_ns)


GRIPPER_LABEL = "gripper [0 closed, 1 open]"  # Octo's convention (Bridge, ALOHA normalized)


def action_groups(names: list[str]) -> list[tuple[str, str, list[int]]]:
    """(title, y label with unit, dimensions) per subplot: one per arm (``left_``/``right_``
    joints) or action group (delta translation / rotation of an end effector), the grippers
    last, together."""
    if not names:
        return []
    groups: dict[str, tuple[str, list[int]]] = {}
    grippers: list[int] = []
    for d, name in enumerate(names):
        n = name.lower()
        side, base = n.split("_", 1) if n.startswith(("left_", "right_")) else ("", n)
        where = f"{side} " if side else ""
        if "gripper" in base:
            grippers.append(d)
            continue
        if base in ("x", "y", "z"):
            key, label = f"{where}translation (delta per step)", "position [m]"
        elif base in ("roll", "pitch", "yaw"):
            key, label = f"{where}rotation (delta per step)", "angle [rad]"
        else:
            key, label = (f"{side} arm" if side else "joints"), "joint position [rad]"
        groups.setdefault(key, (label, []))[1].append(d)
    out = [(title, label, dims) for title, (label, dims) in groups.items()]
    if grippers:
        out.append(("grippers" if len(grippers) > 1 else "gripper", GRIPPER_LABEL, grippers))
    return out


def _action_samples(ep: Episode) -> tuple[np.ndarray, np.ndarray]:
    """(times, actions): the executed row of the newest chunk, sampled at half the step period."""
    period = float(np.median(ep.chunks.step_period)) if np.any(ep.chunks.step_period > 0) else 0.2
    n = int(np.clip(ns_to_seconds(int(ep.end_ns) - int(ep.chunks.times[0])) / (period / 2), 2, 20_000))
    t = _grid(ep.chunks.times[0], ep.end_ns, n)
    return t, np.stack([ep.chunks.action_at(int(x))[0] for x in t])


def actions_figure(ep: Episode):
    import matplotlib.pyplot as plt

    names = (ep.chunks.dimension_names if ep.chunks is not None else []) or []
    if ep.chunks is not None and not names:
        names = [f"a{i}" for i in range(ep.chunks.actions[0].shape[1])]
    groups = action_groups(names) if ep.chunks is not None else []
    if not groups:
        fig, ax = plt.subplots(figsize=(9, 2))
        ax.text(0.5, 0.5, "no action chunks in this episode", ha="center", va="center", transform=ax.transAxes)
        ax.set(title="commanded actions", xlabel="time [s]")
        return fig
    fig, axes = plt.subplots(len(groups), 1, sharex=True, figsize=(9, 0.8 + 2.2 * len(groups)), squeeze=False)
    t, acts = _action_samples(ep)
    seconds = _seconds(ep, t)
    arrivals = _seconds(ep, ep.chunks.times)
    for ax, (title, label, dims) in zip(axes[:, 0], groups):
        for d in dims:
            ax.step(seconds, acts[:, d], where="post", lw=1, label=names[d])
        ax.vlines(arrivals, 0, 1, transform=ax.get_xaxis_transform(), colors="0.55", lw=0.6, alpha=0.7)
        ax.set(title=title, ylabel=label)
        ax.legend(loc="upper right", fontsize=7, ncol=min(len(dims), 4))
    axes[-1, 0].set_xlabel("time [s]")
    fig.suptitle("commanded actions (unnormalized); grey: a chunk arrives", fontsize=10)
    return fig


def render_plots(ep: Episode, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    names = [n.lower() for n in (ep.chunks.dimension_names if ep.chunks is not None else [])]
    grippers = [d for d, n in enumerate(names) if "gripper" in n] or ([g] if (g := gripper_dim(ep)) is not None else [])

    def save(fig, name):
        path = out / name
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)

    save(actions_figure(ep), "actions.png")

    fig, ax = plt.subplots(figsize=(9, 3))
    if ep.chunks is not None and grippers:
        t, acts = _action_samples(ep)
        for d in grippers:
            ax.step(_seconds(ep, t), acts[:, d], where="post", label=f"commanded {ep.chunks.dimension_names[d]}"
                    if ep.chunks.dimension_names else "commanded")
    if ep.states is not None:
        for j, name in enumerate(ep.state_names):
            if "grip" in name.lower() or "finger" in name.lower():
                ax.plot(_seconds(ep, ep.state_times), ep.states[:, j], label=f"measured {name}")
    ax.legend(loc="upper right", fontsize=7)
    ax.set(title="gripper", xlabel="time [s]", ylabel="command [0 closed, 1 open] / state")
    save(fig, "gripper.png")

    fig, ax = plt.subplots(figsize=(9, 3))
    if ep.chunks is not None:
        ax.plot(_seconds(ep, ep.chunks.times), ep.chunks.latency * 1000, "o-", ms=3, label="inference latency")
        ax.plot(_seconds(ep, ep.chunks.times), (ep.chunks.times - ep.chunks.stamps) / 1e6, "x", ms=3,
                label="observation age at arrival")
        ax.legend(loc="upper right", fontsize=7)
    ax.set(title="latency", xlabel="time [s]", ylabel="ms")
    save(fig, "latency.png")

    fig, ax = plt.subplots(figsize=(9, 3))
    if len(ep.clamp_times):
        ax.eventplot(_seconds(ep, ep.clamp_times), lineoffsets=1, colors="red", label="safety clamp")
    if len(ep.status_times):
        ax.step(_seconds(ep, ep.status_times), ep.status_state / 3.0, where="post", label="policy state / 3")
    ax.set(title=f"safety clamps ({len(ep.clamp_times)}) and policy state", xlabel="time [s]")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=7)
    save(fig, "safety.png")
    return written


def review(bag: str | Path, out: str | Path | None = None) -> dict:
    """Render the video and the plots of one episode; returns what was written."""
    ep = load_episode(bag)
    out = Path(out) if out else Path(bag) / "review"
    out.mkdir(parents=True, exist_ok=True)
    result = {"bag": str(ep.bag), "instruction": ep.instruction, "outcome": ep.metadata.get("outcome", "")}
    if ep.cameras:
        video = out / f"{ep.bag.name}.mp4"
        result["video"] = str(video)
        result["video_frames"] = render_video(ep, video)
    result["plots"] = [str(p) for p in render_plots(ep, out)]
    (out / "summary.json").write_text(json.dumps({**result, "metadata": ep.metadata}, indent=2, sort_keys=True))
    return result


def _cmd_review(args) -> int:
    print(json.dumps(review(args.bag, args.out)))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("review", help="video with overlays and plots of a recorded episode bag")
    p.add_argument("bag", metavar="BAG")
    p.add_argument("--out", default=None, help="output directory (default BAG/review)")
    p.set_defaults(func=_cmd_review)
