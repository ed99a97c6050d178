"""Sweeps as data: expansion (grid x zip), validation before running, the comparison table."""

import json
import pathlib
import sys

import pytest

from coa_jax.config.errors import ConfigError
from coa_jax.sweep import collect, compare_json, compare_markdown, expand, load_sweep
from coa_jax.sweep.expand import parse_sweep

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_grid_times_zip_expands_in_a_stable_order():
    spec = parse_sweep({"base": "configs/default.py:quick", "grid": {"a.x": [1, 2], "b": ["p", "q"]},
                        "zip": {"c": [10, 20, 30], "d": [0.1, 0.2, 0.3]}})
    members = expand(spec)
    assert len(members) == 2 * 2 * 3
    assert members[0].overrides == (("a.x", 1), ("b", "p"), ("c", 10), ("d", 0.1))
    assert members[5].overrides == (("a.x", 1), ("b", "q"), ("c", 30), ("d", 0.3))  # zip moves in lockstep
    assert members[-1].sets == ["a.x=2", "b=q", "c=30", "d=0.3"]
    assert len({m.name for m in members}) == len(members) and members[3].name.startswith("03_x=1_b=q_c=10")


@pytest.mark.parametrize("bad, key", [
    ({"grid": {"a": [1]}}, "base"),
    ({"base": "c.py", "zip": {"a": [1, 2], "b": [1]}}, "zip"),
    ({"base": "c.py", "grid": {"a": []}}, "grid.a"),
    ({"base": "c.py", "grid": {"a": [1]}, "zip": {"a": [2]}}, "zip"),
    ({"base": "c.py", "sweep": {}}, "sweep"),
])
def test_malformed_sweeps_name_the_key(bad, key):
    with pytest.raises(ConfigError, match=key):
        parse_sweep(bad)


def test_the_shipped_quick_sweep_has_four_valid_members():
    members = expand(load_sweep(ROOT / "configs/sweep_quick.py"))
    assert len(members) == 4
    sys.path.insert(0, str(ROOT / "launch"))
    import sweep as launcher

    launcher._validate(load_sweep(ROOT / "configs/sweep_quick.py"), members)  # every member's config loads


def test_a_bad_override_fails_before_anything_runs(tmp_path, capsys):
    sweep_file = tmp_path / "bad_sweep.py"
    sweep_file.write_text('SWEEP = {"base": "configs/default.py:tiny", "grid": {"rl.group_sise": [2, 4]}}\n')
    sys.path.insert(0, str(ROOT / "launch"))
    import sweep as launcher

    assert launcher.main([str(sweep_file), "--out", str(tmp_path / "out")]) == 2
    assert "group_sise" in capsys.readouterr().err and not (tmp_path / "out").exists()


def _fake_results(em: float) -> dict:
    def row(label, x):
        return {"label": label, "all": {"em_reference": x, "f1": x + 0.1, "mean_actions": 1.5}}

    return {"rows": [row("SFT-1+2", em), row("SFT-1+2+3 + RL-1+2", em + 0.05)], "timings_s": {"a": 10.0, "b": 5.0}}


def test_results_are_collected_into_one_table(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "launch"))
    import sweep as launcher

    spec = load_sweep(ROOT / "configs/sweep_quick.py")
    members = expand(spec)
    for m, em in zip(members[:3], (0.2, 0.25, 0.3)):  # the fourth member never finished
        (tmp_path / m.name).mkdir()
        (tmp_path / m.name / "results.json").write_text(json.dumps(_fake_results(em)))
    records = collect(members, tmp_path)
    assert [r["status"] for r in records] == ["done", "done", "done", "missing"]
    data = compare_json(records)
    assert data["methods"]["SFT-1+2"][members[1].name]["em"] == pytest.approx(25.0)
    assert data["members"][0]["seconds"] == 15.0
    table = compare_markdown(records)
    assert "| SFT-1+2 | 20.0 | 25.0 | 30.0 | - |" in table
    assert "| SFT-1+2+3 + RL-1+2 | 25.0 | 30.0 | 35.0 | - |" in table
    assert "| m03 | sft2.optim.lr=0.0003, rl.group_size=8, rl.prompts_per_step=2 | missing | - |" in table
    assert launcher.main([str(ROOT / "configs/sweep_quick.py"), "--out", str(tmp_path), "--collect-only"]) == 1
    assert (tmp_path / "sweep.md").read_text().count("| SFT-1+2 |") == 1 and (tmp_path / "sweep.json").exists()
    assert "| SFT-1+2 | 20.0 | 25.0 | 30.0 | - |" in capsys.readouterr().out


def test_dry_run_prints_one_command_per_member(capsys):
    sys.path.insert(0, str(ROOT / "launch"))
    import sweep as launcher

    assert launcher.main([str(ROOT / "configs/sweep_quick.py"), "--dry-run", "--out", "runs/s"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    cmds = [x for x in lines if x.startswith("python -m coa_jax pipeline")]
    assert len(cmds) == 4 and all("--config configs/default.py:quick" in c and "--eval-limit 4" in c for c in cmds)
    assert "--set sft2.optim.lr=0.0003 --set rl.group_size=8 --set rl.prompts_per_step=2 --out runs/s/03_" in cmds[3]
    assert lines[-1] == f"python launch/sweep.py {ROOT / 'configs/sweep_quick.py'} --out runs/s --collect-only"
