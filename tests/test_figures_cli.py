"""Static figures from the command line: the command a run records, `--figure` on every
`interp run` command, `interp figure`, and `interp demo --figures`."""

from __future__ import annotations

import json
import shlex
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

import interp
from interp.cli import app
from interp.errors import InterpError

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="static export renders with Chromium, which is not on PATH (apt-get install chromium)",
)
RUN_COMMANDS = (
    "dla",
    "logit-lens",
    "ablate",
    "heads",
    "patch",
    "atp",
    "path-patch",
    "probe",
    "trajectories",
    "steer",
    "targets",
)


def _pdf_page(path: Path) -> tuple[int, float]:
    """The page count and the first page's width in inches."""
    from pypdf import PdfReader

    reader = PdfReader(path)
    return len(reader.pages), float(reader.pages[0].mediabox.width) / 72


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A DLA run with --figure (when Chromium is there) and a probe sweep (two views), saved."""
    root = tmp_path_factory.mktemp("runs")
    dla = ["run", "dla", "--task", "induction", "--n", "8", "--seed", "1"]
    figure = ["--figure", str(root / "out" / "f.pdf")] if shutil.which("chromium") else []
    res = runner.invoke(app, [*dla, "--out", str(root / "dla"), *figure])
    assert res.exit_code == 0, res.output
    probe = ["run", "probe", "--n", "64", "--over", "layers", "--out", str(root / "probe")]
    res = runner.invoke(app, probe)
    assert res.exit_code == 0, res.output
    return {"root": root, "dla": root / "dla", "probe": root / "probe"}


def test_command_line_writes_changed_values_with_long_flags_quoted():
    from interp.cli_figure import command_line

    seen: dict[str, str] = {}
    demo = typer.Typer()

    @demo.command("go")
    def go(
        ctx: typer.Context,
        paths: list[Path],
        model: str = typer.Option("organism", "--model", "-m"),
        n: int = 64,
        star: bool = typer.Option(False, "--star"),
        hooks: bool = True,
        names: list[str] = typer.Option(["resid_post"], "--names"),
        out: Path = Path("out"),
        note: str | None = None,
    ) -> None:
        seen["command"] = command_line(ctx)

    @demo.command("other")
    def other() -> None:  # a second command, so `go` is a subcommand with its own name
        pass

    args = ["go", "-m", "gpt2", "--star", "--no-hooks", "--names", "z", "--names", "q"]
    res = runner.invoke(demo, [*args, "--out", "d/e", "--note", "it's", "--", "a b", "-x"])
    assert res.exit_code == 0, res.output
    assert seen["command"] == (
        "interp go --model gpt2 --star --no-hooks --names z --names q --out d/e "
        "--note 'it'\"'\"'s' -- 'a b' -x"
    )
    runner.invoke(demo, ["go", "p", "--n", "64", "--names", "resid_post"])
    assert seen["command"] == "interp go p"  # values equal to the defaults are left out


@needs_chromium
def test_run_figure_writes_a_one_page_pdf_whose_command_reproduces_the_run(saved, tmp_path):
    fig = saved["root"] / "out" / "f.pdf"
    assert _pdf_page(fig) == (1, pytest.approx(3.3, abs=1e-3))
    side = json.loads((fig.parent / "f.pdf.json").read_text())
    original = interp.load_result(saved["dla"])
    assert side["command"] == original.meta["command"]
    assert side["figure"]["view"] == "plot" and side["figure"]["width_in"] == 3.3
    words = shlex.split(side["command"])
    assert words[:3] == ["interp", "run", "dla"] and "--model" not in words  # the default
    assert words[words.index("--n") + 1] == "8" and words[words.index("--seed") + 1] == "1"
    words[words.index("--out") + 1] = str(tmp_path / "again")
    words[words.index("--figure") + 1] = str(tmp_path / "again.pdf")
    res = runner.invoke(app, words[1:])
    assert res.exit_code == 0, res.output
    again = interp.load_result(tmp_path / "again")
    assert torch.equal(again.values, original.values)
    assert again.meta["command"] == shlex.join(words)
    assert _pdf_page(tmp_path / "again.pdf")[0] == 1


def test_every_run_command_records_its_command(saved):
    meta = interp.load_result(saved["probe"]).meta
    assert meta["command"] == f"interp run probe --out {saved['probe']} --n 64"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--figure", "x.gif", ".pdf, .svg or .png"),
        ("--figure-width", "3.3furlongs", "--figure-width"),
    ],
)
def test_a_bad_figure_option_fails_before_the_model_loads_on_every_command(
    option, value, message, tmp_path, monkeypatch
):
    import interp.models

    def refuse(*a, **k):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(interp.models, "load_model", refuse)
    monkeypatch.chdir(tmp_path)
    extra = ["--figure", "f.pdf"] if option != "--figure" else []
    for cmd in RUN_COMMANDS:
        res = runner.invoke(app, ["run", cmd, "--out", "out", option, value, *extra])
        assert isinstance(res.exception, InterpError), (cmd, res.output, res.exception)
        assert message in str(res.exception), (cmd, str(res.exception))
        assert "--figure" in runner.invoke(app, ["run", cmd, "--help"]).output
    assert list(tmp_path.iterdir()) == []  # nothing written


@needs_chromium
def test_figure_command_writes_every_view_in_every_format(saved, tmp_path):
    out = tmp_path / "figs"
    dirs = [str(saved["dla"]), str(saved["probe"])]
    formats = ["--format", "pdf", "--format", "svg"]
    res = runner.invoke(app, ["figure", *dirs, *formats, "--width", "6.9in", "--out", str(out)])
    assert res.exit_code == 0, res.output
    views = [len(interp.load_result(d).views()) for d in dirs]
    images = sorted(p.name for p in out.iterdir() if p.suffix in (".pdf", ".svg"))
    assert len(images) == sum(views) * 2 and views == [1, 2]
    assert images == [
        "dla.pdf",
        "dla.svg",
        "probe.pdf",
        "probe.svg",
        "probe_projection.pdf",
        "probe_projection.svg",
    ]
    assert all((out / f"{name}.json").exists() for name in images)
    assert all(name in res.output for name in images)
    svg = ET.parse(out / "probe_projection.svg").getroot()
    assert float(svg.get("width", "0").removesuffix("px")) == pytest.approx(662.4)
    assert _pdf_page(out / "dla.pdf") == (1, pytest.approx(6.9, abs=1e-3))
    # Without --out: into RESULT_DIR/figures; --view picks one view.
    res = runner.invoke(app, ["figure", dirs[1], "--view", "plot_projection", "-f", "png"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (saved["probe"] / "figures").glob("*.png")) == [
        "probe_projection.png"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--width", "3.3furlongs"], "--width='3.3furlongs'"),
        (["--format", "gif"], "--format 'gif': use pdf, svg or png"),
        (["--theme", "dark"], "--theme 'dark'"),
        (["--font", "mono"], "--font 'mono'"),
        (["--view", "plot_frontier"], "has the views plot"),
    ],
)
def test_figure_command_checks_its_options_first(saved, tmp_path, args, message):
    res = runner.invoke(app, ["figure", str(saved["dla"]), *args, "--out", str(tmp_path / "o")])
    assert isinstance(res.exception, InterpError), res.output
    assert message in str(res.exception)
    assert not (tmp_path / "o").exists()


@needs_chromium
def test_demo_figures_writes_a_pdf_and_png_for_every_result_section(tmp_path, monkeypatch):
    """The organism demo at small sizes (large-model patching, one probe sweep), --figures."""
    import interp.demo.run as run
    from interp.demo.sizes import Sizes
    from interp.results.base import Result

    small = Sizes(
        n=8,
        detector_len=8,
        exact_heads=4,
        resid_positions=2,
        head_sets=2,
        path_senders=2,
        probe_n=64,
        traj_n=8,
        traj_samples=2,
        traj_tokens=16,
        steer_n=16,
        steer_neutral=8,
        steer_patching="atp",
    )
    monkeypatch.setattr(run.Sizes, "for_model", classmethod(lambda cls, model: small))

    def probes(model, out, seed, n):  # the probes section without its head sweep and CCS
        from interp.analyses.probes import sweep

        task = interp.tasks.facts(model, n=n, seed=seed)
        return [sweep(model, task, over="layers", seed=seed, progress=False)]

    monkeypatch.setattr(run, "probes_section", probes)
    sections: list = []
    export = run.demo_figures

    def spy(items, directory):
        sections.extend(items)
        return export(items, directory)

    monkeypatch.setattr(run, "demo_figures", spy)
    figs = tmp_path / "figs"
    args = ["--out", str(tmp_path / "demo"), "--n", "8", "--seed", "2", "--figures", str(figs)]
    res = runner.invoke(app, ["demo", *args])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "demo" / "report.html").exists()
    results = [(i, s) for i, s in enumerate(sections) if isinstance(s, Result)]
    assert len(results) >= 8
    for i, item in results:
        stem = f"{i:02d}_{item.kind}"
        for fmt in ("pdf", "png"):
            assert (figs / f"{stem}.{fmt}").exists(), (stem, fmt)
            assert (figs / f"{stem}.{fmt}.json").exists()
    pdfs = sorted(figs.glob("*.pdf"))
    pngs = sorted(figs.glob("*.png"))
    assert len(pdfs) == len(pngs) == sum(len(r.views()) for _, r in results)
    assert all(_pdf_page(p)[0] == 1 for p in pdfs)
    assert f"figures: {len(pdfs) + len(pngs)} files" in res.output
    page = (tmp_path / "demo" / "report.html").read_text()
    assert "Reproduce this report: <code>interp demo --out" in page and "--figures" in page


def test_report_command_shows_the_command_that_reproduces_it(saved, tmp_path):
    page = tmp_path / "r.html"
    res = runner.invoke(app, ["report", str(saved["dla"]), "--out", str(page)])
    assert res.exit_code == 0, res.output
    expected = f"interp report --out {page} {saved['dla']}"
    assert f"Reproduce this report: <code>{expected}</code>" in page.read_text()
