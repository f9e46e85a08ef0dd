"""Image codec for the observation pipeline: ROS image fields <-> numpy, and Octo's resize.

Pure Python (numpy + opencv-python-headless); no ROS imports.  The functions take the
plain fields of ``sensor_msgs/Image`` (encoding, height, width, step, is_bigendian, data)
and ``sensor_msgs/CompressedImage`` (format, data), so they work with rclpy messages,
rosbags messages or test doubles alike.  :func:`decode_image_msg` is a thin adapter that
only reads those attributes.

Decoding always returns a fresh, C-contiguous ``(H, W, 3) uint8`` RGB array (never a view
into the message buffer).

Resizing (:func:`resize_like_octo`) reproduces the official Octo deployment preprocessing
(``octo/utils/gym_wrappers.py::ResizeImageWrapper`` at octo HEAD 241fb35):

1. ``tf.image.resize(img, size, method="lanczos3", antialias=True)`` -- TensorFlow's
   ``ScaleAndTranslate`` kernel: separable, rows first then columns, float32 arithmetic,
   Lanczos-3 kernel widened by the downscale factor, per-output weights normalised to sum 1;
2. for augmented keys (default: ``image_primary`` only) the *average* of the training
   random-resized-crop: ``tf.image.crop_and_resize`` with the centred box of relative side
   sqrt(0.9) back to the same size (bilinear, corner-aligned sampling), on the float image;
3. ``round`` (half to even) -> clip to [0, 255] -> uint8.

Both TF kernels are re-implemented here in float32 numpy with the same operation order; the
measured agreement with TensorFlow 2.18 is documented in ``docs/perception.md`` and checked
by ``test/test_perception_resize.py`` against an independent float64 implementation written
from the kernel definitions.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = [
    "PerceptionInputError",
    "ImageCodecError",
    "UnsupportedEncodingError",
    "ImageLayoutError",
    "CompressedImageError",
    "ImageTooLargeError",
    "check_pixel_count",
    "compressed_image_size",
    "RawImageFields",
    "CompressedImageFields",
    "RAW_ENCODINGS",
    "decode_image",
    "decode_compressed_image",
    "decode_image_msg",
    "encode_image",
    "encode_compressed_image",
    "ensure_rgb_uint8",
    "resize_like_octo",
    "lanczos3_resize_float",
    "crop_and_resize_bilinear_float",
    "octo_average_crop_box",
]


# --------------------------------------------------------------------------- errors


class PerceptionInputError(ValueError):
    """A single input (frame / joint state) was rejected; the pipeline drops it and goes on.

    ``stream`` names the offending stream (input name and/or topic) once known; ``str(err)``
    is a complete log line, e.g. ``"[image_primary (/cam/image_raw)] rgb8 image: data has
    921599 bytes, expected step*height = 921600"``.
    """

    def __init__(self, message: str, stream: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.stream = stream

    def __str__(self) -> str:
        return f"[{self.stream}] {self.message}" if self.stream else self.message


class ImageCodecError(PerceptionInputError):
    """Base class of all image decoding / encoding errors."""


class UnsupportedEncodingError(ImageCodecError):
    """Unknown raw ``encoding`` or compressed ``format``."""


class ImageLayoutError(ImageCodecError):
    """Raw image fields are inconsistent: empty image, step too small, wrong data length."""


class CompressedImageError(ImageCodecError):
    """Compressed payload is empty, truncated, corrupt, or cannot be decoded."""


class ImageTooLargeError(ImageCodecError):
    """The image (as its header declares it, before any decoding) has more pixels than allowed."""


def check_pixel_count(width: int, height: int, max_pixels: Optional[int], what: str) -> None:
    """ImageTooLargeError when ``width * height`` exceeds ``max_pixels`` (None: no bound)."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(f"{what}: {width}x{height} = {width * height} pixels exceeds the maximum of "
                                 f"{max_pixels} (parameter max_image_pixels); frame not decoded")


# --------------------------------------------------------------------------- fields


