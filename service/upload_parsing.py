"""Read a dataset file where a decompression bomb cannot hurt the API, and describe its columns.

A small Parquet, NPZ or CSV file can decode to gigabytes (a column of a hundred million zeros, an
array header announcing a huge shape, a header line of a hundred thousand columns). Two defences:

1. **Limits checked before any data is decoded** (:func:`check_limits`), from the file's own
   metadata: for Parquet the footer (rows, leaf columns, and per column chunk its value count and
   physical width, which give the decoded size); for NPZ every member's ``.npy`` header (shape ×
   dtype, read without loading the array; a member that is not a ``.npy`` array or holds Python
   objects is refused); for CSV the header line's field count, then a streaming pass that counts
   rows with bounded memory. Over :class:`UploadLimits` (rows, columns, decoded bytes) the file is
   refused with :class:`LimitExceeded` naming the resource. After the read the table is checked again
   against the same limits.
2. **The whole read runs in a child process** (:meth:`UploadReader.describe`): ``python -m
   service.upload_parsing``, whose address space is capped (``RLIMIT_AS``: what the process holds
   after its imports plus :attr:`UploadLimits.memory_bytes`) and which is killed after
   :attr:`UploadLimits.seconds`. A file that still exhausts memory or time costs the child, never
   the API process; the caller gets :class:`LimitExceeded` (``memory`` or ``seconds``). At most
   :attr:`UploadLimits.concurrency` children run at a time per API process.

The child answers the column summary (:func:`describe_column` of every column), which the caller
stores once with the dataset row: reading a dataset's schema back never touches the file again.

This module imports no web framework, so the child starts with only numpy, pandas and pyarrow.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import subprocess
import sys
import threading
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import csv as pyarrow_csv

from grouping.data.features import is_categorical
from grouping.data.readers import Table, read_table
from grouping.errors import InputError

if TYPE_CHECKING:
    from service.settings import Settings

log = logging.getLogger(__name__)

#: at most this many distinct values make a column a suggested multiclass target
SUGGEST_MAX_CLASSES = 100
#: decoded bytes counted per value of a variable-width (text, binary) Parquet column, on top of its
#: bytes: the pointer a decoded table keeps per value
_POINTER_BYTES = 8
#: decoded width of each fixed-width Parquet physical type
_PARQUET_WIDTH = {"BOOLEAN": 1, "INT32": 4, "INT64": 8, "INT96": 8, "FLOAT": 4, "DOUBLE": 8}
#: the .npy header is read with at most this many bytes (numpy's own default)
_NPY_HEADER_BYTES = 10_000
#: the CSV header line may be at most this many bytes per allowed column (quoted names of up to 255
#: characters of up to 4 bytes each)
_CSV_HEADER_BYTES_PER_COLUMN = 1024
#: a Parquet footer may be at most this many bytes per allowed column (and at least 1 MiB)
_PARQUET_FOOTER_BYTES_PER_COLUMN = 16 * 1024
_SOURCE = "dataset.source"


@dataclass(frozen=True)
class UploadLimits:
    """What one dataset file may cost to read (the defaults suit a server with a few GiB per API
    process). ``rows``/``columns``/``bytes`` are checked before decoding; ``memory_bytes`` and
    ``seconds`` bound the child process that reads it."""

    #: most rows (Parquet rows, CSV records, the first axis of NPZ arrays)
    max_rows: int = 10_000_000
    #: most columns (Parquet leaf columns, CSV header fields, NPZ members)
    max_columns: int = 4096
    #: most decoded bytes: numbers at their width, text and binary values at their length plus 8
    max_bytes: int = 1 << 30
    #: address space the reading process may add to what it holds after its imports
    memory_bytes: int = 4 << 30
    #: wall-clock seconds the reading process may take (it is killed after)
    seconds: float = 300.0
    #: reading processes one API process runs at a time (more uploads wait their turn)
    concurrency: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadLimits:
        """The limits of ``settings``: ``max_dataset_rows``, ``max_dataset_columns``,
        ``max_dataset_bytes``, ``upload_parse_memory_bytes``, ``upload_parse_seconds`` and
        ``upload_parse_concurrency``."""
        return cls(
            max_rows=settings.max_dataset_rows,
            max_columns=settings.max_dataset_columns,
            max_bytes=settings.max_dataset_bytes,
            memory_bytes=settings.upload_parse_memory_bytes,
            seconds=settings.upload_parse_seconds,
            concurrency=settings.upload_parse_concurrency,
        )


class LimitExceeded(Exception):
    """A dataset file over a resource limit: ``resource`` is ``rows``, ``columns``, ``bytes``
    (decoded), ``memory`` or ``seconds``; ``maximum`` the limit and ``found`` what the file needs
    (when known)."""

    def __init__(
        self, resource: str, reason: str, *, maximum: float | None = None, found: float | None = None
    ) -> None:
        super().__init__(reason)
        self.resource = resource
        self.reason = reason
        self.maximum = maximum
        self.found = found

    def details(self) -> dict[str, Any]:
        """The error body's extras: ``resource``, ``limit`` (the maximum) and ``found`` (those known)."""
        out: dict[str, Any] = {"resource": self.resource}
        if self.maximum is not None:
            out["limit"] = self.maximum
        if self.found is not None:
            out["found"] = self.found
        return out


