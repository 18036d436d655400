"""Files a lab drops by mistake, or in a variant of a format: read them, or say what to do."""

from __future__ import annotations

import csv
import gzip
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.cycler import FirstCycle, ReadError, UnsupportedFormat, read_export
from agent.cycler.parsing import parse_float

ARBIN_MITS = "arbin_mits_first_cycle.csv"  # hand-made, in tests/data (charge and discharge)


def _european(source: Path, target: Path) -> Path:
    """The export as a European locale writes it: ';' between fields, decimal commas."""
    with source.open(encoding="latin-1", newline="") as handle:
        rows = list(csv.reader(handle))
    with target.open("w", encoding="latin-1", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerows([[_decimal_comma(field) for field in row] for row in rows])
    return target


def _decimal_comma(field: str) -> str:
    try:
        parse_float(field)
    except ValueError:
        return field  # text, dates and times stay as they are
    return field.replace(".", ",")


@pytest.mark.parametrize(
    "relative",
    [
        "arbin/FastCharge_000025_CH8.csv",
        "neware/neware_uio.csv",
        "neware/nw_regular_export_ife_example.csv",
    ],
)
def test_european_csv_reads_as_the_original(
    cycler_files: Path, tmp_path: Path, relative: str
) -> None:
    original = cycler_files / relative
    european = _european(original, tmp_path / original.name)
    assert b";" in european.read_bytes()[:200]

    assert read_export(european) == read_export(original)


def test_european_arbin_with_a_first_cycle(local_data: Path, tmp_path: Path) -> None:
    # the real Arbin file is rest only: the hand-made MITS file has a charge and a discharge
    european = _european(local_data / ARBIN_MITS, tmp_path / ARBIN_MITS)
    assert b";3,8240;" in european.read_bytes()

    cycle = read_export(european)

    assert cycle == read_export(local_data / ARBIN_MITS)
    assert isinstance(cycle, FirstCycle)
    assert cycle.charge is not None and cycle.discharge is not None
    assert cycle.charge.capacity_mah == pytest.approx(2.3601)  # see tests/data/SOURCES.md
    assert cycle.discharge.capacity_mah == pytest.approx(2.0301)


def test_gzip_compressed_export_says_to_unpack_it(cycler_files: Path, tmp_path: Path) -> None:
    path = tmp_path / "B001-S01.csv.gz"
    path.write_bytes(gzip.compress((cycler_files / "neware" / "neware_uio.csv").read_bytes()))
    with pytest.raises(UnsupportedFormat, match=r"gzip-compressed .*unpack it") as raised:
        read_export(path)
    assert "binary data" not in str(raised.value)


def test_neware_ndax_is_named_and_says_to_export_csv(tmp_path: Path) -> None:
    # the layout NewareNDA reads: XML settings and the records in data.ndc (binary)
    path = tmp_path / "B001-S01.ndax"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("VersionInfo.xml", '<?xml version="1.0"?><root><config/></root>')
        archive.writestr("Step.xml", '<?xml version="1.0"?><root><config/></root>')
        archive.writestr("data.ndc", bytes(range(256)) * 64)
        archive.writestr("data_runInfo.ndc", bytes(1024))
    with pytest.raises(UnsupportedFormat, match=r"Neware NDAX binary .*BTSDA as \.csv") as raised:
        read_export(path)
    assert "xlsx" not in str(raised.value)


def test_damaged_zip_is_still_called_a_zip_archive(tmp_path: Path) -> None:
    path = tmp_path / "B001-S01.ndax"
    path.write_bytes(b"PK\x03\x04" + bytes(200))  # no member list to read
    with pytest.raises(UnsupportedFormat, match="zip archive"):
        read_export(path)


def test_maccor_procedure_is_named(tmp_path: Path) -> None:
    # how a Maccor procedure (.000) file begins
    procedure = (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n'
        '<?maccor-application progid="Maccor Procedure File"?>\r\n'
        "<MaccorTestProcedure>\r\n  <header>\r\n    <BuildTestVersion>\r\n"
        "      <major>1</major>\r\n    </BuildTestVersion>\r\n  </header>\r\n"
        "  <ProcSteps>\r\n    <TestStep>\r\n      <StepType>Rest</StepType>\r\n"
        "    </TestStep>\r\n  </ProcSteps>\r\n</MaccorTestProcedure>\r\n"
    )
    path = tmp_path / "NCM_formation.000"
    path.write_text(procedure, encoding="utf-8")
    with pytest.raises(
        UnsupportedFormat,
        match=r"a Maccor test procedure, not a data export: export the test's data",
    ):
        read_export(path)


@pytest.mark.parametrize("name", ["B001-S01_Metadata.csv", "B001-S01_metadata.csv"])
@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_arbin_metadata_sheet_says_to_drop_the_data_export(
    cycler_files: Path, tmp_path: Path, name: str, case: Callable[[str], str]
) -> None:
    header, rest = (
        (cycler_files / "arbin" / "FastCharge_000025_CH8_Metadata.csv")
        .read_text(encoding="utf-8")
        .split("\n", 1)
    )
    path = tmp_path / name
    path.write_text(case(header) + "\n" + rest, encoding="utf-8")
    with pytest.raises(
        UnsupportedFormat, match=r"Arbin metadata sheet: drop the channel's data export"
    ):
        read_export(path)


@pytest.mark.parametrize(("column", "index"), [("Cycle_Index", 5), ("Step_Index", 6)])
def test_arbin_empty_index_column_names_column_row_and_meaning(
    local_data: Path, tmp_path: Path, column: str, index: int
) -> None:
    lines = (local_data / ARBIN_MITS).read_text(encoding="utf-8").splitlines()
    assert lines[0].split(",")[index] == column
    fields = lines[3].split(",")
    fields[index] = ""
    lines[3] = ",".join(fields)  # line 4 of the file
    path = tmp_path / "B001-S01.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ReadError) as raised:
        read_export(path)
    message = str(raised.value)
    assert message.startswith(f"arbin-csv: line 4: {column} is empty: ")
    assert "which cycle and step it belongs to" in message
    assert "could not parse" not in message
