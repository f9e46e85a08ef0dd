"""``octo-ros export --format rlds``: episodes → an RLDS dataset in the TFDS on-disk layout.

``OUT/<name>/<version>/`` is what ``tfds.builder_from_directory`` (and ``tfds.builder(name,
data_dir=OUT)``, so Octo's ``make_single_dataset``) reads, written without TensorFlow::

    dataset_info.json                       DatasetInfo as proto3 JSON (int64 as strings)
    features.json                           the FeatureConnector tree (FeaturesDict / Dataset / ...)
    <name>-train.tfrecord-00000-of-0000N    TFRecord shards, one tf.train.Example per episode
    dataset_statistics.json                 Octo's statistics (pass it as dataset_statistics=)

Features (RLDS, as ``kpertsch/rlds_dataset_builder``)::

    steps: Dataset of
        observation/<camera>  Image (H, W, 3) uint8, JPEG or PNG encoded
        observation/state     Tensor (D,) float32: the model's proprio (see reading.py)
        action                Tensor (A,) float32: the commanded action (Octo's action space)
        language_instruction  Text
        is_first, is_last, is_terminal   Scalar bool (terminal: last step of a success)
        reward, discount      Scalar float32 (reward 1 on the last step of a success)
        source                Text: "policy" or "teleop", who commanded the step
    episode_metadata:
        file_path             Text: the bag
        label                 Text: the episode label (success / failure / ...)
        octo_ros_metadata     Text: the episode metadata JSON

TFDS's example serializer flattens the tree with "/" and stacks a Dataset's steps along time:
``steps/action`` is one FloatList of T*A values, ``steps/is_first`` an Int64List of T,
``steps/observation/<camera>`` a BytesList of T encoded images.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from octo_ros.recording.bag import SUCCESS
from octo_ros.recording.tfrecord import TFRecordWriter, encode_example

FILEPATH_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
SHARD_BYTES = 256 << 20  # start a new shard past this size
_F = "tensorflow_datasets.core.features."


def dataset_name(robot: str) -> str:
    """A valid TFDS name (lower case, digits, underscores, starting with a letter)."""
    name = re.sub(r"[^a-z0-9_]+", "_", f"octo_ros_{robot or 'robot'}".lower()).strip("_")
    return name if name[:1].isalpha() else f"d_{name}"


def _tensor(shape: tuple, dtype: str, description: str) -> dict:
    cls = "scalar.Scalar" if not shape else "tensor_feature.Tensor"
    dims = {"dimensions": [str(d) for d in shape]} if shape else {}
    return {"pythonClassName": _F + cls, "tensor": {"shape": dims, "dtype": dtype, "encoding": "none"},
            "description": description}


def _text(description: str) -> dict:
    return {"pythonClassName": _F + "text_feature.Text", "text": {}, "description": description}


def _dict(features: dict) -> dict:
    return {"pythonClassName": _F + "features_dict.FeaturesDict", "featuresDict": {"features": features}}


def features_json(cameras: dict[str, tuple[int, int]], state_dim: int | None, action_dim: int, image_format: str) -> dict:
    observation = {cam: {"pythonClassName": _F + "image_feature.Image",
                         "image": {"shape": {"dimensions": [str(h), str(w), "3"]}, "dtype": "uint8",
                                   "encodingFormat": image_format},
                         "description": f"camera {cam}"} for cam, (h, w) in cameras.items()}
    if state_dim is not None:
        observation["state"] = _tensor((state_dim,), "float32", "robot state: the model's proprio")
    step = {
        "observation": _dict(observation),
        "action": _tensor((action_dim,), "float32", "commanded action (unnormalized)"),
        "language_instruction": _text("language instruction"),
        "is_first": _tensor((), "bool", "first step of the episode"),
        "is_last": _tensor((), "bool", "last step of the episode"),
        "is_terminal": _tensor((), "bool", "last step of a successful episode"),
        "reward": _tensor((), "float32", "1 on the last step of a successful episode"),
        "discount": _tensor((), "float32", "1"),
        "source": _text("who commanded the step: policy or teleop"),
    }
    return _dict({
        "steps": {"pythonClassName": _F + "dataset_feature.Dataset",
                  "sequence": {"feature": _dict(step), "length": "-1"}},
        "episode_metadata": _dict({
            "file_path": _text("the recorded bag"),
            "label": _text("episode label: success, failure, ..."),
            "octo_ros_metadata": _text("the episode metadata (JSON)"),
        }),
    })


def encode_image(rgb: np.ndarray, image_format: str) -> bytes:
    import cv2

    bgr = np.ascontiguousarray(rgb[..., ::-1])
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if image_format == "jpeg" else []
    ok, buf = cv2.imencode(".jpg" if image_format == "jpeg" else ".png", bgr, params)
    if not ok:
        raise ValueError(f"cannot encode a {rgb.shape} image as {image_format}")
    return buf.tobytes()


def episode_example(ep, s, image_format: str) -> bytes:
    """One episode (reading.Episode, export.Steps) as a serialized tf.train.Example."""
    n = len(s.times_ns)
    success = s.label == SUCCESS
    last = np.arange(n) == n - 1
    reward = np.where(last & success, 1.0, 0.0).astype(np.float32)
    features = {f"steps/observation/{cam}": [encode_image(f, image_format) for f in frames]
                for cam, frames in s.images.items()}
    if s.state is not None:
        features["steps/observation/state"] = s.state.astype(np.float32)
    features |= {
        "steps/action": s.action.astype(np.float32),
        "steps/language_instruction": [s.instruction] * n,
        "steps/is_first": np.arange(n) == 0,
        "steps/is_last": last,
        "steps/is_terminal": last & success,
        "steps/reward": reward,
        "steps/discount": np.ones(n, np.float32),
        "steps/source": list(s.source),
        "episode_metadata/file_path": [str(ep.bag)],
        "episode_metadata/label": [s.label],
        "episode_metadata/octo_ros_metadata": [json.dumps(ep.metadata, sort_keys=True)],
    }
    return encode_example(features)


def write_rlds(episodes: Iterable, out: Path, *, name: str | None, version: str, image_format: str) -> dict:
    """Write ``out/<name>/<version>/`` from (reading.Episode, export.Steps) pairs, one episode in
    memory at a time; ``name`` defaults to ``octo_ros_<robot>`` of the first. Returns
    dataset_info.json's content."""
    from octo_ros.recording.export import ExportError, octo_statistics

    shards: list[list] = []  # [temporary path, episodes, bytes]
    writer = None
    actions, states = [], []
    for ep, s in episodes:
        if writer is None:  # the first episode: the dataset's name and shape
            robot = str(ep.metadata.get("robot", ""))
            name = name or dataset_name(robot)
            root = Path(out) / name / version
            if root.exists() and any(root.iterdir()):
                raise ExportError(f"{root} exists and is not empty")
            root.mkdir(parents=True, exist_ok=True)
            cameras = {cam: frames[0].shape[:2] for cam, frames in s.images.items()}
            state_dim = s.state.shape[1] if s.state is not None else None
            action_dim, action_names = s.action.shape[1], ep.chunks.dimension_names
        if writer is None or writer.bytes_written > SHARD_BYTES:
            if writer is not None:
                writer.close()
            writer = TFRecordWriter(root / f".shard-{len(shards):05d}.tmp")
            shards.append([writer, 0, 0])
        writer.write(episode_example(ep, s, image_format))
        shards[-1][1] += 1
        shards[-1][2] = writer.bytes_written
        actions.append(s.action)
        states.append(s.state)
    writer.close()
    for i, (w, _, _) in enumerate(shards):
        w.path.replace(root / f"{name}-train.tfrecord-{i:05d}-of-{len(shards):05d}")

    info = {
        "name": name,
        "version": version,
        "description": f"Episodes recorded with octo_ros ({robot}), exported for fine-tuning.",
        "fileFormat": "tfrecord",
        "moduleName": "octo_ros.recording.rlds",
        "releaseNotes": {version: "exported by octo-ros export --format rlds"},
        "splits": [{"name": "train", "shardLengths": [str(n) for _, n, _ in shards],
                    "numBytes": str(sum(b for _, _, b in shards)), "filepathTemplate": FILEPATH_TEMPLATE}],
    }
    (root / "dataset_info.json").write_text(json.dumps(info, indent=2))
    (root / "features.json").write_text(json.dumps(features_json(cameras, state_dim, action_dim, image_format), indent=2))
    (root / "dataset_statistics.json").write_text(json.dumps(octo_statistics(actions, states, action_names), indent=2))
    return info
