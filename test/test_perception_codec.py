"""Codec tests: raw/compressed round-trips for every encoding and every bad-input error."""

import array
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from octo_ros.perception.image_codec import (
    RAW_ENCODINGS,
    CompressedImageError,
    ImageCodecError,
    ImageLayoutError,
    PerceptionInputError,
    UnsupportedEncodingError,
    decode_compressed_image,
    decode_image,
    decode_image_msg,
    encode_compressed_image,
    encode_image,
)

COLOR_ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16"]
MONO_ENCODINGS = ["mono8", "mono16"]


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _decode(f):
    return decode_image(f.encoding, f.height, f.width, f.step, f.data, f.is_bigendian)


# ----------------------------------------------------------------- raw round trips


@settings(max_examples=40, deadline=None)
@given(
    enc=st.sampled_from(COLOR_ENCODINGS),
    h=st.integers(1, 9),
    w=st.integers(1, 11),
    pad=st.integers(0, 7),
    big=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_color_roundtrip_any_stride(enc, h, w, pad, big, seed):
    rgb = _rgb(h, w, seed)
    f = encode_image(rgb, enc, row_padding=pad, is_bigendian=big)
    ch, nb, _ = RAW_ENCODINGS[enc]
    assert f.step == w * ch * nb + pad
    assert len(f.data) == f.step * h
    out = _decode(f)
    assert out.dtype == np.uint8 and out.shape == (h, w, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


@settings(max_examples=20, deadline=None)
@given(enc=st.sampled_from(MONO_ENCODINGS), h=st.integers(1, 8), w=st.integers(1, 9), pad=st.integers(0, 5),
       big=st.booleans(), seed=st.integers(0, 2**16))
def test_mono_roundtrip_replicates_channels(enc, h, w, pad, big, seed):
    gray = np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
    f = encode_image(gray, enc, row_padding=pad, is_bigendian=big)
    out = _decode(f)
    assert out.shape == (h, w, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)


def test_channel_order_is_interpreted_not_just_roundtripped():
    # hand-built buffers: one pixel, R=10 G=20 B=30 (A=99)
    px = {"rgb8": [10, 20, 30], "bgr8": [30, 20, 10], "rgba8": [10, 20, 30, 99], "bgra8": [30, 20, 10, 99]}
    for enc, b in px.items():
        out = decode_image(enc, 1, 1, len(b), bytes(b))
        assert out.tolist() == [[[10, 20, 30]]], enc
    assert decode_image("mono8", 1, 1, 1, b"\x07").tolist() == [[[7, 7, 7]]]


def test_16bit_endianness_and_high_byte():
    # value 0x1234 -> high byte 0x12
    le = decode_image("mono16", 1, 1, 2, b"\x34\x12", is_bigendian=0)
    be = decode_image("mono16", 1, 1, 2, b"\x12\x34", is_bigendian=1)
    assert le.tolist() == [[[0x12] * 3]] and be.tolist() == [[[0x12] * 3]]
    # same bytes read with the wrong endianness give the other byte
    assert decode_image("mono16", 1, 1, 2, b"\x34\x12", is_bigendian=1).tolist() == [[[0x34] * 3]]


def test_padding_bytes_are_ignored():
    rgb = _rgb(3, 5, 1)
    a = encode_image(rgb, "bgr8", row_padding=3, padding_byte=0x00)
    b = encode_image(rgb, "bgr8", row_padding=3, padding_byte=0xFF)
    assert a.data != b.data
    np.testing.assert_array_equal(_decode(a), _decode(b))


def test_odd_step_not_multiple_of_pixel_size():
    rgb = _rgb(4, 3, 2)
    f = encode_image(rgb, "rgb8", row_padding=1)  # step = 10
    assert f.step == 10
    np.testing.assert_array_equal(_decode(f), rgb)


@pytest.mark.parametrize("container", [bytes, bytearray, memoryview, lambda d: array.array("B", d),
                                       lambda d: list(d), lambda d: np.frombuffer(d, np.uint8)])
def test_data_containers(container):
    rgb = _rgb(2, 3, 3)
    f = encode_image(rgb, "rgb8", row_padding=2)
    out = decode_image("rgb8", 2, 3, f.step, container(f.data))
    np.testing.assert_array_equal(out, rgb)


def test_output_does_not_alias_message_buffer():
    rgb = _rgb(2, 2, 4)
    buf = bytearray(encode_image(rgb, "rgb8").data)
    out = decode_image("rgb8", 2, 2, 6, buf)
    buf[0] = (buf[0] + 1) % 256
    assert out[0, 0, 0] == rgb[0, 0, 0]


def test_encoding_case_and_whitespace_tolerated():
    out = decode_image(" RGB8 ", 1, 1, 3, b"\x01\x02\x03")
    assert out.tolist() == [[[1, 2, 3]]]


# ----------------------------------------------------------------- raw errors


def test_unknown_encoding():
    with pytest.raises(UnsupportedEncodingError, match="yuv422"):
        decode_image("yuv422", 1, 2, 4, b"\x00" * 4)
    with pytest.raises(UnsupportedEncodingError):
        decode_image("", 1, 1, 3, b"\x00" * 3)


@pytest.mark.parametrize("h,w", [(0, 4), (4, 0), (-1, 3)])
def test_empty_image(h, w):
    with pytest.raises(ImageLayoutError, match="empty"):
        decode_image("rgb8", h, w, 12, b"")


def test_step_smaller_than_row():
    with pytest.raises(ImageLayoutError, match="step 11 < width"):
        decode_image("rgb8", 2, 4, 11, b"\x00" * 22)
    with pytest.raises(ImageLayoutError, match="step 7 <"):
        decode_image("mono16", 1, 4, 7, b"\x00" * 7)


def test_truncated_and_too_long_data():
    with pytest.raises(ImageLayoutError, match="truncated: 23 bytes, expected step\\*height = 24"):
        decode_image("rgb8", 2, 4, 12, b"\x00" * 23)
    with pytest.raises(ImageLayoutError, match="too long"):
        decode_image("rgb8", 2, 4, 12, b"\x00" * 25)
    with pytest.raises(ImageLayoutError, match="truncated"):
        decode_image("rgb8", 2, 4, 12, b"")
    with pytest.raises(ImageLayoutError, match="None"):
        decode_image("rgb8", 2, 4, 12, None)


def test_bad_data_container():
    with pytest.raises(ImageLayoutError):
        decode_image("mono8", 1, 2, 2, [1, 300])
    with pytest.raises(ImageLayoutError, match="dtype"):
        decode_image("mono8", 1, 2, 2, np.zeros(2, np.float32))


def test_errors_are_value_errors_with_stream_prefix():
    err = ImageLayoutError("bad", stream="image_primary (/cam)")
    assert isinstance(err, (ImageCodecError, PerceptionInputError, ValueError))
    assert str(err) == "[image_primary (/cam)] bad"
    assert str(ImageLayoutError("bad")) == "bad"


def test_encode_rejects_bad_input():
    with pytest.raises(ImageLayoutError):
        encode_image(np.zeros((2, 2, 3), np.float32), "rgb8")
    with pytest.raises(ImageLayoutError):
        encode_image(np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(UnsupportedEncodingError):
        encode_image(np.zeros((2, 2, 3), np.uint8), "nv12")


# ----------------------------------------------------------------- compressed


def _smooth(h=48, w=64):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), np.full_like(xx, 80)], -1).astype(np.uint8)


