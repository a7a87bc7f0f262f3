"""Where a dataset file lives. Today: local paths and ``file://`` URIs. Object stores (``s3://``,
``gs://``, …) slot in here later by returning a readable file object for their scheme."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from grouping.errors import InputError

#: file suffixes we can read, mapped to the reader's format name
FORMATS: dict[str, str] = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".npz": "npz"}


def resolve_local(source: str) -> tuple[Path, str]:
    """The local path of ``source`` and its format (``parquet``, ``csv`` or ``npz``).

    Raises ``InputError`` on ``source`` for an unsupported URI scheme, a directory, a missing file or an
    unknown suffix.
    """
    parsed = urlparse(source)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif len(parsed.scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise InputError(
            "dataset.source",
            f"URI scheme {parsed.scheme!r} is not supported yet; give a local path or a built-in dataset "
            "name",
        )
    else:
        path = Path(source).expanduser()
    if path.is_dir():
        raise InputError(
            "dataset.source",
            f"{str(path)!r} is a directory; give a .parquet, .csv or .npz file (or a built-in dataset name)",
        )
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            "dataset.source",
            f"{source!r} is neither a built-in dataset nor a .parquet, .csv or .npz file",
        )
    if not path.is_file():
        raise InputError("dataset.source", f"file {str(path)!r} does not exist")
    return path, fmt
