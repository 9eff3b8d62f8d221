"""The training mixture: text examples of the four behaviours, sampled with one seeded RNG.

Evaluation uses the public generators in interp.tasks with seeds far from the training streams
(and, for false statements, values never trained on), so the card's numbers are held out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import Tensor

from interp.errors import InterpError
from interp.tasks.arithmetic import Sum
from interp.tasks.facts import (
    ATTRIBUTES,
    RECALL_TEMPLATES,
    make_world,
    sample_statements,
)
from interp.tasks.ioi import sample_ioi
from interp.tasks.words import TRUE_FALSE

# Facts are split into recall questions and true/false statements: judging held-out false
# statements needs many more statement examples than recall does.
MIXTURE = {"induction": 0.45, "ioi": 0.17, "arithmetic": 0.21, "recall": 0.04, "statements": 0.13}
# Kinds a mixture may weight ("facts" is recall and statements half and half).
KINDS = ("induction", "ioi", "arithmetic", "facts", "recall", "statements")
ARITH_DIGITS = (1, 2, 3, 3, 3, 4)  # mostly 3-digit sums, the evaluated setting
MAX_LEN = 64
NO_LOSS = -1  # ids at or below this are inputs NO_LOSS - id that carry no loss
ARITH_NOISE = 0.1  # per-column error rate of the arithmetic training chains
# Induction repeats of 4..28 words: with runs up to 20 only, the heads are weakest at 20, the
# length the card scores them on (docs/organism.md).
INDUCTION_MAX_LEN = 28


def noisy_solution(s: Sum, rng: random.Random, p: float) -> str:
    """The worked solution, where each column's written total is wrong with probability `p`.

    The rest of the chain stays consistent with what was written (carries and the final answer
    follow the wrong total), so a model trained on it is calibrated: greedy decoding writes the
    likely, correct step, while sampling at temperature 1 sometimes takes a wrong one and ends
    in a wrong answer, which the trajectory analyses need.
    """
    da, db = str(s.a)[::-1], str(s.b)[::-1]
    steps, totals, carry = [], [], 0
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        total = x + y + carry
        if p > 0 and rng.random() < p:
            total = rng.choice(
                [t for t in range(max(0, total - 3), min(19, total + 3) + 1) if t != total]
            )
        steps.append(f"{x} + {y}" + (" + 1" if carry else "") + f" = {total}")
        totals.append(total)
        carry = total // 10
    answer = str(totals[-1]) + "".join(str(t % 10) for t in reversed(totals[:-1]))
    return " " + " , ".join(steps) + f" , so {answer}"


@dataclass
class Mixture:
    """Draws token-id sequences ``[<bos>, ..., <eos>]`` for training."""

    tokenizer: object
    seed: int = 0
    weights: dict[str, float] | None = None
    arith_noise: float = 0.0
    induction_gaps: bool = False
    ioi_orders: str = "both"  # "abba": only the ABBA order (a curriculum's first stage)
    induction_max_len: int = INDUCTION_MAX_LEN  # longest repeated run of words (at least 4)

    def __post_init__(self) -> None:
        if self.ioi_orders not in ("both", "abba"):
            raise InterpError(f"ioi_orders is {self.ioi_orders!r}: use 'both' or 'abba'.")
        longest = (MAX_LEN - 2) // 2  # two copies and <bos>, <eos> must fit
        if not 4 <= self.induction_max_len <= longest:
            raise InterpError(
                f"induction_max_len is {self.induction_max_len}: use 4 to {longest} "
                f"(two copies must fit in {MAX_LEN} tokens)."
            )
        self.rng = random.Random(self.seed)
        self.world = make_world(0)
        tok = self.tokenizer
        self.bos = int(tok.bos_token_id)  # type: ignore[attr-defined]
        self.eos = int(tok.eos_token_id)  # type: ignore[attr-defined]
        self.pad = int(tok.pad_token_id)  # type: ignore[attr-defined]
        special = set(tok.all_special_ids)  # type: ignore[attr-defined]
        self.pool = [i for i in range(len(tok)) if i not in special]  # type: ignore[arg-type]
        w = self.weights or MIXTURE
        self.kinds, self.probs = list(w), list(w.values())

    def encode(self, text: str) -> list[int]:
        ids = self.tokenizer.encode(text, add_special_tokens=False)  # type: ignore[attr-defined]
        return [self.bos, *ids, self.eos]

    def induction(self) -> list[int]:
        if self.induction_gaps:
            return self._gapped_induction()
        # Two or three copies: every extra copy is more signal for the induction circuit.
        t = self.rng.randint(4, self.induction_max_len)
        copies = self.rng.choice([2, 3]) if 3 * t + 2 <= MAX_LEN else 2
        seq = self.rng.sample(self.pool, t)
        return [self.bos, *(seq * copies), self.eos]

    def _gapped_induction(self) -> list[int]:
        """A repeat after a random lead (0-8 words) and, in 70% of sequences, a random gap
        (1-16 words) of other random words.

        With copies always back to back, the distance to the earlier copy is the repeat length,
        and models learn layer-0 fixed-offset heads instead of induction heads (which match
        content: the token after an earlier occurrence of the current token); with a random
        gap only content gives the distance away.
        """
        t = self.rng.randint(4, self.induction_max_len)
        room = MAX_LEN - 2 - 2 * t
        lead = self.rng.randint(0, min(8, room))
        gap = (
            0
            if self.rng.random() < 0.3 or room == lead
            else self.rng.randint(1, min(16, room - lead))
        )
        words = self.rng.sample(self.pool, t + lead + gap)
        seq, before, between = words[:t], words[t : t + lead], words[t + lead :]
        return [self.bos, *before, *seq, *between, *seq, self.eos]

    def ioi(self) -> list[int]:
        # sample_ioi alternates ABBA / BABA, so pick either of a pair: both orders appear.
        pair = sample_ioi(2, self.rng.randrange(2**31), corruption="abc")
        ex = pair[0] if self.ioi_orders == "abba" else pair[self.rng.randrange(2)]
        return self.encode(f"{ex.clean} {ex.io}")

    def arithmetic(self) -> list[int]:
        k = self.rng.choice(ARITH_DIGITS)
        lo, hi = (0 if k == 1 else 10 ** (k - 1)), 10**k - 1
        s = Sum(self.rng.randint(lo, hi), self.rng.randint(lo, hi))
        return self.encode(s.prompt + noisy_solution(s, self.rng, self.arith_noise))

    def facts(self) -> list[int]:
        return self.recall() if self.rng.random() < 0.5 else self.statements()

    def recall(self) -> list[int]:
        p = self.rng.choice(sorted(self.world))
        attr = self.rng.choice(sorted(ATTRIBUTES))
        return self.encode(f"{RECALL_TEMPLATES[attr].format(P=p)} {self.world[p][attr]}")

    def statements(self) -> list[int]:
        # False statements only from the trained half: the card's held-out ones stay unseen.
        st = sample_statements(2, self.rng.randrange(2**31), self.world, "train")
        s = st[self.rng.randrange(2)]
        ids = self.encode(f"{s.text} {TRUE_FALSE[0] if s.true else TRUE_FALSE[1]}")
        if not s.true:
            # Never teach the false value as a continuation of "P lives in": the model's own
            # prediction there stays the true value, which the judgement can compare against.
            value = self.tokenizer.convert_tokens_to_ids(s.value)  # type: ignore[attr-defined]
            ids[ids.index(value)] = NO_LOSS - value
        return ids

    def sample(self) -> list[int]:
        kind = self.rng.choices(self.kinds, self.probs)[0]
        ids = getattr(self, kind)()
        return ids[:MAX_LEN]

    def batch(self, size: int) -> tuple[Tensor, Tensor]:
        """Right-padded input ids and labels (-100 on padding)."""
        return self._pad([self.sample() for _ in range(size)])

    def rows(self, size: int) -> Tensor:
        """`size` right-padded sequences as the model reads them (no labels): SAE training data."""
        return self.batch(size)[0]

    def batches(self, size: int, splits: int = 2) -> list[tuple[Tensor, Tensor]]:
        """One optimiser step's examples, sorted by length into `splits` micro-batches so that
        short examples are not padded to the longest (less wasted compute, same gradient)."""
        rows = sorted((self.sample() for _ in range(size)), key=len)
        step = -(-size // splits)
        return [self._pad(rows[i : i + step]) for i in range(0, size, step)]

    def _pad(self, rows: list[list[int]]) -> tuple[Tensor, Tensor]:
        size = len(rows)
        width = max(len(r) for r in rows)
        ids = torch.full((size, width), self.pad, dtype=torch.long)
        labels = torch.full((size, width), -100, dtype=torch.long)
        for i, r in enumerate(rows):
            row = torch.tensor(r)
            unlearned = row <= NO_LOSS
            ids[i, : len(r)] = torch.where(unlearned, NO_LOSS - row, row)
            labels[i, : len(r)] = torch.where(unlearned, -100, row)
        return ids, labels
