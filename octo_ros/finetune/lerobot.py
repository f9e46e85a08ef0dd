"""Reading LeRobot v3.0 datasets (``meta/info.json``, ``meta/episodes``, ``data``, ``videos``).

The layout is the one ``octo_ros.recording.export`` writes and huggingface/lerobot's
``datasets/utils.py`` defines: per-frame numeric columns in ``data/chunk-XXX/file-YYY.parquet``,
one row per episode in ``meta/episodes/chunk-XXX/file-YYY.parquet`` (its data file, its video
files with ``from_timestamp``/``to_timestamp``), tasks in ``meta/tasks.parquet``.

Only the numeric columns (actions, state, indices) are held in memory.  Camera frames are
decoded once, one video file at a time, resized to the model's input size and written to a
memory-mapped cache on disk (:class:`FrameStore`); training reads frames from there.  Cameras
stored as images (``dtype: image``: PNG/JPEG bytes in the data parquet) are decoded the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

log = logging.getLogger(__name__)

IMAGE_PREFIX = "observation.images."


class DatasetError(ValueError):
    """A dataset cannot be used for fine-tuning (named file, field or episode)."""


@dataclass
class EpisodeData:
    """One episode: numeric columns in memory, frames by reference into a :class:`FrameStore`."""

    dataset: "LeRobotDataset"
    index: int  # episode_index in the dataset
    action: np.ndarray  # (T, A) float32, raw
    state: Optional[np.ndarray]  # (T, P) float32, raw
    instruction: str
    frame_slots: Dict[str, np.ndarray] = field(default_factory=dict)  # camera key -> (T,) row in the store

    @property
    def length(self) -> int:
        return len(self.action)


def _read_table(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad files
        raise DatasetError(f"cannot read {path}: {exc}") from None


def _fixed_rows(column, what: str) -> np.ndarray:
    """A (fixed-size) list column -> (N, D) float32 (a scalar column -> (N, 1))."""
    import pyarrow as pa

    arr = column.combine_chunks()
    n = len(arr)
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type)):
        return arr.to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, 1)
    values = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    if n == 0:
        return values.reshape(0, 0)
    if values.size % n:
        raise DatasetError(f"{what}: rows have different lengths")
    return values.reshape(n, -1)


class LeRobotDataset:
    """A LeRobot v3.0 dataset directory."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        info_path = self.root / "meta" / "info.json"
        if not info_path.is_file():
            raise DatasetError(f"{self.root} is not a LeRobot dataset: {info_path} is missing")
        try:
            self.info = json.loads(info_path.read_text())
        except ValueError as exc:
            raise DatasetError(f"{info_path} is not valid JSON ({exc})") from None
        version = str(self.info.get("codebase_version", ""))
        if not version.startswith("v3"):
            raise DatasetError(f"{self.root}: LeRobot codebase_version {version or '?'}; only v3.x datasets are supported")
        self.features: dict = self.info.get("features", {})
        self.fps = float(self.info.get("fps") or 0)
        if "action" not in self.features:
            raise DatasetError(f"{self.root}: no 'action' feature in meta/info.json")
        self.cameras = [k for k, f in self.features.items() if f.get("dtype") in ("video", "image")]
        self.state_key = "observation.state" if "observation.state" in self.features else None
        self.tasks = self._read_tasks()
        self.episode_rows = self._read_episode_rows()
        if not self.episode_rows:
            raise DatasetError(f"{self.root}: the dataset has no episodes")
        self._columns: Optional[dict] = None

    # ------------------------------------------------------------------ metadata
    @property
    def action_dim(self) -> int:
        return int(self.features["action"]["shape"][0])

    @property
    def action_names(self) -> List[str]:
        names = self.features["action"].get("names")
        if isinstance(names, Mapping):  # some LeRobot datasets: {"motors": [...]}
            names = next(iter(names.values()), None)
        return list(names or [])

    @property
    def state_dim(self) -> Optional[int]:
        return int(self.features[self.state_key]["shape"][0]) if self.state_key else None

    def split_episodes(self, name: str) -> Optional[List[int]]:
        """Episode indices of a split named in info.json (``"start:end"``), or None."""
        spec = (self.info.get("splits") or {}).get(name)
        if not spec:
            return None
        start, end = (int(x) for x in str(spec).split(":"))
        return list(range(start, end))

    def _read_tasks(self) -> Dict[int, str]:
        path = self.root / "meta" / "tasks.parquet"
        if not path.is_file():
            raise DatasetError(f"{self.root}: meta/tasks.parquet is missing")
        table = _read_table(path)
        cols = table.column_names
        text_col = "task" if "task" in cols else next((c for c in cols if c != "task_index"), None)
        if "task_index" not in cols or text_col is None:
            raise DatasetError(f"{path}: expected columns task_index and task, got {cols}")
        return dict(zip(table.column("task_index").to_pylist(), table.column(text_col).to_pylist()))

    def _read_episode_rows(self) -> List[dict]:
        files = sorted((self.root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        rows: List[dict] = []
        for f in files:
            rows += _read_table(f).to_pylist()
        rows.sort(key=lambda r: int(r["episode_index"]))
        return [r for r in rows if int(r.get("length") or 0) > 0]

    # ------------------------------------------------------------------ numeric data
    def _data_path(self, row: Mapping) -> Path:
        template = self.info.get("data_path", "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet")
        return self.root / template.format(chunk_index=int(row["data/chunk_index"]), file_index=int(row["data/file_index"]))

    def _video_path(self, key: str, row: Mapping) -> Path:
        template = self.info.get("video_path", "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4")
        return self.root / template.format(video_key=key, chunk_index=int(row[f"videos/{key}/chunk_index"]),
                                           file_index=int(row[f"videos/{key}/file_index"]))

    def columns(self) -> dict:
        """``episode_index``, ``frame_index``, ``task_index``, ``action``, ``state`` over all data files."""
        if self._columns is not None:
            return self._columns
        paths = sorted({self._data_path(r) for r in self.episode_rows})
        parts = {k: [] for k in ("episode_index", "frame_index", "task_index", "action", "state")}
        for p in paths:
            if not p.is_file():
                raise DatasetError(f"{self.root}: data file {p} named by meta/episodes is missing")
            table = _read_table(p)
            for need in ("episode_index", "frame_index", "action"):
                if need not in table.column_names:
                    raise DatasetError(f"{p}: no '{need}' column")
            n = table.num_rows
            ints = lambda name, default: (table.column(name).to_numpy().astype(np.int64)  # noqa: E731
                                          if name in table.column_names else default)
            parts["episode_index"].append(ints("episode_index", None))
            parts["frame_index"].append(ints("frame_index", None))
            parts["task_index"].append(ints("task_index", np.zeros(n, np.int64)))
            parts["action"].append(_fixed_rows(table.column("action"), f"{p}: action"))
            if self.state_key:
                parts["state"].append(_fixed_rows(table.column(self.state_key), f"{p}: {self.state_key}"))
        self._columns = {k: (np.concatenate(v) if v else None) for k, v in parts.items()}
        return self._columns

    def episodes(self, indices: Optional[Sequence[int]] = None) -> List[EpisodeData]:
        """Episodes (all, or those with the given episode_index), frames not yet attached."""
        cols = self.columns()
        wanted = None if indices is None else set(int(i) for i in indices)
        out = []
        order = np.lexsort((cols["frame_index"], cols["episode_index"]))
        ep_sorted = cols["episode_index"][order]
        for row in self.episode_rows:
            e = int(row["episode_index"])
            if wanted is not None and e not in wanted:
                continue
            lo, hi = np.searchsorted(ep_sorted, [e, e + 1])
            rows = order[lo:hi]
            if len(rows) == 0:
                raise DatasetError(f"{self.root}: episode {e} has no rows in the data files")
            task_idx = int(cols["task_index"][rows[0]])
            text = self.tasks.get(task_idx)
            if text is None:
                tasks = row.get("tasks") or [""]
                text = tasks[0] if isinstance(tasks, list) else str(tasks)
            state = cols["state"][rows] if cols["state"] is not None else None
            out.append(EpisodeData(self, e, cols["action"][rows], state, str(text)))
        return out

    # ------------------------------------------------------------------ frames
    def cache_key(self) -> str:
        """Changes when the dataset's files change (size + mtime of every file)."""
        h = hashlib.sha256(str(self.root.resolve()).encode())
        for p in sorted(self.root.rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(f"{p.relative_to(self.root)}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()[:16]

    def decode_frames(self, key: str, episodes: Sequence[EpisodeData], size_hw: Tuple[int, int], sink) -> None:
        """Decode camera ``key`` for ``episodes`` and call ``sink(episode, frame_index, rgb_resized)``
        in order.  Videos are read sequentially, one file at a time; nothing but the current
        frame is held in memory."""
        from octo_ros.perception.image_codec import resize_like_octo

        feat = self.features.get(key)
        if feat is None:
            raise DatasetError(f"{self.root}: no camera feature {key!r}")
        rows = {int(r["episode_index"]): r for r in self.episode_rows}
        if feat.get("dtype") == "image":
            self._decode_image_column(key, episodes, size_hw, sink)
            return
        by_file: Dict[Path, List[Tuple[int, EpisodeData]]] = {}
        for ep in episodes:
            row = rows[ep.index]
            if f"videos/{key}/from_timestamp" not in row:
                raise DatasetError(f"{self.root}: meta/episodes has no video columns for {key}")
            start = int(round(float(row[f"videos/{key}/from_timestamp"]) * self.fps))
            by_file.setdefault(self._video_path(key, row), []).append((start, ep))
        for path, items in by_file.items():
            if not path.is_file():
                raise DatasetError(f"{self.root}: video {path} is missing")
            self._decode_video(path, items, size_hw, sink, resize_like_octo)

    def _decode_video(self, path: Path, items, size_hw, sink, resize) -> None:
        import imageio_ffmpeg

        wanted: Dict[int, Tuple[EpisodeData, int]] = {}
        for start, ep in items:
            for i in range(ep.length):
                wanted[start + i] = (ep, i)
        last = max(wanted)
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        try:
            meta = next(reader)
            w, h = meta["size"]
            got = 0
            for k, buf in enumerate(reader):
                if k in wanted:
                    ep, i = wanted[k]
                    frame = np.frombuffer(buf, np.uint8).reshape(h, w, 3)
                    sink(ep, i, resize(frame, size_hw))
                    got += 1
                if k >= last:
                    break
        except (RuntimeError, OSError, StopIteration) as exc:
            raise DatasetError(f"cannot decode {path}: {exc}") from None
        finally:
            reader.close()
        if got != len(wanted):
            raise DatasetError(f"{path}: decoded {got} of the {len(wanted)} frames its episodes need (video too short?)")

    def _decode_image_column(self, key: str, episodes, size_hw, sink) -> None:
        import cv2

        from octo_ros.perception.image_codec import resize_like_octo

        # image columns are not kept in memory: read them per data file
        paths = sorted({self._data_path(r) for r in self.episode_rows if int(r["episode_index"]) in {e.index for e in episodes}})
        by_index = {e.index: e for e in episodes}
        for p in paths:
            table = _read_table(p).select([c for c in ("episode_index", "frame_index", key)])
            for e, i, cell in zip(table.column("episode_index").to_pylist(), table.column("frame_index").to_pylist(),
                                  table.column(key).to_pylist()):
                ep = by_index.get(int(e))
                if ep is None:
                    continue
                data = cell.get("bytes") if isinstance(cell, dict) else cell
                if not data:
                    path = cell.get("path") if isinstance(cell, dict) else None
                    data = (self.root / path).read_bytes() if path else b""
                bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise DatasetError(f"{p}: cannot decode image {key} of episode {e} frame {i}")
                sink(ep, int(i), resize_like_octo(bgr[:, :, ::-1], size_hw))


class FrameStore:
    """Decoded, resized frames of one camera at one size: a uint8 memmap ``(N, h, w, 3)`` on disk."""

    def __init__(self, path: Path, n: int, size_hw: Tuple[int, int], mode: str):
        self.path = path
        self.size_hw = size_hw
        self.frames = np.lib.format.open_memmap(path, mode=mode, dtype=np.uint8, shape=(n, size_hw[0], size_hw[1], 3)) \
            if mode == "w+" else np.load(path, mmap_mode="r")

    @classmethod
    def build(cls, cache_dir: Path, dataset: LeRobotDataset, key: str, episodes: Sequence[EpisodeData],
              size_hw: Tuple[int, int], progress: bool = False) -> "FrameStore":
        """Cache file for (dataset, camera, size, episodes); reused when it is complete."""
        ident = hashlib.sha256(json.dumps([dataset.cache_key(), key, list(size_hw), [e.index for e in episodes]]).encode()).hexdigest()[:16]
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = cache_dir / f"{key.replace('/', '_')}_{size_hw[0]}x{size_hw[1]}_{ident}.npy"
        done = path.with_suffix(".done")
        offsets, total = {}, 0
        for ep in episodes:
            offsets[ep.index] = total
            total += ep.length
        for ep in episodes:
            ep.frame_slots[key] = offsets[ep.index] + np.arange(ep.length)
        if path.is_file() and done.is_file():
            return cls(path, total, size_hw, "r")
        store = cls(path, total, size_hw, "w+")
        filled = np.zeros(total, bool)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, desc=f"decoding {dataset.root.name}/{key}", unit="frame")

        def sink(ep: EpisodeData, i: int, rgb: np.ndarray) -> None:
            slot = offsets[ep.index] + i
            store.frames[slot] = rgb
            filled[slot] = True
            if bar is not None:
                bar.update(1)

        try:
            dataset.decode_frames(key, episodes, size_hw, sink)
        finally:
            if bar is not None:
                bar.close()
        if not filled.all():
            missing = int((~filled).sum())
            raise DatasetError(f"{dataset.root}: {missing} frame(s) of {key} could not be decoded")
        store.frames.flush()
        done.write_text("ok")
        return cls(path, total, size_hw, "r")
