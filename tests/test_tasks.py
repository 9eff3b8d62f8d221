from __future__ import annotations

import pytest
import torch

import interp
import interp.tasks.registry
from interp.errors import InterpError
from interp.tasks import (
    Task,
    denoise_score,
    get_metric,
    kl_to,
    log_prob,
    logit_diff,
    noise_score,
    prob,
)
from interp.tasks.induction import induction


def test_from_prompts_tokenises_pads_and_finds_answers(gpt2_random):
    m = gpt2_random
    t = Task.from_prompts(
        m,
        clean=["When Mary and John went to the store, John gave a drink to", "Hello"],
        corrupt=["When Alice and Bob went to the store, Bob gave a drink to", "Hi"],
        answers=[(" Mary", " John"), (" world", " there")],
        labels=[1, 0],
    )
    n_long = len(m.to_tokens(t.clean_prompts[0])[0])
    assert t.clean_tokens.shape == (2, n_long)
    assert t.answer_pos.tolist() == [n_long - 1, 1]  # BOS + "Hello"
    assert t.answers[0].tolist() == [
        m.tokenizer.encode(" Mary", add_special_tokens=False)[0],
        m.tokenizer.encode(" John", add_special_tokens=False)[0],
    ]
    sub = t[[1]]
    assert len(sub) == 1 and sub.clean_prompts == ["Hello"] and sub.labels.tolist() == [0]


def test_unequal_clean_and_corrupt_lengths_name_the_prompt(gpt2_random):
    with pytest.raises(InterpError, match=r"Prompt 1: clean 'b c' is 3 tokens but corrupted"):
        Task.from_prompts(gpt2_random, clean=["a", "b c"], corrupt=["x", "Mississippi river"])


def test_multi_token_answer_is_rejected(gpt2_random):
    with pytest.raises(InterpError, match=r"Prompt 0: Answer ' Zyxwvuts' is \d+ tokens"):
        Task.from_prompts(gpt2_random, clean=["a b"], answers=[(" Zyxwvuts", " John")])


def test_answer_id_outside_vocabulary(gpt2_random):
    with pytest.raises(InterpError, match="outside the vocabulary"):
        Task.from_prompts(gpt2_random, clean=["a b"], answers=[(10**6, 1)])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clean": []}, "No clean prompts"),
        ({"clean": ["a"], "corrupt": ["a", "b"]}, "one corrupted prompt per clean"),
        ({"clean": ["a"], "answers": [(" a", " b"), (" c", " d")]}, "2 answers for 1 prompts"),
        ({"clean": [""]}, "empty prompt"),
        ({"clean": "a single string"}, "list of prompts"),
    ],
)
def test_bad_task_input(gpt2_random, kwargs, message):
    with pytest.raises(InterpError, match=message):
        Task.from_prompts(gpt2_random, **kwargs)


def test_prompt_longer_than_context(gpt2_random):
    long = " word" * 100  # the fixture's context is 64
    with pytest.raises(InterpError, match=r"Clean prompt 1 is 101 tokens .* context of 64"):
        Task.from_prompts(gpt2_random, clean=["fine", long])


def test_metrics_against_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11)
    task = Task(
        clean_tokens=torch.zeros(3, 5, dtype=torch.long),
        answer_pos=torch.tensor([4, 2, 0]),
        answers=torch.tensor([[1, 2], [3, 4], [5, 6]]),
    )
    for b, (pos, (c, i)) in enumerate(zip([4, 2, 0], [(1, 2), (3, 4), (5, 6)], strict=True)):
        assert logit_diff(logits, task)[b] == logits[b, pos, c] - logits[b, pos, i]
        lp = torch.log_softmax(logits[b, pos], -1)[c]
        assert torch.isclose(log_prob(logits, task)[b], lp)
        assert torch.isclose(prob(logits, task)[b], lp.exp())
    assert torch.allclose(kl_to(logits)(logits, task), torch.zeros(3), atol=1e-6)
    other = torch.randn(3, 5, 11)
    p = torch.log_softmax(logits[torch.arange(3), task.answer_pos], -1)
    q = torch.log_softmax(other[torch.arange(3), task.answer_pos], -1)
    expected = (p.exp() * (p - q)).sum(-1)
    assert torch.allclose(get_metric("kl", logits)(other, task), expected, atol=1e-6)
    assert get_metric("logit_diff") is logit_diff
    with pytest.raises(InterpError, match=r"metric: got 'accuracy'; use one of 'logit_diff'"):
        get_metric("accuracy")
    with pytest.raises(InterpError, match="reference logits"):
        get_metric("kl")


