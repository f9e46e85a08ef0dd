"""Where the policy's T5 tokenizer comes from, offline first.

The released Octo checkpoints ship no tokenizer; Octo encodes instructions with t5-base's
sentencepiece model (``spiece.model``). In order:

1. the ``tokenizer`` setting when it is a path: a ``spiece.model`` / ``tokenizer.json`` file or
   a folder holding one (missing: an error, never a silent fallback);
2. the checkpoint folder: ``<checkpoint>/spiece.model`` or ``<checkpoint>/tokenizer.json``;
3. the local Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``~/.cache/huggingface/hub``) for the hub name in the setting, or t5-base;
4. a hub download, only where ``huggingface_hub`` is installed, ``HF_HUB_OFFLINE`` is unset and
   the hub answers.

A hub name given explicitly that none of 3-4 finds is an error; with no setting, finding
nothing leaves the policy without a tokenizer (goal images only), and ``looked`` says where
it looked.
"""
from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

TOKENIZER_FILES = ("spiece.model", "tokenizer.json")
# Octo's text encoder; the hub now keeps t5-base under google-t5/ (the old name redirects)
DEFAULT_HUB_NAMES = ("t5-base", "google-t5/t5-base")
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class TokenizerNotFound(ValueError):
    """An explicitly configured tokenizer that cannot be found; the message says where to put it."""


@dataclass(frozen=True)
class TokenizerChoice:
    path: Path | None  # None: no tokenizer found (goal images only)
    source: str  # which rule found it, for the log
    looked: tuple[str, ...] = ()  # where it looked before, for the log when nothing was found


def _tokenizer_file(folder: Path) -> Path | None:
    return next((folder / name for name in TOKENIZER_FILES if (folder / name).is_file()), None)


def _is_path(setting: str) -> bool:
    return (Path(setting).expanduser().exists() or setting.startswith(("/", ".", "~"))
            or setting.endswith((".model", ".json")) or not _HUB_NAME.match(setting))


def hub_cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    return Path(env.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "huggingface" / "hub"


def _cached(cache: Path, name: str) -> Path | None:
    """``spiece.model`` of hub repo ``name`` in a Hugging Face cache: the snapshot ``refs/main``
    names, else the newest snapshot that has one."""
    repo = cache / ("models--" + name.replace("/", "--"))
    ref = repo / "refs" / "main"
    if ref.is_file():
        found = _tokenizer_file(repo / "snapshots" / ref.read_text().strip())
        if found:
            return found
    snapshots = sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime, reverse=True)
    return next((f for f in map(_tokenizer_file, snapshots) if f), None)


def _hub_download(name: str, env: Mapping[str, str]) -> tuple[Path | None, str]:
    """(the downloaded file, '') or (None, why not)."""
    if env.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return None, "hub: HF_HUB_OFFLINE is set"
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return None, "hub: huggingface_hub is not installed"
    host = urlparse(env.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError as err:
        return None, f"hub: {host} cannot be reached ({err})"
    try:
        return Path(hf_hub_download(name, "spiece.model")), ""
    except Exception as err:  # noqa: BLE001 - any hub failure means: not from the hub
        return None, f"hub: {name} could not be downloaded ({type(err).__name__}: {err})"


def resolve_tokenizer(setting: str, checkpoint: str | Path, env: Mapping[str, str] = os.environ) -> TokenizerChoice:
    """The tokenizer file for ``setting`` (the policy's ``tokenizer`` parameter, '' for none)
    and ``checkpoint`` (its folder), by the rules of this module."""
    setting = (setting or "").strip()
    if setting and _is_path(setting):
        path = Path(setting).expanduser()
        if path.is_dir():
            found = _tokenizer_file(path)
            if found is None:
                raise TokenizerNotFound(f"tokenizer folder {path} holds neither spiece.model nor tokenizer.json")
            return TokenizerChoice(found, "tokenizer parameter")
        if not path.is_file():
            raise TokenizerNotFound(f"tokenizer path not found: {setting}")
        return TokenizerChoice(path, "tokenizer parameter")

    checkpoint = Path(checkpoint)
    found = _tokenizer_file(checkpoint)
    if found:
        return TokenizerChoice(found, "checkpoint folder")
    looked = [f"{checkpoint / TOKENIZER_FILES[0]} (checkpoint folder): missing"]
    names = (setting,) if setting else DEFAULT_HUB_NAMES
    cache = hub_cache_dir(env)
    for name in names:
        found = _cached(cache, name)
        if found:
            return TokenizerChoice(found, f"Hugging Face cache ({name})")
    looked.append(f"{cache} (Hugging Face cache): no {' or '.join(names)}")
    path, why = _hub_download(names[0], env)
    if path:
        return TokenizerChoice(path, f"Hugging Face hub ({names[0]})")
    looked.append(why)
    if setting:
        raise TokenizerNotFound(f"tokenizer {setting!r} is not in the Hugging Face cache and cannot be downloaded: "
                                + "; ".join(looked))
    return TokenizerChoice(None, "none", tuple(looked))
