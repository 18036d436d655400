"""Bad input ends in ReadError / UnsupportedFormat with a useful message, never anything else."""

from __future__ import annotations

import math
import os
import re
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cycler import FirstCycle, ReadError, UnsupportedFormat, read_export

ARBIN = "arbin/FastCharge_000025_CH8.csv"


def _write(tmp_path: Path, content: bytes, name: str = "B001-S01.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormat, match="empty file"):
        read_export(_write(tmp_path, b""))


def test_random_bytes(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormat, match="binary data"):
        read_export(_write(tmp_path, os.urandom(4096), "B001-S01.mpr"))


def test_truncated_arbin_export(cycler_files: Path, tmp_path: Path) -> None:
    lines = (cycler_files / ARBIN).read_bytes().splitlines(keepends=True)
    cut = b"".join(lines[:2]) + lines[2][:40]  # header, one row, and half of the next
    with pytest.raises(ReadError, match=r"arbin-csv: line 3: .*truncated"):
        read_export(_write(tmp_path, cut))


def test_unrelated_csv_header(tmp_path: Path) -> None:
    content = b"date,city,temperature_c\n2025-03-04,Oslo,-2.5\n"
    with pytest.raises(UnsupportedFormat, match="no known cycler header.*date,city"):
        read_export(_write(tmp_path, content))


def test_cycler_header_with_a_column_missing(cycler_files: Path, tmp_path: Path) -> None:
    text = (cycler_files / "maccor" / "maccor_002.txt").read_bytes()
    broken = text.replace(b"\tVoltage [V]\t", b"\tTension\t", 1).replace(b"\tVolts\t", b"\t")
    # without a voltage column it is no longer recognised as Maccor at all
    with pytest.raises(UnsupportedFormat):
        read_export(_write(tmp_path, broken))


def test_arbin_without_a_capacity_column_names_it(tmp_path: Path) -> None:
    content = b"Data_Point,Cycle_Index,Step_Index,Current(A),Voltage(V),Charge_Capacity(Ah)\n"
    content += b"1,1,1,0,3.0,0\n"
    # not enough for the Arbin sniff (no Discharge_Capacity): reported as unknown text
    with pytest.raises(UnsupportedFormat, match="Data_Point,Cycle_Index"):
        read_export(_write(tmp_path, content))


def test_non_utf8_bytes_in_a_data_field(local_data: Path, tmp_path: Path) -> None:
    text = (local_data / "arbin_mits_first_cycle.csv").read_bytes()
    # latin-1 garbage where a voltage should be
    broken = text.replace(b",3.8240,", b",\xff\xfe3.8,", 1)
    with pytest.raises(ReadError, match=r"arbin-csv: line 5: could not parse Voltage\(V\) .ÿþ3.8."):
        read_export(_write(tmp_path, broken))


def test_non_utf8_header_still_reads(cycler_files: Path, tmp_path: Path) -> None:
    # maccor_002.txt has 0xff bytes in its Description line: latin-1 fallback, same numbers
    original = cycler_files / "maccor" / "maccor_002.txt"
    assert b"\xff" in original.read_bytes()[:1000]
    assert isinstance(read_export(original), FirstCycle)


def test_latin1_bytes_at_the_start_of_a_text_file(tmp_path: Path) -> None:
    content = b"\xff\xfe\xe9t\xe9 \xb5A;\xb0C\n1;2\n"
    with pytest.raises(UnsupportedFormat):
        read_export(_write(tmp_path, content))


def test_xlsx_that_is_a_zip_of_junk(tmp_path: Path) -> None:
    path = tmp_path / "B001-S01.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("xl/junk.bin", os.urandom(512))
    with pytest.raises(UnsupportedFormat, match="zip archive"):
        read_export(path)


def test_maccor_with_not_a_number_in_a_used_column(cycler_files: Path, tmp_path: Path) -> None:
    lines = (cycler_files / "maccor" / "maccor_002.txt").read_bytes().split(b"\n")
    row = 16 + 400  # a charge row (line 417 of the file)
    fields = lines[row].split(b"\t")
    fields[9] = b"N/A"  # Voltage [V]
    lines[row] = b"\t".join(fields)
    with pytest.raises(ReadError, match=r"maccor-text: line 417: could not parse Voltage \[V\]"):
        read_export(_write(tmp_path, b"\n".join(lines), "B001-S01.txt"))


def test_mpr_that_is_only_the_magic(tmp_path: Path) -> None:
    path = _write(tmp_path, b"BIO-LOGIC MODULAR FILE\x1a" + bytes(100), "B001-S01.mpr")
    with pytest.raises(ReadError, match="biologic-mpr"):
        read_export(path)


def test_missing_file_is_a_read_error(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="cannot read"):
        read_export(tmp_path / "gone.csv")


FUZZ_SOURCES = [
    ARBIN,
    "maccor/maccor_002.txt",
    "neware/neware_uio.csv",
    "neware/nw_regular_export_ife_example.csv",
    "biologic/test_loopsnewoutput_MB_CE1_short10k.csv",
]


CRASH_CAUGHT_BY_GUARD = re.compile(r"[^:]+: [A-Z]\w*(Error|Exception): ")


@settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis folder in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    source=st.sampled_from(FUZZ_SOURCES),
    cut=st.integers(min_value=0, max_value=6000),
    junk=st.binary(max_size=40),
    at=st.integers(min_value=0, max_value=6000),
)
def test_damaged_exports_are_refused_by_the_readers_own_checks(
    cycler_files: Path, tmp_path: Path, source: str, cut: int, junk: bytes, at: int
) -> None:
    """A cut or corrupted export gives a reader's own one-line reason, never a crash that
    only read_export's last line of defence turned into a ReadError, and what is read from
    it is made of finite numbers."""
    head = (cycler_files / source).read_bytes()[:6000]
    content = head[:at] + junk + head[at:cut]
    try:
        result = read_export(_write(tmp_path, content))
    except ReadError as error:  # UnsupportedFormat is a ReadError too
        # "arbin csv: IndexError: ..." is a crash the guard caught, not a reason
        assert not CRASH_CAUGHT_BY_GUARD.match(str(error)), str(error)
        assert str(error) and "\n" not in str(error)
        return
    if isinstance(result, FirstCycle):
        for step in (result.charge, result.discharge):
            if step is not None:
                numbers = (step.capacity_mah, step.start_v, step.end_v, step.max_v, step.min_v)
                assert all(math.isfinite(x) for x in numbers), step
    else:
        assert isinstance(result, list)
