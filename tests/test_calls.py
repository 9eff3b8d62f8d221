"""Results record the public call that made them (interp.calls), as the user spelled it."""

from __future__ import annotations

import inspect

import pytest
import torch

import interp
from interp.calls import current_call, format_call, public_name
from interp.errors import InterpError


def test_a_result_records_the_outermost_public_call(organism):
    task = interp.tasks.induction(organism, n=4, seed=0)
    dla = interp.attribution.direct_logit(organism, task, over="layers", seed=7)
    assert dla.meta["call"] == "interp.attribution.direct_logit(model, task, over='layers', seed=7)"
    patch = interp.patching.activation_patch(organism, task, target="resid_pre", n_boot=50)
    # activation_patch calls other checked functions inside: only the outermost is recorded.
    assert patch.meta["call"] == (
        "interp.patching.activation_patch(model, task, target='resid_pre', n_boot=50)"
    )
    assert current_call() is None  # nothing is left behind after the call


def test_a_failed_call_leaves_nothing_recorded(organism):
    from interp.analyses.attribution import direct_logit
    from interp.calls import recording

    task = interp.tasks.induction(organism, n=2, seed=0)
    bound = inspect.signature(direct_logit).bind(organism, task)
    with pytest.raises(RuntimeError), recording(direct_logit.__wrapped__, bound):
        assert current_call() == "interp.attribution.direct_logit(model, task)"
        raise RuntimeError("inside the analysis")
    assert current_call() is None
    with pytest.raises(InterpError):  # refused by the checks: nothing recorded either
        interp.attribution.direct_logit(organism, task, over="nonsense")
    assert current_call() is None


def test_public_names_and_argument_spelling():
    from interp.analyses.attribution import direct_logit
    from interp.results.base import Result

    assert public_name(direct_logit.__wrapped__) == "interp.attribution.direct_logit"
    assert public_name(Result.top) is None  # methods are not analyses
    assert public_name(len) is None

    def f(model, task, heads=None, vec=None, name="x", *rest, **kw):
        return None

    bound = inspect.signature(f).bind(
        object(), "t", heads=[(1, 2), "L0H3"], vec=torch.zeros(3), name="a'b"
    )
    text = format_call("interp.f", bound)
    assert text == "interp.f(<object>, 't', heads=[(1, 2), 'L0H3'], vec=<Tensor>, name=\"a'b\")"


def test_calls_stay_valid_python_when_model_is_not_first():
    """residual_norms(acts, model=...) and trajectories.evaluate(source, task): once a keyword
    is written, model and task are written with theirs; paths users can import."""
    import ast

    from interp.analyses.residual import residual_norms
    from interp.analyses.trajectories import evaluate

    class Model:
        cfg = None

    norms = format_call(
        public_name(residual_norms), inspect.signature(residual_norms).bind({}, Model(), seed=1)
    )
    assert norms == "interp.analyses.residual.residual_norms(acts={}, model=model, seed=1)"
    traj = format_call(public_name(evaluate), inspect.signature(evaluate).bind(Model(), "t", n=3))
    assert traj == "interp.trajectories.evaluate(source=model, task='t', n=3)"
    for text in (norms, traj):
        ast.parse(text)  # a valid call