def _over(limit: str, found: int, maximum: int, what: str) -> LimitExceeded:
    setting = {"rows": "max_dataset_rows", "columns": "max_dataset_columns", "bytes": "max_dataset_bytes"}
    return LimitExceeded(
        limit,
        f"{what} {found:,} {limit if limit != 'bytes' else 'bytes when decoded'}; at most {maximum:,} "
        f"are accepted ({setting[limit]})",
        maximum=maximum,
        found=found,
    )


def _check(limit: str, found: int, maximum: int, what: str) -> None:
    if found > maximum:
        raise _over(limit, found, maximum, what)


# --- limits from metadata, before decoding --------------------------------------------------------


def check_limits(path: Path, fmt: str, limits: UploadLimits) -> None:
    """Refuse ``path`` (format ``parquet``, ``csv`` or ``npz``) over ``limits`` from its metadata
    alone, decoding no data: :class:`LimitExceeded` over a limit, ``InputError`` on
    ``dataset.source`` for a file that is not of its format. Memory used is bounded by the limits
    (the Parquet footer and the CSV header line are size-checked before they are parsed)."""
    if fmt == "parquet":
        _parquet_limits(path, limits)
    elif fmt == "npz":
        _npz_limits(path, limits)
    elif fmt == "csv":
        _csv_limits(path, limits)
    else:
        raise InputError(_SOURCE, f"unknown format {fmt!r}")


def _parquet_limits(path: Path, limits: UploadLimits) -> None:
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(4)
        if size < 12 or head != b"PAR1":
            raise InputError(_SOURCE, "not a Parquet file (no PAR1 magic)")
        handle.seek(-8, os.SEEK_END)
        tail = handle.read(8)
    if tail[4:] != b"PAR1":
        raise InputError(
            _SOURCE, "not a readable Parquet file (no PAR1 footer; encrypted files are not read)"
        )
    footer = int.from_bytes(tail[:4], "little")
    cap = max(1 << 20, limits.max_columns * _PARQUET_FOOTER_BYTES_PER_COLUMN)
    if footer > size - 12:
        raise InputError(_SOURCE, "not a readable Parquet file (its footer length exceeds the file)")
    if footer > cap:
        raise LimitExceeded(
            "columns",
            f"its metadata takes {footer:,} bytes, more than {cap:,}: too many columns or row groups",
            maximum=cap,
            found=footer,
        )
    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(_SOURCE, f"cannot read parquet file: {exc}") from None
    _check("columns", meta.num_columns, limits.max_columns, "it has")
    _check("rows", meta.num_rows, limits.max_rows, "it has")
    decoded = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            width = _PARQUET_WIDTH.get(chunk.physical_type)
            if width is None:  # BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY: their bytes plus a pointer per value
                decoded += chunk.num_values * _POINTER_BYTES + chunk.total_uncompressed_size
            else:
                decoded += chunk.num_values * width
        if decoded > limits.max_bytes:
            break
    _check("bytes", decoded, limits.max_bytes, "it takes at least")


