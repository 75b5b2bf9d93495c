import pytest
import typer

from tollway.cli.output import cell, reporting_errors, split_list
from tollway.pipeline.errors import NOT_FOUND, GatewayError


def test_split_list() -> None:
    assert split_list(None) is None
    assert split_list("a, b,,c ") == ["a", "b", "c"]
    assert split_list("") == []


def test_cell() -> None:
    assert [cell(None), cell(True), cell([]), cell(["a", "b"]), cell({"x": "y"}), cell(3)] == [
        "-",
        "yes",
        "-",
        "a, b",
        "x→y",
        "3",
    ]


def test_reporting_errors_exits_1_and_passes_other_exceptions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as info, reporting_errors():
        raise GatewayError(NOT_FOUND, "thing `[x]` is missing", "缺少")
    assert info.value.exit_code == 1
    assert capsys.readouterr().err.strip() == "error: thing `[x]` is missing"
    with pytest.raises(KeyError), reporting_errors():
        raise KeyError("not ours")
