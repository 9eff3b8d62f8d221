"""Tokenizer helpers of the model handle; a model without a tokenizer labels ids as ``#id``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Int
from torch import Tensor

from interp.errors import InterpError


class Tokens:
    """Mixed into `Model`: text to ids and back, through the wrapped model's tokenizer."""

    tl: Any
    name: str

    if TYPE_CHECKING:  # defined by Model

        def require(self, analysis: str, *needs: str) -> None: ...

    if TYPE_CHECKING:

        @property
        def d_vocab(self) -> int: ...

    def check_tokens(self, tokens: Any, what: str = "tokens") -> None:
        """Refuse ids outside ``0 .. d_vocab - 1`` before they reach the embedding.

        An embedding lookup wraps -5 to a real row on some backends and fails with an opaque
        index error on others; neither says which id of which prompt was wrong.
        """
        if not isinstance(tokens, Tensor) or tokens.is_floating_point() or tokens.numel() == 0:
            return  # text, residual states and empty batches are not ids
        if tokens.dtype == torch.bool:
            raise InterpError(f"{what} is a boolean tensor; give integer token ids.")
        outside = (tokens < 0) | (tokens >= self.d_vocab)
        if not bool(outside.any()):  # one device sync per forward pass
            return
        bad = outside.nonzero()[0].tolist()
        value = int(tokens[tuple(bad)])
        raise InterpError(
            f"{what} holds token id {value} at index {tuple(bad)}, outside {self.name}'s "
            f"vocabulary 0..{self.d_vocab - 1}. Check that the ids come from this model's "
            "tokenizer (Task.from_tokens / Task.from_prompts validate them for a model)."
        )

    @property
    def tokenizer(self) -> Any:
        return self.tl.tokenizer

    @property
    def has_tokenizer(self) -> bool:
        return getattr(self.tl, "tokenizer", None) is not None

    def to_tokens(
        self, text: str | Sequence[str], prepend_bos: bool | None = None
    ) -> Int[Tensor, "batch seq"]:
        self.require("Tokenising text", "tokenizer")
        # Never truncate silently: Task validation must see the real length to reject it.
        return self.tl.to_tokens(text, prepend_bos=prepend_bos, truncate=False)

    def to_str_tokens(self, tokens_or_text: Any) -> list[str]:
        """Token strings; without a tokenizer, ids are labelled ``#id``."""
        if not self.has_tokenizer:
            if isinstance(tokens_or_text, str):
                self.require("Tokenising text", "tokenizer")
            ids = torch.as_tensor(tokens_or_text).reshape(-1).tolist()
            return [f"#{int(i)}" for i in ids]
        return list(self.tl.to_str_tokens(tokens_or_text))

    def token_str(self, token: int) -> str:
        """One id as a string (``#id`` without a tokenizer)."""
        if not self.has_tokenizer:
            return f"#{int(token)}"
        return str(self.tokenizer.decode([int(token)]))

    def decode(self, tokens: Sequence[int] | Tensor) -> str:
        ids = [int(t) for t in torch.as_tensor(tokens).reshape(-1).tolist()]
        if not self.has_tokenizer:
            return " ".join(f"#{i}" for i in ids)
        return str(self.tokenizer.decode(ids))

    @property
    def special_ids(self) -> set[int]:
        """Ids of the tokenizer's special tokens (none without a tokenizer)."""
        if not self.has_tokenizer:
            return set()
        return {int(i) for i in getattr(self.tokenizer, "all_special_ids", []) or []}

    def _special_around(self) -> tuple[list[int], list[int]]:
        """The special tokens the model puts (before, after) a prompt."""
        if not self.has_tokenizer:
            return [], []
        with_special = [int(t) for t in self.to_tokens("a")[0].tolist()]
        bare = self.tokenizer.encode("a", add_special_tokens=False)
        for i in range(len(with_special) - len(bare) + 1):
            if with_special[i : i + len(bare)] == bare:
                return with_special[:i], with_special[i + len(bare) :]
        return [], []

    @property
    def prefix_ids(self) -> list[int]:
        """Special tokens the model puts before a prompt (BOS for GPT-2, [CLS] for BERT)."""
        return self._special_around()[0]

    @property
    def suffix_ids(self) -> list[int]:
        """Special tokens the model puts after a prompt ([SEP] for BERT, none for GPT-2)."""
        return self._special_around()[1]

    @property
    def pad_id(self) -> int:
        """The id used to right-pad prompts (pad, else eos, else bos, else 0)."""
        tok = getattr(self.tl, "tokenizer", None)
        for attr in ("pad_token_id", "eos_token_id", "bos_token_id"):
            val = getattr(tok, attr, None)
            if val is not None:
                return int(val)
        return 0

    def to_single_token(self, word: str) -> int:
        """The id of `word` as one token, or an InterpError that says how it splits."""
        self.require("Reading an answer word", "tokenizer")
        ids = self.tokenizer.encode(word, add_special_tokens=False)
        unk = getattr(self.tokenizer, "unk_token_id", None)
        if ids and unk is not None and ids == [unk] and word.strip() != self.tokenizer.unk_token:
            raise InterpError(
                f"{word!r} is not in {self.name}'s vocabulary (it tokenises to the unknown token "
                f"{self.tokenizer.unk_token!r}); pick a word the tokenizer knows."
            )
        if len(ids) != 1:
            pieces = [self.tokenizer.decode([i]) for i in ids]
            raise InterpError(
                f"Answer {word!r} is {len(ids)} tokens for {self.name} ({pieces}); answers must "
                "be single tokens. Pick another word, or include the leading space the "
                "tokenizer expects (GPT-2 names are ' Mary', not 'Mary')."
            )
        return int(ids[0])
