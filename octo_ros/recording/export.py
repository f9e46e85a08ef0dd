"""``octo-ros export BAG... --format lerobot|rlds OUT``: recorded episodes → fine-tuning data.

Episodes are policy rollouts or demonstrations (a person commanding through a teleoperation
node): both command the robot with ``ActionChunk`` s (a teleop node's have horizon 1), and each
chunk says who produced it (``source``: policy or teleop). The episode label is the outcome the
recorder stored (``success``, ``failure``, ``discard``, ...): ``discard`` episodes are skipped.

Both formats sample each episode at the control rate (``--fps``; default 1 / the chunks'
``step_period``, e.g. 5 Hz for Bridge/WidowX), starting when every stream (cameras, robot
state, action chunks) has delivered data:

* ``observation.images.<cam>`` / ``observation/<cam>``: the newest camera frame received at or
  before the step time;
* ``observation.state`` / ``observation/state``: the robot state, the model's proprio built from
  the joint states (names and layout: ``reading.py``);
* ``action``: what was commanded for that step: the newest chunk received by then, executed
  receding-horizon (row = whole ``step_period`` steps since the chunk's observation stamp),
  unnormalized (``ActionChunk.actions``), i.e. Octo's action space; ``source`` (per frame) says
  whether a policy or a person commanded it, ``episode_label`` (per frame) is the episode's label.

LeRobot v3.0 (codebase ``v3.0``; layout from huggingface/lerobot ``datasets/utils.py``)::

    meta/info.json  meta/stats.json  meta/tasks.parquet  meta/episodes/chunk-000/file-000.parquet
    data/chunk-000/file-000.parquet  videos/observation.images.<cam>/chunk-000/file-000.mp4

All episodes go into one data file and one video file per camera (no 100/200 MB splitting yet).
Videos are AV1 (libsvtav1, yuv420p, LeRobot's default) when the bundled ffmpeg can encode the
frame size, else H.264 (libx264); ``info.json`` records the codec used. ``source`` and
``episode_label`` are ``string`` features (names that start with neither ``observation`` nor
``action``, so LeRobot policies do not take them as inputs or outputs).

RLDS: a TFDS dataset directory (``rlds.py``), the format Octo's ``make_single_dataset`` reads.

``dataset_statistics.json`` (both formats): Octo's layout for a single fine-tuning dataset
(flat: ``action``/``proprio`` with mean, std, min, max, p01, p99; ``action.mask`` False for
gripper dimensions, which Octo leaves unnormalized; ``num_transitions``, ``num_trajectories``).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from octo_ros.recording.bag import DISCARD, RecordingError
from octo_ros.recording.reading import Episode, load_episode
from octo_ros.timebase import NS_PER_S

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)


class ExportError(ValueError):
    pass


@dataclass
class Steps:
    """One episode at the control rate."""

    times_ns: np.ndarray  # (T,)
    images: dict[str, list[np.ndarray]]  # camera key → T frames
    state: np.ndarray | None  # (T, J)
    action: np.ndarray  # (T, D)
    chunk_index: np.ndarray  # (T,) which chunk the action came from
    source: list[str]  # (T,) who commanded the step: "policy" or "teleop"
    label: str  # the episode's label (its recorded outcome)
    instruction: str
    fps: int


def control_rate(ep: Episode, fps: float | None) -> int:
    if fps:
        return int(round(fps))
    if ep.chunks is not None and np.any(ep.chunks.step_period > 0):
        return max(1, int(round(1.0 / float(np.median(ep.chunks.step_period[ep.chunks.step_period > 0])))))
    return 5


def resample(ep: Episode, fps: float | None = None) -> Steps:
    if not ep.cameras:
        raise ExportError(f"{ep.bag}: no camera topic (sensor_msgs/Image or CompressedImage)")
    if ep.chunks is None or len(ep.chunks.times) == 0:
        raise ExportError(f"{ep.bag}: no octo_ros_msgs/ActionChunk messages: nothing to use as the action")
    if ep.joint_topics and (ep.state_times is None or not len(ep.state_times)):
        raise ExportError(f"{ep.bag}: no robot state from the joint states ({ep.state_origin})")
    rate = control_rate(ep, fps)
    firsts = [int(c.times[0]) for c in ep.cameras if len(c.times)] + [int(ep.chunks.times[0])]
    if ep.state_times is not None and len(ep.state_times):
        firsts.append(int(ep.state_times[0]))
    if len(firsts) < len(ep.cameras) + 1:
        raise ExportError(f"{ep.bag}: a camera has no frame")
    t0 = max(firsts)
    t_end = max(int(c.times[-1]) for c in ep.cameras)
    period = NS_PER_S / rate
    n = int(np.floor((t_end - t0) / period)) + 1 if t_end >= t0 else 0
    if n < 1:
        raise ExportError(f"{ep.bag}: no time where every stream has data")
    # integer offsets: float64 cannot hold epoch nanoseconds exactly (256 ns steps)
    times = t0 + np.round(np.arange(n) * period).astype(np.int64)
    images = {c.key: [c.frame(c.index_at(t)) for t in times] for c in ep.cameras}
    actions, chunk_idx = [], []
    for t in times:
        a, i, _ = ep.chunks.action_at(int(t))
        actions.append(a)
        chunk_idx.append(i)
    state = None
    if ep.state_times is not None and len(ep.state_times):
        state = np.stack([ep.state_at(int(t)) for t in times]).astype(np.float32)
    source = [ep.chunks.source[i] for i in chunk_idx]
    return Steps(times, images, state, np.stack(actions).astype(np.float32), np.array(chunk_idx), source,
                 str(ep.metadata.get("outcome", "")), ep.instruction, rate)


# --------------------------------------------------------------------------- statistics


def gripper_mask(names: list[str], dim: int) -> list[bool]:
    """Octo's action normalization mask: gripper dimensions stay unnormalized (False)."""
    if names and len(names) == dim:
        return [("gripper" not in n.lower()) for n in names]
    return [True] * (dim - 1) + [False]  # Octo's 7-D convention: last dimension is the gripper