def test_normalised_scores():
    clean, corrupt = torch.tensor(3.0), torch.tensor(-1.0)
    assert denoise_score(corrupt, clean, corrupt) == 0 and denoise_score(clean, clean, corrupt) == 1
    assert noise_score(clean, clean, corrupt) == 0 and noise_score(corrupt, clean, corrupt) == -1
    assert denoise_score(torch.tensor(1.0), clean, corrupt) == 0.5
    with pytest.raises(InterpError, match="undefined"):
        denoise_score(clean, clean, clean)


def test_induction_generator_is_deterministic_and_well_formed(gpt2_random):
    a = induction(gpt2_random, n=6, seq_len=5, seed=3)
    b = induction(gpt2_random, n=6, seq_len=5, seed=3)
    c = induction(gpt2_random, n=6, seq_len=5, seed=4)
    assert torch.equal(a.clean_tokens, b.clean_tokens) and not torch.equal(
        a.clean_tokens, c.clean_tokens
    )
    # [BOS, r1..r5, r1..r4]: the second half repeats the first, the answer is r5.
    toks = a.clean_tokens
    assert toks.shape == (6, 10)
    assert torch.equal(toks[:, 1:5], toks[:, 6:10])
    assert torch.equal(a.answers[:, 0], toks[:, 5])
    assert (a.answers[:, 0] != a.answers[:, 1]).all()
    assert a.corrupt_tokens.shape == toks.shape and torch.equal(
        a.corrupt_tokens[:, 6:], toks[:, 6:]
    )
    assert not torch.equal(a.corrupt_tokens[:, 1:6], toks[:, 1:6])
    # Whole-word tokens: the prompt text re-encodes to exactly the same ids.
    assert gpt2_random.to_tokens(a.clean_prompts[0])[0].tolist() == toks[0].tolist()
    with pytest.raises(InterpError, match="seq_len"):
        induction(gpt2_random, n=2, seq_len=1)
    with pytest.raises(InterpError, match="exceed"):
        induction(gpt2_random, n=2, seq_len=40)


# ---------------------------------------------------------------- Task.from_tokens
def test_from_tokens_pads_ragged_rows_and_reads_answers_at_the_last_real_token(notok):
    t = Task.from_tokens(
        notok,
        clean=[[5, 9, 2, 7], [5, 3, 8]],
        corrupt=[[5, 1, 2, 7], [5, 4, 8]],
        answers=[(9, 1), 3],
        labels=[1, 0],
        groups=["a", "b"],
    )
    assert t.clean_tokens.tolist() == [[5, 9, 2, 7], [5, 3, 8, notok.pad_id]]
    assert t.corrupt_tokens.tolist() == [[5, 1, 2, 7], [5, 4, 8, notok.pad_id]]
    assert t.answer_pos.tolist() == [3, 2]
    assert t.answers.tolist() == [[9, 1], [3, 3]]
    assert t.labels.tolist() == [1, 0] and t.groups == ["a", "b"]
    assert t.clean_prompts == [] and t[1].clean_tokens.tolist() == [[5, 3, 8, notok.pad_id]]
    # Without a tokenizer, tokens are labelled by id.
    assert notok.to_str_tokens(t.clean_tokens[1, :3]) == ["#5", "#3", "#8"]
    # A tensor is used as is: every row full length; answer positions may be given.
    x = torch.tensor([[1, 2, 3], [4, 5, 6]])
    u = Task.from_tokens(notok, clean=x, answers=torch.tensor([[7, 8], [9, 10]]), answer_pos=[1, 2])
    assert torch.equal(u.clean_tokens, x) and u.answer_pos.tolist() == [1, 2]
    assert u.answers.tolist() == [[7, 8], [9, 10]] and u.corrupt_tokens is None
    v = Task.from_tokens(notok, clean=x, answers=torch.tensor([7, 9]))
    assert v.answer_pos.tolist() == [2, 2] and v.answers.tolist() == [[7, 7], [9, 9]]


