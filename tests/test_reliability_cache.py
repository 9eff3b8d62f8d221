"""Reliability of the on-disk activation cache (issue 18): indexing, integrity, dtypes, messages,
token ids, file modes, kills, concurrent writers and full disks."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import interp
import interp.activations.disk as disk_mod
import interp.files as files_mod
from interp.activations import load_cache
from interp.errors import InterpError
from interp.files import sha256_file

HOOK = "blocks.1.hook_resid_post"
N = 10
BATCH = 3


@pytest.fixture(scope="module")
def task(organism):
    return interp.tasks.induction(organism, n=N, seed=0)


def build(model, task, path, **kw):
    args = dict(names=[HOOK], batch_size=BATCH, store=path, progress=False)
    return interp.cache(model, task, **{**args, **kw})


@pytest.fixture(scope="module")
def store(organism, task, tmp_path_factory):
    """Ten examples in four shards (3, 3, 3, 1), built once for the indexing tests."""
    return build(organism, task, tmp_path_factory.mktemp("idx") / "c")


@pytest.fixture(scope="module")
def full(store):
    return store[HOOK].load()


def manifest_of(path):
    return json.loads((path / "manifest.json").read_text())


def write_manifest(path, body):
    (path / "manifest.json").write_text(json.dumps(body))


def files_of(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


# 1. Indexing a StoredActivation behaves like indexing the loaded tensor.


def test_bool_mask_selects_rows_and_numpy_ints_drop_the_axis(store, full):
    s = store[HOOK]
    mask = torch.tensor([True, False] * 5)
    assert torch.equal(s[mask], full[mask])
    assert torch.equal(s[mask.numpy()], full[mask.numpy()])
    assert torch.equal(s[[bool(b) for b in mask]], full[mask])
    assert s[np.int64(3)].shape == full[3].shape and torch.equal(s[np.int64(3)], full[3])
    assert torch.equal(s[torch.tensor(3)], full[3])
    assert torch.equal(s[2:5, -1], full[2:5, -1])
    assert torch.equal(s[..., 0], full[..., 0])
    assert s[None].shape == (1, *full.shape)
    two_d = torch.tensor([[1, 9], [4, 4]])
    assert torch.equal(s[two_d], full[two_d])


def test_negative_step_slices_follow_python_sequences(store, full):
    s, ref = store[HOOK], full.numpy()
    for sl in (slice(None, None, -1), slice(8, 1, -3), slice(-2, None, -2), slice(3, 7, -1)):
        assert np.array_equal(s[sl].numpy(), ref[sl]), sl
        assert np.array_equal(s[sl, 0].numpy(), ref[sl, 0]), sl
    with pytest.raises(ValueError):
        s[::0]


def test_out_of_range_indices_raise_index_error(store):
    s = store[HOOK]
    for idx in (10, -11, np.int64(10), torch.tensor(12), [0, 10], torch.tensor([[1], [-11]])):
        with pytest.raises(IndexError):
            s[idx]
    with pytest.raises(IndexError):
        s[torch.ones(3, dtype=torch.bool)]  # a mask of the wrong length


def test_mask_reads_only_the_shards_it_needs(store, monkeypatch):
    opened = []
    real = disk_mod.safe_open
    monkeypatch.setattr(
        disk_mod, "safe_open", lambda f, **k: opened.append(os.path.basename(f)) or real(f, **k)
    )
    fresh = load_cache(store.path)
    mask = torch.zeros(N, dtype=torch.bool)
    mask[[4, 5]] = True
    fresh[HOOK][mask]
    fresh[HOOK][torch.tensor([[7, 8], [8, 7]])]
    assert opened == ["shard-00000003.safetensors", "shard-00000006.safetensors"]


def test_uint8_indices_are_masks_and_float_tensors_are_refused_unread(store, full, monkeypatch):
    s = store[HOOK]
    rows = np.array([1, 0, 0, 1, 1, 0, 0, 0, 0, 1], dtype=np.uint8)
    assert torch.equal(s[rows], full[rows]) and s[rows].shape[0] == 4
    assert torch.equal(s[torch.from_numpy(rows)], full[torch.from_numpy(rows)])
    for zero_d in (np.array(1, dtype=np.uint8), torch.tensor(1, dtype=torch.uint8)):
        assert torch.equal(s[zero_d], full[zero_d]) and s[zero_d].shape == (1, *full.shape)
    fresh = load_cache(store.path)
    monkeypatch.setattr(disk_mod, "safe_open", lambda *a, **k: pytest.fail("a shard was read"))
    with pytest.raises(IndexError, match="long, int, byte or bool"):
        fresh[HOOK][torch.tensor(1.0)]


def test_a_read_checks_only_the_shard_and_name_it_reads(store, full, monkeypatch):
    sliced = []
    real = disk_mod.safe_open

    class Spy:
        def __init__(self, f, **k):
            self.inner, self.file = real(f, **k), os.path.basename(f)

        def __enter__(self):
            self.f = self.inner.__enter__()
            return self

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

        def get_slice(self, name):
            sliced.append((self.file, name))
            return self.f.get_slice(name)

        def __getattr__(self, attr):
            return getattr(self.f, attr)

    monkeypatch.setattr(disk_mod, "safe_open", Spy)
    fresh = load_cache(store.path)
    assert torch.equal(fresh[HOOK][4:6], full[4:6])
    assert torch.equal(fresh[HOOK][5], full[5])
    assert set(sliced) == {("shard-00000003.safetensors", HOOK)}
    sliced.clear()
    assert torch.equal(fresh[HOOK][2:8], full[2:8])
    assert {f for f, _ in sliced} == {f"shard-{i:08d}.safetensors" for i in (0, 3, 6)}


_ints = st.integers(-N - 2, N + 1)
_masks = st.lists(st.booleans(), min_size=N, max_size=N)
FIRST_AXIS = st.one_of(
    _ints,
    _ints.map(np.int64),
    _ints.map(np.int32),
    _ints.map(np.array),  # 0-d numpy array
    _ints.map(torch.tensor),  # 0-d tensor
    st.booleans(),
    st.booleans().map(torch.tensor),  # 0-d bool tensor: a new axis
    st.builds(
        slice,
        st.none() | st.integers(-N - 3, N + 3),
        st.none() | st.integers(-N - 3, N + 3),
        st.none() | st.integers(1, 4),
    ),
    st.lists(_ints, max_size=6),
    _masks,
    _masks.map(torch.tensor),
    _masks.map(np.array),
    _masks.map(lambda m: np.array(m, dtype=np.uint8)),  # a mask to torch, as a uint8 tensor
    _masks.map(lambda m: torch.tensor(m, dtype=torch.uint8)),
    st.booleans().map(lambda b: np.array(b, dtype=np.uint8)),  # 0-d uint8: a new axis
    st.booleans().map(lambda b: torch.tensor(b, dtype=torch.uint8)),
    st.floats(-N, N).map(torch.tensor),  # 0-d float tensor: refused
    st.lists(_ints, min_size=1, max_size=6).map(torch.tensor),
    st.lists(_ints, min_size=1, max_size=6).map(lambda v: torch.tensor(v, dtype=torch.int32)),
    st.lists(_ints, min_size=4, max_size=4).map(lambda v: torch.tensor(v).reshape(2, 2)),
    st.lists(_ints, max_size=5).map(lambda v: np.array(v, dtype=np.int64)),
    st.integers(0, 2**32 - 1).map(
        lambda seed: torch.from_numpy(np.random.default_rng(seed).random((N, 20)) < 0.2)
    ),
    st.just(Ellipsis),
    st.just(None),
)
REST = st.one_of(
    st.integers(-21, 20),
    st.builds(slice, st.none() | st.integers(-22, 22), st.none() | st.integers(-22, 22)),
    st.just(Ellipsis),
    st.just(None),
    st.lists(st.integers(-20, 19), min_size=1, max_size=3),
)
INDEX = st.one_of(
    FIRST_AXIS,
    st.builds(
        lambda lead, first, rest: (*([None] * lead), first, *rest),
        st.integers(0, 1),
        FIRST_AXIS,
        st.lists(REST, max_size=2),
    ),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(idx=INDEX)
def test_indexing_equals_indexing_the_loaded_tensor(store, full, idx):
    s = store[HOOK]
    try:
        want = full[idx]
    except (IndexError, ValueError, TypeError) as e:
        with pytest.raises(type(e)):
            s[idx]
        return
    got = s[idx]
    assert got.shape == want.shape and got.dtype == want.dtype
    assert torch.equal(got, want)


# 2. Integrity: every damaged or tampered store is an InterpError naming the file and the fix.


@pytest.fixture
def fresh(organism, task, tmp_path):
    build(organism, task, tmp_path / "c")
    return tmp_path / "c"


def _assert_rebuild(err, name):
    text = str(err.value)
    assert name in text, text
    assert "delete" in text and "interp.cache(" in text, text


def test_manifest_that_lost_a_shard_is_refused(fresh):
    body = manifest_of(fresh)
    del body["shards"][1]
    write_manifest(fresh, body)
    with pytest.raises(InterpError) as err:
        load_cache(fresh)
    _assert_rebuild(err, "manifest.json")


def test_shard_copied_over_another_is_caught_on_read_and_by_verify(fresh):
    shutil.copyfile(fresh / "shard-00000003.safetensors", fresh / "shard-00000006.safetensors")
    with pytest.raises(InterpError) as err:
        load_cache(fresh).verify()
    _assert_rebuild(err, "shard-00000006.safetensors")
    with pytest.raises(InterpError) as err:
        load_cache(fresh)[HOOK][7]
    _assert_rebuild(err, "shard-00000006.safetensors")


def test_flipped_bytes_are_caught_by_verify(fresh):
    path = fresh / "shard-00000003.safetensors"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    cache = load_cache(fresh)  # same size: the open stays cheap and succeeds
    with pytest.raises(InterpError) as err:
        cache.verify()
    _assert_rebuild(err, "shard-00000003.safetensors")
    assert "checksum" in str(err.value)


def test_garbled_shard_header_is_an_interp_error(fresh):
    path = fresh / "shard-00000000.safetensors"
    data = bytearray(path.read_bytes())
    data[10:20] = b"\xff" * 10
    path.write_bytes(bytes(data))
    with pytest.raises(InterpError) as err:
        load_cache(fresh)[HOOK][0]
    _assert_rebuild(err, "shard-00000000.safetensors")


def test_truncated_shard_is_caught_on_open(fresh):
    path = fresh / "shard-00000006.safetensors"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(InterpError) as err:
        load_cache(fresh)
    _assert_rebuild(err, "shard-00000006.safetensors")
    assert "bytes" in str(err.value)


def test_inflated_n_examples_is_refused(fresh):
    body = manifest_of(fresh)
    body["n_examples"] = 12
    write_manifest(fresh, body)
    with pytest.raises(InterpError) as err:
        load_cache(fresh)
    _assert_rebuild(err, "manifest.json")


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s[1].update(start=4),  # overlap / gap
        lambda s: s[0].update(start=1),  # does not start at 0
        lambda s: s.reverse(),  # out of order
        lambda s: s[1].update(stop=s[1]["start"]),  # empty shard
    ],
)
def test_shards_must_be_contiguous(fresh, edit):
    body = manifest_of(fresh)
    edit(body["shards"])
    write_manifest(fresh, body)
    with pytest.raises(InterpError) as err:
        load_cache(fresh)
    _assert_rebuild(err, "manifest.json")


def test_shard_files_outside_the_store_are_refused(fresh, tmp_path):
    (tmp_path / "outside").mkdir()
    shutil.copyfile(fresh / "shard-00000003.safetensors", tmp_path / "outside" / "x.safetensors")
    for bad in ("../outside/x.safetensors", str(tmp_path / "outside" / "x.safetensors"), "x.bin"):
        body = manifest_of(fresh)
        body["shards"][1]["file"] = bad
        write_manifest(fresh, body)
        with pytest.raises(InterpError) as err:
            load_cache(fresh)
        assert bad in str(err.value)


def test_dtype_names_come_from_an_allow_list(fresh):
    body = manifest_of(fresh)
    body["dtypes"][HOOK] = "__class__"
    write_manifest(fresh, body)
    with pytest.raises(InterpError, match="__class__"):
        load_cache(fresh)


def test_row_count_must_match_the_manifest(fresh):
    # A consistent forgery: shard 3 rewritten with two rows, its size and checksum updated.
    path = fresh / "shard-00000003.safetensors"
    tensors = {k: v[:2] for k, v in load_file(path).items()}
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    save_file(tensors, path, metadata=meta)
    body = manifest_of(fresh)
    body["shards"][1].update(bytes=path.stat().st_size, sha256=sha256_file(path))
    write_manifest(fresh, body)
    with pytest.raises(InterpError) as err:
        load_cache(fresh)[HOOK][4]
    _assert_rebuild(err, "shard-00000003.safetensors")
    assert "[2] rows" in str(err.value)


def test_damaged_manifest_is_an_interp_error(fresh):
    text = (fresh / "manifest.json").read_text()
    (fresh / "manifest.json").write_text(text[: len(text) // 2])
    with pytest.raises(InterpError) as err:
        load_cache(fresh)
    _assert_rebuild(err, "manifest.json")
    assert "damaged" in str(err.value)


def test_older_format_asks_for_a_rebuild(fresh):
    body = manifest_of(fresh)
    body["format"] = "interp-cache/1"
    write_manifest(fresh, body)
    with pytest.raises(InterpError, match="older") as err:
        load_cache(fresh)
    _assert_rebuild(err, str(fresh))


def test_manifest_records_sizes_and_checksums(fresh):
    for shard in manifest_of(fresh)["shards"]:
        path = fresh / shard["file"]
        assert shard["bytes"] == path.stat().st_size
        assert shard["sha256"] == sha256_file(path)
    load_cache(fresh).verify()
    path = fresh / "shard-00000009.safetensors"
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    with pytest.raises(InterpError, match="checksum"):
        load_cache(fresh, verify=True)


# 3. Storage dtypes: floating dtypes and their names only, refused before anything runs.


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names fds through /proc")
def test_shards_are_fsynced_once_and_not_read_back(organism, task, tmp_path, monkeypatch):
    synced, reads = [], []
    real_fsync, real_sha = files_mod.os.fsync, files_mod.sha256_file

    def fsync(fd):
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(files_mod.os, "fsync", fsync)
    monkeypatch.setattr(files_mod, "sha256_file", lambda p, **k: reads.append(p) or real_sha(p))
    path = build(organism, task, tmp_path / "c").path
    for i in (0, 3, 6, 9):  # the temporary file of each shard is fsynced before its rename
        assert sum(n.startswith(f".shard-{i:08d}.safetensors.") for n in synced) == 1, synced
    assert reads == []  # each checksum is of the bytes written, not of a re-read file
    for entry in manifest_of(path)["shards"]:
        assert real_sha(path / entry["file"]) == entry["sha256"]
        assert (path / entry["file"]).stat().st_size == entry["bytes"]
    synced.clear()
    files_mod.atomic_save_tensors(tmp_path / "t.safetensors", {"x": torch.ones(2)}, {"k": "v"})
    assert [n.startswith(".t.safetensors.") for n in synced] == [True]
    assert torch.equal(load_file(tmp_path / "t.safetensors")["x"], torch.ones(2))


def test_numpy_positions_are_stored_as_ints(organism, task, tmp_path):
    for k, pos in enumerate(([np.int64(1), np.int32(-1)], np.int64(2), torch.tensor(0))):
        want = build(organism, task, None, positions=pos)[HOOK]
        got = build(organism, task, tmp_path / f"c{k}", positions=pos)
        assert torch.equal(got[HOOK].load(), want)
        stored = manifest_of(got.path)["positions"]
        assert stored == ([1, -1] if k == 0 else int(pos))
        again = build(organism, task, got.path, positions=stored)  # the same cache
        assert torch.equal(again[HOOK].load(), want)


def test_non_float_dtypes_are_refused_before_any_work(organism, task, tmp_path, monkeypatch):
    def no_forward(*a, **k):
        raise AssertionError("a forward pass ran before dtype was checked")

    monkeypatch.setattr(organism.tl, "forward", no_forward)
    for bad in (torch.int8, torch.int64, torch.bool, "int8", "float8", 3):
        with pytest.raises(InterpError, match="float16") as err:
            build(organism, task, tmp_path / "c", dtype=bad)
        assert "dtype" in str(err.value)
        assert not (tmp_path / "c").exists()
        with pytest.raises(InterpError, match="bfloat16"):
            build(organism, task, None, dtype=bad)


def test_dtype_names_are_accepted(organism, task, tmp_path):
    ref = build(organism, task, tmp_path / "ref", dtype=torch.float16)[HOOK].load()
    for i, name in enumerate(("float16", "torch.float16", "fp16", "half")):
        got = build(organism, task, tmp_path / f"c{i}", dtype=name)[HOOK]
        assert got.dtype == torch.float16 and torch.equal(got.load(), ref)
    mem = build(organism, task, None, dtype="bfloat16")
    assert mem[HOOK].dtype == torch.bfloat16
    # The same dtype spelled differently resumes the same store.
    assert build(organism, task, tmp_path / "c0", dtype=torch.float16)[HOOK].dtype == torch.float16


# 4. Leftovers are cleaned; a mismatching store names the setting that differs.


def test_leftover_temp_files_alone_are_not_foreign_content(organism, task, tmp_path):
    path = tmp_path / "c"
    path.mkdir()
    (path / ".manifest.json.k1l2m3.tmp").write_text('{"format": "interp-ca')
    (path / ".shard-00000000.safetensors.abcd.tmp").write_bytes(b"\0" * 10)
    build(organism, task, path)
    assert sorted(os.listdir(path)) == [
        "manifest.json",
        *(f"shard-{i:08d}.safetensors" for i in (0, 3, 6, 9)),
    ]


def test_manifest_plus_leftovers_resumes(organism, task, tmp_path, monkeypatch):
    path = tmp_path / "c"
    _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        build(organism, task, path)
    monkeypatch.undo()
    (path / ".manifest.json.zz.tmp").write_text("{")
    (path / ".shard-00000006.safetensors.zz.tmp").write_bytes(b"\0")
    build(organism, task, path)
    assert not list(path.glob(".*"))
    assert torch.equal(load_cache(path)[HOOK].load(), build(organism, task, None)[HOOK])


def test_rerun_on_a_finished_read_only_store_takes_no_lock_and_writes_nothing(
    organism, task, fresh, monkeypatch
):
    import interp.activations.lock as lock_mod

    before = files_of(fresh)
    mtime = (fresh / "manifest.json").stat().st_mtime_ns
    want = load_cache(fresh)[HOOK].load()

    def read_only(self):  # what locking a store in a directory one may not write gives
        raise PermissionError(13, "Permission denied", str(self.file))

    monkeypatch.setattr(lock_mod.StoreLock, "acquire", read_only)
    monkeypatch.setattr(files_mod.os, "replace", lambda *a: pytest.fail("a write"))
    again = build(organism, task, fresh)
    assert torch.equal(again[HOOK].load(), want)
    assert (fresh / "manifest.json").stat().st_mtime_ns == mtime
    assert files_of(fresh) == before and not (fresh / ".lock").exists()


@pytest.mark.parametrize(
    "change, expect",
    [
        (dict(batch_size=4), ["batch_size: stored 3, given 4", "batch_size=3"]),
        (dict(names=["blocks.0.hook_resid_post"]), ["names: stored", "blocks.0.hook_resid_post"]),
        (dict(positions="last"), ["positions: stored None, given 'last'", "positions=None"]),
        (dict(dtype=torch.float16), ["dtype: stored None, given 'float16'", "dtype=None"]),
        (dict(which="corrupt"), ["which: stored 'clean', given 'corrupt'", "which='clean'"]),
    ],
)
def test_changed_setting_is_named(organism, task, fresh, change, expect):
    with pytest.raises(InterpError, match="different activation cache") as err:
        build(organism, task, fresh, **change)
    text = str(err.value)
    for piece in expect:
        assert piece in text, text
    assert "new directory" in text and "delete" in text


def test_changed_inputs_and_model_are_named(organism, gpt2_random, task, fresh):
    with pytest.raises(InterpError, match="n_examples: stored 10, given 8"):
        build(organism, task[:8], fresh)
    other = interp.tasks.induction(organism, n=N, seed=1)
    with pytest.raises(InterpError) as err:
        build(organism, other, fresh)
    assert "inputs" in str(err.value) and "token ids" in str(err.value)
    with pytest.raises(InterpError, match="model: stored 'organism', given 'gpt2-random'"):
        build(gpt2_random, task, fresh)


# 5. Token ids outside the vocabulary are refused before any forward pass.


def test_out_of_vocabulary_token_ids_are_refused(organism, monkeypatch, tmp_path):
    def no_forward(*a, **k):
        raise AssertionError("a forward pass ran before the token ids were checked")

    monkeypatch.setattr(organism.tl, "forward", no_forward)
    for bad in (-5, organism.d_vocab, organism.d_vocab + 7):
        with pytest.raises(InterpError, match=str(bad)):
            interp.cache(organism, torch.tensor([[1, bad]]), names=[HOOK], progress=False)
        with pytest.raises(InterpError, match=str(bad)):
            interp.cache(
                organism, torch.tensor([[1, 2], [bad, 1]]), store=tmp_path / "c", progress=False
            )
        assert not (tmp_path / "c").exists()


# 6. File modes and unreadable files.


def test_finished_store_files_have_the_normal_mode(organism, task, tmp_path):
    old = os.umask(0o022)
    try:
        build(organism, task, tmp_path / "c")
    finally:
        os.umask(old)
    for p in (tmp_path / "c").iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


def _make_unreadable(path, monkeypatch):
    """chmod 000 where that denies reading; as root (who reads anything) fake the denial."""
    if os.geteuid() != 0:
        path.chmod(0)
        return
    real_access, real_open = os.access, disk_mod.safe_open

    def access(p, mode, *a, **k):
        return False if Path(p) == path else real_access(p, mode, *a, **k)

    def opener(p, **k):
        if Path(p) == path:  # what safetensors raises for a file it may not read
            raise FileNotFoundError(f"No such file or directory: {str(p)!r}")
        return real_open(p, **k)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(disk_mod, "safe_open", opener)
    real_read_text = Path.read_text
    monkeypatch.setattr(
        Path,
        "read_text",
        lambda self, *a, **k: (
            (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
            if self == path
            else real_read_text(self, *a, **k)
        ),
    )


def test_unreadable_shard_says_permission_denied(fresh, monkeypatch):
    shard = fresh / "shard-00000003.safetensors"
    _make_unreadable(shard, monkeypatch)
    with pytest.raises(InterpError, match="permission denied") as err:
        load_cache(fresh)[HOOK][4]
    assert str(shard) in str(err.value)


def test_unreadable_manifest_says_permission_denied(fresh, monkeypatch):
    manifest = fresh / "manifest.json"
    _make_unreadable(manifest, monkeypatch)
    with pytest.raises(InterpError, match="permission denied") as err:
        load_cache(fresh)
    assert str(manifest) in str(err.value)


# 7. Kills, concurrent writers, full disks.


def _interrupt_after(monkeypatch, k, exc=None):
    """Make the shard writer fail (KeyboardInterrupt by default) once k shards are written.

    KeyboardInterrupt comes while the shard is serialised; `exc` comes once its temporary file
    is written (at its fsync), so the writer must remove a partly finished file."""
    real = files_mod.save
    count = {"n": 0}

    def fail_once(fd):
        monkeypatch.setattr(files_mod.os, "fsync", real_fsync)
        raise exc

    real_fsync = files_mod.os.fsync

    def save(tensors, metadata=None):
        if count["n"] >= k:
            if exc is None:
                raise KeyboardInterrupt
            monkeypatch.setattr(files_mod.os, "fsync", fail_once)  # this shard's file
        count["n"] += 1
        return real(tensors, metadata=metadata)

    monkeypatch.setattr(files_mod, "save", save)


def test_interrupted_run_resumes_byte_identical(organism, task, tmp_path, monkeypatch):
    ref = build(organism, task, tmp_path / "ref").path
    path = tmp_path / "c"
    _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        build(organism, task, path)
    monkeypatch.undo()
    assert not manifest_of(path)["complete"]
    assert (path / "shards.log").read_text().count("\n") == 2
    with pytest.raises(InterpError, match="unfinished"):
        load_cache(path)
    build(organism, task, path)
    assert files_of(path) == files_of(ref)


def test_full_disk_propagates_and_resumes(organism, task, tmp_path, monkeypatch):
    path = tmp_path / "c"
    _interrupt_after(monkeypatch, 1, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(OSError) as err:
        build(organism, task, path)
    assert err.value.errno == errno.ENOSPC
    assert "free disk space and run the same interp.cache(...) call again" in "".join(
        getattr(err.value, "__notes__", [])
    )
    monkeypatch.undo()
    assert sorted(p.name for p in path.iterdir()) == [
        "manifest.json",
        "shard-00000000.safetensors",
        "shards.log",
    ]
    build(organism, task, path)
    assert files_of(path) == files_of(build(organism, task, tmp_path / "ref").path)


def test_concurrent_writer_gets_a_clear_error(organism, task, tmp_path, monkeypatch):
    path = tmp_path / "c"
    first_shard, go = threading.Event(), threading.Event()
    real = files_mod.save

    def save(tensors, metadata=None):
        out = real(tensors, metadata=metadata)
        first_shard.set()
        assert go.wait(60)
        return out

    monkeypatch.setattr(files_mod, "save", save)
    result = {}
    writer = threading.Thread(target=lambda: result.update(c=build(organism, task, path)))
    writer.start()
    assert first_shard.wait(60)
    try:
        with pytest.raises(InterpError, match="another") as err:
            build(organism, task, path)
        assert str(path) in str(err.value)
    finally:
        go.set()
        writer.join(60)
    monkeypatch.undo()
    assert result["c"][HOOK].load().shape[0] == N
    result["c"].verify()
    assert files_of(path) == files_of(build(organism, task, tmp_path / "ref").path)


LOCK_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from interp.activations.lock import StoreLock
    path = Path({path!r})
    path.mkdir(parents=True, exist_ok=True)
    lock = StoreLock(path)
    lock.acquire()
    print("locked", flush=True)
    time.sleep(120)
    """
)


def test_lock_of_a_killed_writer_is_released(organism, task, tmp_path):
    path = tmp_path / "c"
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER.format(path=str(path))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout.readline().decode().strip() == "locked", proc.stderr.read()
        with pytest.raises(InterpError, match="another"):
            build(organism, task, path)
    finally:
        proc.kill()
        proc.wait()
    time.sleep(0.1)
    build(organism, task, path).verify()
