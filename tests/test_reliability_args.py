"""Reliability: bad arguments are refused at the public boundary, by name, before any work.

Covers issue 18's "silent wrong results" and "errors that do not say what to do" for arguments:
string options against their Literal values (every public function, found by walking the API),
parameters with a package-wide meaning (n_boot, batch_size, k, scale ...), token ids and answer
positions, and the shapes of head lists.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

import interp
from interp.checks import CONVENTIONS, _literal_params
from interp.errors import InterpError

PUBLIC_MODULES = [
    "interp",
    "interp.tasks",
    "interp.results",
    "interp.viz",
    "interp.models",
    "interp.activations",
    "interp.nodes",
    "interp.analyses.attribution",
    "interp.analyses.patching",
    "interp.analyses.probes",
    "interp.analyses.trajectories",
    "interp.organism",
    "interp.stats",
    "interp.executors",
]


def public_functions() -> dict[str, Callable[..., Any]]:
    """Every function and method a user reaches from the public modules, by qualified name."""
    out: dict[str, Callable[..., Any]] = {}
    for name in PUBLIC_MODULES:
        mod = importlib.import_module(name)
        exported = getattr(mod, "__all__", None) or [n for n in dir(mod) if not n.startswith("_")]
        for attr in exported:
            obj = getattr(mod, attr, None)
            if inspect.isfunction(obj) and obj.__module__.startswith("interp"):
                out[f"{obj.__module__}.{obj.__qualname__}"] = obj
            elif inspect.isclass(obj) and obj.__module__.startswith("interp"):
                for key, fn in vars(obj).items():
                    if inspect.isfunction(fn) and (not key.startswith("_") or key == "__init__"):
                        out[f"{fn.__module__}.{fn.__qualname__}"] = fn
    return out


FUNCTIONS = public_functions()
WITH_OPTIONS = {
    name: fn
    for name, fn in FUNCTIONS.items()
    if _literal_params(inspect.unwrap(fn))
    or any(p in CONVENTIONS for p in inspect.signature(inspect.unwrap(fn)).parameters)
}


def test_the_api_walk_finds_the_known_option_functions() -> None:
    # Guards the walk itself: if it found nothing, the tests below would pass vacuously.
    names = {n.rsplit(".", 1)[-1] for n in WITH_OPTIONS}
    assert {"cache", "activation_patch", "direct_logit", "ablate", "sweep", "ioi"} <= names
    assert len(WITH_OPTIONS) >= 30


@pytest.mark.parametrize("name", sorted(WITH_OPTIONS))
def test_every_public_function_with_options_is_checked(name: str) -> None:
    assert getattr(WITH_OPTIONS[name], "__interp_checked__", False), (
        f"{name} takes a Literal option or a conventional parameter but has no @checked"
    )


def _call_with(fn: Callable[..., Any], **given: Any) -> None:
    """Call `fn` with None for every other required argument: the check must fire first."""
    sig = inspect.signature(inspect.unwrap(fn))
    args: dict[str, Any] = {}
    for p in sig.parameters.values():
        if p.name in given or p.default is not inspect.Parameter.empty:
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        args[p.name] = None
    args.update(given)
    if "self" in args:
        fn(*[args.pop("self")], **args)
    else:
        fn(**args)


LITERAL_CASES = [
    (name, param, values)
    for name, fn in sorted(WITH_OPTIONS.items())
    for param, (values, _) in _literal_params(inspect.unwrap(fn)).items()
]


@pytest.mark.parametrize(("name", "param", "values"), LITERAL_CASES)
def test_every_string_option_refuses_a_typo_with_the_valid_values(
    name: str, param: str, values: list[Any]
) -> None:
    typo = str(values[0])[:-1] + "x"
    with pytest.raises(InterpError) as err:
        _call_with(WITH_OPTIONS[name], **{param: typo})
    message = str(err.value)
    assert param in message and repr(typo) in message
    assert all(repr(v) in message for v in values)


BAD_CONVENTION_VALUES = {
    "n": 0,
    "n_boot": 0,
    "batch_size": 0,
    "k": 0,
    "projection_dim": 0,
    "max_new_tokens": 0,
    "n_restarts": 0,
    "chunk": 0,
    "seed": 1.5,
    "test_size": 0.0,
    "temperature": -1.0,
    "scale": math.nan,
    "rtol": -1e-3,
    "tol": math.inf,
    "lr": 0.0,
}


def test_every_convention_has_a_bad_value_here() -> None:
    assert set(BAD_CONVENTION_VALUES) == set(CONVENTIONS)


CONVENTION_CASES = [
    (name, p)
    for name, fn in sorted(WITH_OPTIONS.items())
    for p in inspect.signature(inspect.unwrap(fn)).parameters
    if p in CONVENTIONS
]


@pytest.mark.parametrize(("name", "param"), CONVENTION_CASES)
def test_every_conventional_parameter_refuses_a_bad_value_by_name(name: str, param: str) -> None:
    with pytest.raises(InterpError, match=param):
        _call_with(WITH_OPTIONS[name], **{param: BAD_CONVENTION_VALUES[param]})


# ------------------------------------------------------------------ named cases of the issue


def test_cache_refuses_which_typo_before_any_write(organism: Any, tmp_path: Any) -> None:
    task = interp.tasks.ioi(organism, n=4, seed=0)
    store = tmp_path / "acts"
    with pytest.raises(InterpError, match=r"which.*'clen'.*'clean', 'corrupt'.*Did you mean"):
        interp.cache(organism, task, which="clen", store=store)
    assert not store.exists()
    with pytest.raises(InterpError, match="which"):
        interp.cache(organism, task, which="Clean")


def test_a_valid_option_still_works(organism: Any) -> None:
    task = interp.tasks.ioi(organism, n=4, seed=0)
    acts = interp.cache(organism, task, names=["resid_post"], which="corrupt", progress=False)
    ref = organism.run_with_cache(task.corrupt_tokens)[1]
    name = "blocks.0.hook_resid_post"
    assert torch.equal(acts[name], ref[name])


def test_gaussian_noise_refuses_nan_scale_by_name() -> None:
    from interp.analyses.patching.runs import GaussianNoise

    with pytest.raises(InterpError, match="GaussianNoise: scale must be a finite number"):
        GaussianNoise([1], scale=float("nan"))
    with pytest.raises(InterpError, match="scale must be >= 0"):
        GaussianNoise([1], scale=-2.0)
    assert GaussianNoise([1], scale=0.5).scale == 0.5


def test_direct_logit_n_boot_zero_says_n_boot(organism: Any) -> None:
    task = interp.tasks.ioi(organism, n=4, seed=0)
    with pytest.raises(InterpError, match="n_boot must be at least 1, got 0"):
        interp.attribution.direct_logit(organism, task, n_boot=0)


def test_logit_lens_k_larger_than_the_vocabulary(organism: Any) -> None:
    task = interp.tasks.ioi(organism, n=4, seed=0)
    with pytest.raises(InterpError, match=rf"k=1000000 .* use k <= {organism.d_vocab_out}"):
        interp.attribution.logit_lens(organism, task, k=10**6)


def test_trajectory_evaluate_refuses_projection_dim_and_k_zero(organism: Any) -> None:
    task = interp.tasks.arithmetic(organism, n=4, seed=0)
    with pytest.raises(InterpError, match="projection_dim must be at least 1"):
        interp.trajectories.evaluate(organism, task, projection_dim=0)
    with pytest.raises(InterpError, match="k must be at least 1"):
        interp.trajectories.evaluate(organism, task, k=0)


@pytest.mark.parametrize(
    ("heads", "match"),
    [
        ((0, 1), r"heads=\(0, 1\) is one head given as a bare tuple.*heads=\[\(0, 1\)\]"),
        ([0, 1], r"heads: 0 is not a \(layer, head\) pair"),
        ([(0, 1, 2)], r"is not a \(layer, head\) pair"),
        ([[(0, 1)], 5], r"heads: 5 is not"),
        ([], "heads is empty"),
        ("eahc", r"heads=...\): got 'eahc'; use 'each'"),
    ],
)
def test_ablate_head_lists_are_explained(organism: Any, heads: Any, match: str) -> None:
    task = interp.tasks.ioi(organism, n=4, seed=0)
    with pytest.raises(InterpError, match=match):
        interp.attribution.ablate(organism, task, heads=heads)


def test_ablate_a_listed_head_matches_a_hand_ablation(organism: Any) -> None:
    # The accepted spelling still means what it did: one set, ablated together.
    task = interp.tasks.ioi(organism, n=4, seed=0)
    res = interp.attribution.ablate(organism, task, heads=[(0, 1)], how="zero", n_boot=10)
    name = organism.hook_name("z", 0)

    def zero(z: torch.Tensor, hook: Any) -> torch.Tensor:
        z = z.clone()
        z[:, :, 1] = 0
        return z

    metric = interp.tasks.logit_diff
    clean = metric(organism(task.clean_tokens), task)
    ablated = metric(organism.run_with_hooks(task.clean_tokens, fwd_hooks=[(name, zero)]), task)
    assert torch.allclose(res.values[0], (ablated - clean).mean(), atol=1e-5)


# ------------------------------------------------------------------ token ids


def test_cache_refuses_negative_token_ids(organism: Any) -> None:
    with pytest.raises(InterpError, match="-5"):
        interp.cache(organism, torch.tensor([[1, -5]]), progress=False)


def test_ids_beyond_the_vocabulary_are_refused_at_every_entry(organism: Any) -> None:
    big = organism.d_vocab
    tokens = torch.tensor([[1, 2, big]])
    task = interp.Task(tokens, answer_pos=torch.tensor([1]), answers=torch.tensor([[3, 4]]))
    with pytest.raises(InterpError, match=rf"token id {big} at index \(0, 2\)"):
        organism(tokens)
    with pytest.raises(InterpError, match=str(big)):
        organism.generate(tokens, max_new_tokens=1, verbose=False)
    with pytest.raises(InterpError, match=str(big)):
        interp.attribution.direct_logit(organism, task, n_boot=10)
    with pytest.raises(InterpError, match=str(big)):
        interp.cache(organism, task, progress=False)


def test_task_refuses_negative_ids_and_answer_positions_outside_the_prompt() -> None:
    with pytest.raises(InterpError, match="clean_tokens holds -5"):
        interp.Task(torch.tensor([[1, -5]]), answer_pos=torch.tensor([1]))
    with pytest.raises(InterpError, match=r"answer_pos\[1\] = 3 is outside prompt 1"):
        interp.Task(torch.tensor([[1, 2, 3], [4, 5, 6]]), answer_pos=torch.tensor([2, 3]))
    with pytest.raises(InterpError, match=r"answer_pos\[0\] = -1"):
        interp.Task(torch.tensor([[1, 2]]), answer_pos=torch.tensor([-1]))
    with pytest.raises(InterpError, match="integer tensor"):
        interp.Task(torch.tensor([[1.0, 2.0]]), answer_pos=torch.tensor([1]))
    with pytest.raises(InterpError, match="answers holds -1"):
        interp.Task(
            torch.tensor([[1, 2]]), answer_pos=torch.tensor([1]), answers=torch.tensor([[-1, 2]])
        )


def test_from_tokens_refuses_answer_pos_on_padding(organism: Any) -> None:
    with pytest.raises(InterpError, match="padding"):
        interp.Task.from_tokens(organism, [[1, 2, 3], [4, 5]], answer_pos=[2, 2])


# ------------------------------------------------------------------ found by a bad-input sweep


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m, t: interp.load_model("organism", device="tpu"), "device='tpu' is not a torch"),
        (lambda m, t: m.hook_name("z", m.n_layers), r"layer=\d+ does not exist"),
        (lambda m, t: interp.attribution.direct_logit(m, None), "task must be a Task"),
        (lambda m, t: interp.attribution.direct_logit(m, ["a b"]), "got list"),
        (lambda m, t: interp.attribution.attention_patterns(m, t, [(0,)]), r"\(0,\) is not a"),
        (
            lambda m, t: interp.probes.sweep(m, interp.tasks.facts(m, n=8), contrast=(" a", " b")),
            "probe='logistic' does not use them",
        ),
    ],
)
def test_swept_bad_inputs_say_what_to_do(organism: Any, call: Any, match: str) -> None:
    task = interp.tasks.ioi(organism, n=4, seed=0)
    with pytest.raises(InterpError, match=match):
        call(organism, task)


def test_sel_refuses_an_axis_the_result_does_not_have(organism: Any) -> None:
    res = interp.attribution.direct_logit(organism, interp.tasks.ioi(organism, n=4), n_boot=10)
    with pytest.raises(InterpError, match=r"\['heads'\] are not axes"):
        res.sel(heads=1)
    assert res.sel(layer=1, head=2) == res.values[1, 2]


def test_negative_layers_count_from_the_end(organism: Any) -> None:
    assert organism.hook_name("z", -1) == organism.hook_name("z", organism.n_layers - 1)


def test_a_transformer_lens_model_is_still_accepted_where_model_is_annotated(organism: Any) -> None:
    # `model: Model` parameters go through load_model, which converts TransformerLens objects.
    task = interp.tasks.ioi(organism, n=4, seed=0)
    ref = interp.attribution.direct_logit(organism, task, n_boot=10)
    res = interp.attribution.direct_logit(organism.tl, task, n_boot=10)
    assert torch.equal(res.values, ref.values)