def test_from_tokens_matches_from_prompts_on_a_tokenizer_model(gpt2_random):
    prompts = ["When Mary and John went to the store, John gave a drink to", "Hello there"]
    a = Task.from_prompts(gpt2_random, clean=prompts, answers=[(" Mary", " John"), " world"])
    ids = [gpt2_random.to_tokens(p)[0].tolist() for p in prompts]
    b = Task.from_tokens(gpt2_random, clean=ids, answers=a.answers)
    assert torch.equal(a.clean_tokens, b.clean_tokens)
    assert torch.equal(a.answer_pos, b.answer_pos) and torch.equal(a.answers, b.answers)
    # String answers work when the model has a tokenizer.
    c = Task.from_tokens(gpt2_random, clean=ids, answers=[(" Mary", " John"), " world"])
    assert torch.equal(c.answers, a.answers)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clean": []}, "No clean prompts"),
        ({"clean": [[1, 2], []]}, "Clean row 1 is empty"),
        ({"clean": [[1, 97]]}, r"Clean row 0 has token ids \[97\] outside notok's input vocab"),
        ({"clean": [[1, -1]]}, r"token ids \[-1\] outside"),
        ({"clean": [[1, 2.0]]}, "row 0 holds 2.0: token ids must be integers"),
        ({"clean": torch.ones(2, 3)}, "integer tensor of shape"),
        ({"clean": torch.ones(3, dtype=torch.long)}, "integer tensor of shape"),
        ({"clean": [1, 2, 3]}, "give one list of token ids per prompt"),
        ({"clean": ["a b"]}, "use Task.from_prompts for strings"),
        ({"clean": [[1] * 41]}, "Clean prompt 0 is 41 tokens but notok has a context of 40"),
        ({"clean": [[1, 2]], "corrupt": [[1, 2], [3, 4]]}, "one corrupted prompt per clean"),
        ({"clean": [[1, 2, 3]], "corrupt": [[1, 2]]}, "Prompt 0: clean is 3 tokens but corr"),
        ({"clean": [[1, 2]], "corrupt": [[1, 200]]}, "Corrupted row 0 has token ids"),
        ({"clean": [[1, 2]], "answers": [(1, 2), (3, 4)]}, "2 answers for 1 prompts"),
        ({"clean": [[1, 2]], "answers": [(1, 2, 3)]}, "must be \\(correct, incorrect\\)"),
        ({"clean": [[1, 2]], "answers": [(1, 97)]}, r"Answer id 97 .* outside the vocabulary"),
        ({"clean": [[1, 2]], "answers": [(" a", 1)]}, "no tokenizer; give token ids"),
        ({"clean": [[1, 2]], "labels": [0, 1]}, "2 labels for 1 prompts"),
        ({"clean": [[1, 2]], "groups": ["a", "b"]}, "2 groups for 1 prompts"),
        ({"clean": [[1, 2]], "answer_pos": [0, 1]}, "2 answer_positions for 1 prompts"),
        ({"clean": [[1, 2]], "answer_pos": [2]}, r"answer_pos\[0\] = 2 is outside the prompt"),
        ({"clean": [[1, 2]], "answer_pos": [-1]}, r"answer_pos\[0\] = -1 is outside"),
        ({"clean": [[1, 2, 3], [1, 2]], "answer_pos": [2, 2]}, r"answer_pos\[1\] = 2 is padding"),
        ({"clean": [[1, 2]], "answer_pos": [0.5]}, "positions must be integers"),
    ],
)
def test_from_tokens_rejects_bad_input_before_any_forward_pass(notok, kwargs, message):
    with pytest.raises(InterpError, match=message):
        Task.from_tokens(notok, **kwargs)


