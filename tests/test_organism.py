"""The shipped organism meets its card; the recipe trains end to end."""

from __future__ import annotations

import dataclasses
import inspect
import json
import random

import pytest
import torch
from typer.testing import CliRunner

import interp
from interp.cli import app, train_organism
from interp.errors import InterpError
from interp.models import organism_dir
from interp.organism.data import INDUCTION_MAX_LEN, MAX_LEN, MIXTURE, Mixture
from interp.organism.evaluate import ACCEPTANCE, acceptance, evaluate
from interp.organism.train import MONITOR_LEN, Recipe, best_induction_head, induction_rows, train
from interp.organism.vocab import build_tokenizer
from interp.tasks.facts import ATTRIBUTES


@pytest.fixture(scope="module")
def organism():
    return interp.load_model("organism", device="cpu")


def test_shipped_files_and_size():
    path = organism_dir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "card.json", "card.md"):
        assert (path / name).exists(), name
    assert (path / "model.safetensors").stat().st_size <= 25 * 2**20
    card = json.loads((path / "card.json").read_text())
    assert set(card["acceptance"]) == set(ACCEPTANCE)
    failed = {k for k, v in card["acceptance"].items() if not v["pass"]}
    assert not failed and card["all_pass"], failed
    assert card["training_seconds"] <= 45 * 60
    # Two stages: the default recipe from scratch, then a short continuation on repeats placed
    # after a random lead and gap (docs/organism.md).
    first, second = card["stages"]
    assert first["recipe"] == dataclasses.asdict(Recipe()) and first["mixture"] == MIXTURE
    assert second["recipe"]["init_from"] and second["recipe"]["induction_gaps"]
    assert [first["recipe"]["steps"], second["recipe"]["steps"]] == [8000, 2000]
    # The 45-minute budget covers both stages.
    stages_s = first["training_seconds"] + second["training_seconds"]
    assert card["training_seconds"] == pytest.approx(stages_s, abs=0.2)


def test_organism_loads_through_the_local_directory_path(organism):
    assert organism.name == "organism" and organism.backend == "HookedTransformer"
    assert [st["recipe"]["seed"] for st in organism.card["stages"]] == [0, 1]
    assert organism.to_single_token(" Mary") == organism.tokenizer.convert_tokens_to_ids("Mary")


def test_organism_meets_its_card_on_a_small_sample(organism):
    """Every acceptance check on a fresh sample (another seed than the card's)."""
    verdict = acceptance(evaluate(organism, n=60, seed=123))
    failed = {k: v for k, v in verdict.items() if not v["pass"]}
    assert not failed, failed


def test_organism_copies_by_content(organism):
    """Ground truth for every induction analysis (docs/organism.md): the organism copies a
    repeat by content, predicting the word after the earlier occurrence of the current word,
    once an earlier word of the copy has already repeated. A word changed in the middle of the
    second copy costs the prediction of that word and of the next (whose query word never
    occurred before); a changed first word of the second copy, or one extra word before the
    first copy, costs only the predictions up to the first repeated word, and copying resumes.
    (The model before it copied only from where the sequence's first word recurred, and then
    by position: the last two perturbations stopped its copying for the whole second copy.)"""
    mix = Mixture(organism.tokenizer)
    rng = random.Random(0)
    T, n = 12, 48
    seqs = [rng.sample(mix.pool, T + 1) for _ in range(n)]  # T words and one spare

    def copied(rows: list[list[int]], at: range) -> list[float]:
        x = torch.tensor(rows)
        with torch.no_grad():
            pred = organism.tl(x).argmax(-1)
        return [float((pred[:, p] == x[:, p + 1]).float().mean()) for p in at]

    second = range(T + 1, 2 * T)  # predicting the 2nd..T-th word of the second copy
    clean = copied([[mix.bos, *s[:T], *s[:T]] for s in seqs], second)
    middle = copied([[mix.bos, *s[:T], *s[:5], s[T], *s[6:T]] for s in seqs], second)
    first = copied([[mix.bos, *s[:T], s[T], *s[1:T]] for s in seqs], second)
    lead = copied([[mix.bos, s[T], *s[:T], *s[: T - 1]] for s in seqs], range(T + 2, 2 * T))
    assert min(clean) > 0.9, clean
    # Predicting the changed 6th word, then the word after it: both lost, the rest copied.
    assert max(middle[4:6]) < 0.2 and min(middle[:4] + middle[6:]) > 0.85, middle
    assert max(first[:2]) < 0.2 and min(first[2:]) > 0.85, first
    assert lead[0] < 0.2 and min(lead[1:]) > 0.85, lead


