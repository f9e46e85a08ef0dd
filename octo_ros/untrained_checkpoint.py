"""Randomly initialised Octo checkpoints in the official on-disk layout, for the
offline demo and the tests: the released weights cannot be downloaded everywhere.

The checkpoint gets a small sentencepiece tokenizer (``spiece.model``, T5's
PAD=0/EOS=1 convention) trained on a few instructions, so language tasks work
end to end. Its actions are meaningless: the model is untrained.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

from octo_ros.model.checkpoint import make_random_checkpoint

INSTRUCTIONS = [
    "pick up the spoon", "put the spoon in the bowl", "open the drawer", "close the drawer",
    "transfer the cube to the other arm", "insert the peg into the socket", "move the block to the left",
    "stack the red block on the blue block", "wipe the table", "fold the cloth", "push the button",
    "place the carrot on the plate", "put the eggplant in the pot", "sweep the beans into the dustpan",
]

MARKER = "octo_ros_untrained.json"
TOKENIZER_VERSION = 2  # bump when write_tokenizer changes, so cached checkpoints are rewritten


def write_tokenizer(path: Path) -> Path:
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(INSTRUCTIONS * 20), model_writer=model, vocab_size=64, pad_id=0, eos_id=1,
        unk_id=2, bos_id=-1, model_type="word", hard_vocab_limit=False, minloglevel=2)
    target = path / "spiece.model"
    target.write_bytes(model.getvalue())
    return target


def make_untrained_checkpoint(path: str | Path, *, cameras=("primary",), action_dim: int = 7,
                              action_horizon: int = 4, head: str = "diffusion", dataset: str = "untrained",
                              seed: int = 0, proprio_dim: int | None = None) -> Path:
    """Write (once: an existing one with the same settings is kept) a tiny untrained
    Octo checkpoint with a tokenizer at ``path``."""
    path = Path(path)
    settings = dict(tokenizer=TOKENIZER_VERSION, cameras=list(cameras), action_dim=action_dim, action_horizon=action_horizon, head=head,
                    dataset=dataset, seed=seed, proprio_dim=proprio_dim)
    marker = path / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == settings:
        return path
    make_random_checkpoint(path, "tiny", seed=seed, cameras=tuple(cameras), head=head, action_dim=action_dim,
                           action_horizon=action_horizon, dataset=dataset, proprio_dim=proprio_dim)
    write_tokenizer(path)
    marker.write_text(json.dumps(settings))
    return path
