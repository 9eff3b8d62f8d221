"""The package layout DESIGN.md asks for: no analysis family reaches into another one.

Code two families share lives a level down (`interp.stats`, `interp.activations`, `interp.results`,
...). Imports are read with `ast` (module-level and inside functions, relative ones resolved), as
are attribute chains such as ``interp.probes.sweep`` reached through ``import interp``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ANALYSES = Path(__file__).resolve().parents[1] / "interp" / "analyses"
FAMILIES = sorted(p.name for p in ANALYSES.iterdir() if (p / "__init__.py").is_file())
# Top-level names under which `interp/__init__.py` exposes each family.
ALIASES = {"attribution", "patching", "probes", "sae", "steering", "trajectories"}
# The steering scorecard turns the other families' evidence into steering targets, so steering
# may call their public API (names the family package exports, ``from interp.analyses.patching
# import activation_patch``), never their modules.
# SAE latents are units of every analysis: the sae family calls the others' latent entry points.
COMPOSES = {
    "steering": {"attribution", "patching", "probes"},
    "sae": {"attribution", "patching", "probes", "steering"},
}


def public_api(family: str, name: str) -> bool:
    """`name` is ``interp.analyses.<family>.<x>`` with `x` in the family package's ``__all__``."""
    parts = name.split(".")
    if parts[:3] != ["interp", "analyses", family] or len(parts) != 4:
        return False
    init = (ANALYSES / family / "__init__.py").read_text()
    exported = next(
        (
            {ast.literal_eval(e) for e in node.value.elts}  # type: ignore[attr-defined]
            for node in ast.walk(ast.parse(init))
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
        ),
        set(),
    )
    # An exported name is what the package binds, even where a module has the same name
    # (``probes.sweep`` the function shadows ``probes/sweep.py``).
    return parts[3] in exported


def module_name(path: Path) -> str:
    parts = path.relative_to(ANALYSES.parents[1]).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def references(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, dotted name) of every module or ``interp.`` attribute chain `source` refers to,
    read as the text of `module` (a package's ``__init__`` when `is_package`)."""
    package = module if is_package else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    inner: set[int] = set()  # attribute nodes inside a chain already read
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: drop (level - 1) trailing parts of the package
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            # `from interp.analyses import probes` names a module too
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Attribute) and id(node) not in inner:
            chain, cur = [node.attr], node.value
            while isinstance(cur, ast.Attribute):
                inner.add(id(cur))
                chain.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name) and cur.id == "interp":
                out.append((node.lineno, ".".join(["interp", *reversed(chain)])))
    return sorted(out)


def imported(path: Path) -> list[tuple[int, str]]:
    return references(path.read_text(), module_name(path), path.name == "__init__.py")


def family_of(name: str) -> str | None:
    parts = name.split(".")
    if parts[:2] == ["interp", "analyses"] and len(parts) > 2 and parts[2] in FAMILIES:
        return parts[2]
    if parts[0] == "interp" and len(parts) > 1 and parts[1] in ALIASES:
        return parts[1]
    return None


def test_the_families_are_found():
    assert set(FAMILIES) >= ALIASES


@pytest.mark.parametrize("family", FAMILIES)
def test_no_family_imports_another(family):
    bad = []
    for path in sorted((ANALYSES / family).rglob("*.py")):
        for line, name in imported(path):
            other = family_of(name)
            if other in COMPOSES.get(family, set()) and public_api(other, name):
                continue
            if other is not None and other != family:
                bad.append(f"{path.relative_to(ANALYSES.parents[1])}:{line} uses {name}")
    assert not bad, "analysis families import each other (move shared code down):\n" + "\n".join(
        bad
    )


def test_composition_reaches_only_public_api():
    assert public_api("patching", "interp.analyses.patching.activation_patch")
    assert not public_api("patching", "interp.analyses.patching.engine")
    assert not public_api("patching", "interp.analyses.patching.engine.starts_mid_model")
    assert not public_api("probes", "interp.analyses.probes.linear")


def test_the_walker_sees_each_import_form():
    """The checker itself: every way of reaching another family is caught."""
    src = (
        "import interp\n"
        "import interp.analyses.probes.protocol as P\n"
        "from interp.analyses.probes import protocol\n"
        "from interp.analyses import probes\n"
        "from ..patching import agreement\n"
        "from . import signals\n"
        "def f():\n"
        "    from interp.stats import roc_auc\n"
        "    return interp.probes.sweep(interp.stats.spearman)\n"
    )
    names = [n for _, n in references(src, "interp.analyses.trajectories.scoring")]
    assert [family_of(n) for n in names] == [
        None,
        "probes",
        "probes",
        "probes",
        "patching",
        "trajectories",
        None,
        "probes",
        None,
    ], names
    init = references(
        "from .signals import x\nfrom ..probes import y\n", "interp.analyses.trajectories", True
    )
    assert [n for _, n in init] == [
        "interp.analyses.trajectories.signals.x",
        "interp.analyses.probes.y",
    ]


PACKAGE = ANALYSES.parent


def module_level_imports(
    source: str, module: str, is_package: bool = False
) -> list[tuple[int, str]]:
    """(line, module) of the imports `source` (the text of `module`) runs when it is imported:
    top-level statements, including those under a plain ``if``/``try``, but not ``if
    TYPE_CHECKING:`` blocks and not imports inside functions (those run when called)."""
    package = module if is_package else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, ast.If | ast.Try):
                for block in ("body", "orelse", "finalbody", "handlers"):
                    for part in getattr(node, block, []):
                        visit(part.body if isinstance(part, ast.ExceptHandler) else [part])
            elif isinstance(node, ast.Import):
                out.extend((node.lineno, a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join([*parts, base] if base else parts)
                out.extend((node.lineno, f"{base}.{a.name}") for a in node.names)

    visit(ast.parse(source).body)
    return out


def _offenders(folder: str, banned: tuple[str, ...], everywhere: bool) -> list[str]:
    bad = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        found = (
            imported(path)
            if everywhere
            else module_level_imports(
                path.read_text(), module_name(path), path.name == "__init__.py"
            )
        )
        for line, name in found:
            if name.startswith(banned):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    return bad


def test_results_do_not_import_views_when_imported():
    """Results own data, viz owns drawing: a result's plot() imports its view lazily, so
    results and viz never import each other at module level (no cycle)."""
    bad = _offenders("results", ("interp.viz", "plotly", "circuitsvis"), everywhere=False)
    assert not bad, "\n".join(bad)


def test_analyses_know_nothing_about_plotting():
    bad = _offenders("analyses", ("interp.viz", "plotly", "circuitsvis"), everywhere=True)
    assert not bad, "\n".join(bad)


def test_the_module_level_walker_skips_function_bodies_and_type_checking():
    src = (
        "from typing import TYPE_CHECKING\n"
        "import a\n"
        "if TYPE_CHECKING:\n"
        "    import b\n"
        "try:\n"
        "    import c\n"
        "except ImportError:\n"
        "    import d\n"
        "def f():\n"
        "    import e\n"
    )
    names = [n for _, n in module_level_imports(src, "interp.results.probe")]
    assert names == ["typing.TYPE_CHECKING", "a", "c", "d"]


def test_no_module_is_oversized():
    """DESIGN: a file over ~400 lines is a sign to split."""
    sizes = {
        str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines())
        for p in PACKAGE.rglob("*.py")
    }
    big = {p: n for p, n in sizes.items() if n > 420}
    assert not big, big