@dataclass(frozen=True)
class RawImageFields:
    """The fields of a ``sensor_msgs/Image`` (without header)."""

    encoding: str
    height: int
    width: int
    step: int
    is_bigendian: int
    data: bytes


@dataclass(frozen=True)
class CompressedImageFields:
    """The fields of a ``sensor_msgs/CompressedImage`` (without header)."""

    format: str
    data: bytes


# encoding -> (channels, bytes per channel, channel order of the source)
RAW_ENCODINGS = {
    "rgb8": (3, 1, "rgb"),
    "bgr8": (3, 1, "bgr"),
    "rgba8": (4, 1, "rgba"),
    "bgra8": (4, 1, "bgra"),
    "mono8": (1, 1, "mono"),
    # 16-bit variants: the only encodings where is_bigendian matters; reduced to 8 bit by
    # keeping the high byte (v >> 8).
    "rgb16": (3, 2, "rgb"),
    "bgr16": (3, 2, "bgr"),
    "rgba16": (4, 2, "rgba"),
    "bgra16": (4, 2, "bgra"),
    "mono16": (1, 2, "mono"),
}


def _as_uint8_buffer(data: Any, what: str) -> np.ndarray:
    """Bytes-like (bytes, bytearray, memoryview, array.array('B'), uint8 ndarray) or a list
    of ints -> 1-D uint8 array (zero-copy where possible)."""
    if data is None:
        raise ImageLayoutError(f"{what}: data is None")
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ImageLayoutError(f"{what}: data array has dtype {data.dtype}, expected uint8")
        return data.reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError):
        pass
    try:
        arr = np.asarray(data)
    except Exception as exc:  # pragma: no cover - exotic containers
        raise ImageLayoutError(f"{what}: cannot interpret data of type {type(data).__name__}") from exc
    if arr.ndim != 1 or (arr.size and (arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() > 255)):
        raise ImageLayoutError(f"{what}: data must be bytes or a sequence of 0..255 ints")
    return arr.astype(np.uint8)


# --------------------------------------------------------------------------- raw decode


def decode_image(
    encoding: str,
    height: int,
    width: int,
    step: int,
    data: Any,
    is_bigendian: int = 0,
    max_pixels: Optional[int] = None,
) -> np.ndarray:
    """Decode ``sensor_msgs/Image`` fields to a fresh ``(height, width, 3) uint8`` RGB array.

    Supports :data:`RAW_ENCODINGS`.  ``step`` is the row stride in bytes and may include
    padding (``step >= width * channels * bytes_per_channel``); ``data`` must hold exactly
    ``step * height`` bytes.  Alpha is dropped; mono is replicated to 3 channels; 16-bit
    encodings honour ``is_bigendian`` and keep the high byte.

    Raises:
        UnsupportedEncodingError: unknown ``encoding``.
        ImageLayoutError: empty image, ``step`` too small, data length != ``step * height``.
    """
    enc = (encoding or "").strip().lower()
    spec = RAW_ENCODINGS.get(enc)
    if spec is None:
        raise UnsupportedEncodingError(
            f"unsupported image encoding {encoding!r} (supported: {', '.join(sorted(RAW_ENCODINGS))})"
        )
    channels, nbytes, order = spec
    height, width, step = int(height), int(width), int(step)
    what = f"{enc} image {width}x{height}"
    if height <= 0 or width <= 0:
        raise ImageLayoutError(f"{what}: empty image (height and width must be > 0)")
    check_pixel_count(width, height, max_pixels, what)
    min_step = width * channels * nbytes
    if step < min_step:
        raise ImageLayoutError(f"{what}: step {step} < width*channels*bytes = {min_step}")
    buf = _as_uint8_buffer(data, what)
    expected = step * height
    if buf.size != expected:
        kind = "truncated" if buf.size < expected else "too long"
        raise ImageLayoutError(f"{what}: data {kind}: {buf.size} bytes, expected step*height = {expected}")

    rows = buf.reshape(height, step)[:, :min_step]
    if nbytes == 2:
        dt = np.dtype(">u2" if is_bigendian else "<u2")
        pix16 = np.ascontiguousarray(rows).view(dt).reshape(height, width, channels)
        pix = (pix16 >> 8).astype(np.uint8)
    else:
        pix = rows.reshape(height, width, channels)

    if order == "rgb":
        out = np.array(pix, copy=True, order="C")
    elif order == "bgr":
        out = cv2.cvtColor(np.ascontiguousarray(pix), cv2.COLOR_BGR2RGB)
    elif order == "rgba":
        out = cv2.cvtColor(np.ascontiguousarray(pix), cv2.COLOR_RGBA2RGB)
    elif order == "bgra":
        out = cv2.cvtColor(np.ascontiguousarray(pix), cv2.COLOR_BGRA2RGB)
    else:  # mono
        out = np.repeat(pix, 3, axis=2)
    return out


