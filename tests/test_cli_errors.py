"""Clean failures everywhere (issue 14, items 3-8): one line on stderr, the documented exit code,
and with ``--json`` one ``{"error", "exit_code"}`` document on stdout, for every command."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from zenfx.cli.common import JsonOpt, handle_errors
from zenfx.errors import UsageError
from zenfx.loading import parse_kwargs, resolve_model

REPO = Path(__file__).resolve().parents[1]
BACKBONE = f"{REPO / 'examples' / 'my_backbone.py'}:build"

NETS = textwrap.dedent(
    """
    import torch
    from torch import nn

    import zenfx


    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x)))


    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.rgb = nn.Conv2d(3, 8, 3)
            self.depth = nn.Conv2d(1, 8, 3)

        def forward(self, x, depth):
            return self.rgb(x) + self.depth(depth)


    class Features(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.b = nn.Conv2d(8, 8, 3, stride=2, padding=1)

        def forward(self, x):
            f1 = torch.relu(self.bn(self.a(x)))
            return {"stage1": f1, "stage2": self.b(f1)}


    class FeatureList(Features):
        def forward(self, x):
            f1 = torch.relu(self.bn(self.a(x)))
            return [f1, self.b(f1)]


    class Item(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)

        def forward(self, x):
            return self.conv(x) * x.mean().item()


    def picked():
        return zenfx.pick_output(Features(), "stage2")
    """
)


@pytest.fixture
def nets(tmp_path: Path) -> Path:
    path = tmp_path / "nets.py"
    path.write_text(NETS)
    return path


def one_line(err: str) -> bool:
    return err.strip() != "" and err.strip().count("\n") == 0 and "Traceback" not in err


# --------------------------------------------------------------------------- item 3: constructor errors


@pytest.mark.parametrize("command", ["inspect", "score", "report"])  # meta build (inspect) and CPU builds
@pytest.mark.parametrize("value,exc", [("48.5", "ValueError"), ("-4", "RuntimeError")])
def test_constructor_exceptions_are_one_line_usage_errors(cli, command, value, exc):
    code, _, err = cli(command, BACKBONE, "-k", f"width={value}", "-r", "32")
    assert code == 2, err
    assert one_line(err)
    assert "my_backbone.py:build" in err and f"width={value}" in err and exc in err


@pytest.mark.parametrize("device", [None, "meta"])
def test_constructor_value_error_names_spec_in_the_api(tmp_path, device):
    path = tmp_path / "picky.py"
    path.write_text("def build(width=8):\n    raise ValueError(f'width {width} must be a multiple of 8')\n")
    with pytest.raises(UsageError, match=r"cannot build .*picky.py:build with width=12: ValueError: width 12"):
        resolve_model(f"{path}:build", {"width": 12}, device=device)


# --------------------------------------------------------------------------- item 4: -k values


@pytest.mark.parametrize("raw", ["width=abc", "width=[1,2", "width="])
def test_non_literal_kwargs_are_refused_with_the_quoting_to_use(cli, raw):
    code, _, err = cli("inspect", BACKBONE, "-k", raw)
    assert code == 2 and one_line(err)
    key, value = raw.split("=", 1)
    assert "not a Python literal" in err and f"""-k {key}='"{value}"'""" in err


def test_quoted_strings_and_literals_pass():
    assert parse_kwargs(["act='relu'", 'name="x"', "w=48", "t=(1, 2)", "n=None"]) == {
        "act": "relu", "name": "x", "w": 48, "t": (1, 2), "n": None}


# --------------------------------------------------------------------------- item 5: convert --code


def test_convert_code_to_a_missing_folder_keeps_the_report(cli, nets, tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "x.py"
    code, out, err = cli("convert", f"{nets}:Plain", "-r", "16", "--code", target)
    assert code == 2
    assert "VCNN conversion" in out and "convertible" in out  # the report is still printed
    assert one_line(err) and "cannot write --code" in err and str(target) in err
    code, out, err = cli("convert", f"{nets}:Plain", "-r", "16", "--code", target, "--json")
    doc = json.loads(out)
    assert code == 2 and doc["exit_code"] == 2 and "cannot write --code" in doc["error"]
    assert doc["verdict"] == "convertible"  # the report, in the same document


def test_convert_code_written(cli, nets, tmp_path):
    target = tmp_path / "vcnn.py"
    code, _, err = cli("convert", f"{nets}:Plain", "-r", "16", "--code", target)
    assert code == 0, err
    assert "class" in target.read_text()


# --------------------------------------------------------------------------- item 6: codes and JSON


@pytest.mark.parametrize("command", ["inspect", "convert", "score", "report"])
def test_unknown_model_exits_2_with_suggestions_in_every_command(cli, command):
    code, out, err = cli(command, "resnt18")
    assert code == 2 and one_line(err) and "did you mean" in err and "resnet18" in err
    code, out, err = cli(command, "resnt18", "--json")
    doc = json.loads(out)
    assert code == 2 and doc["exit_code"] == 2 and "resnet18" in doc["error"]


@pytest.mark.parametrize("args,exit_code", [
    (["inspect", "{nets}:TwoInputs"], 2),
    (["inspect", "{nets}:Item"], 3),
    (["convert", "{nets}:Features"], 4),
    (["score", "{nets}:Plain", "--dtype", "fp8"], 2),
    (["report", "{nets}:Plain", "--threads", "0"], 2),
])
def test_json_failures_print_one_error_document(cli, nets, args, exit_code):
    code, out, err = cli(*[a.format(nets=nets) for a in args], "-r", "16", "--json")
    doc = json.loads(out)  # exactly one JSON document on stdout
    assert code == exit_code and doc["exit_code"] == exit_code and doc["error"]
    assert one_line(err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", ["convert", "score", "report"])
def test_cuda_without_cuda_exits_2_everywhere(cli, nets, command):
    code, _, err = cli(command, f"{nets}:Plain", "-r", "16", "--device", "cuda")
    assert code == 2 and one_line(err) and "CUDA" in err


def test_unanticipated_exceptions_are_one_line_exit_1_and_json(monkeypatch, tmp_path):
    """An exception that is not a ZenfxError never shows a traceback either: one line naming it and
    where it was raised, a zenfx frame (a bug) or the user's own code."""
    import importlib.util

    monkeypatch.delenv("ZENFX_DEBUG", raising=False)
    user = tmp_path / "user_model.py"
    user.write_text("def forward():\n    raise ValueError('negative variance')\n")
    spec = importlib.util.spec_from_file_location("user_model", user)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = typer.Typer()

    @app.command()
    @handle_errors
    def broken(where: str, json: JsonOpt = False) -> None:
        if where == "zenfx":
            from zenfx.loading import parse_input_size

            parse_input_size(input_size=5)  # a wrong type deep in zenfx: stands in for a bug
        module.forward()

    runner = CliRunner()
    res = runner.invoke(app, ["zenfx"], catch_exceptions=False)
    assert res.exit_code == 1 and one_line(res.stderr)
    assert "internal error: AttributeError" in res.stderr and "options.py:" in res.stderr
    res = runner.invoke(app, ["user"], catch_exceptions=False)
    assert res.exit_code == 1 and one_line(res.stderr)
    assert "the model's code raised ValueError: negative variance at user_model.py:2" in res.stderr
    res = runner.invoke(app, ["user", "--json"], catch_exceptions=False)
    assert res.exit_code == 1 and json.loads(res.stdout)["exit_code"] == 1


def test_exit_codes_documented_in_help_and_readme(cli):
    _, out, err = cli("--help")
    text = " ".join((out + err).split())  # whatever the terminal's wrapping
    assert "130 interrupted" in text and "1 unexpected error" in text
    readme = (REPO / "README.md").read_text()
    assert "| 130 |" in readme and "| 1 |" in readme


# --------------------------------------------------------------------------- item 7: options checked


@pytest.mark.parametrize("args,needle", [
    (["inspect", "-r", "0"], "--resolution must be positive"),
    (["inspect", "-r", "-3"], "--resolution must be positive"),
    (["convert", "-r", "0"], "--resolution must be positive"),
    (["report", "-r", "0"], "--resolution must be positive"),
    (["export", "-r", "0"], "--resolution must be positive"),
    (["report", "--threads", "0"], "--threads must be at least 1"),
    (["report", "--threads", "-2"], "--threads must be at least 1"),
    (["report", "--latency", "--warmup", "-1"], "--warmup must be at least 0"),
    (["report", "--latency", "--min-run-time", "0"], "--min-run-time must be greater than 0"),
    (["report", "--batch-size", "0"], "--batch-size must be at least 1"),
])
def test_bad_option_values_are_refused(cli, nets, args, needle):
    command, *rest = args
    if command == "export":
        rest += ["--out", str(nets.with_name("exported.py"))]
    code, out, err = cli(command, f"{nets}:Plain", *rest)
    assert code == 2 and one_line(err) and needle in err
    assert out.strip() == ""  # nothing measured, nothing printed


# --------------------------------------------------------------------------- item 8: what is really wrong


def test_two_input_forward_says_so(cli, nets):
    code, _, err = cli("inspect", f"{nets}:TwoInputs", "-r", "16")
    assert code == 2 and one_line(err)
    assert "forward takes 2 inputs (x, depth)" in err and "wrap the model" in err


@pytest.mark.parametrize("name,what", [("Features", "a dict (keys 'stage1', 'stage2')"),
                                       ("FeatureList", "a list of 2 outputs")])
def test_several_outputs_say_so_and_pick_output_fixes_it(cli, nets, name, what):
    code, _, err = cli("convert", f"{nets}:{name}", "-r", "16")
    assert code == 4 and f"returns {what}" in err and "pick_output" in err
    assert "no convolution left" not in err
    code, out, err = cli("convert", f"{nets}:picked", "-r", "16", "--json")
    assert code == 0, err
    assert json.loads(out)["output_shape"] == [1, 8, 8, 8]


def test_data_dependent_forward_is_not_traceable_not_a_shape_error(cli, nets):
    code, _, err = cli("inspect", f"{nets}:Item", "-r", "16")
    assert code == 3 and one_line(err)
    assert "Tensor.item()" in err and "input of shape" not in err


def test_report_on_a_data_dependent_forward_still_gives_params_and_macs(cli, nets):
    """docs/report.md: an untraceable model still gets params and MACs (one eager forward counts them)."""
    code, out, err = cli("report", f"{nets}:Item", "-r", "16", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["params"]["total"] == 8 * 3 * 9 + 8
    assert doc["macs"] == 8 * 14 * 14 * 27  # the conv; .item() and the scalar multiply count nothing
    assert doc["activation_memory"] is None and any("Tensor.item()" in n for n in doc["notes"])


@pytest.mark.parametrize("args", [["space"], ["mutate"], ["export", "--out", "{tmp}/x.py"], ["audit"],
                                  ["search", "--out", "{tmp}/run"]])
def test_unknown_model_is_exit_2_with_suggestions_in_the_other_commands_too(cli, tmp_path, args):
    from zenfx.cli.app import build_app

    if args[0] not in {c.name for c in build_app().registered_commands}:
        pytest.skip(f"no '{args[0]}' command")
    command, *rest = [a.format(tmp=tmp_path) for a in args]
    code, out, err = cli(command, "resnt18", *rest, "--json")
    doc = json.loads(out)
    assert code == 2 and doc["exit_code"] == 2 and "did you mean" in doc["error"] and "resnet18" in doc["error"]
