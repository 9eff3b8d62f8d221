"""`interp run steer`, `interp run targets` and the demo's steering section, on the organism."""

from __future__ import annotations

import subprocess
import sys
import typing

import pytest
from typer.testing import CliRunner

import interp
from interp.cli import app
from interp.errors import InterpError

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()


def _g(x: float) -> str:
    return f"{float(x):.4g}"  # how the commands print numbers


def _run(*args: str) -> typing.Any:
    return runner.invoke(app, ["run", *args])


def test_steer_command_saves_the_result_and_the_direction_and_prints_them(tmp_path):
    from interp.analyses.steering import SteeringDirection, SteeringResult

    out = tmp_path / "steer"
    res = _run(
        "steer",
        *("--out", str(out), "--n", "64", "--n-eval", "32", "--layer", "3"),
        *("--alphas", "1,2", "--n-random", "2", "--neutral", "auto"),
    )
    assert res.exit_code == 0, res.output
    loaded = interp.load_result(out)
    assert isinstance(loaded, SteeringResult)
    assert loaded.dims == ("direction", "alpha", "metric")
    assert loaded.values.shape == (1, 2, 7) and loaded.coords["alpha"] == [1.0, 2.0]
    assert loaded.sites == ["resid_post:L3"] and loaded.positions == "last"
    assert loaded.random is not None and loaded.random.shape == (1, 2, 2, 7)
    assert loaded.n_prompts == 16 and loaded.n_neutral > 0  # the false half of 32 statements
    assert (out / "figure.html").exists() and (out / "frontier.html").exists()
    d = SteeringDirection.load(out / "direction")
    assert str(d.site) == "resid_post:L3" and d.sigma == pytest.approx(loaded.sigmas[0])
    # The printed numbers are the saved ones.
    assert f"sigma={_g(d.sigma)}" in res.output
    effect = loaded.metric("effect")[0]
    rate = loaded.metric("target_rate")[0]
    assert _g(effect[0]) in res.output and _g(effect[1]) in res.output
    assert _g(rate[1]) in res.output and "random_high" in res.output
    # Strength 2 at the last block makes most held-out false statements answer " true".
    assert float(rate[1]) > 0.8 and float(effect[1]) > float(loaded.random[0, 1, :, 0].max())


def test_steer_command_reads_neutral_text_from_a_file_and_steers_a_head(tmp_path):
    texts = tmp_path / "neutral.txt"
    texts.write_text("When Mary and John went to the store, John gave a drink to\n\n1 2 3 4 5 6\n")
    out = tmp_path / "head"
    res = _run(
        "steer",
        *("--out", str(out), "--at", "z", "--head", "L3H0", "--n", "48", "--n-eval", "16"),
        *("--alphas", "4", "--n-random", "1", "--neutral", str(texts), "--positions", "all"),
        *("--toward", "negative"),
    )
    assert res.exit_code == 0, res.output
    loaded = interp.load_result(out)
    assert loaded.sites == ["z:L3H0"] and loaded.n_neutral == 2 and loaded.toward == "negative"
    assert loaded.positions == "all" and "towards ' false'" in loaded.objective


def test_steer_command_without_controls_or_neutral_text(tmp_path):
    out = tmp_path / "bare"
    res = _run(
        "steer",
        *("--out", str(out), "--n", "32", "--n-eval", "16", "--alphas", "2"),
        *("--n-random", "0", "--neutral", "none", "--method", "probe"),
    )
    assert res.exit_code == 0, res.output
    loaded = interp.load_result(out)
    assert loaded.random is None and loaded.n_neutral == 0
    assert "random_high" not in res.output and "0 neutral texts" in res.output
    assert (out / "frontier.html").exists()  # KL at the answer position instead


