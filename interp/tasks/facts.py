"""A synthetic world of people with a city and a job: recall questions and true/false statements."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from interp.checks import checked
from interp.tasks.common import single_token_words
from interp.tasks.task import Task
from interp.tasks.words import (
    CITIES,
    JOBS,
    NAMES,
    RECALL_TEMPLATES,
    STATEMENT_TEMPLATES,
    TRUE_FALSE,
)

ATTRIBUTES = {"city": CITIES, "job": JOBS}
WORLD_PEOPLE = NAMES[:32]


def make_world(seed: int = 0, people: Sequence[str] = WORLD_PEOPLE) -> dict[str, dict[str, str]]:
    """Each person gets one city and one job, drawn with a fixed seed (the organism's world)."""
    rng = random.Random(seed)
    return {p: {attr: rng.choice(vals) for attr, vals in ATTRIBUTES.items()} for p in people}


def held_out(person: str, attr: str, value: str) -> bool:
    """Half of the false statements are never trained on; evaluation uses only those."""
    return sum(map(ord, f"{person}|{attr}|{value}")) % 2 == 0


@dataclass(frozen=True)
class Statement:
    person: str
    attr: str
    value: str
    true: bool

    @property
    def text(self) -> str:
        return STATEMENT_TEMPLATES[self.attr].format(P=self.person, X=self.value)


def sample_statements(
    n: int, seed: int, world: dict[str, dict[str, str]], split: Literal["train", "eval", "all"]
) -> list[Statement]:
    """Balanced true/false statements; false ones come from the train or the held-out half."""
    rng = random.Random(seed)
    people = sorted(world)
    out: list[Statement] = []
    while len(out) < n:
        p, attr = rng.choice(people), rng.choice(sorted(ATTRIBUTES))
        truth = len(out) % 2 == 0
        if truth:
            out.append(Statement(p, attr, world[p][attr], True))
            continue
        wrong = [
            v
            for v in ATTRIBUTES[attr]
            if v != world[p][attr] and (split == "all" or held_out(p, attr, v) == (split == "eval"))
        ]
        if wrong:
            out.append(Statement(p, attr, rng.choice(wrong), False))
    return out


@checked
def facts(
    model: Any,
    n: int = 64,
    seed: int = 0,
    kind: Literal["recall", "statements"] = "statements",
    world_seed: int = 0,
    split: Literal["train", "eval", "all"] = "eval",
) -> Task:
    """Questions about the synthetic world.

    ``kind="recall"``: "Q: Where does Mary live? A:" with answers (true value, another value);
    the corruption asks about a person with a different value.
    ``kind="statements"``: "Mary lives in Paris. True or false? A:" with answers
    (" true", " false") ordered so the correct judgement comes first, and ``labels`` = truth
    (1/0) for probing; the corruption changes the value so the truth flips.

    Args:
        model: model handle.
        n: number of prompts (statements alternate true and false).
        seed: random seed.
        kind: "recall" or "statements".
        world_seed: which world (the organism is trained on world 0).
        split: for statements, draw false ones from the held-out half ("eval", default), the
            trained half ("train"), or both ("all").
    """
    people = single_token_words(model, WORLD_PEOPLE, "people", 4)
    for attr, values in ATTRIBUTES.items():
        single_token_words(model, values, f"{attr} values", len(values))
    world = make_world(world_seed, people)
    rng = random.Random(seed + 1)
    if kind == "recall":
        clean, corrupt, answers, groups = [], [], [], []
        for _ in range(n):
            p, attr = rng.choice(sorted(world)), rng.choice(sorted(ATTRIBUTES))
            others = [q for q in sorted(world) if world[q][attr] != world[p][attr]]
            q = rng.choice(others)
            clean.append(RECALL_TEMPLATES[attr].format(P=p))
            corrupt.append(RECALL_TEMPLATES[attr].format(P=q))
            answers.append((" " + world[p][attr], " " + world[q][attr]))
            groups.append(attr)
        return Task.from_prompts(
            model,
            clean=clean,
            corrupt=corrupt,
            answers=answers,
            groups=groups,
            name="facts",
            metadata={"generator": "facts", "kind": kind, "seed": seed, "world_seed": world_seed},
        )
    stmts = sample_statements(n, seed, world, split)
    flipped = []
    for s in stmts:
        if s.true:
            value = rng.choice([v for v in ATTRIBUTES[s.attr] if v != s.value])
        else:
            value = world[s.person][s.attr]
        flipped.append(Statement(s.person, s.attr, value, not s.true).text)
    yes, no = (" " + w for w in TRUE_FALSE)
    return Task.from_prompts(
        model,
        clean=[s.text for s in stmts],
        corrupt=flipped,
        answers=[(yes, no) if s.true else (no, yes) for s in stmts],
        labels=torch.tensor([int(s.true) for s in stmts]),
        groups=[s.attr for s in stmts],
        name="facts",
        metadata={
            "generator": "facts",
            "kind": kind,
            "seed": seed,
            "world_seed": world_seed,
            "split": split,
            # The completions a contrastive probe (CCS) compares: the statement's answer words.
            "contrast": (yes, no),
        },
    )
