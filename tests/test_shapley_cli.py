"""The `shapley` subcommand: a researcher's own game as a CSV of coalition utilities."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from copystudy.tools import shapley_cli
from copystudy.attribution.closed_form_games import airport_game, glove_game
from copystudy.attribution.shapley import coalition_matrix, table_from_game


def write_game(path, owners, table, samples=None, order=None):
    rows = ["coalition,utility" + (",sample" if samples else "")]
    ks = range(2 ** len(owners)) if order is None else order
    for k in ks:
        name = "+".join(o for o, m in zip(owners, coalition_matrix(len(owners))[k]) if m)
        if samples:
            for s, offset in samples.items():
                rows.append(f"{name},{table[k] + offset},{s}")
        else:
            rows.append(f"{name},{table[k]}")
    path.write_text("\n".join(rows) + "\n")
    return path


def run(*argv):
    parser = argparse.ArgumentParser()
    shapley_cli.add_arguments(parser)
    return shapley_cli.main(parser.parse_args([str(a) for a in argv]))


OWNERS = ["left", "right1", "right2"]
TABLE = table_from_game(glove_game(1, 2), 3)


def test_exact_json(tmp_path, capsys):
    path = write_game(tmp_path / "u.csv", OWNERS, TABLE)
    assert run(path, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"shapley", "shares"}
    np.testing.assert_allclose([out["shapley"][o] for o in OWNERS], [2 / 3, 1 / 6, 1 / 6])
    np.testing.assert_allclose([out["shares"][o] for o in OWNERS], [2 / 3, 1 / 6, 1 / 6])


def test_samples_are_averaged_first(tmp_path, capsys):
    # utilities per sample differ by a per-sample constant; the mean game is the glove game + 1
    path = write_game(tmp_path / "u.csv", OWNERS, TABLE, samples={"a": 0.0, "b": 2.0})
    assert run(path, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose([out["shapley"][o] for o in OWNERS], [2 / 3, 1 / 6, 1 / 6])


def test_text_output_names_every_owner(tmp_path, capsys):
    path = write_game(tmp_path / "u.csv", OWNERS, TABLE, order=[7, 0, 3, 5, 1, 2, 4, 6])  # order is free
    assert run(path) == 0
    out = capsys.readouterr().out
    for owner in OWNERS:
        assert owner in out
    assert "66.67%" in out


@pytest.mark.parametrize("estimator", ["permutation", "kernel"])
def test_sampling_estimators(tmp_path, capsys, estimator):
    path = write_game(tmp_path / "u.csv", OWNERS, TABLE)
    assert run(path, "--estimator", estimator, "--budget", 200, "--seed", 1, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert abs(sum(out["shapley"].values()) - 1.0) < 1e-6
    assert out["shares"]["left"] > 0.5


def test_missing_coalition_for_exact(tmp_path, capsys):
    path = write_game(tmp_path / "u.csv", OWNERS, TABLE, order=[0, 1, 2, 3, 4, 5, 7])  # no right1+right2
    assert run(path) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "right1+right2" in err


def test_duplicated_row(tmp_path, capsys):
    path = write_game(tmp_path / "u.csv", OWNERS, TABLE)
    path.write_text(path.read_text() + "right1+left,0.5\n")  # same coalition as left+right1
    assert run(path) == 2
    assert "duplicated row" in capsys.readouterr().err


def test_duplicated_row_with_samples(tmp_path, capsys):
    path = write_game(tmp_path / "u.csv", OWNERS, TABLE, samples={"a": 0.0})
    path.write_text(path.read_text() + "left,0.1,a\n")
    assert run(path) == 2
    assert "duplicated row" in capsys.readouterr().err


@pytest.mark.parametrize("owners, declared, message", [
    (["a", "b", "c"], "a+b,c", "contains '+'"),  # an owner name with the coalition separator
    (OWNERS, "left,right1", "not in --owners"),  # an owner in the file that --owners does not declare
])
def test_bad_declared_owners(owners, declared, message, tmp_path, capsys):
    path = write_game(tmp_path / "u.csv", owners, TABLE)
    assert run(path, "--owners", declared) == 2
    assert message in capsys.readouterr().err


def test_owner_name_with_plus_detected_from_file(tmp_path, capsys):
    # an owner called "x+y" written into coalitions: x and y never appear apart
    path = tmp_path / "u.csv"
    path.write_text("coalition,utility\n,0\nx+y,1\nz,1\nx+y+z,2\n")
    assert run(path) == 2
    err = capsys.readouterr().err
    assert "'x' and 'y' never appear apart" in err


@pytest.mark.parametrize("content, message", [
    (b"coalition,utility\n,0\na,abc\n", "line 3"),
    (b"coalition,value\n,0\n", "coalition,utility"),
    (b"coalition,utility\n,0\na++b,1\n", "stray '+'"),
    ("coalition,utility\n,0\nJos\u00e9,1\n".encode("latin-1"), "line 3 is not UTF-8 (byte 0xe9)"),
    (b"coalition,utility\n,0\nleft,1,2\n", "line 3 has 3 fields, the header 2"),
    (b"coalition,utility,sample\n,0,a\nleft,1\n", "line 3 has fewer fields than the header"),
])
def test_a_bad_file_is_one_line_naming_the_problem(tmp_path, capsys, content, message):
    path = tmp_path / "u.csv"
    path.write_bytes(content)
    assert run(path) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_inconsistent_samples(tmp_path, capsys):
    path = tmp_path / "u.csv"
    path.write_text("coalition,utility,sample\n,0,s1\n,0,s2\na,1,s1\n")
    assert run(path) == 2
    assert "same samples" in capsys.readouterr().err


def test_command_line(tmp_path):
    """Through `python -m copystudy shapley`, as a user calls it."""
    path = write_game(tmp_path / "u.csv", OWNERS, TABLE)
    done = subprocess.run([sys.executable, "-m", "copystudy", "shapley", str(path), "--json"],
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["shares"]["left"] == pytest.approx(2 / 3)


def test_a_spreadsheet_csv_with_byte_order_mark_and_crlf_reads(tmp_path, capsys):
    plain = write_game(tmp_path / "u.csv", OWNERS, TABLE)
    excel = tmp_path / "excel.csv"
    excel.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes().replace(b"\n", b"\r\n"))
    assert run(plain, "--json") == 0
    expected = json.loads(capsys.readouterr().out)
    assert run(excel, "--json") == 0
    assert json.loads(capsys.readouterr().out) == expected


def test_help_of_the_tools_imports_no_torch():
    """--help answers at once: building a tool's parser imports neither torch nor transformers."""
    code = ("import sys; from copystudy.runner.cli import build_parser\n"
            "for tool in ('compress', 'shapley'): build_parser(tool)\n"
            "print(sorted(m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------- partial tables: --plan, regression
OWNERS8 = [f"o{i}" for i in range(8)]
AIRPORT8 = table_from_game(airport_game([1.0, 2.0, 2.0, 4.0, 5.0, 7.0, 8.0, 12.0]), 8)


def write_partial(path, owners, table, names):
    """A utilities file with only the coalitions named (names joined by '+', '' for the empty one)."""
    index = {"+".join(o for o, m in zip(owners, row) if m): k for k, row in enumerate(coalition_matrix(len(owners)))}
    path.write_text("coalition,utility\n" + "".join(f"{c},{table[index[c]]}\n" for c in names))
    return path


def plan_names(capsys, *argv):
    assert run(*argv) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "coalition,utility" and all(line.endswith(",") for line in lines[1:])
    return [line[:-1] for line in lines[1:]], captured.err


@pytest.mark.parametrize("estimator", ["permutation", "kernel"])
def test_a_planned_partial_table_is_accepted_and_matches_the_full_table(tmp_path, capsys, estimator):
    names, note = plan_names(capsys, "--plan", 64, "--owners", ",".join(OWNERS8), "--estimator", estimator,
                             "--seed", 4)
    assert 2 * 7 < len(names) <= 64 and len(set(names)) == len(names) and "" in names and "+".join(OWNERS8) in names
    assert "--budget 64 --seed 4" in note
    partial = write_partial(tmp_path / "partial.csv", OWNERS8, AIRPORT8, names)
    full = write_game(tmp_path / "full.csv", OWNERS8, AIRPORT8)
    results = []
    for path in (partial, full):
        assert run(path, "--estimator", estimator, "--budget", 64, "--seed", 4, "--json") == 0
        results.append(json.loads(capsys.readouterr().out)["shapley"])
    assert results[0] == results[1]  # the same coalitions were used: the missing ones were never needed


@pytest.mark.parametrize("estimator", ["permutation", "kernel"])
def test_without_a_budget_a_planned_file_is_estimated_from_the_coalitions_it_has(tmp_path, capsys, estimator):
    names, _ = plan_names(capsys, "--plan", 40, "--owners", ",".join(OWNERS8), "--estimator", estimator)
    partial = write_partial(tmp_path / "partial.csv", OWNERS8, AIRPORT8, names)
    assert run(partial, "--estimator", estimator, "--owners", ",".join(OWNERS8), "--json") == 0
    assert json.loads(capsys.readouterr().out)["budget"] == len(names)


def test_a_partial_table_that_lacks_coalitions_names_them(tmp_path, capsys):
    names, _ = plan_names(capsys, "--plan", 64, "--owners", ",".join(OWNERS8), "--estimator", "kernel")
    partial = write_partial(tmp_path / "partial.csv", OWNERS8, AIRPORT8, names[:-3])
    assert run(partial, "--estimator", "kernel", "--budget", 64) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "3 not in the file" in err and "--plan 64" in err
    for name in names[-3:]:
        assert (name or "(empty coalition)") in err


def test_regression_on_the_full_table_is_exact_and_on_a_partial_one_close(tmp_path, capsys):
    from copystudy.attribution.closed_form_games import airport_shapley

    exact = airport_shapley([1.0, 2.0, 2.0, 4.0, 5.0, 7.0, 8.0, 12.0])
    assert run(write_game(tmp_path / "full.csv", OWNERS8, AIRPORT8), "--estimator", "regression", "--json") == 0
    np.testing.assert_allclose(list(json.loads(capsys.readouterr().out)["shapley"].values()), exact, atol=1e-9)
    names, _ = plan_names(capsys, "--plan", 128, "--owners", ",".join(OWNERS8), "--estimator", "regression")
    assert run(write_partial(tmp_path / "p.csv", OWNERS8, AIRPORT8, names), "--estimator", "regression",
               "--owners", ",".join(OWNERS8), "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["budget"] == len(names) == 128
    even = np.abs(exact - exact.mean()).sum()
    assert np.abs(np.array(list(out["shapley"].values())) - exact).sum() < 0.5 * even


def test_regression_without_the_empty_coalition_says_so(tmp_path, capsys):
    path = tmp_path / "u.csv"
    path.write_text("coalition,utility\nleft+right1+right2,1\nleft,0\nright1,0\n")
    assert run(path, "--estimator", "regression") == 2
    err = capsys.readouterr().err
    assert "empty and the full coalition" in err and "(empty coalition)" in err


def test_a_permutation_budget_below_one_antithetic_pair_is_refused(tmp_path, capsys):
    path = write_game(tmp_path / "full.csv", OWNERS8, AIRPORT8)
    assert run(path, "--estimator", "permutation", "--budget", 10) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "at least 16" in err


def test_plan_needs_owners_and_a_sensible_budget(capsys):
    assert run("--plan", 10) == 2
    assert "--owners" in capsys.readouterr().err
    assert run("--plan", 5, "--owners", "a,b,c,d", "--estimator", "permutation") == 2
    assert "at least 8" in capsys.readouterr().err


@pytest.mark.parametrize("estimator", ["permutation", "kernel"])
def test_a_budget_beyond_the_coalitions_reports_the_budget_used(tmp_path, capsys, estimator):
    """3 owners have 8 coalitions: a budget of 1000 evaluates at most those 8, and says so."""
    path = write_game(tmp_path / "u.csv", OWNERS, TABLE)
    assert run(path, "--estimator", estimator, "--budget", 1000, "--json") == 0
    assert json.loads(capsys.readouterr().out)["budget"] == 8
    assert run(path, "--estimator", estimator, "--budget", 1000) == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        f"({estimator} estimator, budget 8: every coalition of 3 owners, of the 1000 asked)"
    assert run(path, "--estimator", estimator, "--budget", 6) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"({estimator} estimator, budget 6)"


def test_a_folder_is_named_as_a_folder(tmp_path, capsys):
    assert run(tmp_path) == 2
    assert capsys.readouterr().err.strip() == (f"error: {tmp_path} is a folder; give the CSV file of coalition "
                                               "utilities (coalition,utility[,sample])")
    assert run(tmp_path / "missing.csv") == 2
    assert "missing.csv: no such file" in capsys.readouterr().err
