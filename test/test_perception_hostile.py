"""Hostile sensor input to the observation buffer core (issue #12 items 2-4): a future-stamped
message does not lock a stream out, a decompression bomb is refused from its header, a corrupt
JPEG is dropped, duplicated joint names and values that overflow float32 are refused."""
import cv2
import numpy as np
import pytest

from octo_ros.perception.image_codec import (
    CompressedImageError,
    CompressedImageFields,
    ImageTooLargeError,
    compressed_image_size,
    decode_compressed_image,
)
from octo_ros.perception.observation import (
    JointStateError,
    ObservationBuffer,
    ObservationConfig,
    StampInFutureError,
)

S = 1_000_000_000
HOUR = 3600 * S
IMAGE = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def buffer(**extra):
    return ObservationBuffer(ObservationConfig.from_dict({
        "rate_hz": 10.0, "cameras": {"image_primary": {"topic": "/cam", "height": 32, "width": 32}},
        "joint_state": {"topic": "/js", "joints": ["j1", "j2"]}, **extra}))


def feed(buf, t_ns, joints=(0.1, 0.2)):
    buf.add_image("image_primary", t_ns, IMAGE, now_ns=t_ns)
    buf.add_joint_state(t_ns, ["j1", "j2"], list(joints), now_ns=t_ns)


@pytest.mark.parametrize("stream", ["image", "joint_state"])
def test_a_frame_stamped_an_hour_ahead_is_refused_and_the_stream_goes_on(stream):
    buf = buffer()
    t = 100 * S
    feed(buf, t)
    with pytest.raises(StampInFutureError, match="in the future"):
        if stream == "image":
            buf.add_image("image_primary", t + HOUR, IMAGE, now_ns=t + S // 100)
        else:
            buf.add_joint_state(t + HOUR, ["j1", "j2"], [0.1, 0.2], now_ns=t + S // 100)
    windows = 0
    for k in range(1, 11):
        feed(buf, t + k * S // 10)
        windows += buf.assemble(t + k * S // 10).ready
    assert windows >= 9, "correctly stamped frames after the future one must make windows"


def test_reset_forgets_an_ordering_baseline():
    buf = buffer()
    buf.add_image("image_primary", 10 * HOUR, IMAGE)  # no clock given: accepted, a baseline far ahead
    buf.reset()
    feed(buf, 100 * S)
    assert buf.assemble(100 * S).ready


def _jpeg_claiming(width, height) -> bytes:
    ok, enc = cv2.imencode(".jpg", IMAGE)
    data = bytearray(enc.tobytes())
    sof = data.index(b"\xff\xc0")  # baseline SOF0: marker, length(2), precision(1), height(2), width(2)
    data[sof + 5:sof + 7] = height.to_bytes(2, "big")
    data[sof + 7:sof + 9] = width.to_bytes(2, "big")
    return bytes(data[:sof + 300]) + b"\xff\xd9"


@pytest.mark.parametrize("size", [(8192, 8192), (16384, 16384), (65535, 65535)])
def test_decompression_bomb_is_refused_from_its_header(size):
    data = _jpeg_claiming(*size)
    assert len(data) < 2000
    assert compressed_image_size(data) == size
    with pytest.raises(ImageTooLargeError, match=f"{size[0]}x{size[1]}"):
        decode_compressed_image("jpeg", data, max_pixels=3840 * 2160)


def test_png_bomb_is_refused_from_its_header():
    ok, enc = cv2.imencode(".png", IMAGE)
    data = bytearray(enc.tobytes())
    data[16:20] = (20000).to_bytes(4, "big")  # IHDR width
    data[20:24] = (20000).to_bytes(4, "big")  # IHDR height
    assert compressed_image_size(bytes(data)) == (20000, 20000)
    with pytest.raises(ImageTooLargeError, match="20000x20000"):
        decode_compressed_image("png", bytes(data), max_pixels=3840 * 2160)


def test_corrupt_jpeg_data_drops_the_frame():
    ok, enc = cv2.imencode(".jpg", IMAGE)
    data = bytearray(enc.tobytes())
    mid = len(data) // 2
    data[mid:mid + 2] = b"\xff\xd0"  # a restart marker in the middle of the entropy-coded data
    with pytest.raises(CompressedImageError, match="Corrupt JPEG data"):
        decode_compressed_image("jpeg", bytes(data))
    assert decode_compressed_image("jpeg", enc.tobytes()).shape == IMAGE.shape  # an intact one decodes


def test_buffer_refuses_a_bomb_message_and_keeps_working():
    buf = buffer(max_image_pixels=640 * 480)
    msg = type("Msg", (), {})()
    msg.header = type("H", (), {"stamp": type("T", (), {"sec": 100, "nanosec": 0})()})()
    fields = CompressedImageFields("jpeg", _jpeg_claiming(8192, 8192))
    msg.format, msg.data = fields.format, fields.data
    with pytest.raises(ImageTooLargeError, match="8192x8192"):
        buf.add_image_msg("image_primary", msg, now_ns=100 * S)
    feed(buf, 100 * S + 1)
    assert buf.assemble(100 * S + 1).ready


def test_duplicated_joint_names_are_refused():
    buf = buffer()
    with pytest.raises(JointStateError, match=r"duplicated joint names \['j1'\]"):
        buf.add_joint_state(S, ["j1", "j1", "j2"], [float("nan"), 0.5, 0.2], now_ns=S)


@pytest.mark.parametrize("value", [1e39, -1e39, 3.5e38])
def test_values_that_overflow_float32_are_refused(value):
    buf = buffer()
    with pytest.raises(JointStateError, match="float32"):
        buf.add_joint_state(S, ["j1", "j2"], [value, 0.2], now_ns=S)


def test_normalized_values_that_overflow_float32_are_refused():
    buf = buffer(proprio_normalization={"j1": [0.044, 0.0579]})
    with pytest.raises(JointStateError, match="float32"):
        buf.add_joint_state(S, ["j1", "j2"], [1e37, 0.2], now_ns=S)
