"""Declared result fields: tables save as tables, old extras/meta keys still read (deprecated),
and results saved before a type declared its fields load into those fields."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import torch
from torch import Tensor

from interp.results.base import Result
from interp.results.io import load_result, save_result, tensors_equal


@dataclass(kw_only=True, repr=False)
class Declared(Result):
    kind = "test_declared"
    legacy_names: ClassVar[dict[str, str]] = {"old_comps": "comps", "meta:listing": "n_tops"}
    legacy_always: ClassVar[tuple[str, ...]] = ("note",)
    note: str | None = None
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    comps: Tensor | None = None
    tops: list[str] = field(default_factory=list)

    @property
    def n_tops(self) -> int:
        return len(self.tops)


def _table() -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "a": [1.0, float("nan"), -0.0, 1e-300],
            "b": ["x", "y", "<z>", "é"],
            "c": np.array([1, 2, 3, -4], dtype=np.int32),
            "d": [True, False, True, False],
            "e": np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32),
        }
    )
    df.index = [5, 6, 7, 9]
    return df


def _result() -> Declared:
    return Declared(
        values=torch.arange(3.0),
        dims=("layer",),
        table=_table(),
        tables={"one": _table().head(2), "two": _table().tail(1)},
        comps=torch.randn(4, 2, generator=torch.Generator().manual_seed(0)),
        tops=["L0H1"],
    )


def test_tables_round_trip_exactly(tmp_path):
    res = _result()
    back = load_result(save_result(res, tmp_path / "r"))
    assert isinstance(back, Declared)
    pd.testing.assert_frame_equal(back.table, res.table, check_exact=True)
    assert back.table.dtypes.to_dict() == res.table.dtypes.to_dict()
    assert np.signbit(back.table["a"].to_numpy()[2])  # -0.0 stays -0.0
    assert list(back.tables) == ["one", "two"]
    for k in res.tables:
        pd.testing.assert_frame_equal(back.tables[k], res.tables[k], check_exact=True)
    assert tensors_equal(back.comps, res.comps)
    assert back.tops == ["L0H1"]


def test_old_keys_read_the_declared_field_with_a_warning():
    res = _result()
    with pytest.warns(DeprecationWarning, match=r'extras\["comps"\].*\.comps'):
        assert res.extras["comps"] is res.comps
    with pytest.warns(DeprecationWarning, match=r'meta\["tops"\]'):
        assert res.meta["tops"] == ["L0H1"]
    with pytest.warns(DeprecationWarning, match=r"old_comps"):
        assert res.extras["old_comps"] is res.comps
    with pytest.raises(KeyError):
        res.extras["nothing"]
    with pytest.warns(DeprecationWarning):
        assert "tops" in res.meta and res.meta.get("tops") == ["L0H1"]
    with pytest.warns(DeprecationWarning):
        assert "comps" not in Declared(values=torch.zeros(1), dims=("layer",)).extras
    assert "nothing" not in res.meta and res.meta.get("nothing", 3) == 3
    with pytest.warns(DeprecationWarning, match=r"\.n_tops"):
        assert res.meta["n_tops"] == 1  # a key that became a derived property
    assert "comps" not in dict(res.extras)  # the field is not duplicated into extras


@pytest.mark.parametrize(
    "clone",
    [copy.copy, copy.deepcopy, lambda r: pickle.loads(pickle.dumps(r)), dataclasses.replace],
)
def test_copies_keep_the_old_keys_working(clone):
    res = clone(_result())
    with pytest.warns(DeprecationWarning):
        assert res.extras["comps"] is res.comps


def test_results_saved_before_declared_fields_load_into_them(tmp_path):
    comps = torch.randn(4, 2)
    old = Result(
        values=torch.arange(3.0),
        dims=("layer",),
        extras={"old_comps": comps, "kept": torch.ones(1)},
        meta={"tops": ["L2H3"], "model": "m"},
    )
    save_result(old, tmp_path / "old")
    header = json.loads((tmp_path / "old" / "result.json").read_text())
    header["kind"] = Declared.kind  # what the old code wrote for this type
    (tmp_path / "old" / "result.json").write_text(json.dumps(header))
    back = load_result(tmp_path / "old")
    assert isinstance(back, Declared)
    assert tensors_equal(back.comps, comps)
    assert back.tops == ["L2H3"]
    assert list(back.extras) == ["kept"] and back.meta["model"] == "m"
    assert "tops" not in dict(back.meta)


def test_a_result_does_not_alias_the_callers_dicts():
    extras = {"x": torch.ones(1)}
    res = Result(values=torch.zeros(1), dims=("layer",), extras=extras)
    res.extras["y"] = torch.zeros(1)
    assert list(extras) == ["x"]


def test_every_result_type_keeps_the_base_repr():
    """A dataclass subclass writes its own __repr__ (every field, tensors in full) unless told
    not to; results print as ``PatchResult('title', layer=4, head=4)``."""
    import interp.results  # noqa: F401  registers every result type
    from interp.results.base import _REGISTRY

    assert len(_REGISTRY) >= 10
    for kind, cls in _REGISTRY.items():
        assert cls.__repr__ is Result.__repr__, kind


def test_legacy_keys_by_source_class_flags_and_unset_fields():
    res = _result()
    with pytest.warns(DeprecationWarning, match=r'meta\["listing"\].*\.n_tops'):
        assert res.meta["listing"] == 1  # the key meant this only in meta
    with pytest.raises(KeyError):
        res.extras["listing"]
    with pytest.warns(DeprecationWarning, match=r"type\(res\)\.show_top"):
        assert res.meta["show_top"] is True and res.meta.get("show_top", False) is True
    empty = Declared(values=torch.zeros(1), dims=("layer",))  # comps unset
    with pytest.warns(DeprecationWarning), pytest.raises(KeyError):
        empty.extras["comps"]  # the old code wrote no key for an unset value
    with pytest.warns(DeprecationWarning):
        assert empty.extras.get("comps", "none") == "none"
    with pytest.warns(DeprecationWarning):  # a key the old code always wrote, None included
        assert empty.meta["note"] is None and "note" in empty.meta


def test_field_summary_is_the_printable_declared_fields():
    res = _result()
    assert res.field_summary() == {"tops": ["L0H1"]}  # no tensors, tables or unset fields
    res.tops = [f"L0H{i}" for i in range(30)]
    assert res.field_summary() == {}  # long per-example lists are data, not a summary


def test_an_old_show_top_flag_is_dropped_on_load(tmp_path):
    old = Result(values=torch.zeros(2), dims=("layer",), meta={"show_top": False, "model": "m"})
    save_result(old, tmp_path / "old")
    back = load_result(tmp_path / "old")
    assert dict(back.meta)["model"] == "m" and "show_top" not in dict(back.meta)


def test_atp_old_verified_listing_and_the_metadata_panel(organism):
    import interp
    from interp.viz.html import result_html

    task = interp.tasks.ioi(organism, n=8, seed=0)
    atp = interp.patching.attribution_patch(
        organism, task, target="z", verify_top_k=3, n_boot=20, progress=False
    )
    with pytest.warns(DeprecationWarning, match=r"\.verified_rows"):
        rows = atp.meta["verified"]  # earlier releases' list of the verified nodes
    table = atp.verified_table
    assert [r["node"] for r in rows] == [
        f"z:L{l}H{h}" for l, h in zip(table["layer"], table["head"], strict=True)
    ]
    assert [r["exact"] for r in rows] == table["exact"].tolist() and len(rows) == 3
    with pytest.warns(DeprecationWarning, match=r"\.verified\b"):
        assert atp.extras["verified"] is atp.verified  # extras held the tensor
    compared = interp.patching.agreement(
        atp, interp.patching.activation_patch(organism, task, target="z", n_boot=20, progress=False)
    )
    page = result_html(compared, include_plotlyjs=False)
    assert "spearman" in page and "top_k_recall" in page  # declared fields reach the panel
