"""Training: SFT stages 1-3, GRPO, the optimizer, the jitted step, checkpoints and metrics."""
