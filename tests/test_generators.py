from __future__ import annotations

import pytest
import torch

import interp
from interp.errors import InterpError
from interp.tasks.arithmetic import Sum, check_answer
from interp.tasks.facts import ATTRIBUTES, held_out, make_world, sample_statements
from interp.tasks.ioi import sample_ioi
from interp.tasks.words import IOI_TEMPLATES, NAMES


def test_ioi_on_real_gpt2_tokenizer(gpt2_random):
    m = gpt2_random
    task = interp.tasks.ioi(m, n=48, seed=0)
    assert task.corrupt_tokens.shape == task.clean_tokens.shape
    assert len(IOI_TEMPLATES) >= 10 and len(set(task.metadata["templates"])) >= 10
    assert set(task.metadata["orders"]) == {"ABBA", "BABA"}
    for i in range(len(task)):
        io, s = (m.tokenizer.decode([int(t)]) for t in task.answers[i])
        assert (
            io.startswith(" ") and s.startswith(" ") and io.strip() in NAMES and s.strip() in NAMES
        )
        clean = task.clean_prompts[i]
        assert clean.count(io.strip()) == 1 and clean.count(s.strip()) == 2
        # Prompt ends right before the IO; clean and corrupt agree on length at every prompt.
        n_clean = len(m.to_tokens(clean)[0])
        assert n_clean == len(m.to_tokens(task.corrupt_prompts[i])[0]) == task.answer_pos[i] + 1
        for name in (io.strip(), s.strip()):
            assert len(m.tokenizer.encode(" " + name, add_special_tokens=False)) == 1
    # ABC corruption: three distinct names, none repeated.
    corrupt = task.corrupt_prompts[0]
    assert sum(corrupt.count(n) for n in NAMES if f" {n} " in f" {corrupt} ") >= 3


def test_ioi_swap_flips_the_answer(gpt2_random):
    t = interp.tasks.ioi(gpt2_random, n=4, seed=1, corruption="swap", templates=[0])
    ex = sample_ioi(4, 1, corruption="swap", templates=[0])
    for e in ex:
        assert e.corrupt == IOI_TEMPLATES[0].format(
            A=e.s if e.order == "ABBA" else e.io,
            B=e.io if e.order == "ABBA" else e.s,
            S=e.io,
            PLACE=e.place,
            OBJECT=e.obj,
        )
    assert t.clean_tokens.shape[1] == t.corrupt_tokens.shape[1]


def test_generators_are_deterministic_per_seed(gpt2_random):
    for gen, kw in [
        (interp.tasks.ioi, {}),
        (interp.tasks.arithmetic, {"digits": (2, 3)}),
        (interp.tasks.facts, {}),
        (interp.tasks.facts, {"kind": "recall"}),
        (interp.tasks.induction, {}),
    ]:
        a, b, c = (
            gen(gpt2_random, n=8, seed=5, **kw),
            gen(gpt2_random, n=8, seed=5, **kw),
            gen(gpt2_random, n=8, seed=6, **kw),
        )
        assert a.clean_prompts == b.clean_prompts and torch.equal(a.clean_tokens, b.clean_tokens)
        assert a.clean_prompts != c.clean_prompts, gen.__name__


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: interp.tasks.ioi(m, n=0), "ioi: n must be at least 1, got 0"),
        (lambda m: interp.tasks.ioi(m, n=4, corruption="noise"), r"corruption=...\): got 'noise'"),
        (lambda m: interp.tasks.ioi(m, n=4, templates=[99]), "templates must be indices"),
        (lambda m: interp.tasks.ioi(m, n=4, names=["Mary", "Zyxwvutsq"]), "single tokens"),
        (lambda m: interp.tasks.arithmetic(m, n=4, digits=0), "digits must be"),
        (lambda m: interp.tasks.arithmetic(m, n=-1), "n must be at least 1, got -1"),
        (lambda m: interp.tasks.facts(m, n=4, kind="opinion"), r"kind=...\): got 'opinion'"),
        (lambda m: interp.tasks.induction(m, n=0), "at least 1"),
    ],
)
def test_generators_reject_bad_arguments(gpt2_random, call, message):
    with pytest.raises(InterpError, match=message):
        call(gpt2_random)


def test_arithmetic_solution_and_checker(gpt2_random):
    s = Sum(347, 589)
    assert s.solution == " 7 + 9 = 16 , 4 + 8 + 1 = 13 , 3 + 5 + 1 = 9 , so 936"
    assert Sum(5, 7).solution == " 5 + 7 = 12 , so 12"
    assert check_answer(s.solution, "936")
    assert check_answer(" ... , so 9 3 6", "936")  # word-level tokenizers decode with spaces
    assert not check_answer(" 7 + 9 = 16 , so 935", "936")
    assert not check_answer(" 7 + 9 = 16 , 4 + 8", "936")  # never reached an answer
    task = interp.tasks.arithmetic(gpt2_random, n=20, seed=0, digits=3)
    assert task.checker is check_answer
    for prompt, target in zip(task.clean_prompts, task.targets, strict=True):
        a, b = (int(x) for x in prompt.rstrip(" =").split(" + "))
        assert 100 <= a <= 999 and 100 <= b <= 999 and int(target) == a + b


def test_facts_world_statements_and_held_out_split(gpt2_random):
    world = make_world(0)
    assert make_world(0) == world and make_world(1) != world
    train = sample_statements(200, 0, world, "train")
    evals = sample_statements(200, 0, world, "eval")
    for s in train + evals:
        assert (world[s.person][s.attr] == s.value) == s.true
    assert not any(held_out(s.person, s.attr, s.value) for s in train if not s.true)
    assert all(held_out(s.person, s.attr, s.value) for s in evals if not s.true)
    task = interp.tasks.facts(gpt2_random, n=10, seed=0)
    assert task.labels.tolist() == [1, 0] * 5
    yes = gpt2_random.to_single_token(" true")
    assert [int(a[0] == yes) for a in task.answers] == task.labels.tolist()
    recall = interp.tasks.facts(gpt2_random, n=6, seed=0, kind="recall")
    for p, (right, wrong), attr in zip(
        recall.clean_prompts, recall.answers, recall.groups, strict=True
    ):
        person = p.split()[3]  # "Q: Where does Mary live?" / "Q: What does Mary work as?"
        assert gpt2_random.tokenizer.decode([int(right)]).strip() == world[person][attr]
        assert right != wrong and attr in ATTRIBUTES