# --------------------------------------------------------------------------- compressed

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _parse_compressed_format(fmt: str) -> Tuple[Optional[str], Optional[str]]:
    """Return (codec, encoded channel order) from an image_transport format string.

    Accepted: ``""`` (codec from magic bytes), ``"jpeg"``, ``"jpg"``, ``"png"``,
    ``"<enc>; jpeg compressed <enc2>"``, ``"<enc>; png compressed <enc2>"``.  The second
    element is ``enc2`` lower-cased (e.g. ``"bgr8"``) or None.
    """
    f = (fmt or "").strip().lower()
    if not f:
        return None, None
    if ";" in f:
        _, rest = f.split(";", 1)
        words = rest.split()
        if "compresseddepth" in words:
            raise UnsupportedEncodingError(f"compressed format {fmt!r}: compressedDepth images are not supported")
        codec = words[0] if words else ""
        target = words[2] if len(words) >= 3 and words[1] == "compressed" else None
    else:
        codec, target = f, None
    codec = {"jpg": "jpeg"}.get(codec, codec)
    if codec not in ("jpeg", "png"):
        raise UnsupportedEncodingError(f"unsupported compressed format {fmt!r} (supported: jpeg, png)")
    return codec, target


# JPEG start-of-frame markers (baseline, extended, progressive, lossless, ...): they carry the size.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# What libjpeg and libpng print (to stderr, through OpenCV) when they recover from bad data.
_DECODER_WARNINGS = ("Corrupt JPEG data", "Premature end of JPEG", "libpng warning", "libpng error")
_stderr_lock = threading.Lock()


def compressed_image_size(data: Any) -> Optional[Tuple[int, int]]:
    """(width, height) as a JPEG's start-of-frame or a PNG's IHDR declares it, read without
    decoding; None when the header holds no size."""
    buf = _as_uint8_buffer(data, "compressed image").tobytes()
    if buf.startswith(_PNG_MAGIC):
        if len(buf) >= 24 and buf[12:16] == b"IHDR":
            return int.from_bytes(buf[16:20], "big"), int.from_bytes(buf[20:24], "big")
        return None
    i = 2
    while i + 4 <= len(buf):
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        length = int.from_bytes(buf[i + 2:i + 4], "big")
        if marker in _JPEG_SOF and i + 9 <= len(buf):
            return int.from_bytes(buf[i + 7:i + 9], "big"), int.from_bytes(buf[i + 5:i + 7], "big")
        if marker == 0xDA or length < 2:  # start of scan: no frame header before it
            return None
        i += 2 + length
    return None


def _imdecode_checked(buf: np.ndarray, what: str) -> Optional[np.ndarray]:
    """cv2.imdecode, refusing what the decoder only warns about: libjpeg/libpng report recovered
    corrupt data on stderr (and return a partly grey image), so stderr is captured around the call
    (whatever else was written meanwhile is passed on)."""
    with _stderr_lock:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                rgb = cv2.imdecode(buf, cv2.IMREAD_COLOR_RGB)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
    warnings = [line.strip() for line in text.splitlines() if line.startswith(_DECODER_WARNINGS)]
    others = "".join(line + "\n" for line in text.splitlines() if not line.startswith(_DECODER_WARNINGS))
    if others:
        sys.stderr.write(others)
    if warnings:
        raise CompressedImageError(f"{what}: {'; '.join(dict.fromkeys(warnings))}; frame dropped")
    return rgb


