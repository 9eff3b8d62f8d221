"""Saved results on shared disks: readable by the team, replaced file by file without touching a
user's other files, never loadable half old and half new, and every read problem an InterpError
that names the file and the fix."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import interp
from interp.errors import InterpError
from interp.results import Result
from interp.results.io import tensors_equal


def _res(scale: float = 1.0, n: int = 3) -> Result:
    return Result(
        values=torch.arange(float(n)) * scale,
        dims=("layer",),
        extras={"raw": torch.ones(2, n) * scale},
        meta={"scale": scale},
        title=f"x{scale}",
    )


def _tensors(out: Path) -> Path:
    """The tensors file the saved header names."""
    return out / json.loads((out / "result.json").read_text())["tensors"]


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


# ----------------------------------------------------------------- file modes
def test_saved_result_and_report_get_the_normal_mode(tmp_path, umask):
    out = Path(_res().save(tmp_path / "team" / "r"))
    assert _mode(out) == 0o755
    assert _mode(out / "result.json") == 0o644
    assert _mode(_tensors(out)) == 0o644  # safetensors alone makes it 0600
    _res(2.0).save(out)  # replacing keeps the mode
    assert _mode(_tensors(out)) == 0o644 and _mode(out / "result.json") == 0o644
    page = interp.report([_res()], tmp_path / "team" / "report.html")
    assert _mode(page) == 0o644


# ----------------------------------------------------------------- read problems
def test_unreadable_files_say_permission_denied(tmp_path, monkeypatch):
    out = Path(_res().save(tmp_path / "r"))
    real_access = os.access
    for name in ("result.json", _tensors(out).name):
        # As root chmod does not block reads: deny through os.access as the kernel would.
        monkeypatch.setattr(
            os, "access", lambda p, m, name=name: not str(p).endswith(name) and real_access(p, m)
        )
        with pytest.raises(InterpError, match=re.escape(str(out / name)) + ".*permission denied"):
            interp.load_result(out)
    monkeypatch.setattr(os, "access", real_access)

    real_read = Path.read_text

    def refuse(self: Path, *a: object, **k: object) -> str:
        if self.name == "result.json":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(InterpError, match=r"result\.json.*permission denied"):
        interp.load_result(out)


def test_damaged_or_missing_files_name_the_file_and_the_fix(tmp_path):
    out = Path(_res().save(tmp_path / "r"))
    header = (out / "result.json").read_text()
    (out / "result.json").write_text(header[: len(header) // 2])
    with pytest.raises(InterpError, match=r"result\.json.*damaged.*save"):
        interp.load_result(out)
    (out / "result.json").write_text("[1, 2]")
    with pytest.raises(InterpError, match=r"result\.json.*damaged.*save"):
        interp.load_result(out)
    (out / "result.json").write_text(header)
    tensors = _tensors(out)
    blob = tensors.read_bytes()
    tensors.write_bytes(blob[:-8])
    with pytest.raises(InterpError, match=re.escape(tensors.name) + ".*damaged.*save"):
        interp.load_result(out)
    tensors.unlink()
    with pytest.raises(InterpError, match=re.escape(tensors.name) + ".*missing.*save"):
        interp.load_result(out)
    for bad in ("../elsewhere.safetensors", 3):  # a hand-edited name never leaves the directory
        (out / "result.json").write_text(json.dumps({**json.loads(header), "tensors": bad}))
        with pytest.raises(InterpError, match=r"result\.json.*damaged.*tensors file name"):
            interp.load_result(out)
    with pytest.raises(InterpError, match=r"no result\.json"):
        interp.load_result(tmp_path)
    with pytest.raises(InterpError, match="does not exist"):
        interp.load_result(tmp_path / "nothing")


# ----------------------------------------------------------------- replacing a saved result
def test_saving_again_keeps_other_files(tmp_path):
    out = Path(_res().save(tmp_path / "r"))
    (out / "notes.txt").write_text("keep me")
    (out / "plots").mkdir()
    _res(2.0).save(out)
    assert (out / "notes.txt").read_text() == "keep me" and (out / "plots").is_dir()
    back = interp.load_result(out)
    assert back.meta["scale"] == 2.0 and tensors_equal(back.values, _res(2.0).values)
    # The old tensors file is gone: nothing but the new result and the user's files.
    assert sorted(os.listdir(out)) == ["notes.txt", "plots", "result.json", _tensors(out).name]


@pytest.mark.parametrize("fail_at", [1, 2])
@pytest.mark.parametrize("error", [OSError, KeyboardInterrupt])
def test_interrupted_save_is_never_a_mixed_result(tmp_path, monkeypatch, fail_at, error):
    """The process dies at the tensors rename or at the header's (the commit point): the old
    result loads whole and unchanged; no temporary or orphan tensors file stays behind."""
    out = Path(_res().save(tmp_path / "r"))
    (out / "notes.txt").write_text("keep me")
    before = sorted(os.listdir(out))
    real_replace = os.replace
    calls = []

    def dying(src: str, dst: str) -> None:
        calls.append(dst)
        if len(calls) == fail_at:
            raise error()
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying)
    with pytest.raises(error):
        _res(2.0).save(out)  # same shapes: only the save id can tell old from new
    monkeypatch.setattr(os, "replace", real_replace)
    assert str(calls[-1]).endswith("result.json" if fail_at == 2 else ".safetensors")
    assert sorted(os.listdir(out)) == before
    back = interp.load_result(out)  # only the old result, whole
    assert back.meta["scale"] == 1.0 and back.title == "x1.0"
    assert tensors_equal(back.values, _res().values)
    assert tensors_equal(back.extras["raw"], _res().extras["raw"])
    _res(3.0).save(out)  # saving again works
    assert interp.load_result(out).meta["scale"] == 3.0
    assert sorted(os.listdir(out)) == ["notes.txt", "result.json", _tensors(out).name]


def test_results_saved_with_the_old_layout_load_and_are_replaced_cleanly(tmp_path):
    """Before per-save names: tensors.safetensors, and no "tensors" key in result.json."""
    out = Path(_res().save(tmp_path / "r"))
    header = json.loads((out / "result.json").read_text())
    _tensors(out).rename(out / "tensors.safetensors")
    del header["tensors"]
    (out / "result.json").write_text(json.dumps(header))
    (out / "notes.txt").write_text("keep me")
    back = interp.load_result(out)
    assert back.meta["scale"] == 1.0 and tensors_equal(back.extras["raw"], _res().extras["raw"])
    _res(2.0).save(out)  # the legacy tensors file goes once the new header is in place
    assert sorted(os.listdir(out)) == ["notes.txt", "result.json", _tensors(out).name]
    assert interp.load_result(out).meta["scale"] == 2.0


def test_failed_first_save_leaves_no_directory(tmp_path, monkeypatch):
    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        _res().save(tmp_path / "new")
    assert os.listdir(tmp_path) == []


def test_a_directory_that_is_not_a_result_is_refused_before_any_write(tmp_path):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "data.csv").write_text("1,2")
    with pytest.raises(InterpError, match=r"mine.*not a saved result.*another directory"):
        _res().save(other)
    assert os.listdir(other) == ["data.csv"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(InterpError, match="not a directory"):
        _res().save(tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()
    _res().save(empty)  # an empty directory is fine
    assert interp.load_result(empty).meta["scale"] == 1.0


def test_saved_result_still_round_trips_mixed_fields(tmp_path):
    res = Result(
        values=torch.tensor([[1.0, float("nan")]]),
        dims=("layer", "pos"),
        ci_low=torch.zeros(1, 2),
        ci_high=torch.ones(1, 2),
        meta={"t": (1, 2), "inf": float("inf")},
    )
    back = interp.load_result(res.save(tmp_path / "r"))
    assert tensors_equal(back.values, res.values) and back.meta["t"] == (1, 2)
    assert back.meta["inf"] == float("inf") and tensors_equal(back.ci_high, res.ci_high)
    # Results saved before save ids existed still load.
    header = json.loads((tmp_path / "r" / "result.json").read_text())
    del header["save_id"]
    (tmp_path / "r" / "result.json").write_text(json.dumps(header))
    assert tensors_equal(interp.load_result(tmp_path / "r").values, res.values)