def _npz_limits(path: Path, limits: UploadLimits) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(_SOURCE, f"cannot read npz file: {exc}") from None
    with archive:
        members = archive.infolist()
        _check("columns", len(members), limits.max_columns, "it holds arrays:")
        decoded, rows = 0, 0
        for member in members:
            name = member.filename
            if not name.endswith(".npy"):
                raise InputError(_SOURCE, f"member {name!r} is not a .npy array")
            shape, dtype = _npy_header(archive, member)
            label = name[: -len(".npy")]
            if dtype.hasobject:
                raise InputError(
                    _SOURCE,
                    f"array {label!r} holds Python objects, which would need pickle to load (refused); "
                    "store numbers or fixed-width text",
                )
            if not shape:
                raise InputError(_SOURCE, f"array {label!r} is a scalar, not one value per row")
            rows = max(rows, shape[0])
            decoded += math.prod(shape) * dtype.itemsize
    _check("rows", rows, limits.max_rows, "it has")
    _check("bytes", decoded, limits.max_bytes, "it takes")


def _npy_header(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a member's ``.npy`` header (reads at most a few KiB of it)."""
    label = member.filename
    try:
        with archive.open(member) as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(
                    handle, max_header_size=_NPY_HEADER_BYTES
                )
            elif version in ((2, 0), (3, 0)):
                shape, _, dtype = np.lib.format.read_array_header_2_0(
                    handle, max_header_size=_NPY_HEADER_BYTES
                )
            else:
                raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError, NotImplementedError) as exc:
        raise InputError(_SOURCE, f"member {label!r} is not a readable .npy array: {exc}") from None
    return tuple(int(n) for n in shape), np.dtype(dtype)


def _csv_limits(path: Path, limits: UploadLimits) -> None:
    cap = max(64 * 1024, limits.max_columns * _CSV_HEADER_BYTES_PER_COLUMN)
    with path.open("rb") as handle:
        head = handle.read(cap + 1)
    end = head.find(b"\n")
    if end < 0 and len(head) > cap:
        fields = head.count(b",") + 1
        if fields > limits.max_columns:
            raise LimitExceeded(
                "columns",
                f"its header line has at least {fields:,} columns; at most {limits.max_columns:,} are "
                "accepted (max_dataset_columns)",
                maximum=limits.max_columns,
                found=fields,
            )
        raise InputError(_SOURCE, f"the header line is longer than {cap:,} bytes")
    line = head if end < 0 else head[:end]
    try:
        header = next(csv.reader(io.StringIO(line.decode("utf-8-sig").rstrip("\r"))), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(_SOURCE, f"not a valid CSV table: cannot read its header line: {exc}") from None
    _check("columns", len(header), limits.max_columns, "its header line has")
    _csv_stream(path, header, limits)


def _csv_stream(path: Path, header: list[str], limits: UploadLimits) -> None:
    """Count the records with a streaming parse (every field read as text, one block in memory at a
    time): each must have as many fields as the header, and there may be at most ``max_rows``; the
    decoded table is estimated at 8 bytes a cell plus the text."""
    convert = pyarrow_csv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()))
    rows = text_bytes = 0
    try:
        reader = pyarrow_csv.open_csv(
            path, read_options=pyarrow_csv.ReadOptions(block_size=1 << 20), convert_options=convert
        )
        for batch in reader:
            rows += batch.num_rows
            text_bytes += batch.nbytes
            _check("rows", rows, limits.max_rows, "it has more than")
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise InputError(_SOURCE, f"not a valid CSV table: {exc}") from None
    _check("bytes", rows * max(1, len(header)) * 8 + text_bytes, limits.max_bytes, "it takes about")


def check_table(table: Table, limits: UploadLimits) -> None:
    """Refuse a read ``table`` over ``limits`` (rows, columns, bytes held by its arrays)."""
    _check("columns", len(table), limits.max_columns, "it has")
    rows = max((len(values) for values in table.values()), default=0)
    _check("rows", rows, limits.max_rows, "it has")
    _check("bytes", sum(values.nbytes for values in table.values()), limits.max_bytes, "it takes")


# --- the schema ----------------------------------------------------------------------------------


