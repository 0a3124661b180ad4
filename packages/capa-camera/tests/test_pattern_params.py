"""The sim:// test pattern survives compression; params and resource ids."""

from __future__ import annotations

import cv2
import pytest
from pydantic import ValidationError

from capa_camera.adapter import OpenCvCamera
from capa_camera.params import CameraParams, source_kind
from capa_camera.pattern import decode_frame_number, draw_frame


@pytest.mark.parametrize("number", [0, 1, 2, 255, 256, 4097, 40_000, 65_535])
def test_frame_number_survives_jpeg(number):
    frame = draw_frame(number, 160, 120, number / 10, 40.0)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 50])
    assert ok
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert decode_frame_number(decoded) == number


def test_the_bar_moves():
    a = draw_frame(1, 160, 120, 0.0, 40.0)
    b = draw_frame(1, 160, 120, 1.0, 40.0)
    assert (a != b).any()


@pytest.mark.parametrize(
    ("source", "kind", "resource"),
    [
        (0, "device", "camera:0"),
        ("2", "device", "camera:2"),
        ("sim://?speed_px_s=10", "sim", "camera:sim://?speed_px_s=10"),
        ("http://10.0.0.5/video.mjpg", "network", "camera:http://10.0.0.5/video.mjpg"),
        ("rtsp://cam/stream1", "network", "camera:rtsp://cam/stream1"),
        ("/data/clip.avi", "file", "camera:/data/clip.avi"),
    ],
)
def test_source_kinds_and_resource_ids(source, kind, resource):
    p = CameraParams(source=source)
    assert source_kind(source) == kind
    assert p.kind == kind
    assert OpenCvCamera.resource_id(p) == resource
    assert OpenCvCamera.fields(p) == ()


def test_resource_override_and_bad_params():
    assert OpenCvCamera.resource_id(CameraParams(source="sim://", resource="top")) == "camera:top"
    with pytest.raises(ValidationError, match="four-character"):
        CameraParams(source="sim://", codec="MJPEG")
    with pytest.raises(ValidationError, match="unknown sim:// option 'colour'"):
        CameraParams(source="sim://?colour=red")
    with pytest.raises(ValidationError, match="container"):
        CameraParams(source="sim://", container="mov")


def test_v4l2_discovery_reads_sysfs_names(tmp_path):
    from capa_camera.discovery import discover_v4l2

    for index, name in [(2, "USB Cam"), (0, "Integrated Camera"), (10, "Capture")]:
        (tmp_path / f"video{index}").mkdir()
        (tmp_path / f"video{index}" / "name").write_text(name + "\n")
    (tmp_path / "v4l-subdev0").mkdir()
    found = discover_v4l2("camera.opencv", tmp_path)
    assert [(d.resource_id, d.description, dict(d.params)) for d in found] == [
        ("camera:0", "Integrated Camera (/dev/video0)", {"source": 0}),
        ("camera:2", "USB Cam (/dev/video2)", {"source": 2}),
        ("camera:10", "Capture (/dev/video10)", {"source": 10}),
    ]
    assert discover_v4l2("camera.opencv", tmp_path / "missing") == []