def decode_compressed_image(format: str, data: Any, max_pixels: Optional[int] = None) -> np.ndarray:  # noqa: A002
    """Decode ``sensor_msgs/CompressedImage`` fields (JPEG or PNG) to ``(H, W, 3) uint8`` RGB.

    The container is identified from its magic bytes (a format string that names the other
    codec is tolerated); the declared ``compressed <enc>`` part is honoured: image_transport
    encodes colour images as ``bgr8`` (the normal case); a payload declared ``compressed rgb8``
    holds swapped channels and is swapped back.  Gray images are replicated to 3 channels;
    16-bit PNGs are reduced to 8 bit; alpha is dropped.

    Raises:
        UnsupportedEncodingError: unknown codec in ``format`` or unknown payload type.
        CompressedImageError: empty, truncated, corrupt (a decoder warning) or undecodable payload.
        ImageTooLargeError: the header declares more than ``max_pixels`` pixels (checked before decoding).
    """
    _, target = _parse_compressed_format(format)
    buf = _as_uint8_buffer(data, f"compressed image ({format!r})")
    if buf.size == 0:
        raise CompressedImageError(f"compressed image ({format!r}): empty data")
    head = buf[:8].tobytes()
    if head.startswith(_JPEG_MAGIC):
        # A complete JPEG ends with the EOI marker; libjpeg only warns on a truncated stream
        # and returns a partially grey image, so check explicitly.
        tail = buf[-64:].tobytes().rstrip(b"\x00")
        if not tail.endswith(b"\xff\xd9"):
            raise CompressedImageError(
                f"compressed image ({format!r}): truncated JPEG ({buf.size} bytes, no end-of-image marker)"
            )
    elif head.startswith(_PNG_MAGIC):
        if b"IEND" not in buf[-32:].tobytes():
            raise CompressedImageError(f"compressed image ({format!r}): truncated PNG ({buf.size} bytes, no IEND chunk)")
    else:
        raise UnsupportedEncodingError(
            f"compressed image ({format!r}): payload is neither JPEG nor PNG (starts with {head[:4].hex()})"
        )
    size = compressed_image_size(buf)
    what = f"compressed image ({format!r})"
    if size is None:
        raise CompressedImageError(f"{what}: no image size in the header ({buf.size} bytes)")
    if size[0] == 0 or size[1] == 0:
        raise CompressedImageError(f"{what}: header declares an empty {size[0]}x{size[1]} image")
    check_pixel_count(*size, max_pixels, what)
    rgb = _imdecode_checked(buf, what)
    if rgb is None:
        raise CompressedImageError(f"compressed image ({format!r}): decoder failed on {buf.size} bytes")
    if target is not None and target.startswith("rgb"):
        rgb = rgb[:, :, ::-1]
    return np.ascontiguousarray(rgb)


def decode_image_msg(msg: Any, max_pixels: Optional[int] = None) -> np.ndarray:
    """Adapter: decode a ``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage``-like object
    (refusing more than ``max_pixels`` pixels before decoding).

    Only reads attributes: ``format`` + ``data`` (compressed) or ``encoding``, ``height``,
    ``width``, ``step``, ``is_bigendian``, ``data`` (raw).
    """
    if hasattr(msg, "encoding"):
        return decode_image(
            msg.encoding, msg.height, msg.width, msg.step, msg.data, getattr(msg, "is_bigendian", 0), max_pixels
        )
    if hasattr(msg, "format"):
        return decode_compressed_image(msg.format, msg.data, max_pixels)
    raise UnsupportedEncodingError(f"object of type {type(msg).__name__} is neither an Image nor a CompressedImage")


# --------------------------------------------------------------------------- encode