def _six(x: np.ndarray) -> dict[str, list[float]]:
    x = np.asarray(x, dtype=np.float64)
    return {
        "mean": x.mean(0).tolist(), "std": x.std(0).tolist(), "min": x.min(0).tolist(), "max": x.max(0).tolist(),
        "p01": np.quantile(x, 0.01, axis=0).tolist(), "p99": np.quantile(x, 0.99, axis=0).tolist(),
    }


def octo_statistics(actions: list[np.ndarray], states: list[np.ndarray | None], action_names: list[str]) -> dict:
    """``dataset_statistics.json`` for one fine-tuning dataset (Octo's flat layout) from each
    episode's actions (T, A) and states (T, D)."""
    all_actions = np.concatenate(actions)
    stats = {"action": {**_six(all_actions), "mask": gripper_mask(action_names, all_actions.shape[1])}}
    if all(x is not None for x in states):
        stats["proprio"] = _six(np.concatenate(states))
    stats["num_transitions"] = int(len(all_actions))
    stats["num_trajectories"] = len(actions)
    return stats


def _lerobot_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": np.array([len(x)])}
    for q in QUANTILES:
        out[f"q{int(round(q * 100)):02d}"] = np.quantile(x, q, axis=0)
    return out


def _image_stats(frames: list[np.ndarray], max_samples: int = 100) -> dict[str, np.ndarray]:
    """Per-channel statistics in [0, 1], shape (3, 1, 1), like LeRobot's (on sampled frames)."""
    idx = np.linspace(0, len(frames) - 1, min(len(frames), max_samples)).round().astype(int)
    px = np.stack([frames[i] for i in idx]).reshape(-1, 3).astype(np.float64) / 255.0
    s = _lerobot_stats(px)
    s["count"] = np.array([len(idx)])
    return {k: (v if k == "count" else v.reshape(3, 1, 1)) for k, v in s.items()}


