"""The SAE card: what `interp sae info` prints and ``card.md`` holds."""

from __future__ import annotations

from typing import Any


def card_lines(record: dict[str, Any]) -> list[str]:
    """The card's facts, one per line (plain text; the markdown card adds a title)."""
    q = record.get("quality", {})
    t = record.get("training", {})
    sparsity = f"TopK k={record['k']}" if record.get("k") else "ReLU + L1"
    lines = [
        f"model: {record.get('model')} (fingerprint {str(record.get('model_fingerprint'))[:12]})",
        f"hook: {record.get('hook')}",
        f"latents: {record.get('d_sae')} over d_in {record.get('d_in')} ({sparsity}, "
        f"sae-lens architecture {record.get('architecture')!r})",
    ]
    if q:
        lines += [
            f"measured on {q['tokens']} content tokens of {record.get('measured_on')}:",
            f"  L0 (mean active latents per token): {q['l0']:.2f}",
            f"  fraction of variance unexplained: {q['fvu']:.4f}",
            f"  next-token loss: {q['loss_plain']:.4f} plain, {q['loss_spliced']:.4f} with the "
            f"SAE spliced in (+{q['loss_increase']:.4f})",
            f"  dead latents (never active): {q['dead_latents']} of {record.get('d_sae')} "
            f"({100 * q['dead_fraction']:.1f}%)",
        ]
    if t:
        lines += [
            f"training: {t.get('training_tokens')} tokens, batch {t.get('batch_size')}, "
            f"lr {t.get('lr')}, seed {t.get('seed')}, {t.get('minutes')} min",
            f"data: {t.get('data')} ({t.get('rows')} rows, {t.get('held_out_rows')} held out)",
        ]
    if record.get("command"):
        lines.append(f"command: {record['command']}")
    if record.get("date"):
        lines.append(f"date: {record['date']}")
    return lines


def card_markdown(record: dict[str, Any]) -> str:
    body = "\n".join(
        f"- {line}" if not line.startswith("  ") else f"  - {line.strip()}"
        for line in card_lines(record)
    )
    return f"# SAE on {record.get('model')} at {record.get('hook')}\n\n{body}\n"
