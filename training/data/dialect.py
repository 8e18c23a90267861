"""Reading a user's file as text: encoding, delimiter, decimal mark, Excel — each guess reported.

Owns how bytes become a table of strings for :mod:`training.data.importer`. Every
value is read as text, so that the timestamp and number parsers (not pandas'
guesser) decide what a good value is and can name the first bad row.

* **Encoding**: UTF-8 (with or without a byte-order mark), else cp1252 (Windows
  Western European, a superset of Latin-1 for letters like ``é``), else Latin-1,
  which decodes any byte. Reported.
* **Delimiter**: sniffed from the first lines among ``, ; TAB |``; reported.
* **Decimal mark**: a comma when the numbers are written ``12,5`` (the usual European
  export, always with ``;`` as delimiter); reported, and such columns are rewritten
  with a point (thousands points removed).
* **Excel** ``.xlsx``: the first sheet through openpyxl; the sheet is reported.
* Parquet: read as is (typed; nothing to guess).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from gridcast.errors import UserInputError

Source = str | Path | io.IOBase
DELIMITERS = ",;\t|"
#: bytes looked at to sniff the delimiter
SNIFF_BYTES = 64 * 1024
#: a number written with a decimal comma, optionally with thousands points: 1.234,5
_COMMA_NUMBER = re.compile(r"^[+-]?\d{1,3}(?:\.\d{3})*,\d+$|^[+-]?\d+,\d+$")
_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


def label(src: Source) -> str:
    return str(src) if isinstance(src, (str, Path)) else getattr(src, "name", "<stream>")


def _raw_bytes(src: Source, what: str) -> bytes:
    if not isinstance(src, (str, Path)):
        data = src.read()
        return data.encode("utf-8") if isinstance(data, str) else data
    path = Path(src)
    suffix = path.suffix.lower()
    try:
        if suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        if suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
                if len(names) != 1:
                    raise UserInputError(
                        f"{path} holds {len(names)} files; expected exactly one CSV inside the zip", field="path")
                return zf.read(names[0])
        return path.read_bytes()
    except zipfile.BadZipFile:
        raise UserInputError(f"{path} is not a readable zip file", field="path") from None
    except (OSError, EOFError) as exc:
        raise UserInputError(f"{path} is not a readable {what} ({exc})", field="path") from None


def decode(data: bytes) -> tuple[str, str]:
    """Text and the encoding that read it: UTF-8 (BOM or not), else cp1252, else Latin-1.

    Example:
        >>> decode("température".encode("cp1252"))
        ('température', 'cp1252')
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8 with BOM"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def sniff_delimiter(text: str) -> str:
    """The delimiter of a CSV text: csv.Sniffer, else the candidate most evenly repeated per line."""
    sample = "\n".join(text[:SNIFF_BYTES].splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        lines = [ln for ln in sample.splitlines() if ln.strip()]
        counts = {d: [ln.count(d) for ln in lines] for d in DELIMITERS}
        good = {d: c[0] for d, c in counts.items() if c and c[0] > 0 and len(set(c)) == 1}
        return max(good, key=good.get) if good else ","


def _decimal_comma_columns(frame: pd.DataFrame) -> list[str]:
    out = []
    for col in frame.columns:
        values = frame[col].dropna().astype(str).str.strip()
        values = values[values != ""]
        if len(values) and values.str.match(_COMMA_NUMBER).mean() >= 0.9:
            out.append(col)
    return out


def read_text_table(src: Source, *, what: str = "file") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every column of a CSV (plain, .gz, .zip), Excel or Parquet file, and how it was read.

    Returns:
        The table (CSV/Excel: all values as strings) and the dialect report
        (``format``, and for CSV ``encoding``, ``delimiter``, ``decimal``; for Excel ``sheet``).

    Raises:
        UserInputError: the file is missing, a directory, or unreadable.
    """
    name = label(src)
    if isinstance(src, (str, Path)):
        path = Path(src)
        if not path.exists():
            raise UserInputError(f"{what} not found: {path}", field="path")
        if path.is_dir():
            raise UserInputError(f"{what} is a directory, expected a CSV, Excel or Parquet file: {path}", field="path")
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            try:
                return pd.read_parquet(path), {"format": "parquet"}
            except Exception as exc:  # noqa: BLE001 - any reader failure is a bad input file
                raise UserInputError(f"{path} is not a readable Parquet file ({exc})", field="path") from None
        if suffix in (".xlsx", ".xlsm"):
            try:
                import openpyxl  # noqa: F401 - a clear error when the optional reader is missing
                book = pd.read_excel(path, sheet_name=None, dtype=str, engine="openpyxl")
            except ImportError:
                raise UserInputError("reading .xlsx needs openpyxl (pip install openpyxl)", field="path") from None
            except Exception as exc:  # noqa: BLE001
                raise UserInputError(f"{path} is not a readable Excel file ({exc})", field="path") from None
            sheet, frame = next(iter(book.items()))
            return frame, {"format": "xlsx", "sheet": sheet, "sheets": list(book)}
    text, encoding = decode(_raw_bytes(src, what))
    if not text.strip():
        raise UserInputError(f"{name} is empty", field="path")
    delimiter = sniff_delimiter(text)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserInputError(f"{name} is not a readable CSV file ({exc})", field="path") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    report: dict[str, Any] = {"format": "csv", "encoding": encoding, "delimiter": _NAMES.get(delimiter, delimiter),
                              "decimal": "point"}
    if delimiter != ",":
        comma = _decimal_comma_columns(frame)
        if comma:
            for col in comma:
                frame[col] = frame[col].str.strip().str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
            report["decimal"] = "comma"
            report["decimal_comma_columns"] = comma
    return frame, report


def require(columns: list[str], existing: list[str], name: str) -> None:
    """Raise, listing the columns that exist, when one of ``columns`` is not among them."""
    missing = [c for c in columns if c not in existing]
    if missing:
        quoted = ", ".join(repr(c) for c in existing)
        raise UserInputError(f"column {missing[0]!r} not in {name}; the columns are: {quoted}", field=missing[0])