def ensure_rgb_uint8(rgb: Any, what: str = "image") -> np.ndarray:
    """Validate an ``(H, W, 3) uint8`` RGB array (H, W > 0); raise ImageLayoutError otherwise."""
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8:
        raise ImageLayoutError(f"{what}: dtype {arr.dtype}, expected uint8")
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageLayoutError(f"{what}: shape {arr.shape}, expected (H>0, W>0, 3)")
    return arr


def encode_image(
    image: np.ndarray,
    encoding: str = "rgb8",
    row_padding: int = 0,
    is_bigendian: bool = False,
    padding_byte: int = 0xAB,
) -> RawImageFields:
    """Encode an RGB image (``(H, W, 3) uint8``; for mono encodings also ``(H, W)``) into
    ``sensor_msgs/Image`` fields, for test publishers and simulators.

    ``row_padding`` extra bytes (filled with ``padding_byte``) are appended to every row, so
    ``step = width*channels*bytes + row_padding``.  Mono encodings of a 3-channel input use
    OpenCV's RGB->gray weights.  16-bit encodings store ``v * 257`` (so decoding is lossless).
    """
    enc = (encoding or "").strip().lower()
    spec = RAW_ENCODINGS.get(enc)
    if spec is None:
        raise UnsupportedEncodingError(f"unsupported image encoding {encoding!r}")
    channels, nbytes, order = spec
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ImageLayoutError(f"encode {enc}: dtype {arr.dtype}, expected uint8")
    if order == "mono":
        if arr.ndim == 3 and arr.shape[2] == 3:
            arr = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2GRAY)
        elif arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim != 2:
            raise ImageLayoutError(f"encode {enc}: shape {arr.shape}, expected (H, W) or (H, W, 3)")
        pix = arr[:, :, None]
    else:
        arr = ensure_rgb_uint8(arr, f"encode {enc}")
        if order == "rgb":
            pix = arr
        elif order == "bgr":
            pix = arr[:, :, ::-1]
        else:
            alpha = np.full(arr.shape[:2] + (1,), 255, np.uint8)
            pix = np.concatenate([arr if order == "rgba" else arr[:, :, ::-1], alpha], axis=2)
    height, width = pix.shape[:2]
    if height == 0 or width == 0:
        raise ImageLayoutError(f"encode {enc}: empty image")
    if nbytes == 2:
        dt = np.dtype(">u2" if is_bigendian else "<u2")
        row_bytes = (pix.astype(np.uint16) * 257).astype(dt).reshape(height, -1).view(np.uint8)
    else:
        row_bytes = np.ascontiguousarray(pix).reshape(height, width * channels)
    if row_padding < 0:
        raise ValueError("row_padding must be >= 0")
    if row_padding:
        pad = np.full((height, row_padding), padding_byte, np.uint8)
        row_bytes = np.concatenate([row_bytes, pad], axis=1)
    step = int(row_bytes.shape[1])
    return RawImageFields(enc, int(height), int(width), step, int(bool(is_bigendian)) if nbytes == 2 else 0,
                          np.ascontiguousarray(row_bytes).tobytes())


def encode_compressed_image(
    rgb: np.ndarray, codec: str = "jpeg", quality: int = 95, source_encoding: str = "rgb8"
) -> CompressedImageFields:
    """Encode ``(H, W, 3) uint8`` RGB as JPEG or PNG the way ``compressed_image_transport``
    does (colour data compressed as bgr8); ``format`` is e.g. ``"rgb8; jpeg compressed bgr8"``."""
    arr = ensure_rgb_uint8(rgb, f"encode {codec}")
    codec = {"jpg": "jpeg"}.get(codec.lower(), codec.lower())
    bgr = np.ascontiguousarray(arr[:, :, ::-1])
    if codec == "jpeg":
        ok, out = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif codec == "png":
        ok, out = cv2.imencode(".png", bgr)
    else:
        raise UnsupportedEncodingError(f"unsupported compressed codec {codec!r} (supported: jpeg, png)")
    if not ok:  # pragma: no cover - OpenCV failure
        raise CompressedImageError(f"{codec} encoder failed")
    return CompressedImageFields(f"{source_encoding}; {codec} compressed bgr8", out.tobytes())


