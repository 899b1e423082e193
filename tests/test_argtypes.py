"""The command line's argument types: what they accept and the message for what they refuse."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ivvae.cli.argtypes import input_video, nonnegative_int, part, positive_float, positive_int, size
from ivvae.io import sample_video_path


@pytest.mark.parametrize(("parse", "text", "value"), [
    (positive_int, "3", 3), (nonnegative_int, "0", 0), (positive_float, "29.97", 29.97), (part, "1/4", (1, 4)),
    (size, "256", 256), (size, "320x240", (320, 240)), (size, "320X240", (320, 240)),
])
def test_valid_values(parse, text, value):
    assert parse(text) == value


@pytest.mark.parametrize(("parse", "text", "message"), [
    (positive_int, "0", "must be >= 1"), (positive_int, "1.5", "expected an integer"),
    (nonnegative_int, "-1", "must be >= 0"), (nonnegative_int, "x", "expected an integer"),
    (positive_float, "abc", "expected a number"), (positive_float, "0", "finite number > 0"),
    (positive_float, "inf", "finite number > 0"), (positive_float, "nan", "finite number > 0"),
    (part, "4/4", "0 <= I < K"), (part, "1", "expected I/K"), (part, "a/b", "expected I/K"),
    (input_video, "sample:nope", "unknown sample video 'nope'; available: bigbuckbunny, bikes, carphone"),
    (size, "0", "positive size"), (size, "10x0", "positive size"), (size, "10x10x10", "positive size"), (size, "big", "positive size"),
])
def test_invalid_values_name_what_is_expected(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse(text)


def test_input_video_names_sample_clips_unless_a_file_has_that_name(tmp_path, monkeypatch):
    assert input_video("sample:carphone") == Path(sample_video_path("carphone"))
    assert input_video("clips/a.mp4") == Path("clips/a.mp4")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sample:carphone").write_bytes(b"")
    assert input_video("sample:carphone") == Path("sample:carphone")