def test_targets_command_verifies_the_top_heads_and_prints_the_summary(organism, tmp_path):
    from interp.results.steering import ScorecardResult

    out = tmp_path / "targets"
    res = _run(
        "targets",
        *("--out", str(out), "--n", "32", "--evidence", "dla,patching", "--patching", "atp"),
        *("--k", "3", "--alphas", "1,2"),
    )
    assert res.exit_code == 0, res.output
    card = interp.load_result(out)
    assert isinstance(card, ScorecardResult) and card.over == "heads"
    assert card.dims == ("unit", "source") and len(card.coords["unit"]) == 32
    assert card.coords["source"] == ["dla", "denoise", "noise", "merged"]
    assert card.vectors is not None and card.vectors.shape == (32, organism.d_head)
    s = card.verify_summary
    assert s["k"] == 3 and len(s["top"]) == 3 and len(s["random"]) == 3 and s["alpha"] in (1, 2)
    assert len(card.verification) == 32  # every unit steered (at most 64 units)
    assert set(card.correlations) == {"dla", "denoise", "noise", "merged"}
    assert (out / "figure.html").exists() and (out / "verification.html").exists()
    # The head the organism uses to judge statements ranks first; the printout holds the
    # ranking, the verification summary and the correlations.
    assert s["top"][0] in ("L3H0", "L3H2", "L3H6")
    assert ", ".join(s["top"]) in res.output and ", ".join(s["random"]) in res.output
    assert _g(s["top_effect"]) in res.output and _g(s["top_over_random"]) in res.output
    for src, rho in card.correlations.items():
        assert f"{src}: {_g(rho)}" in res.output
    assert s["top_effect"] > 5 * abs(s["random_effect"])


def test_targets_command_over_layers_with_neutral_text(tmp_path):
    out = tmp_path / "layers"
    res = _run(
        "targets",
        *("--out", str(out), "--n", "32", "--over", "layers", "--evidence", "dla,probes"),
        *("--k", "1", "--alphas", "1,2", "--neutral", "auto", "--alpha", "2"),
    )
    assert res.exit_code == 0, res.output
    card = interp.load_result(out)
    assert card.coords["unit"] == ["L0", "L1", "L2", "L3"]
    assert card.verify_summary["alpha"] == 2 and not card.verify_summary["calibrated"]
    assert card.verify_summary["kl_on"] == "neutral text"
    assert card.verify_summary["top"] == ["L3"]


