"""Indirect object identification (Wang et al. 2022) in both name orders, with two corruptions."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from interp.checks import checked
from interp.errors import InterpError
from interp.tasks.common import single_token_words
from interp.tasks.task import Task
from interp.tasks.words import IOI_TEMPLATES, NAMES, OBJECTS, PLACES

Corruption = Literal["abc", "swap"]


@dataclass(frozen=True)
class IOIExample:
    """One prompt: `io` is the indirect object (the answer), `s` the repeated subject."""

    template: int
    order: str  # "ABBA": IO first; "BABA": S first
    io: str
    s: str
    place: str
    obj: str
    clean: str
    corrupt: str


def render(template: str, a: str, b: str, s: str, place: str, obj: str) -> str:
    return template.format(A=a, B=b, S=s, PLACE=place, OBJECT=obj)


def sample_ioi(
    n: int,
    seed: int,
    names: Sequence[str] = NAMES,
    places: Sequence[str] = PLACES,
    objects: Sequence[str] = OBJECTS,
    templates: Sequence[int] | None = None,
    corruption: Corruption = "abc",
) -> list[IOIExample]:
    """Tokenizer-free IOI examples; half ABBA, half BABA (alternating)."""
    rng = random.Random(seed)
    ids = list(range(len(IOI_TEMPLATES))) if templates is None else list(templates)
    out = []
    for i in range(n):
        t = ids[rng.randrange(len(ids))]
        io, s, c1, c2, c3 = rng.sample(list(names), 5)
        place, obj = rng.choice(list(places)), rng.choice(list(objects))
        order = "ABBA" if i % 2 == 0 else "BABA"
        a, b = (io, s) if order == "ABBA" else (s, io)
        tmpl = IOI_TEMPLATES[t]
        clean = render(tmpl, a, b, s, place, obj)
        if corruption == "abc":
            # Three fresh names: no name is repeated, so nothing marks an indirect object.
            corrupt = render(tmpl, c1, c2, c3, place, obj)
        else:
            # Swap IO and S everywhere: the same sentence shape with the answer reversed.
            a2, b2 = (s, io) if order == "ABBA" else (io, s)
            corrupt = render(tmpl, a2, b2, io, place, obj)
        out.append(IOIExample(t, order, io, s, place, obj, clean, corrupt))
    return out


@checked
def ioi(
    model: Any,
    n: int = 64,
    seed: int = 0,
    corruption: Corruption = "abc",
    templates: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
    places: Sequence[str] | None = None,
    objects: Sequence[str] | None = None,
) -> Task:
    """IOI prompts such as "Then, Mary and John went to the store. John gave a drink to".

    The answer pair is (IO, S): logit difference > 0 means the model picks the indirect object.
    Names are kept only if they are single tokens (with leading space) for this model, so clean
    and corrupted prompts always have equal token length.

    Args:
        model: model handle (its tokenizer filters the word lists).
        n: number of prompts (alternating ABBA and BABA name orders).
        seed: random seed; the same seed gives the same task.
        corruption: ``"abc"`` (three unrelated names) or ``"swap"`` (IO and S exchanged).
        templates: indices into ``IOI_TEMPLATES`` to use (default: all of them). Use a single
            template when you need every prompt to have the same token positions.
        names / places / objects: override the word lists.
    """
    if templates is not None:
        bad = [t for t in templates if not 0 <= t < len(IOI_TEMPLATES)]
        if bad or not templates:
            raise InterpError(f"ioi: templates must be indices in 0..{len(IOI_TEMPLATES) - 1}.")
    name_list = single_token_words(model, names or NAMES, "names", 5)
    place_list = list(places or PLACES)
    obj_list = list(objects or OBJECTS)
    examples = sample_ioi(n, seed, name_list, place_list, obj_list, templates, corruption)
    return Task.from_prompts(
        model,
        clean=[e.clean for e in examples],
        corrupt=[e.corrupt for e in examples],
        answers=[(" " + e.io, " " + e.s) for e in examples],
        groups=[f"t{e.template}" for e in examples],
        name="ioi",
        metadata={
            "generator": "ioi",
            "seed": seed,
            "corruption": corruption,
            "orders": [e.order for e in examples],
            "templates": [e.template for e in examples],
        },
    )