def test_from_tokens_checks_answers_against_the_output_vocabulary():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    import interp

    cfg = HookedTransformerConfig(
        n_layers=1, d_model=16, n_heads=2, d_head=8, d_vocab=30, d_vocab_out=10, n_ctx=8,
        act_fn="relu", attn_only=True, seed=0,
    )  # fmt: skip
    m = interp.load_model(HookedTransformer(cfg), device="cpu")
    assert (m.d_vocab, m.d_vocab_out) == (30, 10)
    t = Task.from_tokens(m, clean=[[25, 29]], answers=[(9, 0)])  # input ids up to 29 are fine
    assert t.answers.tolist() == [[9, 0]]
    with pytest.raises(InterpError, match=r"Answer id 25 for prompt 0 .* predicts \(0..9\)"):
        Task.from_tokens(m, clean=[[25, 29]], answers=[(25, 0)])


def test_induction_without_a_tokenizer_uses_every_id(notok):
    t = induction(notok, n=3, seq_len=5, seed=0)
    assert t.clean_tokens.shape == (3, 9) and t.clean_prompts == []
    assert int(t.clean_tokens.max()) < notok.d_vocab
    assert torch.equal(t.clean_tokens[:, :4], t.clean_tokens[:, 5:])


def test_word_arithmetic_checker_reads_the_last_number_in_digits_or_words():
    from interp.tasks.word_arithmetic import check_number, final_number, number_words

    assert final_number("7 + 5 - 3 = 9") == "9"
    assert final_number("The answer is twenty-one.") == "21"
    assert final_number("one hundred and four") == "104"
    assert final_number("Someone often says 12, then 1,204") == "1204"
    assert final_number("no numbers here") == ""
    assert check_number("Seven plus five is twelve.", "12")
    assert not check_number("It is 12 or 13", "12")
    assert final_number("10-3 is 7") == "7" and final_number("it is -3") == "-3"
    assert final_number("someone often") == ""
    # "and" joins only after "hundred": restating "nine and six" is not the answer 15.
    assert final_number("the sum of nine and six. In other words, it is the") == "6"
    assert not check_number("Nine plus six is the sum of nine and six.", "15")
    assert final_number("it is twenty one") == "21" and final_number("seven hundred") == "700"
    assert final_number("three hundred twelve") == "312"
    assert [number_words(n) for n in (0, 13, 40, 99, 305)] == [
        "zero",
        "thirteen",
        "forty",
        "ninety-nine",
        "three hundred and five",
    ]


def test_word_arithmetic_questions_have_unambiguous_targets(gpt2_random):
    task = interp.tasks.word_arithmetic(gpt2_random, n=20, seed=3, steps=[1, 2], max_operand=9)
    assert len(task) == 20 and task.targets is not None and task.checker is not None
    for q, target in zip(task.metadata["questions"], task.targets, strict=True):
        expr = q.removeprefix("What is ").rstrip("?")
        for word, sym in (("plus", "+"), ("minus", "-"), ("times", "*")):
            expr = expr.replace(f" {word} ", f" {sym} ")
        digits = " ".join(
            str(
                [
                    "zero",
                    "one",
                    "two",
                    "three",
                    "four",
                    "five",
                    "six",
                    "seven",
                    "eight",
                    "nine",
                ].index(w)
            )
            if w.isalpha()
            else w
            for w in expr.split()
        )
        assert str(eval(digits)) == target  # operator precedence agrees with left to right
    assert interp.tasks.registry.GENERATORS["word_arithmetic"] is interp.tasks.word_arithmetic


def test_word_arithmetic_settings_with_no_question_are_refused_not_looped():
    from interp.tasks.word_arithmetic import sample_questions

    # Three minuses of operands <= 2 always go negative: no question exists (this hung).
    with pytest.raises(InterpError, match=r"only 0 of 2 questions .* raise max_operand"):
        sample_questions(2, 0, [3], 2, ["minus"])
