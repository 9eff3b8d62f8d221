"""Analyses: each takes a model and a task (or a cache) and returns one typed Result."""