def test_png_roundtrip_exact_and_format_string():
    rgb = _rgb(17, 23, 5)
    f = encode_compressed_image(rgb, "png")
    assert f.format == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(decode_compressed_image(f.format, f.data), rgb)


def test_jpeg_roundtrip_close_and_colours_not_swapped():
    rgb = _smooth()
    f = encode_compressed_image(rgb, "jpeg", quality=95)
    assert f.format == "rgb8; jpeg compressed bgr8"
    out = decode_compressed_image(f.format, f.data)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    err = np.abs(out.astype(int) - rgb.astype(int))
    assert err.mean() < 2.0 and err.max() < 20
    # the red ramp goes left->right, blue is constant 80: a swapped decode would fail this
    assert abs(int(out[:, :, 2].mean()) - 80) < 3


@pytest.mark.parametrize("fmt", ["jpeg", "jpg", "JPEG", "bgr8; jpeg compressed bgr8", "", "png"])
def test_format_variants_accepted(fmt):
    rgb = _smooth(16, 16)
    data = encode_compressed_image(rgb, "jpeg").data
    out = decode_compressed_image(fmt, data)  # container detected from magic bytes
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 3


def test_declared_rgb8_payload_is_swapped_back():
    import cv2

    rgb = _rgb(5, 6, 6)
    ok, buf = cv2.imencode(".png", rgb)  # RGB bytes written as if they were BGR
    out = decode_compressed_image("rgb8; png compressed rgb8", buf.tobytes())
    np.testing.assert_array_equal(out, rgb)


def test_gray_png_replicated():
    import cv2

    gray = np.random.default_rng(7).integers(0, 256, (6, 7), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", gray)
    out = decode_compressed_image("mono8; png compressed mono8", buf.tobytes())
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)


def test_compressed_errors():
    good = encode_compressed_image(_smooth(16, 16), "jpeg").data
    png = encode_compressed_image(_smooth(16, 16), "png").data
    with pytest.raises(CompressedImageError, match="empty"):
        decode_compressed_image("jpeg", b"")
    with pytest.raises(CompressedImageError, match="truncated JPEG"):
        decode_compressed_image("jpeg", good[: len(good) // 2])
    with pytest.raises(CompressedImageError, match="truncated PNG"):
        decode_compressed_image("png", png[:-20])
    with pytest.raises(UnsupportedEncodingError, match="neither JPEG nor PNG"):
        decode_compressed_image("jpeg", b"GIF89a" + b"\x00" * 20)
    with pytest.raises(UnsupportedEncodingError, match="tiff"):
        decode_compressed_image("tiff", good)
    with pytest.raises(UnsupportedEncodingError, match="compressedDepth"):
        decode_compressed_image("16UC1; compressedDepth png", png)
    # valid magic + EOI but corrupt body: no frame header with the image size, refused before decoding
    with pytest.raises(CompressedImageError, match="no image size in the header"):
        decode_compressed_image("jpeg", b"\xff\xd8\xff" + b"\x00" * 40 + b"\xff\xd9")


# ----------------------------------------------------------------- message adapter


def test_decode_image_msg_raw_and_compressed():
    rgb = _rgb(3, 4, 8)
    f = encode_image(rgb, "bgra8", row_padding=4)
    raw = SimpleNamespace(encoding=f.encoding, height=f.height, width=f.width, step=f.step,
                          is_bigendian=0, data=f.data)
    np.testing.assert_array_equal(decode_image_msg(raw), rgb)
    c = encode_compressed_image(rgb, "png")
    np.testing.assert_array_equal(decode_image_msg(SimpleNamespace(format=c.format, data=c.data)), rgb)
    with pytest.raises(UnsupportedEncodingError):
        decode_image_msg(SimpleNamespace(data=b""))
