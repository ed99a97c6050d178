"""Sweeps declared as data in a config file, expanded into members, their results compared.

    spec = load_sweep("configs/sweep_quick.py")      # the file's SWEEP dict, checked
    members = expand(spec)                           # grid x zip -> named override lists
    table = compare(collect(members, out_dir))       # each member's results.json side by side

`launch/sweep.py` runs the members (or prints their launch commands) and writes the table.
"""

from coa_jax.sweep.expand import Member, SweepSpec, expand, load_sweep
from coa_jax.sweep.table import collect, compare_json, compare_markdown

__all__ = ["Member", "SweepSpec", "collect", "compare_json", "compare_markdown", "expand", "load_sweep"]
