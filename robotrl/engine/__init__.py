"""Training loops, evaluation, checkpoints and logging shared by every method."""
