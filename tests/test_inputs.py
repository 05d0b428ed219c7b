"""One listing and one naming rule for every entry point (sanyu.inputs, sanyu.output.naming):
what `sanyu transcribe`, `sanyu batch` and `POST /v1/jobs` call their inputs. No models."""

from __future__ import annotations

from pathlib import Path

import pytest

from sanyu.inputs import common_root, list_inputs
from sanyu.output.naming import file_stem, output_stem


def _touch(root: Path, *names: str) -> list[Path]:
    paths = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        paths.append(path)
    return paths


def test_same_file_names_in_different_folders_never_collide(tmp_path, monkeypatch):
    _touch(tmp_path, "x/a.wav", "y/a.wav", "a-2.wav")
    monkeypatch.chdir(tmp_path)
    items = list_inputs(["x/a.wav", "y/a.wav", "a-2.wav"])
    assert len({item.stem for item in items}) == 3
    assert [item.stem.rsplit("-", 1)[0] for item in items] == ["x__a", "y__a", "a-2"]
    # The names depend on where the inputs lie relative to each other, not on the cwd.
    monkeypatch.chdir("/")
    again = list_inputs([str(tmp_path / "x/a.wav"), str(tmp_path / "y/a.wav"), str(tmp_path / "a-2.wav")])
    assert [i.stem for i in again] == [i.stem for i in items]


def test_a_lone_file_is_named_as_an_upload_of_the_same_name(tmp_path):
    [path] = _touch(tmp_path, "deep/folder/Meeting 1.m4a")
    [item] = list_inputs(str(path))
    assert item.stem == file_stem("Meeting 1.m4a") == file_stem(r"C:\uploads\Meeting 1.m4a")
    assert item.stem == output_stem(path, path.parent)


def test_a_job_uri_under_the_input_root_is_named_as_the_folder_listing_names_it(tmp_path):
    from sanyu.serve.jobs import resolve_input

    root = tmp_path / "root"
    _touch(root, "2024/a.wav", "2025/a.wav", "b.flac")
    listed = {item.uri: item.stem for item in list_inputs(str(root))}
    for uri, stem in listed.items():
        assert resolve_input(uri, (str(root),)).stem == stem
    assert resolve_input("s3://bucket/in/2024/a.wav", ("s3://bucket/in",)).stem == output_stem(
        "s3://bucket/in/2024/a.wav", "s3://bucket/in")


def test_folders_and_files_given_together_share_one_root(tmp_path):
    _touch(tmp_path, "in/a.wav", "in/sub/b.wav", "other/a.wav")
    items = list_inputs([str(tmp_path / "in"), str(tmp_path / "other" / "a.wav"), str(tmp_path / "in" / "a.wav")])
    assert [Path(i.uri).relative_to(tmp_path).as_posix() for i in items] == ["in/a.wav", "in/sub/b.wav", "other/a.wav"]
    assert [i.stem.rsplit("-", 1)[0] for i in items] == ["in__a", "in__sub__b", "other__a"]  # in/a.wav once


def test_common_root():
    assert common_root(["/data/a", "/data/b/c"]) == "/data"
    assert common_root(["s3://bucket/in/x", "s3://bucket/in/y"]) == "s3://bucket/in"
    assert common_root(["s3://one/x", "s3://two/x"]) is None
    assert common_root(["/data", "s3://bucket/in"]) is None
    assert common_root(["s3://bucket/in", "gs://bucket/in"]) is None


def test_file_urls_are_local_paths(tmp_path):
    [path] = _touch(tmp_path, "a.wav")
    assert list_inputs(f"file://{path}") == list_inputs(str(path))


def test_an_input_that_names_nothing_is_an_error_naming_it(tmp_path):
    _touch(tmp_path, "a.wav")
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        list_inputs([str(tmp_path / "a.wav"), str(tmp_path / "missing.wav")])