def describe_column(name: str, values: np.ndarray) -> dict[str, Any]:
    """Schema of one column: dtype, shape, missing and distinct counts, and a suggested task type.

    Suggestion: 2 distinct values → ``binary``; an integer, boolean or text column with at most
    :data:`SUGGEST_MAX_CLASSES` distinct values → ``multiclass``; other numeric columns →
    ``regression``; multi-axis arrays (features, images) → none.

    Besides the public fields, ``categorical`` says whether the job's loader one-hot encodes the
    column as a feature (:func:`grouping.data.features.is_categorical`); for it, missing values and
    distinct values are counted as the loader counts them (``None``, NaN and empty text are
    missing; the rest compared as text). A float column has ``whole_numbers``: whether every
    present value is an integer.
    """
    info: dict[str, Any] = {
        "name": name,
        "dtype": str(values.dtype),
        "shape": list(values.shape),
        "n_missing": 0,
        "n_unique": None,
        "suggested_type": None,
    }
    if values.ndim != 1:
        return info
    kind = values.dtype.kind
    categorical = is_categorical(values)
    info["categorical"] = categorical
    if categorical:
        missing = _text_missing(values)
        present = np.array([_as_text(v) for v in values[~missing].tolist()], dtype=object)
    elif kind == "f":
        missing = ~np.isfinite(values)
        present = values[~missing]
        info["whole_numbers"] = bool(np.all(present == np.round(present)))
    elif kind == "O":
        missing = np.asarray(pd.isna(values), dtype=bool)
        present = values[~missing].astype(str)
    else:
        missing = np.zeros(len(values), dtype=bool)
        present = values
    info["n_missing"] = int(missing.sum())
    if kind not in "biufOUS":
        return info
    n_unique = int(len(np.unique(present)))
    info["n_unique"] = n_unique
    if n_unique == 2:
        info["suggested_type"] = "binary"
    elif kind in "buiOUS" and 2 < n_unique <= SUGGEST_MAX_CLASSES:
        info["suggested_type"] = "multiclass"
    elif kind in "iuf" and n_unique > 2:
        info["suggested_type"] = "regression"
    return info


def _text_missing(values: np.ndarray) -> np.ndarray:
    missing = np.asarray(pd.isna(values), dtype=bool)
    return missing | np.array([isinstance(v, str | bytes) and not v for v in values.tolist()], dtype=bool)


def _as_text(value: object) -> str:
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="backslashreplace")
    return str(value)


def read_and_describe(path: Path, fmt: str, limits: UploadLimits) -> list[dict[str, Any]]:
    """In this process: :func:`check_limits`, read the table with the job's reader
    (:func:`grouping.data.readers.read_table`), :func:`check_table`, and describe every column.
    Raises :class:`LimitExceeded` or ``InputError`` (on ``dataset.source``). Use
    :meth:`UploadReader.describe` for untrusted files: it runs this in a limited child process."""
    check_limits(path, fmt, limits)
    table = read_table(path, fmt)
    check_table(table, limits)
    return [describe_column(str(name), values) for name, values in table.items()]


# --- the child process ---------------------------------------------------------------------------


