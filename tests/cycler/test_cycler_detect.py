"""detect(): the format comes from the content, never from the file name."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from agent.cycler import UnsupportedFormat, detect, read_export

REAL = [
    ("arbin/FastCharge_000025_CH8.csv", "arbin-csv"),
    ("maccor/maccor_test_file_4267-66-6519.041", "maccor-text"),
    ("maccor/PredictionDiagnostics_000151_test.052", "maccor-text"),
    ("maccor/maccor_002.txt", "maccor-text"),
    ("neware/neware_uio.csv", "neware-csv"),
    ("neware/nw_regular_export_ife_example.csv", "neware-csv"),
    ("biologic/biol.mpr", "biologic-mpr"),
    ("biologic/test_loopsnewoutput_MB_CE1_short10k.csv", "biologic-mpt"),
]
LOCAL = [
    ("biol_first_charge.mpt", "biologic-mpt"),
    ("arbin_mits_first_cycle.csv", "arbin-csv"),
    ("results_ok_failed.csv", "result-sheet"),
    ("results_with_params.csv", "result-sheet"),
]


@pytest.mark.parametrize(("relative", "fmt"), REAL)
def test_real_exports_are_detected(cycler_files: Path, relative: str, fmt: str) -> None:
    assert detect(cycler_files / relative) == fmt


@pytest.mark.parametrize(("name", "fmt"), LOCAL)
def test_local_fixtures_are_detected(local_data: Path, name: str, fmt: str) -> None:
    assert detect(local_data / name) == fmt


@pytest.mark.parametrize(("relative", "fmt"), REAL)
@pytest.mark.parametrize("suffix", [".dat", ".txt", ".xlsx", ""])
def test_detection_ignores_the_extension(
    cycler_files: Path, tmp_path: Path, relative: str, fmt: str, suffix: str
) -> None:
    renamed = tmp_path / f"B001-S01{suffix}"
    shutil.copyfile(cycler_files / relative, renamed)
    assert detect(renamed) == fmt


def test_detect_reads_only_the_head(cycler_files: Path, tmp_path: Path) -> None:
    # a valid head followed by megabytes of binary junk: detection must not look past 64 KiB
    path = tmp_path / "long.csv"
    head = (cycler_files / "neware" / "neware_uio.csv").read_bytes()[:70_000]
    path.write_bytes(head + b"\x00\xff" * 2_000_000)
    assert detect(path) == "neware-csv"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "unsupported format: empty file"),
        (b"\r\n  \n", "unsupported format: empty file"),
        (b"\x00\x01\x00\x00Standard Jet DB\x00\x01" + bytes(200), "Arbin .res binary"),
        (b"\x00\x01\x00\x00Standard ACE DB\x00\x01" + bytes(200), "MS Access database"),
        (bytes(range(256)) * 8, "unsupported format: binary data (not text)"),
        (b"Time,Temperature,Humidity\n1,25.0,40\n", "text with no known cycler header"),
    ],
)
def test_unsupported_content_says_what_it_is(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "B001-S01.csv"
    path.write_bytes(content)
    with pytest.raises(UnsupportedFormat) as raised:
        detect(path)
    assert str(raised.value).startswith("unsupported format: ")
    assert expected in str(raised.value)


def test_zip_archive_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "B001-S01.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    with pytest.raises(UnsupportedFormat, match=r"zip archive \(\.xlsx\?\) — export as CSV"):
        read_export(path)


def test_unknown_text_quotes_its_first_line_cut_to_80_characters(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    first = "x" * 200
    path.write_text(f"\n{first}\nmore\n")
    with pytest.raises(UnsupportedFormat) as raised:
        detect(path)
    assert f"(first line: '{'x' * 80}')" in str(raised.value)
