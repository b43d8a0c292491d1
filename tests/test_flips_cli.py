"""``python -m search.run``: verified schemes with provenance appended to --out, budgets, the RL
dispatch, and clear errors."""

from __future__ import annotations

import argparse
import sys

import pytest

from compiler.algebra.formats import load
from search.run import main, parse_budget


def test_parse_budget():
    assert parse_budget("90s") == 90 and parse_budget("10m") == 600 and parse_budget("1h30m") == 5400
    assert parse_budget("12") == 12
    with pytest.raises(Exception):
        parse_budget("soon")


@pytest.mark.parametrize("text,seconds", [("45", 45), (45, 45), (2.5, 2.5), (None, 600), ("90s", 90), ("30M", 1800),
                                          ("2h", 7200), ("1h30m", 5400), ("1h 30m", 5400), (" 30 m ", 1800)])
def test_parse_budget_one_grammar(text, seconds):
    # search.run and search.rl.cli read --budget with the same function (the union of their old grammars)
    from search.rl.cli import parse_budget as rl_parse_budget
    assert rl_parse_budget is parse_budget
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["soon", "", "10x", "m", "1h30"])
def test_parse_budget_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_budget(text)


def test_flips_cli_appends_verified_schemes_with_provenance(tmp_path, capsys):
    out = tmp_path / "found.npz"
    for seed in (0, 1):
        rc = main(["--shape", "2,2,3", "--target-rank", "11", "--budget", "60s", "--max-flips", "5000000",
                   "--seed", str(seed), "--out", str(out), "--no-progress", "--log", str(tmp_path / "log.jsonl")])
        assert rc == 0
    fs = load(out)
    assert 1 <= len(fs) <= 2 and len({f.name for f in fs}) == len(fs)
    for f in fs:
        assert f.verify() and f.rank == 11 and f.field == "Q"
        assert "search.run" in f.provenance.notes and f.provenance.date and "flip" in f.provenance.method
    assert '"reached_target": true' in capsys.readouterr().out
    assert (tmp_path / "log.jsonl").read_text().count("rank") >= 2


def test_flips_cli_z2_with_lift_and_kron_start(tmp_path):
    out = tmp_path / "z2.npz"
    rc = main(["--shape", "2,2,4", "--field", "Z2", "--start", "strassen*naive1x1x2", "--target-rank", "14",
               "--budget", "30s", "--lift", "--out", str(out), "--no-progress"])
    assert rc == 0
    fields = {f.field for f in load(out)}
    assert "Z2" in fields and all(f.verify() for f in load(out))


def test_flips_cli_two_workers(tmp_path):
    out = tmp_path / "w2.npz"
    rc = main(["--shape", "2,2,2", "--target-rank", "7", "--budget", "60s", "--workers", "2", "--out", str(out),
               "--no-progress"])
    assert rc == 0 and load(out)[0].rank == 7


def test_rl_dispatch_gives_a_clear_error_without_the_agent(monkeypatch):
    monkeypatch.setitem(sys.modules, "search.rl.cli", None)  # import of search.rl.cli now fails
    with pytest.raises(SystemExit, match="search.rl.cli"):
        main(["--shape", "2,2,2", "--method", "rl"])


def test_rl_dispatch_calls_the_agent(monkeypatch):
    import types
    calls = {}
    fake = types.ModuleType("search.rl.cli")
    fake.add_arguments = lambda ap: ap.add_argument("--simulations", type=int, default=3)
    fake.run = lambda args: calls.setdefault("args", args) and 0
    monkeypatch.setitem(sys.modules, "search.rl.cli", fake)
    assert main(["--shape", "2,2,2", "--method", "rl", "--simulations", "5", "--reward", "rank"]) == 0
    args = calls["args"]
    assert args.simulations == 5 and args.shape == "2,2,2" and args.reward == "rank" and args.workers == 1


def test_bad_start_is_a_clear_error():
    with pytest.raises(SystemExit, match="not a file"):
        main(["--shape", "2,2,2", "--start", "no-such-scheme", "--budget", "1s", "--no-progress"])


