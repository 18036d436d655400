"""Low-level helpers shared by the readers.

Reading a file's head, choosing its text encoding, opening it for streaming, finding columns,
parsing numbers with errors that name the line, and making sure a reader raises nothing but
ReadError.
"""

from __future__ import annotations

import codecs
import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TextIO, TypeVar

from agent.cycler.base import ReadError

# detection and header sniffing look at this much of a file, never more
HEAD_BYTES = 64 * 1024

T = TypeVar("T")


class CsvRows(Protocol):
    """What ``csv.reader`` returns: rows of fields, and the number of lines read so far."""

    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...

    def __next__(self) -> list[str]: ...


def read_head(path: Path, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of the file."""
    with path.open("rb") as handle:
        return handle.read(size)


def text_encoding(head: bytes) -> str:
    """The encoding to read a text export with: UTF-8 (BOM or not), UTF-16 with a BOM, or latin-1.

    latin-1 decodes any byte, so a stray non-UTF-8 byte (an instrument's description field) never
    stops a read: it can only turn into a wrong character in a text field.
    """
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # the head may end inside a multi-byte character: that alone is no reason to give up UTF-8
        if error.reason != "unexpected end of data":
            return "latin-1"
    return "utf-8-sig"


def decode_head(head: bytes) -> str:
    return head.decode(text_encoding(head), errors="replace")


@contextmanager
def open_text(path: Path) -> Iterator[TextIO]:
    """The file opened for streaming as text, in the encoding its head shows."""
    encoding = text_encoding(read_head(path))
    # errors="replace": a bad byte further down becomes U+FFFD and then fails as a number
    with path.open(encoding=encoding, errors="replace", newline="") as handle:
        yield handle


def delimiter_of(line: str, candidates: str = ",;") -> str:
    """The field separator of a header line: the candidate it holds most (the first on a tie)."""
    return max(candidates, key=line.count)


def csv_dialect(handle: TextIO) -> tuple[str, bool]:
    """(delimiter, decimal_comma) of a comma or semicolon CSV, from its first line; rewinds.

    European locales write CSV with ``;`` between fields and a decimal comma in numbers.
    """
    delimiter = delimiter_of(handle.readline())
    handle.seek(0)
    return delimiter, delimiter == ";"


def parse_float(text: str, *, decimal_comma: bool = False) -> float:
    """A finite float; ValueError otherwise. ``decimal_comma`` also accepts 3,81 for 3.81."""
    cleaned = text.strip()
    if decimal_comma:
        cleaned = cleaned.replace(",", ".")
    value = float(cleaned)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


class Columns:
    """The columns one reader needs, found in a header row, and parsing of those fields.

    Errors name the format, the line and the column, e.g.
    ``arbin-csv: line 12: could not parse Voltage 'abc'``.
    """

    def __init__(
        self,
        fmt: str,
        header: Sequence[str],
        *,
        normalise: Callable[[str], str] = lambda name: name.strip().lower(),
        decimal_comma: bool = False,
        full_rows: bool = False,
        empty_means: Mapping[str, str] | None = None,
    ) -> None:
        self.fmt = fmt
        self.header = [name.strip() for name in header]
        self._keys = [normalise(name) for name in header]
        self._index: dict[str, int] = {}
        self._missing: list[str] = []
        self.decimal_comma = decimal_comma
        # for formats that write every field, a row shorter than the header is a truncated line
        self._min_fields = len(self.header) if full_rows else 0
        # per column key, what an empty field there means and what to do (added to the error)
        self._empty_means = dict(empty_means or {})

    def find(self, key: str, *names: str, required: bool = True) -> bool:
        """Register column ``key`` under the first of ``names`` (already normalised) present."""
        for name in names:
            if name in self._keys:
                self._index[key] = self._keys.index(name)
                return True
        if required:
            self._missing.append(" or ".join(repr(name) for name in names))
        return False

    def check(self) -> None:
        """Raise ReadError naming every required column that was not found."""
        if self._missing:
            raise ReadError(f"{self.fmt}: missing column(s): {', '.join(self._missing)}")
        needed = max(self._index.values(), default=-1) + 1
        self._min_fields = max(self._min_fields, needed)

    def has(self, key: str) -> bool:
        return key in self._index

    def name(self, key: str) -> str:
        return self.header[self._index[key]]

    def fit(self, row: Sequence[str], line: int) -> None:
        """Raise ReadError when the row is too short to hold the needed fields."""
        if len(row) < self._min_fields:
            raise ReadError(
                f"{self.fmt}: line {line}: {len(row)} fields where {self._min_fields} are needed "
                "(truncated or malformed line)"
            )

    def text(self, row: Sequence[str], key: str) -> str:
        return row[self._index[key]].strip()

    def maybe_number(self, row: Sequence[str], key: str, line: int) -> float | None:
        """The number in an optional column, None when the field is empty."""
        return self.number(row, key, line) if row[self._index[key]].strip() else None

    def number(self, row: Sequence[str], key: str, line: int) -> float:
        raw = row[self._index[key]]
        if not raw.strip():
            means = self._empty_means.get(key)
            meaning = f": {means}" if means else ""
            raise ReadError(f"{self.fmt}: line {line}: {self.name(key)} is empty{meaning}")
        try:
            return parse_float(raw, decimal_comma=self.decimal_comma)
        except ValueError:
            raise ReadError(
                f"{self.fmt}: line {line}: could not parse {self.name(key)} {raw.strip()!r}"
            ) from None


def guard(fmt: str) -> Callable[[Callable[[Path], T]], Callable[[Path], T]]:
    """Make a reader turn anything unexpected it raises into a ReadError naming ``fmt``."""

    def decorate(read: Callable[[Path], T]) -> Callable[[Path], T]:
        @functools.wraps(read)
        def guarded(path: Path) -> T:
            try:
                return read(Path(path))
            except ReadError:
                raise
            except Exception as error:  # the contract: nothing but ReadError leaves a reader
                raise ReadError(f"{fmt}: {type(error).__name__}: {error}") from error

        return guarded

    return decorate
