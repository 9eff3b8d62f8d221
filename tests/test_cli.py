from __future__ import annotations

import json
import subprocess
import sys

import torch
from typer.testing import CliRunner

from interp.cli import app
from interp.errors import InterpError

runner = CliRunner()


def test_help_lists_commands():
    out = runner.invoke(app, ["--help"])
    assert out.exit_code == 0
    for cmd in ("info", "cache", "demo", "report"):
        assert cmd in out.output


def test_info_prints_architecture_and_hooks(tiny_hf_dir):
    out = runner.invoke(app, ["info", str(tiny_hf_dir)])
    assert out.exit_code == 0, out.output
    assert "n_layers: 2" in out.output and "blocks.{l}.attn.hook_z" in out.output
    data = json.loads(runner.invoke(app, ["info", str(tiny_hf_dir), "--json"]).stdout)
    assert data["n_heads"] == 4 and data["n_params"] > 0


def test_info_smollm2_prints_architecture_and_clean_json(smollm2, monkeypatch):
    import interp.models.loading

    def load(spec, dev, tdtype):  # the session's SmolLM2, announced on stdout like TL does
        assert spec == "smollm2"
        print("Moving model to device:  cpu")
        return smollm2

    # The real load_model (and its redirect of stdout) runs; only the loading itself is faked.
    monkeypatch.setattr(interp.models.loading, "_load_spec", load)
    out = runner.invoke(app, ["info", "smollm2", "--no-hooks"])
    assert out.exit_code == 0, out.output
    assert "n_layers: 30" in out.output and "n_key_value_heads: 3" in out.output
    assert "normalization_type: RMS" in out.output and ".gguf" in out.output
    res = runner.invoke(app, ["info", "smollm2", "--json"])
    data = json.loads(res.stdout)
    assert (data["n_layers"], data["n_heads"], data["d_model"]) == (30, 9, 576)
    assert data["positional_embedding_type"] == "rotary" and data["source"].endswith(".gguf")
    assert data["n_params"] > 100_000_000 and "blocks.{l}.attn.hook_z" in data["hooks"]


def test_cache_command_streams_to_disk(tiny_hf_dir, tmp_path):
    out = runner.invoke(
        app,
        [
            "cache",
            str(tiny_hf_dir),
            "--task",
            "induction",
            "--n",
            "6",
            "--names",
            "resid_post",
            "--names",
            "z",
            "--positions",
            "last",
            "--out",
            str(tmp_path / "c"),
        ],
    )
    assert out.exit_code == 0, out.output
    import interp

    store = interp.load_cache(tmp_path / "c")
    assert store.n_examples == 6 and store["blocks.1.attn.hook_z"].shape == (6, 4, 8)


def test_cache_command_takes_every_dtype_name(tiny_hf_dir, tmp_path):
    for k, name in enumerate(("half", "fp16", "float16")):
        args = ["cache", str(tiny_hf_dir), "--task", "induction", "--n", "4", "--dtype", name]
        out = runner.invoke(app, [*args, "--out", str(tmp_path / f"c{k}")])
        assert out.exit_code == 0, out.output
        import interp

        store = interp.load_cache(tmp_path / f"c{k}")
        assert store["blocks.0.hook_resid_post"].dtype == torch.float16


def test_demo_writes_report_and_result(tiny_hf_dir, tmp_path):
    out = runner.invoke(
        app, ["demo", "--model", str(tiny_hf_dir), "--out", str(tmp_path), "--n", "8"]
    )
    assert out.exit_code == 0, out.output
    html = (tmp_path / "report.html").read_text()
    assert "Residual stream norm" in html and "Activation cache" in html
    import interp

    res = interp.load_result(tmp_path / "residual_norms")
    assert res.dims == ("layer", "pos") and res.values.shape[0] == 2


def test_report_command_combines_saved_results(tiny_hf_dir, tmp_path):
    runner.invoke(
        app, ["demo", "--model", str(tiny_hf_dir), "--out", str(tmp_path / "d"), "--n", "4"]
    )
    out = runner.invoke(
        app, ["report", str(tmp_path / "d" / "residual_norms"), "--out", str(tmp_path / "r.html")]
    )
    assert out.exit_code == 0 and (tmp_path / "r.html").exists()


def test_bad_input_is_one_clear_line(tiny_hf_dir, tmp_path):
    out = runner.invoke(
        app,
        [
            "cache",
            str(tiny_hf_dir),
            "--task",
            "induction",
            "--names",
            "nope",
            "--out",
            str(tmp_path / "c"),
        ],
    )
    assert isinstance(out.exception, InterpError) and "Unknown hook name(s) ['nope']" in str(
        out.exception
    )
    assert not (tmp_path / "c").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "interp.cli", "info", str(tmp_path / "missing-model")],
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": ""},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: Could not download")


def test_run_commands_save_result_and_figure(tiny_hf_dir, tmp_path):
    import interp

    cases = {
        "dla": ["--task", "ioi", "--n", "6", "--over", "positions", "--template", "2"],
        "logit-lens": ["--task", "ioi", "--n", "4"],
        "ablate": ["--task", "ioi", "--n", "6", "--heads", "L0H1,L1H2", "--how", "zero"],
        "heads": ["--kind", "previous-token", "--n", "4", "--seq-len", "6"],
    }
    for cmd, extra in cases.items():
        out = tmp_path / cmd
        res = runner.invoke(
            app, ["run", cmd, "--model", str(tiny_hf_dir), "--out", str(out), *extra]
        )
        assert res.exit_code == 0, (cmd, res.output)
        assert (out / "figure.html").exists()
        loaded = interp.load_result(out)
        assert loaded.values.numel() > 0
    assert interp.load_result(tmp_path / "ablate").coords["set"] == ["L0H1 L1H2"]
    bad = runner.invoke(
        app,
        [
            "run",
            "ablate",
            "--model",
            str(tiny_hf_dir),
            "--out",
            str(tmp_path / "x"),
            "--heads",
            "first",
        ],
    )
    assert isinstance(bad.exception, InterpError) and "L2H5" in str(bad.exception)


def test_demo_sizes_keep_the_organism_demo_and_shrink_large_models(organism):
    from types import SimpleNamespace

    from interp.demo import Sizes

    full = Sizes.for_model(organism)
    assert full == Sizes() and full.n is None and full.exact_heads is None
    assert (full.detector_len, full.probe_n, full.traj_n, full.traj_tokens) == (16, 256, 32, 48)
    big = SimpleNamespace(info=lambda: SimpleNamespace(n_params=162_950_016))  # SmolLM2
    large = Sizes.for_model(big)
    assert large.n == 8 and large.exact_heads and large.resid_positions == 3
    assert large.traj_tokens < full.traj_tokens and large.probe_n < full.probe_n


def test_the_trajectories_command_defaults_are_the_librarys():
    """The CLI writes its defaults as literals (importing the sampler would load torch for
    `interp --help`); they must stay the library's."""
    import inspect

    from interp.analyses.trajectories import sampling
    from interp.cli_trajectories import trajectories_cmd

    params = inspect.signature(trajectories_cmd).parameters
    assert params["samples"].default == sampling.DEFAULT_N
    assert params["chunk"].default == sampling.DEFAULT_CHUNK
    assert params["max_new_tokens"].default == sampling.DEFAULT_MAX_NEW_TOKENS
    assert params["temperature"].default == sampling.DEFAULT_TEMPERATURE
