"""A 4-member sweep of the quick pipeline: SFT-2 learning rate x GRPO group size (G).

Run:      python launch/sweep.py configs/sweep_quick.py               (here, one member after another)
Dry run:  python launch/sweep.py configs/sweep_quick.py --dry-run     (print each member's command)
Table:    runs/sweep-sweep_quick/sweep.md (methods x members, EM x 100)

`get_config` returns the base, so this file is also an ordinary config.
"""

VARIANTS = (None,)

SWEEP = {
    "base": "configs/default.py:quick",
    "grid": {"sft2.optim.lr": [1e-3, 3e-4]},
    # zipped lists move together: G and prompts per step keep 16 rollouts a step
    "zip": {"rl.group_size": [4, 8], "rl.prompts_per_step": [4, 2]},
    "args": ["--eval-limit", "4"],
}


def get_config(variant=None):
    import pathlib

    from coa_jax.config.loading import load_config

    return load_config(str(pathlib.Path(__file__).with_name("default.py")) + ":" + (variant or "quick"))
