"""`capa camera join` / `segments`: one file from a recording's segments, outside the bundle."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from capa import BundleError
from capa_camera.adapter import OpenCvCamera
from capa_camera.cli import camera
from capa_camera.join import join_segments

from .conftest import Collector, decode_segments, decode_video, record


def recorded(tmp_path, **params):
    bundle = tmp_path / "bundle"
    cam = OpenCvCamera(
        "cam", OpenCvCamera.Params(source="sim://", width=160, height=120, fps=20, **params)
    )
    record(cam, Collector(bundle), 1.3)
    return bundle


@pytest.mark.parametrize("codec", ["MJPG", "XVID"])
def test_join_writes_every_frame_in_order(tmp_path, codec):
    bundle = recorded(tmp_path, codec=codec, segment_s=0.4)
    files, numbers = decode_segments(bundle)
    assert len(files) >= 3
    out = tmp_path / "all.avi"
    assert join_segments(bundle, "cam", out) == len(numbers)
    assert decode_video(out) == numbers == list(range(len(numbers)))


def test_mjpg_segments_are_copied_not_reencoded(tmp_path):
    from capa_camera.avi import read_jpeg_chunks

    bundle = recorded(tmp_path)
    out = tmp_path / "all.avi"
    join_segments(bundle, "cam", out)
    copied = [j for p in sorted((bundle / "video" / "cam").iterdir()) for j in read_jpeg_chunks(p)]
    assert read_jpeg_chunks(out) == copied


def test_cli_lists_segments_and_refuses_to_write_into_the_bundle(tmp_path):
    bundle = recorded(tmp_path)
    runner = CliRunner()
    listed = runner.invoke(camera, ["segments", str(bundle)])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0] == "ffconcat version 1.0"
    assert lines[1] == f"file '{(bundle / 'video' / 'cam' / '000000.avi').resolve()}'"
    inside = runner.invoke(camera, ["join", str(bundle), "-o", str(bundle / "x.avi")])
    assert inside.exit_code == 2
    assert not (bundle / "x.avi").exists()
    joined = runner.invoke(camera, ["join", str(bundle), "-o", str(tmp_path / "o.avi")])
    assert joined.exit_code == 0, joined.output
    assert "frames" in joined.output
    with pytest.raises(BundleError, match="no video segments of camera 'x'"):
        join_segments(bundle, "x", tmp_path / "y.avi")
