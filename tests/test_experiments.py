"""examples/ltv_runs.py under a time budget: runs start wave by wave and stop at the deadline; the vote
comparison's tables average only the seeds that finished. ``ltv`` itself is replaced by a recorder here (the
GPU suite's smoke test runs the real commands)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import ltv_runs  # noqa: E402
import vote_comparison  # noqa: E402


def test_runs_start_wave_by_wave_and_none_starts_after_the_deadline(tmp_path, monkeypatch, capsys):
    plan = vote_comparison.make_plan("cifar", "HS,AD", [0.3, 0.5], [0, 1], 0.0, ["mv", "ltv"])
    started: list[tuple[str, float | None]] = []

    def fake_ltv(*args, threads=None, timeout=None) -> bool:
        run = Path(str(args[args.index("--out") + 1])).name
        started.append((run, timeout))
        if len(started) == 5:  # this training would outlast the budget: it is stopped at the deadline
            time.sleep(timeout)
            return False
        return True

    monkeypatch.setattr(ltv_runs, "ltv", fake_ltv)
    (tmp_path / "runs").mkdir()
    ltv_runs.train_all(plan, tmp_path, [], jobs=1, deadline=time.monotonic() + 2.0)

    names = [run for run, _ in started]
    assert names == [  # wave 0: noise 0.3 and the clean ceilings, LTV first; then wave 1 until the deadline
        "HS-AD_n0.3_s0__ltv", "HS-AD_n0.3_s1__ltv", "HS0_n0_s0__clean", "HS0_n0_s1__clean",
        "HS-AD_n0.3_s0__mv"]
    assert all(0 < timeout <= 2.0 for _, timeout in started)
    done = sorted(p.stem for p in (tmp_path / "runs").glob("*.done"))
    assert done == sorted(names[:4])
    output = capsys.readouterr().out
    assert "stopped HS-AD_n0.3_s0__mv at the time budget" in output
    assert f"4 of {len(plan.runs)} runs finished within the time budget" in output


def test_tables_average_the_seeds_that_finished(tmp_path):
    plan = vote_comparison.make_plan("cifar", "HS,AD", [0.3], [0, 1, 2], 0.0, ["mv", "ltv"])
    finished = {0: 0.40, 2: 0.50}  # seed 1 did not finish: its dataset was not evaluated
    results = {"test": {}, "records": {}}
    for seed, accuracy in finished.items():
        data = plan.dataset("HS,AD", 0.3, seed)
        results["test"][data] = {"mv": accuracy, "ltv": accuracy + 0.1}
        results["test"][plan.dataset(ltv_runs.CLEAN, 0.0, seed)] = {"clean": 0.6}
        results["records"][f"{data}__mv"] = {"refined_accuracy": 0.8}
        results["records"][f"{data}__ltv"] = {"refined_accuracy": 0.7, "weight_AD": 0.2, "weight_correct": 0.3,
                                              "weight_wrong": 0.1}
    results["test"][plan.dataset(ltv_runs.CLEAN, 0.0, 1)] = {"clean": 0.6}

    seeds = vote_comparison.finished_seeds(plan, results, "cifar", "HS,AD", 0.3, [0, 1, 2], 0.0)
    assert seeds == [0, 2]
    table = vote_comparison.table(plan, results, "cifar", "HS,AD", 0.3, seeds, 0.0, ["mv", "ltv"])
    assert "| mv | 0.450 ± 0.071 | 0.800 ± 0.000 | - | - |" in table
    assert "| ltv | 0.550 ± 0.071 | 0.700 ± 0.000 | 0.200 ± 0.000 | 0.300 ± 0.000 / 0.100 ± 0.000 |" in table
    assert "| clean labels (ceiling) | 0.600 ± 0.000 | 1 | - | - |" in table
