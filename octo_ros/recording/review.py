"""``octo-ros review BAG [--out DIR]``: look at a recorded rollout.

Writes into ``DIR`` (default ``<BAG>/review``):

* ``<bag>.mp4``: the cameras side by side (H.264, at the primary camera's frame rate), each
  frame overlaid with the instruction, the time, the index (sequence) of the chunk being
  executed and its row, and the gripper state commanded then (open/closed, value);
* ``actions.png``: the commanded (unnormalized) action per dimension over time;
* ``gripper.png``: the commanded gripper value (and measured gripper joints, if any);
* ``latency.png``: inference latency of each chunk, and the age of each chunk's observation
  when it arrived;
* ``safety.png``: safety clamps over time (from ``/diagnostics``) and the policy state.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from octo_ros.recording.reading import Episode, gripper_dim, load_episode


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
    fps = max(1, int(round((len(times) - 1) / max((times[-1] - times[0]) / 1e9, 1e-9)))) if len(times) > 1 else 1
    g = gripper_dim(ep)
    writer = None
    for i, t in enumerate(times):
        frames = [primary.frame(i)] + [c.frame(j) for c in ep.cameras[1:] if (j := c.index_at(int(t))) >= 0]
        frame = _side_by_side(frames)
        lines = [f"{ep.instruction or '(no instruction)'}", f"t = {(t - ep.start_ns) / 1e9:6.2f} s"]
        if ep.chunks is not None:
            a, ci, row = ep.chunks.action_at(int(t))
            if a is None:
                lines.append("chunk: none yet")
            else:
                lines.append(f"chunk {ep.chunks.sequence[ci]} row {row}")
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
    return (np.asarray(t, dtype=np.float64) - ep.start_ns) / 1e9


def render_plots(ep: Episode, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    g = gripper_dim(ep)

    def save(fig, name):
        path = out / name
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)

    # commanded actions: the executed row of the newest chunk at each chunk arrival and in between
    fig, ax = plt.subplots(figsize=(9, 4))
    if ep.chunks is not None:
        t = _grid(ep.chunks.times[0], ep.end_ns, max(2, 20 * len(ep.chunks.times)))
        acts = np.stack([ep.chunks.action_at(int(x))[0] for x in t])
        names = ep.chunks.dimension_names or [f"a{i}" for i in range(acts.shape[1])]
        for d in range(acts.shape[1]):
            if d != g:
                ax.plot(_seconds(ep, t), acts[:, d], label=names[d])
        ax.legend(loc="upper right", fontsize=7, ncol=3)
    ax.set(title="commanded actions (unnormalized)", xlabel="time [s]")
    save(fig, "actions.png")

    fig, ax = plt.subplots(figsize=(9, 3))
    if ep.chunks is not None and g is not None:
        t = _grid(ep.chunks.times[0], ep.end_ns, max(2, 20 * len(ep.chunks.times)))
        ax.step(_seconds(ep, t), [ep.chunks.action_at(int(x))[0][g] for x in t], where="post", label="commanded")
    if ep.joint_positions is not None:
        for j, name in enumerate(ep.joint_names):
            if "grip" in name.lower() or "finger" in name.lower():
                ax.plot(_seconds(ep, ep.joint_times), ep.joint_positions[:, j], label=f"measured {name}")
    ax.legend(loc="upper right", fontsize=7)
    ax.set(title="gripper", xlabel="time [s]")
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