def _merge_stats(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Weighted merge of per-episode statistics (quantiles: weighted mean, as LeRobot does)."""
    w = np.array([p["count"][0] for p in parts], dtype=np.float64)
    total = w.sum()
    mean = sum(p["mean"] * wi for p, wi in zip(parts, w)) / total
    var = sum((p["std"] ** 2 + (p["mean"] - mean) ** 2) * wi for p, wi in zip(parts, w)) / total
    out = {"min": np.min([p["min"] for p in parts], axis=0), "max": np.max([p["max"] for p in parts], axis=0),
           "mean": mean, "std": np.sqrt(var), "count": np.array([int(total)])}
    for k in parts[0]:
        if k.startswith("q"):
            out[k] = sum(p[k] * wi for p, wi in zip(parts, w)) / total
    return out


def _jsonable(stats: dict) -> dict:
    return {k: (_jsonable(v) if isinstance(v, dict) else np.asarray(v).tolist()) for k, v in stats.items()}


# --------------------------------------------------------------------------- video


def _even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frame


class VideoWriter:
    """mp4 through imageio-ffmpeg's bundled ffmpeg: AV1 (libsvtav1) or H.264 (libx264)."""

    CODECS = {"libsvtav1": ("av1", ["-g", "2", "-crf", "30", "-preset", "12"]),
              "libx264": ("h264", ["-g", "2", "-crf", "23", "-preset", "veryfast"])}

    def __init__(self, path: Path, fps: int, size_hw: tuple[int, int], codec: str):
        import imageio_ffmpeg

        path.parent.mkdir(parents=True, exist_ok=True)
        self.codec_name, extra = self.CODECS[codec]
        h, w = size_hw
        self._gen = imageio_ffmpeg.write_frames(
            str(path), (w + w % 2, h + h % 2), fps=fps, codec=codec, pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            macro_block_size=1, quality=None, output_params=extra, ffmpeg_log_level="error")
        self._gen.send(None)

    def write(self, frame: np.ndarray) -> None:
        self._gen.send(np.ascontiguousarray(_even(frame)))

    def close(self) -> None:
        self._gen.close()


def pick_codec(preferred: str, size_hw: tuple[int, int], tmp_dir: Path) -> str:
    """libsvtav1 if it encodes this size here (it has minimum sizes), else libx264."""
    if preferred != "libsvtav1":
        return preferred
    probe = tmp_dir / ".codec_probe.mp4"
    try:
        w = VideoWriter(probe, 5, size_hw, "libsvtav1")
        for _ in range(2):
            w.write(np.zeros((*size_hw, 3), np.uint8))
        w.close()
        return "libsvtav1"
    except Exception:  # noqa: BLE001 - any encoder failure means: fall back
        return "libx264"
    finally:
        probe.unlink(missing_ok=True)


# --------------------------------------------------------------------------- LeRobot v3.0


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="ep")


def _shape(s: Steps) -> tuple:
    """What every episode of one dataset must share."""
    sizes = {k: frames[0].shape[:2] for k, frames in s.images.items()}
    for k, frames in s.images.items():
        if any(f.shape[:2] != sizes[k] for f in frames):
            raise ExportError(f"camera {k} changes resolution within an episode")
    return s.fps, sizes, s.action.shape[1], None if s.state is None else s.state.shape[1]


def episodes(bags: Iterable[str | Path], fps: float | None, progress: bool) -> Iterator[tuple[Episode, Steps]]:
    """Each episode not labelled ``discard``, resampled, one at a time (only one episode's frames
    are in memory). ExportError when one does not fit in a dataset with the first (control rate,
    cameras and their sizes, action and state dimensions) or when all are discarded; the output
    written so far is then incomplete."""
    bags = list(bags)
    first = None
    for bag in _progress(bags, len(bags), "episodes", progress):
        ep = load_episode(bag)
        if str(ep.metadata.get("outcome", "")) == DISCARD:
            continue
        s = resample(ep, fps)
        shape = _shape(s)
        if first is None:
            first = shape
        elif shape != first:
            what = ("control rate (pass --fps)", "cameras or camera sizes", "action dimension", "state dimension")
            differs = [w for w, a, b in zip(what, shape, first) if a != b]
            raise ExportError(f"{ep.bag} differs from the first episode in {', '.join(differs)}: "
                              f"{shape} vs {first}; the output written so far is incomplete")
        yield ep, s
    if first is None:
        raise ExportError(f"no episode to export: all {len(bags)} are labelled {DISCARD!r}")


def _pandas_index_metadata(index_col: str, columns: list[tuple[str, str, str]]) -> bytes:
    """The schema metadata pandas writes, so ``pd.read_parquet`` restores ``index_col`` as the index."""
    import pyarrow as pa

    return json.dumps({
        "index_columns": [index_col],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [{"name": n, "field_name": n, "pandas_type": pt, "numpy_type": nt, "metadata": None}
                    for n, pt, nt in columns],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }).encode()