class UploadReader:
    """Runs :func:`read_and_describe` in a child process under :class:`UploadLimits` (at most
    ``limits.concurrency`` at a time). Thread-safe; one per API process."""

    def __init__(self, limits: UploadLimits | None = None) -> None:
        self.limits = limits or UploadLimits()
        self._slots = threading.BoundedSemaphore(self.limits.concurrency)

    def describe(self, path: Path, fmt: str) -> list[dict[str, Any]]:
        """The column summaries of ``path``; :class:`LimitExceeded` over a limit (including the
        child running out of memory or time), ``InputError`` on ``dataset.source`` for a file that
        cannot be read as ``fmt``. Blocks while ``limits.concurrency`` other reads run."""
        request = json.dumps({"path": str(path), "fmt": fmt, "limits": asdict(self.limits)})
        with self._slots:
            try:
                done = subprocess.run(
                    [sys.executable, "-m", __name__, request],
                    capture_output=True,
                    timeout=self.limits.seconds,
                    env=_child_env(),
                    stdin=subprocess.DEVNULL,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise LimitExceeded(
                    "seconds",
                    f"reading it took longer than {self.limits.seconds:g} seconds (upload_parse_seconds)",
                    maximum=self.limits.seconds,
                ) from None
        return self._answer(done)

    def _answer(self, done: subprocess.CompletedProcess[bytes]) -> list[dict[str, Any]]:
        try:
            answer = json.loads(done.stdout.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            answer = None
        if isinstance(answer, dict) and "columns" in answer and done.returncode == 0:
            return answer["columns"]
        if isinstance(answer, dict) and answer.get("error") == "input":
            raise InputError(_SOURCE, str(answer["reason"]))
        if isinstance(answer, dict) and answer.get("error") == "limit":
            raise LimitExceeded(
                str(answer["resource"]),
                str(answer["reason"]),
                maximum=answer.get("maximum"),
                found=answer.get("found"),
            )
        stderr = done.stderr.decode("utf-8", errors="replace")[-2000:]
        log.warning("the dataset reader stopped with exit status %s: %s", done.returncode, stderr)
        if done.returncode >= 0 and not any(sign in stderr for sign in _OUT_OF_MEMORY):
            raise RuntimeError(
                f"the dataset reader failed with exit status {done.returncode}: {stderr[-500:]}"
            )
        how = f"was stopped by signal {-done.returncode}" if done.returncode < 0 else "ran out of memory"
        raise LimitExceeded(
            "memory",
            f"the process reading it {how}: reading it needs more than {self.limits.memory_bytes:,} bytes "
            "of memory (upload_parse_memory_bytes)",
            maximum=self.limits.memory_bytes,
        )


#: what a reader that ran out of memory outside Python's own handling leaves on stderr
_OUT_OF_MEMORY = ("MemoryError", "bad_alloc", "Cannot allocate memory", "out of memory")


def _child_env() -> dict[str, str]:
    """The reader's environment: one thread per numeric library, the system allocator for Arrow
    (whose own arenas reserve address space), and this package importable."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.update(
        {
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "ARROW_DEFAULT_MEMORY_POOL": "system",
            "MALLOC_ARENA_MAX": "2",
        }
    )
    return env


def _address_space() -> int | None:
    """This process's virtual memory size in bytes (Linux), or ``None``."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _limit_memory(extra: int) -> None:
    """Cap this process's address space at its current size plus ``extra`` bytes (where the
    platform allows)."""
    try:
        import resource
    except ImportError:  # not POSIX
        return
    current = _address_space()
    if current is None:
        return
    soft = current + extra
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def main(argv: list[str]) -> int:
    """The child: read the request (``{"path", "fmt", "limits"}`` as JSON in ``argv[0]``), cap its
    memory, read and describe the file, and print one JSON answer on stdout — ``{"columns": [...]}``,
    ``{"error": "input", "reason"}`` or ``{"error": "limit", "resource", "reason", "maximum", "found"}``.
    Anything the libraries print goes to stderr."""
    answer_to = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    request = json.loads(argv[0])
    limits = UploadLimits(**request["limits"])
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    _limit_memory(limits.memory_bytes)
    try:
        answer: dict[str, Any] = {"columns": read_and_describe(Path(request["path"]), request["fmt"], limits)}
    except LimitExceeded as exc:
        answer = {
            "error": "limit",
            "resource": exc.resource,
            "reason": exc.reason,
            "maximum": exc.maximum,
            "found": exc.found,
        }
    except InputError as exc:
        answer = {"error": "input", "reason": exc.reason}
    except MemoryError:
        answer = {
            "error": "limit",
            "resource": "memory",
            "reason": f"reading it needs more than {limits.memory_bytes:,} bytes of memory "
            "(upload_parse_memory_bytes)",
            "maximum": limits.memory_bytes,
        }
    except Exception as exc:  # the file made a library fail in a way the reader does not name
        print(f"unexpected error reading {request['path']}: {exc!r}", file=sys.stderr)
        answer = {
            "error": "input",
            "reason": f"cannot read {request['fmt']} file: {type(exc).__name__}: {exc}",
        }
    answer_to.write(json.dumps(answer))
    answer_to.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
