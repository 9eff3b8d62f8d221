"""Latent-trajectory signals (in progress: the per-trace signals; sampling and evaluation next)."""
