"""Result sheets entered by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cycler import FailureClass, Outcome, ReadError, SheetRow, read_export


def _rows(path: Path) -> list[SheetRow]:
    result = read_export(path)
    assert isinstance(result, list)
    return result


def _sheet(tmp_path: Path, text: str, name: str = "B002-results.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_ok_and_failed_rows(local_data: Path) -> None:
    ok, failed = _rows(local_data / "results_ok_failed.csv")

    assert ok == SheetRow(
        sample_id="B002-S01", status=Outcome.OK, row_number=2, discharge_mah_g=212.6
    )
    assert failed.sample_id == "B002-S02"
    assert failed.status is Outcome.FAILED
    assert failed.row_number == 3
    assert failed.discharge_mah_g is None
    assert failed.reason == "sintered, no powder"
    # a failed row without failure_class: the recipe produced nothing to test
    assert failed.failure_class is FailureClass.SYNTHESIS


def test_extra_columns_are_recipe_parameters(local_data: Path) -> None:
    trial, shorted = _rows(local_data / "results_with_params.csv")

    assert trial.status is Outcome.OK  # "OK", header names in mixed case
    assert (trial.charge_mah_g, trial.discharge_mah_g) == (238.1, 205.4)
    assert trial.failure_class is None
    assert trial.parameters == {
        "ni_fraction": 0.92,
        "co_fraction": 0.04,
        "calcination_temp_c": 735.0,
        "li_source": "LiOH",
    }  # the empty "operator" cell is left out
    assert shorted.status is Outcome.FAILED
    assert shorted.failure_class is FailureClass.CELL  # explicit class wins over the default
    assert shorted.parameters["li_source"] == "Li2CO3"
    assert shorted.parameters["operator"] == "JS"


@pytest.mark.parametrize("word", ["ok", "OK", "Success", "failed", "FAIL", "Failed"])
def test_status_words(tmp_path: Path, word: str) -> None:
    path = _sheet(tmp_path, f"sample_id,initial_discharge_mah_g,status,reason\nS1,201.5,{word},\n")
    expected = Outcome.OK if word.lower() in ("ok", "success") else Outcome.FAILED
    assert _rows(path)[0].status is expected


def test_semicolon_sheet_with_decimal_commas(tmp_path: Path) -> None:
    path = _sheet(
        tmp_path,
        "sample_id;initial_discharge_mah_g;status;reason;ni_fraction\nS1;201,5;ok;;0,94\n",
    )
    (row,) = _rows(path)
    assert row.discharge_mah_g == 201.5
    assert row.parameters == {"ni_fraction": 0.94}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sample_id,status\nS1,ok\n", "missing column(s): initial_discharge_mah_g, reason"),
        ("sample_id,initial_discharge_mah_g,status,reason\n", "result sheet has no rows"),
        ("sample_id,initial_discharge_mah_g,status,reason\n,,,\n\n", "result sheet has no rows"),
        (
            "sample_id,initial_discharge_mah_g,status,reason\nS1,200,ok,\nS2,,ok,forgot\n",
            "row 3 (S2): an ok row needs a positive number",
        ),
        (
            "sample_id,initial_discharge_mah_g,status,reason\nS1,about 200,ok,\n",
            "row 2 (S1): initial_discharge_mah_g 'about 200' is not a number",
        ),
        (
            "sample_id,initial_discharge_mah_g,status,reason\nS1,200,maybe,\n",
            "row 2 (S1): status 'maybe' is not ok or failed",
        ),
        (
            "sample_id,initial_discharge_mah_g,status,reason,failure_class\nS1,,failed,x,oven\n",
            "failure_class 'oven' is not one of synthesis, cell, measurement",
        ),
        (
            "sample_id,initial_discharge_mah_g,status,reason\n,200,ok,\n",
            "row 2 (no sample_id): sample_id is empty",
        ),
    ],
)
def test_sheet_errors_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ReadError) as raised:
        read_export(_sheet(tmp_path, text))
    assert message in str(raised.value)


def test_excel_unicode_text_sheet(tmp_path: Path) -> None:
    # Excel's "Unicode Text" export: UTF-16 with a BOM, tab-separated
    path = tmp_path / "B002-results.txt"
    text = "sample_id\tinitial_discharge_mah_g\tstatus\treason\r\nB002-S05\t198.2\tok\tµ-sized\r\n"
    path.write_bytes(text.encode("utf-16"))
    (row,) = _rows(path)
    assert (row.sample_id, row.discharge_mah_g, row.reason) == ("B002-S05", 198.2, "µ-sized")