def test_train_organism_defaults_are_the_recipe():
    """`interp train-organism` with no flags trains what the card records (the CLI keeps its
    defaults as literals so that `interp --help` does not import torch)."""
    params = inspect.signature(train_organism).parameters
    recipe = Recipe()
    for name in ("seed", "steps", "batch_size", "lr", "induction_max_len", "ioi_orders"):
        assert params[name].default == getattr(recipe, name), name
    assert params["induction_gaps"].default is recipe.induction_gaps


def test_info_prints_the_card():
    out = CliRunner().invoke(app, ["info", "organism", "--no-hooks"])
    assert out.exit_code == 0, out.output
    assert "Acceptance (held-out prompts)" in out.output and "ioi_mean_logit_diff" in out.output


def test_short_training_run_lowers_the_loss(tmp_path):
    recipe = Recipe(
        n_layer=2, n_embd=64, n_head=4, steps=40, batch_size=16, eval_every=20, warmup=5
    )
    card = train(tmp_path / "org", recipe, progress=False, evaluate_n=8, command="test")
    hist = card["history"]
    assert len(hist) == 2 and card["final_loss"] < card["first_loss"] - 0.5
    assert all(
        0 <= h["induction_head_score"] <= 1 and h["induction_head"][:3] in ("L0H", "L1H")
        for h in hist
    )
    for task in MIXTURE:
        assert hist[-1][task] < hist[0][task] + 0.05, task
    model = interp.load_model(tmp_path / "org", device="cpu")
    assert model.n_layers == 2 and (tmp_path / "org" / "card.md").read_text().startswith(
        "# The organism"
    )
    assert not list(tmp_path.glob(".org.*"))  # no temporary directory left behind


def test_false_statements_never_teach_the_false_value():
    """A false statement's value is input but carries no loss; true statements are learned whole."""
    tok = build_tokenizer()
    ids, labels = Mixture(tok, seed=3, weights={"statements": 1.0}).batch(64)
    false_id = tok.convert_tokens_to_ids("false")
    values = {tok.convert_tokens_to_ids(v) for vs in ATTRIBUTES.values() for v in vs}
    n_false = 0
    for row, lab in zip(ids.tolist(), labels.tolist(), strict=True):
        at_value = [i for i, t in enumerate(row) if t in values]
        assert len(at_value) == 1
        answer = row.index(tok.eos_token_id) - 1  # the template itself says "True or false"
        is_false = row[answer] == false_id
        n_false += is_false
        assert (lab[at_value[0]] == -100) == is_false
        assert all(lab[i] == row[i] for i in range(len(row)) if i != at_value[0] and row[i] != 0)
    assert 16 < n_false < 48


def test_training_rejects_bad_recipes(tmp_path):
    with pytest.raises(InterpError, match="divisible"):
        train(tmp_path / "x", Recipe(n_embd=30, n_head=4, steps=1), progress=False)
    with pytest.raises(InterpError, match="positive"):
        train(tmp_path / "x", Recipe(steps=0), progress=False)
    assert not (tmp_path / "x").exists()


def test_training_monitor_scores_heads_like_the_detector(organism):
    """The induction score tracked during training (Hugging Face attentions of the model being
    trained) equals an explicit loop over TransformerLens' patterns of the same weights."""
    from transformers import GPT2LMHeadModel

    rows = induction_rows(Mixture(build_tokenizer(), seed=0), n=8)
    T = MONITOR_LEN
    got = best_induction_head(GPT2LMHeadModel.from_pretrained(str(organism_dir())), rows)
    _, cache = organism.run_with_cache(rows, names_filter=lambda n: n.endswith("hook_pattern"))
    scores = {}
    for layer in range(organism.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]  # [batch, head, q, k]
        for head in range(organism.n_heads):
            # From each query in the second copy to the key right after its earlier occurrence.
            vals = [pattern[:, head, q, q - T + 1] for q in range(1 + T, 1 + 2 * T)]
            scores[f"L{layer}H{head}"] = float(torch.stack(vals).mean())
    best = max(scores, key=scores.__getitem__)
    assert got["induction_head"] == best
    assert got["induction_head_score"] == pytest.approx(scores[best], abs=1e-4)
    # Ground truth: the shipped organism's induction heads are in its last layer.
    assert best.startswith("L3") and scores[best] > 0.5


