"""Parameter specs, YAML parameter sets and the declarations of every study notebook."""

from __future__ import annotations

import math

import pytest

from conftest import ROOT
from copystudy.runner import plan
from copystudy.runner.params import ParameterError, declared_parameters, parse_spec, read_params_file, yaml_value


@pytest.mark.parametrize("spec, good, bad", [
    ("int >= 1", [1, 600, 1e3], [0, -3, 1.5, True, "3", None, math.nan]),
    ("int >= 0", [0, 7], [-1]),
    ("float > 0", [0.004, 1, "1e-3"], [0.0, -1e-3, math.nan, math.inf, -math.inf, "nan", "fast", False]),
    ("float in (0, 1)", [0.1, 0.99], [0.0, 1.0, 1.5, -0.1]),
    ("float in [0, 1)", [0.0, 0.5], [1.0]),
    ("float in (0, 1]", [1.0], [0.0]),
    ("int in [1, 18]", [1, 18], [0, 19]),
    ("even int >= 2", [2, 64], [0, 3, 63]),
    ('one of "l2", "tiled_l2"', ["l2", "tiled_l2"], ["manhattan", "L2", 2, None]),
    ("one of 16, 32", [16, 32], [8, "16", True]),
    ("bool", [True, False], [1, "yes", None]),
    ("str", ["", "abc"], [3, None]),
    ("path", ["a/b"], ["", 3]),
    ("dict", [{}, {"a": 1}], [[1], "a"]),
    ("int >= 1 or None", [None, 3], [0]),
    ("list of int >= 1", [[1], [3, 1, 3]], [[], [0], 3, [1.5]]),
    ("list of unique int in [0, 9]", [[0, 1, 9]], [[0, 0], [10], []]),
    ('list of unique str', [["a", "b"]], [["a", "a"], [1]]),
    ('list of unique one of "typefaces", "digits"', [["digits"]], [["digits", "digits"], ["faces"]]),
    ("list of increasing int >= 1", [[1, 2, 5]], [[2, 2], [5, 1]]),
    ("range of int >= 1", [[1500, 4000], [5, 5]], [[4000, 1500], [1], [1, 2, 3], [0, 3]]),
    ("text files (at least 2) or None", [None, "a.txt", ["a", "b/*.txt"]], [[], [""], 3, [1]]),
    ("image folder or None", [None, "imgs"], ["", ["imgs"]]),
    ("list of dict", [[{"n_layer": 1}]], [[1], {}]),
])
def test_a_spec_accepts_exactly_its_values(spec, good, bad):
    parsed = parse_spec(spec)
    for value in good:
        parsed.check(value)
    for value in bad:
        with pytest.raises(ValueError):
            parsed.check(value)


def test_coercions():
    assert parse_spec("float > 0").check(1) == 1.0 and isinstance(parse_spec("float > 0").check(1), float)
    assert parse_spec("float > 0").check("1e-3") == 0.001
    assert parse_spec("int >= 1").check(1e3) == 1000 and isinstance(parse_spec("int >= 1").check(1e3), int)
    assert parse_spec("text files").check("corpus/*.txt") == ["corpus/*.txt"]
    assert parse_spec("text files (at least 2)").min_files == 2


@pytest.mark.parametrize("bad", ["random seed", "integer >= 1", "int >= one", "int => 1", "str >= 1",
                                 "one of l2, tiled", "even float", "text files (at least two)", ""])
def test_a_spec_that_does_not_read_is_refused(bad):
    with pytest.raises(ValueError):
        parse_spec(bad)


def test_every_study_parameter_declares_a_spec_its_default_satisfies():
    """declared_parameters refuses a parameter without a spec, or whose default does not fit it."""
    for name, path in plan.notebooks(ROOT).items():
        declared = declared_parameters(path)
        assert declared, name
        for p in declared.values():
            assert p.spec.base != "any" and p.help, (name, p.name)
            p.spec.check(p.default)


def test_every_parameter_set_of_the_study_is_valid(tmp_path):
    for name in plan.notebooks(ROOT):
        for params_file in plan.parameter_sets(name, ROOT):
            # the paper sets play on the reader's own data, which the README says to --set
            sets = [f"data_dir={tmp_path}"] if params_file.stem == "paper" and name == "royalty_shares" else []
            plan.resolve_parameters(name, params_file, sets, ROOT)
    with pytest.raises(ParameterError, match="plays on your own images: set data_dir"):
        plan.resolve_parameters("royalty_shares", ROOT / "params" / "royalty_shares" / "paper.yaml", [], ROOT)


def test_yaml_floats_without_a_dot_are_floats():
    assert yaml_value("1e-3") == 0.001 and yaml_value("2E+2") == 200.0 and yaml_value("-1.5e3") == -1500.0
    assert yaml_value("3") == 3 and yaml_value("0.5") == 0.5 and yaml_value("l2") == "l2"
    assert yaml_value("[1, 2]") == [1, 2] and yaml_value("1e3x") == "1e3x"


@pytest.mark.parametrize("content, message", [
    (b"lr: [1, 2\n", r"p.yaml:2:1: not valid YAML"),
    (b"n: 1\n  bad: indent: here\n", r"p.yaml:2:\d+: not valid YAML"),
    (b"n: 1\nrate: 0.5\nn: 2\n", r"p.yaml:3:1: not valid YAML: duplicate key 'n' \(first on line 1\)"),
    (b"label: caf\xe9\n", r"p.yaml:1:11: not UTF-8 \(byte 0xe9\)"),
    (b"", r"p.yaml: the file is empty, it sets no parameters"),
    (b"# only a comment\n", r"p.yaml: the file is empty"),
    (b"- 1\n- 2\n", r"p.yaml:1:1: expected `name: value` lines"),
])
def test_bad_params_files_get_one_line_with_file_line_and_column(tmp_path, content, message):
    path = tmp_path / "p.yaml"
    path.write_bytes(content)
    with pytest.raises(ParameterError, match=message) as info:
        read_params_file(path)
    assert "\n" not in str(info.value)


