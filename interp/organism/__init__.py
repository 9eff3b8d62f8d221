"""The recipe that trains the embedded default model (the organism) and writes its card."""