BAD = [
    (("steer", "--alphas", "x"), "--alphas 'x': give comma-separated numbers"),
    (("steer", "--alphas", "1,nan"), "must be finite"),
    (("steer", "--at", "resid"), "--at: got 'resid'"),
    (("steer", "--at", "z"), "give --head"),
    (("steer", "--head", "L3H0"), "--head applies to --at z"),
    (("steer", "--method", "svd"), "--method: got 'svd'"),
    (("steer", "--toward", "up"), "--toward: got 'up'"),
    (("steer", "--positions", "first"), "--positions 'first'"),
    (("steer", "--neutral", "/no/such/file.txt"), "neutral text file is missing"),
    (("steer", "--n-random", "-1"), "--n-random at least 0"),
    (("steer", "--layer", "99", "--n", "8", "--n-eval", "8"), "layer=99 does not exist"),
    (("targets", "--over", "bogus"), "--over: got 'bogus'"),
    (("targets", "--evidence", "dla,vibes"), "--evidence: got 'vibes'"),
    (("targets", "--evidence", ""), "No evidence to rank by"),
    (("targets", "--detectors", "induction", "--over", "layers"), "Head detectors score heads"),
    (("targets", "--patching", "fast"), "--patching: got 'fast'"),
    (("targets", "--alphas", "a,b"), "--alphas 'a,b'"),
    (("targets", "--k", "0"), "--k and --n must be at least 1"),
    (("targets", "--k", "17", "--n", "8"), "--k 17: give at most 16"),
    (("targets", "--task", "nonsense"), "Unknown task 'nonsense'"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_options_fail_clearly_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    res = _run(args[0], "--out", str(out), *args[1:])
    assert res.exit_code != 0
    assert isinstance(res.exception, InterpError), res.output
    assert message in str(res.exception)
    assert not out.exists()


def test_the_console_prints_one_error_line_before_loading_a_model(tmp_path):
    out = tmp_path / "o"
    proc = subprocess.run(
        [sys.executable, "-m", "interp.cli", "run", "steer", "--out", str(out), "--alphas", "x"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and not out.exists()
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --alphas 'x'")


def test_the_commands_defaults_and_choices_are_the_librarys():
    import inspect

    from interp.analyses.attribution.detectors import KINDS
    from interp.analyses.steering import SITE_TARGETS
    from interp.analyses.steering.directions import Method
    from interp.analyses.steering.evaluate import DEFAULT_ALPHAS
    from interp.analyses.steering.evidence import EVIDENCE
    from interp.analyses.steering.objective import neutral_prompts
    from interp.cli_steer import (
        DETECTORS,
        METHODS,
        NEUTRAL_N,
        SITES,
        VERIFY_ALPHAS,
        targets_cmd,
    )
    from interp.cli_steer import EVIDENCE as CLI_EVIDENCE

    assert [float(a) for a in VERIFY_ALPHAS.split(",")] == list(DEFAULT_ALPHAS)
    assert SITES == SITE_TARGETS and typing.get_args(Method) == METHODS
    assert CLI_EVIDENCE == EVIDENCE and DETECTORS == KINDS
    assert inspect.signature(neutral_prompts).parameters["n"].default == NEUTRAL_N
    params = inspect.signature(targets_cmd).parameters
    assert params["alphas"].default == VERIFY_ALPHAS


def test_demo_section_runs_on_the_organism_and_its_results_reach_the_report(organism, tmp_path):
    from interp.demo.sizes import Sizes
    from interp.demo.steering import steering_section
    from interp.results.steering import GenerationsResult, ScorecardResult, SteeringResult

    items = steering_section(organism, tmp_path, seed=0, sizes=Sizes.for_model(organism))
    res, card, gens, (heading, body) = items
    assert isinstance(res, SteeringResult) and isinstance(card, ScorecardResult)
    assert isinstance(gens, GenerationsResult) and heading == "Steering summary"
    # The probes' best layer is the residual stream after the last block.
    assert res.sites == ["resid_post:L3"]
    at2 = res.table().set_index("alpha").loc[2.0]
    assert at2.target_rate > 0.8 and at2.effect > at2.random_high
    assert card.verify_summary["top"][0] in ("L3H0", "L3H2", "L3H6")
    assert len(gens.texts) == 4 and all(len(t) == 3 for t in gens.texts)
    for name in ("steering", "steering_targets", "steering_generations"):
        assert interp.load_result(tmp_path / name).values.numel() > 0
    assert f"{at2.target_rate:.0%} do" in body and "Spearman" in body
    page = interp.report(items, tmp_path / "report.html").read_text()
    assert "Steering summary" in page and "Steering targets on facts (heads)" in page
    assert "Steered generations" in page


def test_run_demo_includes_the_steering_section(organism, tmp_path, monkeypatch):
    """run_demo registers the section (the other sections stubbed out to keep this fast) and
    hands it the probes section's sweep."""
    import interp.demo.run as run

    seen = {}

    def probes(model, out, seed, n):
        from interp.analyses.probes import sweep

        task = interp.tasks.facts(model, n=n, seed=seed)
        seen["probe"] = sweep(model, task, over="layers", seed=seed, progress=False)
        return [seen["probe"]]

    def steering(model, out, seed, sizes, probes):
        seen["given"] = list(probes)
        return [("Steering summary", "<p>steered</p>")]

    for name in ("attribution_section", "patching_section", "trajectories_section"):
        monkeypatch.setattr(run, name, lambda *a, **k: [])
    monkeypatch.setattr(run, "probes_section", probes)
    monkeypatch.setattr(run, "steering_section", steering)
    page = run.run_demo(organism, tmp_path, n=8).read_text()
    assert "Steering summary" in page and seen["given"] == [seen["probe"]]


def test_demo_section_skips_with_a_note_when_the_task_does_not_tokenise(notok, tmp_path):
    from interp.demo.steering import steering_section

    [(heading, body)] = steering_section(notok, tmp_path, seed=0)
    assert heading == "Steering" and "Skipped:" in body
    assert not list(tmp_path.iterdir())