def test_gapped_induction_sequences_repeat_after_a_lead_and_gap():
    """--induction-gaps: [bos, lead, r, gap, r, eos] with fresh words in lead and gap, so only
    content locates the earlier copy; deterministic per seed; the default layout is unchanged."""
    tok = build_tokenizer()
    mix = Mixture(
        tok, seed=5, weights={"induction": 1.0}, induction_gaps=True, induction_max_len=20
    )
    gaps = []
    for _ in range(300):
        row = mix.induction()
        assert row[0] == tok.bos_token_id and row[-1] == tok.eos_token_id and len(row) <= 64
        body = row[1:-1]
        assert len(set(body)) < len(body)  # something repeats
        # The repeat: the first repeated word starts the first copy; its second occurrence the
        # second copy, which runs to the end.
        first = next(i for i, w in enumerate(body) if body.count(w) == 2)
        second = body.index(body[first], first + 1)
        t = len(body) - second
        assert body[first : first + t] == body[second:] and 4 <= t <= 20
        extra = body[:first] + body[first + t : second]
        assert len(set(extra)) == len(extra) and not set(extra) & set(body[second:])
        assert first <= 8
        gaps.append(second - first - t)
    assert 0.2 < sum(g == 0 for g in gaps) / len(gaps) < 0.4 and max(gaps) > 8
    again = Mixture(tok, seed=5, weights={"induction": 1.0}, induction_gaps=True)
    fresh = Mixture(tok, seed=5, weights={"induction": 1.0}, induction_gaps=True)
    assert [again.induction() for _ in range(5)] == [fresh.induction() for _ in range(5)]
    plain = Mixture(tok, seed=5, weights={"induction": 1.0}).induction()[1:-1]
    t = next(k for k in range(4, INDUCTION_MAX_LEN + 1) if plain[:k] == plain[k : 2 * k])
    assert plain == plain[:t] * (len(plain) // t)


def test_induction_max_len_sets_the_longest_repeat():
    """--induction-max-len N: repeated runs of 4..N words (default 28, the shipped recipe), back
    to back or gapped; out-of-range values are refused before anything is trained."""
    tok = build_tokenizer()

    def run_length(seq: list[int]) -> int:
        body = seq[1:-1]
        return next(k for k in range(4, 32) if body[:k] == body[k : 2 * k])

    for top, gaps in ((20, False), (28, False), (31, False), (31, True)):
        mix = Mixture(
            tok, seed=3, weights={"induction": 1.0}, induction_max_len=top, induction_gaps=gaps
        )
        seqs = [mix.induction() for _ in range(300)]
        assert all(len(s) <= MAX_LEN for s in seqs)
        if not gaps:
            lengths = {run_length(s) for s in seqs}
            assert min(lengths) == 4 and max(lengths) == top
    for bad in (3, 32):
        with pytest.raises(InterpError, match="induction_max_len"):
            Mixture(tok, induction_max_len=bad)


def test_ioi_orders_abba_puts_the_indirect_object_first():
    """--ioi-orders abba (a curriculum's first stage): every IOI training prompt names the
    indirect object (the answer, last word) first; the default trains both orders."""
    from interp.tasks.words import NAMES

    tok = build_tokenizer()
    names = set(NAMES)

    def io_first(mix: Mixture) -> bool:
        words = tok.decode(mix.ioi()[1:-1]).split()
        return next(w for w in words if w in names) == words[-1]

    abba = Mixture(tok, seed=2, weights={"ioi": 1.0}, ioi_orders="abba")
    assert all(io_first(abba) for _ in range(100))
    both = Mixture(tok, seed=2, weights={"ioi": 1.0})
    share = sum(io_first(both) for _ in range(200)) / 200
    assert 0.35 < share < 0.65
    with pytest.raises(InterpError, match="'both' or 'abba'"):
        Mixture(tok, ioi_orders="baba")
