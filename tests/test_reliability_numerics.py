"""Reliability: numerics (NaN metrics, low-precision exactness checks) and task files.

Issue 18: a NaN metric made patching and ablation return all-NaN results without a word; float16
direct logit attribution was refused as "an architecture with extra residual terms"; a CLI
``.jsonl`` task file with one row missing an optional field silently dropped that field for all
rows, and a malformed line gave a traceback without its line number.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import interp
from interp.errors import InterpError
from interp.tasks.registry import make_task


def nan_metric(logits: torch.Tensor, task: Any) -> torch.Tensor:
    return torch.full((logits.shape[0],), float("nan"))


def test_patching_refuses_a_nan_metric_before_sweeping(organism: Any) -> None:
    task = interp.tasks.ioi(organism, n=6, seed=0)
    with pytest.raises(InterpError, match=r"not finite on the source run for 6 of 6"):
        interp.patching.activation_patch(organism, task, metric=nan_metric, progress=False)
    with pytest.raises(InterpError, match="not finite"):
        interp.patching.attribution_patch(organism, task, metric=nan_metric, progress=False)


def test_path_patching_refuses_a_nan_metric(organism: Any) -> None:
    task = interp.tasks.ioi(organism, n=6, seed=0)
    with pytest.raises(InterpError, match="not finite"):
        interp.patching.path_patch(organism, task, sender=(0, 0), metric=nan_metric, progress=False)


def test_ablation_refuses_a_nan_clean_metric(organism: Any) -> None:
    task = interp.tasks.ioi(organism, n=6, seed=0)
    with pytest.raises(InterpError, match="not finite on the clean run"):
        interp.attribution.ablate(organism, task, metric=nan_metric)


def test_nan_in_some_patched_runs_is_a_warning_that_names_them(organism: Any) -> None:
    task = interp.tasks.ioi(organism, n=6, seed=0)
    metric = interp.tasks.logit_diff
    ends = torch.cat(
        [metric(organism(task.clean_tokens), task), metric(organism(task.corrupt_tokens), task)]
    )

    def fragile(logits: torch.Tensor, t: Any) -> torch.Tensor:
        # Finite on the two unpatched runs; NaN on any run whose value is neither of theirs.
        out = metric(logits, t)
        moved = (out[:, None] - ends[None]).abs().min(1).values > 1e-3
        return torch.where(moved, torch.full_like(out, float("nan")), out)

    with pytest.warns(RuntimeWarning, match=r"NaN/inf in \d+ of \d+ patched runs .*layer="):
        res = interp.patching.activation_patch(
            organism, task, target="z", metric=fragile, progress=False, n_boot=10
        )
    # A cell's score is NaN exactly where one of its prompts' patched runs was.
    assert torch.equal(res.values.isnan(), res.patched.isnan().any(0))


def test_float16_direct_logit_attribution_works_and_adds_up(organism: Any) -> None:
    half = interp.load_model("organism", dtype=torch.float16)
    task = interp.tasks.ioi(organism, n=16, seed=0)
    res16 = interp.attribution.direct_logit(half, task, n_boot=10)
    res32 = interp.attribution.direct_logit(organism, task, n_boot=10)
    assert res16.meta["model_dtype"] == "float16"
    err = res16.check_sum_to_total()  # default tolerance follows the model's dtype
    assert err > 1e-4  # so the float32 default would have refused it
    with pytest.raises(InterpError, match=r"rtol 0\.0001"):
        res16.check_sum_to_total(rtol=1e-4)
    assert res32.check_sum_to_total() < 1e-4
    # Same attribution up to float16 rounding (values ~5, fp16 eps ~1e-3).
    assert float((res16.values.float() - res32.values).abs().max()) < 2e-2


def test_dla_still_refuses_a_missing_residual_term(organism: Any) -> None:
    from interp.analyses.attribution.decompose import check_components_add_up

    final = torch.randn(4, organism.d_model)
    check_components_add_up(organism, final + 1e-6, final, n_terms=10)  # rounding: accepted
    with pytest.raises(InterpError, match=r"miss its final residual stream by 0\.5"):
        check_components_add_up(organism, final + 0.5, final, n_terms=10)


# ------------------------------------------------------------------ task files (CLI)


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_jsonl_row_missing_a_field_is_refused_with_its_line(organism: Any, tmp_path: Path) -> None:
    rows = [
        {
            "clean": "When Mary and John went to the store, John gave a drink to",
            "answer": [" Mary", " John"],
        },
        {"clean": "When Tom and Anna went to the park, Anna gave a ball to"},
    ]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    with pytest.raises(InterpError, match=r"1 lines give 'answer' but lines \[2\] do not"):
        make_task(organism, str(path))


def test_jsonl_malformed_line_names_the_line(organism: Any, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"clean": "a b"}, "{not json", {"clean": "c"}])
    with pytest.raises(InterpError, match=r"t.jsonl, line 2: not valid JSON"):
        make_task(organism, str(path))
    path = write_jsonl(tmp_path / "u.jsonl", [{"clean": "a b", "corupt": "a c"}])
    with pytest.raises(InterpError, match=r"line 1: unknown field\(s\) \['corupt'\]"):
        make_task(organism, str(path))
    path = write_jsonl(tmp_path / "v.jsonl", [["a", "b"]])
    with pytest.raises(InterpError, match="line 1: expected an object"):
        make_task(organism, str(path))


def test_jsonl_full_rows_build_the_task(organism: Any, tmp_path: Path) -> None:
    ref = interp.tasks.ioi(organism, n=3, seed=0, templates=[0])
    words = [[organism.token_str(int(i)) for i in pair] for pair in ref.answers]
    rows = [
        {"clean": c, "corrupt": k, "answer": [w[0], w[1]]}
        for c, k, w in zip(ref.clean_prompts, ref.corrupt_prompts or [], words, strict=True)
    ]
    task = make_task(organism, str(write_jsonl(tmp_path / "ok.jsonl", rows)))
    assert torch.equal(task.answers, ref.answers)
    assert torch.equal(task.corrupt_tokens, ref.corrupt_tokens)


def test_cli_reports_a_bad_jsonl_line_without_a_traceback(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from interp.cli import app

    path = write_jsonl(tmp_path / "bad.jsonl", [{"clean": "a b"}, "{oops"])
    out = CliRunner().invoke(app, ["run", "dla", "--task", str(path), "--out", str(tmp_path / "o")])
    # The console entry point prints InterpError as one line (tests/test_cli.py checks that).
    assert isinstance(out.exception, InterpError) and "bad.jsonl, line 2" in str(out.exception)
    assert not (tmp_path / "o").exists()