# --------------------------------------------------------------------------- Octo resize

_F32 = np.float32
_LANCZOS_RADIUS = 3.0
_KPI = _F32(3.14159265359)  # TF's sampling_kernels.h constant, as float


def _lanczos3_f32(x: np.ndarray) -> np.ndarray:
    """TF's LanczosKernelFunc(radius=3) evaluated in float32 with TF's operation order."""
    x = np.abs(x.astype(_F32))
    r = _F32(_LANCZOS_RADIUS)
    # sin of the float32 argument evaluated in float64 and rounded (= a correctly rounded
    # sinf, like glibc); numpy's own float32 sin differs by an ulp now and then.
    s1 = np.sin((_KPI * x).astype(np.float64)).astype(_F32)
    s2 = np.sin(((_KPI * x) / r).astype(np.float64)).astype(_F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        val = (r * s1) * s2 / (((_KPI * _KPI) * x) * x)
    val = np.where(x <= _F32(1e-3), _F32(1.0), val)
    val = np.where(x > r, _F32(0.0), val)
    return val.astype(_F32)


@lru_cache(maxsize=64)
def _lanczos_spans(in_size: int, out_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per output pixel: (indices (out, span) int, weights (out, span) float32), as TF's
    ScaleAndTranslate ``ComputeSpansCore`` with scale=out/in, translation 0, antialias."""
    scale = _F32(_F32(out_size) / _F32(in_size))
    inv_scale = _F32(1.0 / float(scale))
    kernel_scale = _F32(max(float(inv_scale), 1.0))
    radius = _F32(_LANCZOS_RADIUS)
    span_size = min(2 * int(math.ceil(float(radius * kernel_scale))) + 1, in_size)
    one_over_ks = _F32(_F32(1.0) / kernel_scale)
    idx = np.zeros((out_size, span_size), np.int64)
    wts = np.zeros((out_size, span_size), _F32)
    reach = _F32(radius * kernel_scale)
    for x in range(out_size):
        sample = _F32(_F32(x + 0.5) * inv_scale)
        if sample < 0 or sample > in_size:
            continue  # empty span (cannot happen with translation 0)
        start = int(math.ceil(float(_F32(_F32(sample - reach) - _F32(0.5)))))
        end = int(math.floor(float(_F32(_F32(sample + reach) - _F32(0.5)))))
        start = min(max(start, 0), in_size - 1)
        end = min(max(end, 0), in_size - 1) + 1
        src = np.arange(start, end)
        pos = (src.astype(_F32) + _F32(0.5)) - sample
        w = _lanczos3_f32(pos * one_over_ks)
        total = _F32(0.0)
        for v in w:  # sequential float32 sum, like TF
            total = _F32(total + v)
        if abs(float(total)) >= 1000.0 * float(np.finfo(_F32).tiny):
            w = (w * _F32(_F32(1.0) / total)).astype(_F32)
            wts[x, : w.size] = w
        idx[x, : w.size] = src
        idx[x, w.size:] = end - 1  # zero weight; any valid index
    idx.setflags(write=False)
    wts.setflags(write=False)
    return idx, wts


def lanczos3_resize_float(image: np.ndarray, out_hw: Tuple[int, int]) -> np.ndarray:
    """``tf.image.resize(image, out_hw, method="lanczos3", antialias=True)`` for an
    ``(H, W, C)`` image (any real dtype) -> ``(out_h, out_w, C) float32``.

    Rows (height) are resampled first into a float32 intermediate, then columns; every
    output accumulates ``weight * value`` over the span in order, in float32 (as TF's
    ``GatherRows`` / ``GatherColumns``)."""
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    in_h, in_w, ch = image.shape
    src = image.astype(_F32, copy=False).reshape(in_h, in_w * ch)
    ridx, rw = _lanczos_spans(in_h, out_h)
    inter = np.zeros((out_h, in_w * ch), _F32)
    for k in range(ridx.shape[1]):
        inter += rw[:, k : k + 1] * src[ridx[:, k]]
    inter = inter.reshape(out_h, in_w, ch)
    cidx, cw = _lanczos_spans(in_w, out_w)
    out = np.zeros((out_h, out_w, ch), _F32)
    for k in range(cidx.shape[1]):
        out += cw[None, :, k, None] * inter[:, cidx[:, k], :]
    return out


def octo_average_crop_box(avg_scale: float = 0.9, avg_ratio: float = 1.0) -> np.ndarray:
    """Normalised ``[y1, x1, y2, x2]`` float32 box of ResizeImageWrapper's average crop."""
    new_h = np.clip(np.sqrt(_F32(avg_scale / avg_ratio)), 0, 1).astype(_F32)
    new_w = np.clip(np.sqrt(_F32(avg_scale * avg_ratio)), 0, 1).astype(_F32)
    off_h = _F32((_F32(1) - new_h) / _F32(2))
    off_w = _F32((_F32(1) - new_w) / _F32(2))
    return np.array([off_h, off_w, off_h + new_h, off_w + new_w], _F32)


def crop_and_resize_bilinear_float(image: np.ndarray, box: Sequence[float], out_hw: Tuple[int, int]) -> np.ndarray:
    """``tf.image.crop_and_resize(image[None], [box], [0], out_hw)[0]`` (bilinear,
    extrapolation 0) for a float ``(H, W, C)`` image -> float32, with TF's float32 sampling
    ``in = y1*(H-1) + i*(y2-y1)*(H-1)/(out-1)``."""
    img = image.astype(_F32, copy=False)
    in_h, in_w, ch = img.shape
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    y1, x1, y2, x2 = (_F32(v) for v in box)

    def coords(a1, a2, n_in, n_out):
        if n_out > 1:
            scale = _F32(_F32(_F32(a2 - a1) * _F32(n_in - 1)) / _F32(n_out - 1))
            pos = _F32(a1 * _F32(n_in - 1)) + np.arange(n_out, dtype=_F32) * scale
        else:
            pos = np.full(1, _F32(_F32(0.5) * _F32(a1 + a2) * _F32(n_in - 1)), _F32)
        pos = pos.astype(_F32)
        valid = (pos >= 0) & (pos <= n_in - 1)
        lo = np.clip(np.floor(pos), 0, n_in - 1).astype(np.int64)
        hi = np.clip(np.ceil(pos), 0, n_in - 1).astype(np.int64)
        lerp = (pos - np.floor(pos)).astype(_F32)
        return lo, hi, lerp, valid

    ty, by, ly, vy = coords(y1, y2, in_h, out_h)
    lx, rx, lxw, vx = coords(x1, x2, in_w, out_w)
    top_rows, bot_rows = img[ty], img[by]
    tl, tr = top_rows[:, lx], top_rows[:, rx]
    bl, br = bot_rows[:, lx], bot_rows[:, rx]
    xl = lxw[None, :, None]
    top = tl + (tr - tl) * xl
    bottom = bl + (br - bl) * xl
    out = top + (bottom - top) * ly[:, None, None]
    if not (vy.all() and vx.all()):
        out = out * (vy[:, None, None] & vx[None, :, None])
    return out.astype(_F32, copy=False)


def resize_like_octo(
    rgb: np.ndarray,
    out_hw: Tuple[int, int],
    average_crop: bool = False,
    avg_scale: float = 0.9,
    avg_ratio: float = 1.0,
) -> np.ndarray:
    """Resize ``(H, W, 3) uint8`` RGB to ``(out_h, out_w, 3) uint8`` as Octo's
    ``ResizeImageWrapper`` does: Lanczos-3 antialiased resize, then (``average_crop=True``,
    the official default for ``image_primary``) the centred average crop resized back with
    bilinear sampling, then round-half-even, clip, uint8.  Runs even when the input already
    has the output size (as the official wrapper does)."""
    arr = ensure_rgb_uint8(rgb, "resize input")
    out = lanczos3_resize_float(arr, out_hw)
    if average_crop:
        out = crop_and_resize_bilinear_float(out, octo_average_crop_box(avg_scale, avg_ratio), out_hw)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
