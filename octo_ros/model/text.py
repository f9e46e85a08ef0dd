"""T5 text tokenization with Octo's settings (max_length 16, pad to max_length, truncation).

Equivalent to ``AutoTokenizer.from_pretrained("t5-base")(texts, max_length=16,
padding="max_length", truncation=True)``: sentencepiece pieces, then EOS (id 1), truncated to
``max_length - 1`` pieces + EOS, padded with PAD (id 0); the attention mask is 1 on real tokens.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Sequence, Union

import numpy as np

PAD_ID, EOS_ID = 0, 1


class TextTokenizerError(RuntimeError):
    pass


class T5TextTokenizer:
    def __init__(self, processor, max_length: int = 16, kind: str = "sentencepiece"):
        self._p = processor
        self.max_length = int(max_length)
        self.kind = kind

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, source: Union[str, Path], max_length: int = 16) -> "T5TextTokenizer":
        """``source``: a ``spiece.model`` file, a ``tokenizer.json`` file, a folder holding either,
        or a Hugging Face hub name (needs internet and ``huggingface_hub``)."""
        path = Path(source)
        if path.is_dir():
            for name in ("spiece.model", "tokenizer.json"):
                if (path / name).is_file():
                    return cls.from_pretrained(path / name, max_length)
            raise TextTokenizerError(f"{path} holds neither spiece.model nor tokenizer.json")
        if path.is_file():
            if path.suffix == ".json":
                try:
                    from tokenizers import Tokenizer
                except ImportError:
                    raise TextTokenizerError("tokenizer.json needs the 'tokenizers' package; or pass spiece.model") from None
                tok = Tokenizer.from_file(str(path))
                tok.no_padding()
                tok.no_truncation()
                return cls(tok, max_length, kind="tokenizers")
            import sentencepiece as spm

            proc = spm.SentencePieceProcessor()
            try:
                proc.Load(str(path))
            except Exception as exc:  # noqa: BLE001
                raise TextTokenizerError(f"cannot load sentencepiece model {path}: {exc}") from None
            return cls(proc, max_length)
        if os.sep in str(source) or str(source).startswith("."):
            raise TextTokenizerError(f"tokenizer path not found: {source}")
        try:
            from huggingface_hub import hf_hub_download
        except ImportError:
            raise TextTokenizerError(
                f"{source!r} is not a local file or folder, and huggingface_hub is not installed to fetch it"
            ) from None
        try:
            return cls.from_pretrained(hf_hub_download(str(source), "spiece.model"), max_length)
        except Exception as exc:  # noqa: BLE001 - offline machines
            raise TextTokenizerError(f"cannot fetch the tokenizer {source!r} from the hub: {exc}") from None

    @classmethod
    def from_sentencepiece_bytes(cls, model_bytes: bytes, max_length: int = 16) -> "T5TextTokenizer":
        import sentencepiece as spm

        proc = spm.SentencePieceProcessor()
        proc.LoadFromSerializedProto(model_bytes)
        return cls(proc, max_length)

    # ------------------------------------------------------------------ use
    def pieces(self, text: str) -> list:
        if self.kind == "tokenizers":
            ids = self._p.encode(text, add_special_tokens=False).ids
        else:
            ids = self._p.EncodeAsIds(text)
        return [i for i in ids if i != EOS_ID]

    def __call__(self, texts: Sequence[str]) -> Dict[str, np.ndarray]:
        if isinstance(texts, str):
            texts = [texts]
        n = self.max_length
        ids = np.full((len(texts), n), PAD_ID, dtype=np.int64)
        mask = np.zeros((len(texts), n), dtype=np.int64)
        for row, text in enumerate(texts):
            toks = self.pieces(text)[: n - 1] + [EOS_ID]
            ids[row, : len(toks)] = toks
            mask[row, : len(toks)] = 1
        return {"input_ids": ids, "attention_mask": mask}