def test_flips_cli_symmetric_and_ternary_lift(tmp_path, capsys):
    from search.flips.symmetric import is_invariant
    out = tmp_path / "sym.npz"
    rc = main(["--shape", "3,3,3", "--symmetric", "--splits", "0", "--target-rank", "24", "--budget", "60s",
               "--max-flips", "3000000", "--out", str(out), "--no-progress"])
    assert rc == 0
    (f,) = load(out)
    assert f.rank == 24 and f.verify() and is_invariant(f) and "symmetric" in f.provenance.method
    # mod 2, then signs: the CLI reports a ternary lift or why there is none, and never saves an invalid scheme
    out2 = tmp_path / "t.npz"
    main(["--shape", "2,2,2", "--field", "Z2", "--target-rank", "7", "--budget", "20s", "--max-flips", "3000000",
          "--lift", "ternary", "--out", str(out2), "--no-progress"])
    assert '"lift":' in capsys.readouterr().out
    for g in load(out2):
        assert g.verify()
    with pytest.raises(SystemExit):
        main(["--shape", "2,3,4", "--symmetric", "--budget", "1s", "--no-progress"])


def test_flips_cli_symmetric_diagonal_start_lifts_orbit_wise(tmp_path, capsys):
    """--cubes: the diagonal start (naive fixed terms merged along a partition); mod 2 with --lift the
    scheme gets signs along its orbits, and both the mod-2 and the lifted scheme (over Z) are saved invariant."""
    import json
    from search.flips.symmetric import is_invariant
    out = tmp_path / "d.npz"
    rc = main(["--shape", "3,3,3", "--field", "Z2", "--symmetric", "--cubes", "0+1,2", "--target-rank", "23",
               "--budget", "120s", "--max-flips", "3000000", "--seed", "1", "--lift", "--out", str(out),
               "--no-progress"])
    summary = json.loads([ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")][-1])
    assert rc == 0 and summary["lift"].startswith("orbit-wise signs: lifted")
    # the summary and provenance name the diagonal start (naive 27 + one merge = 29), not the naive one
    assert summary["start"] == "diagonal-3x3x3-0+1,2-r29" and summary["start_rank"] == 29
    fs = load(out)
    assert sorted(f.field for f in fs) == ["Q", "Z2"]
    for f in fs:
        assert f.rank == 23 and f.verify() and is_invariant(f) and f.is_integral
        assert "start diagonal-3x3x3-0+1,2-r29" in f.provenance.notes
    lifted = next(f for f in fs if f.field == "Q")
    assert "sign-lifted from" in lifted.provenance.notes and "Hensel" not in lifted.provenance.notes
    with pytest.raises(SystemExit):
        main(["--shape", "3,3,3", "--symmetric", "--cubes", "0+1", "--budget", "1s", "--no-progress"])


def test_flips_cli_additions_sides_walk(tmp_path, capsys):
    """--objective additions over Z walks on per-side CSE counts from a product start (Strassen has no
    flips: changes of basis) and appends the best scheme with the walk's figures in its provenance."""
    import json
    out = tmp_path / "add.npz"
    rc = main(["--shape", "2,2,2", "--start", "strassen", "--target-rank", "7", "--objective", "additions",
               "--budget", "6s", "--out", str(out), "--no-progress"])
    assert rc == 0
    summary = json.loads([ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")][-1])
    assert -18 <= summary["objective_value"] <= -15  # Strassen: 18 additions after CSE; 15 is the minimum for rank 7
    for f in load(out) if out.exists() else []:
        assert f.verify() and f.rank == 7 and "search.flips.sides" in f.provenance.method
        assert "sides walk:" in f.provenance.notes


def test_flips_cli_levels(tmp_path):
    out = tmp_path / "lv.npz"
    rc = main(["--shape", "2,3,3", "--target-rank", "15", "--levels", "--pool-size", "8", "--path-length", "300000",
               "--budget", "60s", "--out", str(out), "--no-progress", "--log", str(tmp_path / "lv.jsonl")])
    assert rc == 0
    (f,) = load(out)
    assert f.rank == 15 and f.verify() and "rank by rank with pools" in f.provenance.method
    assert '"level"' in (tmp_path / "lv.jsonl").read_text()


def test_flips_cli_levels_two_workers(tmp_path):
    # two pooled searches in processes: the first to reach the target stops the other
    out = tmp_path / "lv2.npz"
    rc = main(["--shape", "2,3,3", "--target-rank", "15", "--levels", "--workers", "2", "--pool-size", "8",
               "--path-length", "300000", "--budget", "60s", "--out", str(out), "--no-progress"])
    assert rc == 0
    (f,) = load(out)
    assert f.rank == 15 and f.verify() and "rank by rank with pools" in f.provenance.method