def test_a_params_file_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_bytes(b"\xef\xbb\xbfn: 4\r\nlr: 1e-3\r\n")
    values, lines = read_params_file(path)
    assert values == {"n": 4, "lr": 0.001} and lines == {"n": 1, "lr": 2}


@pytest.mark.parametrize("name, sets, message", [
    ("memorization", ["distance=manhattan"], "parameter 'distance' must be one of \"l2\", \"tiled_l2\""),
    ("memorization", ["ratio=1.5"], "parameter 'ratio' must be float in \\(0, 1\\]"),
    ("lm_compression", ["heldout_fraction=1.0"], "parameter 'heldout_fraction' must be float in \\(0, 1\\)"),
    ("lm_compression", ["lr=.nan"], "which is not finite"),
    ("lm_compression", ["batch_size=0"], "parameter 'batch_size' must be int >= 1"),
    ("lm_compression", ["sweep_data_sizes=[400000, 30000]"], "not increasing"),
    ("royalty_shares", ["digit_owners=[0, 1, 1]"], "1 appears twice"),
    ("royalty_shares", ["glyph_owners=[DejaVuSans, DejaVuSans]"], "'DejaVuSans' appears twice"),
    ("royalty_shares", ["datasets=[digits, faces]"], "item 2: got 'faces'"),
    ("royalty_shares", ["n_strata=63"], "parameter 'n_strata' must be even int >= 2 .* which is odd"),
    ("royalty_shares", ["n_strata=0"], "parameter 'n_strata' must be even int >= 2"),
    ("royalty_shares", ["n_strata=256"], "n_strata=256 exceeds the 199 timesteps"),
    ("royalty_shares", ["shell_owner=7"], "shell_owner=7 is not an owner index of the digits game \\(0..4\\)"),
    ("royalty_shares", ["datasets=[typefaces]"], "shell_dataset='digits' is not one of the games played"),
    ("description_length", ["min_steps=5000"], "min_steps=5000 is larger than max_steps="),
    ("description_length", ["first_block=200"], "first_block=200 must be at least 2 x \\(model.context \\+ 1\\) = 258"),
    ("description_length", ["precisions=[8, 1]"], "item 2"),
    ("description_length", ["model.n_head=3"], "model: n_embd=64 must be a multiple of n_head=3"),
    ("lm_compression", ["sweep_models={a: {n_layer: 1, n_head: 3, n_embd: 8}}"], "sweep_models.a: n_embd=8"),
    ("memorization", ["lm_sizes=[{n_layer: 1, n_head: 5, n_embd: 32}]"], "lm_sizes\\[0\\]: n_embd=32"),
    ("memorization", ["lm_context=20"], "lm_context=20 is shorter than a canary line after a line break \\(33 bytes"),
    ("memorization", ["n_digits=2", "n_candidates=200"], "n_candidates=200 exceeds the 99 other secrets"),
    ("memorization", ["epochs=[800, 200]"], "not increasing"),
    ("memorization", ["seeds=[0, 0]"], "parameter 'seeds' must be list of unique int >= 0 .*0 appears twice"),
    ("description_length", ["work_bytes=[4000, 1500]"], "not \\[low, high\\]"),
])
def test_the_study_refuses_bad_values_naming_them(name, sets, message):
    with pytest.raises(ParameterError, match=message):
        plan.resolve_parameters(name, None, sets, ROOT)


@pytest.mark.parametrize("name, sets, message", [
    ("lm_compression", ["model.n_embd=0"], "error: lm_compression: model.n_embd=0: must be int >= 1 (default 64), got 0"),
    ("lm_compression", ["model.n_embd=abc"], "error: lm_compression: model.n_embd=abc: must be int >= 1 (default 64), "
                                             "got str 'abc'"),
    ("lm_compression", ["model.n_embdd=64"], "error: lm_compression: model.n_embdd: no such option of causal_lm from a "
                                             "config; did you mean 'n_embd'?"),
    ("lm_compression", ["model.family=causl_lm"], "model.family=causl_lm: not a model family; did you mean 'causal_lm'?"),
    ("lm_compression", ["model={family: causal_lm, name_or_path: gpt2, dtype: float8}"],
     'model.dtype=float8: must be one of "float32", "float16", "bfloat16"'),
    ("royalty_shares", ["model.num_train_timesteps=abc"], "model.num_train_timesteps=abc: must be int >= 2"),
    ("memorization", ["model.block_channels=[8, 12]"], "model: block_channels [8, 12] must be multiples of norm_num_groups=8"),
    ("copyright_risk", ["model.layers_per_block=0"], "model.layers_per_block=0: must be int >= 1 (default 1), got 0"),
    ("lm_compression", ["sweep_models={a: {family: causal_lm, n_layer: 1, n_embd: 8, contxt: 64}}"],
     "sweep_models.a.contxt: no such option of causal_lm from a config; did you mean 'context'?"),
])
def test_check_refuses_a_bad_model_spec_key_by_key(name, sets, message):
    """`run NAME --check` checks every model spec (a dict with a family, nested ones too) against the
    options its family declares: one line, exit 2, before any kernel."""
    from conftest import one_line_error, run_cli

    line = one_line_error(run_cli("run", name, "--check", *[a for s in sets for a in ("--set", s)], check=False))
    assert message in line
