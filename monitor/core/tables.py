"""Reading a training table (CSV, JSONL or Parquet) in chunks, with memory bounded by the chunk size.

PyArrow is imported when a table is read, not with this module: the worker never reads one, and
importing it would cost each worker ~30 MB.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Iterator

import orjson

if TYPE_CHECKING:
    import pyarrow as pa

from monitor.core.columns import Columns, coerce, numeric_fields
from monitor.core.errors import UsageError
from monitor.core.spec import Spec

CHUNK_ROWS = 65_536


class TableError(UsageError, ValueError):
    """A training table that cannot be read; the message says where and why."""


def table_format(path: Path) -> str:
    suffixes = "".join(path.suffixes[-2:]).lower()
    formats = (("csv", (".csv",)), ("jsonl", (".jsonl", ".ndjson", ".json")), ("parquet", (".parquet", ".pq")))
    for fmt, endings in formats:
        if any(suffixes.endswith(e) for e in endings):
            return fmt
    raise TableError(f"{path}: unknown table format; use .csv, .jsonl or .parquet")


def read_raw(path: str | Path, columns: list[str] | None = None, chunk_rows: int = CHUNK_ROWS,
             numeric: Collection[str] = frozenset()) -> Iterator[dict[str, Any]]:
    """Chunks of a table as {column: values}; `columns` limits and requires the columns read."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    fmt = table_format(path)
    import pyarrow as pa

    try:
        if fmt == "jsonl":
            yield from _read_jsonl(path, columns, chunk_rows)
        elif fmt == "csv":
            yield from _read_csv(path, columns, chunk_rows, numeric)
        else:
            yield from _read_parquet(path, columns, chunk_rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TableError(f"{path}: {str(exc).splitlines()[0]}") from None


def read_chunks(path: str | Path, spec: Spec, chunk_rows: int = CHUNK_ROWS) -> Iterator[Columns]:
    """Typed chunks of the spec's columns; a column the table lacks is an error."""
    for raw in read_raw(path, spec.columns, chunk_rows, numeric_fields(spec)):
        yield coerce(raw, spec)


def _read_csv(path: Path, columns: list[str] | None, chunk_rows: int,
              numeric: Collection[str]) -> Iterator[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    # Declared types: per-block type inference would disagree between blocks of one file.
    parse = pa_csv.ParseOptions(newlines_in_values=True)  # quoted free text may span lines
    head = pa_csv.open_csv(path, read_options=pa_csv.ReadOptions(block_size=1 << 16), parse_options=parse)
    header = head.schema.names
    _require(path, header, columns)
    wanted = columns or header
    types = {name: (pa.float64() if name in numeric else pa.string()) for name in wanted}
    reader = pa_csv.open_csv(
        path,
        read_options=pa_csv.ReadOptions(block_size=1 << 22),
        parse_options=parse,
        convert_options=pa_csv.ConvertOptions(column_types=types, include_columns=wanted, strings_can_be_null=True),
    )
    for batch in reader:
        yield from _slices(batch, chunk_rows)


def _read_parquet(path: Path, columns: list[str] | None, chunk_rows: int) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    _require(path, parquet.schema_arrow.names, columns)
    for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
        yield from _slices(batch, chunk_rows)


def _slices(batch: pa.RecordBatch, chunk_rows: int) -> Iterator[dict[str, Any]]:
    for start in range(0, batch.num_rows, chunk_rows):
        part = batch.slice(start, chunk_rows)
        yield {name: part.column(name).to_numpy(zero_copy_only=False) for name in part.schema.names}


def _read_jsonl(path: Path, columns: list[str] | None, chunk_rows: int) -> Iterator[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise TableError(f"{path}:{number}: not JSON: {exc}") from None
            if not isinstance(row, dict):
                raise TableError(f"{path}:{number}: a row must be a JSON object")
            if not rows and columns:
                _require(path, list(row), columns)
            rows.append(row)
            if len(rows) == chunk_rows:
                yield _columnar(rows, columns)
                rows = []
    if rows:
        yield _columnar(rows, columns)


def _columnar(rows: list[dict[str, Any]], columns: list[str] | None) -> dict[str, Any]:
    names = columns or list(rows[0])
    return {name: [row.get(name) for row in rows] for name in names}


def _require(path: Path, present: list[str], columns: list[str] | None) -> None:
    missing = [c for c in columns or () if c not in present]
    if missing:
        raise TableError(f"{path}: missing column {missing[0]!r} named in the spec (columns: {', '.join(present)})")


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