def export_lerobot(bags: Iterable[str | Path], out: str | Path, *, fps: float | None = None,
                   codec: str = "libsvtav1", progress: bool = True) -> dict:
    """Write a LeRobot v3.0 dataset; returns its info.json content."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    tasks: dict[str, int] = {}
    rows = {n: [] for n in ("timestamp", "frame_index", "episode_index", "index", "task_index", "action", "observation.state",
                            "source", "episode_label")}
    episode_rows = []
    actions, states = [], []
    index = 0
    writers: dict[str, VideoWriter] = {}
    for e, (ep, s) in enumerate(episodes(bags, fps, progress)):
        if e == 0:  # the dataset's shape is the first episode's
            rate = s.fps
            cam_keys = list(s.images)
            robot = ep.metadata.get("robot") or None
            action_names, state_names = ep.chunks.dimension_names, ep.state_names
            action_dim = s.action.shape[1]
            state_dim = s.state.shape[1] if s.state is not None else None
            # videos: one file per camera, episodes one after the other
            sizes = {k: s.images[k][0].shape[:2] for k in cam_keys}
            codecs = {k: pick_codec(codec, sizes[k], out) for k in cam_keys}
            writers = {k: VideoWriter(out / VIDEO_PATH.format(video_key=f"observation.images.{k}", chunk_index=0,
                                                              file_index=0), rate, sizes[k], codecs[k]) for k in cam_keys}
        tasks.setdefault(s.instruction, len(tasks))
        actions.append(s.action)
        states.append(s.state)
        n = len(s.times_ns)
        ep_stats = {"action": _lerobot_stats(s.action)}
        if s.state is not None:
            ep_stats["observation.state"] = _lerobot_stats(s.state)
        ts = (np.arange(n) / rate).astype(np.float32)
        for k in cam_keys:
            for frame in s.images[k]:
                writers[k].write(frame)
            ep_stats[f"observation.images.{k}"] = _image_stats(s.images[k])
        rows["timestamp"] += ts.tolist()
        rows["frame_index"] += list(range(n))
        rows["episode_index"] += [e] * n
        rows["index"] += list(range(index, index + n))
        rows["task_index"] += [tasks[s.instruction]] * n
        rows["action"] += s.action.tolist()
        rows["source"] += s.source
        rows["episode_label"] += [s.label] * n
        if s.state is not None:
            rows["observation.state"] += s.state.tolist()
        for name, arr in (("timestamp", ts), ("frame_index", np.arange(n)), ("episode_index", np.full(n, e)),
                          ("index", np.arange(index, index + n)), ("task_index", np.full(n, tasks[s.instruction]))):
            ep_stats[name] = _lerobot_stats(arr.reshape(-1, 1))
        video_from = index / rate  # frames of the episodes before, in the same video
        row = {"episode_index": e, "tasks": [s.instruction], "length": n,
               "data/chunk_index": 0, "data/file_index": 0, "dataset_from_index": index, "dataset_to_index": index + n}
        for k in cam_keys:
            row |= {f"videos/observation.images.{k}/chunk_index": 0, f"videos/observation.images.{k}/file_index": 0,
                    f"videos/observation.images.{k}/from_timestamp": float(video_from),
                    f"videos/observation.images.{k}/to_timestamp": float(video_from + n / rate)}
        row |= {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
        for feat, st in ep_stats.items():
            for stat, v in st.items():
                row[f"stats/{feat}/{stat}"] = np.asarray(v).tolist()
        row["octo_ros/bag"] = ep.bag.name
        row["octo_ros/outcome"] = str(ep.metadata.get("outcome", ""))
        row["octo_ros/metadata"] = json.dumps(ep.metadata, sort_keys=True)
        episode_rows.append((row, ep_stats))
        index += n
    for w in writers.values():
        w.close()

    # data parquet
    cols = {
        "action": pa.array(rows["action"], type=pa.list_(pa.float32(), action_dim)),
        "timestamp": pa.array(rows["timestamp"], type=pa.float32()),
        "frame_index": pa.array(rows["frame_index"], type=pa.int64()),
        "episode_index": pa.array(rows["episode_index"], type=pa.int64()),
        "index": pa.array(rows["index"], type=pa.int64()),
        "task_index": pa.array(rows["task_index"], type=pa.int64()),
        "source": pa.array(rows["source"], type=pa.string()),
        "episode_label": pa.array(rows["episode_label"], type=pa.string()),
    }
    if state_dim is not None:
        cols = {"observation.state": pa.array(rows["observation.state"], type=pa.list_(pa.float32(), state_dim)), **cols}
    data_file = out / DATA_PATH.format(chunk_index=0, file_index=0)
    data_file.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), data_file)

    # meta/episodes
    ep_file = out / EPISODES_PATH.format(chunk_index=0, file_index=0)
    ep_file.parent.mkdir(parents=True, exist_ok=True)
    keys = list(episode_rows[0][0])
    pq.write_table(pa.table({k: [r[k] for r, _ in episode_rows] for k in keys}), ep_file)

    # meta/tasks.parquet: index "task" (the text), column task_index
    task_names = list(tasks)
    table = pa.table({"task_index": pa.array([tasks[t] for t in task_names], pa.int64()), "task": pa.array(task_names, pa.string())})
    table = table.replace_schema_metadata({b"pandas": _pandas_index_metadata("task", [("task_index", "int64", "int64"), ("task", "unicode", "object")])})
    pq.write_table(table, out / "meta" / "tasks.parquet")

    # meta/stats.json: merged over episodes
    stats = {feat: _merge_stats([st[feat] for _, st in episode_rows]) for feat in episode_rows[0][1]}
    (out / "meta" / "stats.json").write_text(json.dumps(_jsonable(stats), indent=2))

    features = {}
    if state_dim is not None:
        features["observation.state"] = {"dtype": "float32", "shape": [state_dim], "names": state_names or None}
    features["action"] = {"dtype": "float32", "shape": [action_dim], "names": action_names or None}
    for k in cam_keys:
        h, w = sizes[k]
        features[f"observation.images.{k}"] = {
            "dtype": "video", "shape": [h + h % 2, w + w % 2, 3], "names": ["height", "width", "channels"],
            "info": {"video.height": h + h % 2, "video.width": w + w % 2, "video.codec": VideoWriter.CODECS[codecs[k]][0],
                     "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": rate, "video.channels": 3,
                     "has_audio": False},
        }
    for name in ("timestamp",):
        features[name] = {"dtype": "float32", "shape": [1], "names": None}
    for name in ("frame_index", "episode_index", "index", "task_index"):
        features[name] = {"dtype": "int64", "shape": [1], "names": None}
    for name in ("source", "episode_label"):
        features[name] = {"dtype": "string", "shape": [1], "names": None}
    info = {
        "codebase_version": CODEBASE_VERSION, "robot_type": robot,
        "total_episodes": len(episode_rows), "total_frames": index, "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
        "fps": rate, "splits": {"train": f"0:{len(episode_rows)}"},
        "data_path": DATA_PATH, "video_path": VIDEO_PATH, "features": features,
    }
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    (out / "dataset_statistics.json").write_text(json.dumps(octo_statistics(actions, states, action_names), indent=2))
    return info


# --------------------------------------------------------------------------- RLDS


def export_rlds(bags: Iterable[str | Path], out: str | Path, *, name: str | None = None, version: str = "1.0.0",
                fps: float | None = None, image_format: str = "jpeg", progress: bool = True) -> dict:
    """Write an RLDS dataset ``out/<name>/<version>/`` (TFDS layout, see rlds.py); returns its
    dataset_info.json content. ``name`` defaults to ``octo_ros_<robot>``."""
    from octo_ros.recording.rlds import write_rlds

    return write_rlds(episodes(bags, fps, progress), Path(out), name=name, version=version, image_format=image_format)


# --------------------------------------------------------------------------- CLI


def _cmd_export(args) -> int:
    if len(args.paths) < 2:
        raise SystemExit("octo-ros export: need at least one BAG and the OUT directory")
    bags, out = args.paths[:-1], args.paths[-1]
    try:
        return _export(args, bags, out)
    except (ExportError, RecordingError) as exc:
        raise SystemExit(f"octo-ros export: {exc}") from None


def _export(args, bags: list[str], out: str) -> int:
    if args.format == "lerobot":
        info = export_lerobot(bags, out, fps=args.fps, codec=args.codec, progress=not args.quiet)
        print(json.dumps({"out": str(out), "episodes": info["total_episodes"], "frames": info["total_frames"], "fps": info["fps"]}))
    else:
        info = export_rlds(bags, out, name=args.name, fps=args.fps, image_format=args.image_format, progress=not args.quiet)
        print(json.dumps({"out": str(out), "name": info["name"], "version": info["version"],
                          "episodes": sum(int(n) for n in info["splits"][0]["shardLengths"])}))
    return 0


class _IntermixedArgumentParser(argparse.ArgumentParser):
    """Lets ``export BAG... --format lerobot OUT`` put positionals on both sides of options."""

    _inside = False

    def parse_known_args(self, args=None, namespace=None):
        if self._inside:
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export recorded episode bags for fine-tuning",
                              description="octo-ros export BAG... --format lerobot|rlds OUT")
    p.__class__ = _IntermixedArgumentParser
    p.add_argument("paths", nargs="+", metavar="BAG... OUT", help="episode bag directories, then the output directory")
    p.add_argument("--format", required=True, choices=["lerobot", "rlds"],
                   help="lerobot: a LeRobot v3.0 dataset in OUT; rlds: a TFDS dataset OUT/<name>/1.0.0 (Octo)")
    p.add_argument("--fps", type=float, default=None, help="control rate (default: 1/step_period of the chunks)")
    p.add_argument("--codec", default="libsvtav1", choices=sorted(VideoWriter.CODECS), help="video codec (lerobot)")
    p.add_argument("--name", default=None, help="dataset name (rlds; default octo_ros_<robot>)")
    p.add_argument("--image-format", default="jpeg", choices=["jpeg", "png"], help="image encoding (rlds)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_export)
