"""Where a dataset file may be read from: the upload folder and the configured ``dataset_roots``.

A location is a local path or a ``file://`` URI; any other scheme (``http://``, ``s3://``, …) is
refused, so the service never fetches a URL a user names (no requests to internal hosts). The path
is resolved — ``..`` segments and symbolic links followed — and must then lie inside one of the
roots, so neither traversal nor a link can reach another file of the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from grouping.errors import InputError


def allowed_location(location: str, roots: Sequence[Path], field: str = "location") -> Path:
    """The resolved path of ``location`` if it lies inside one of ``roots``; else ``InputError``."""
    if "\x00" in location:
        raise InputError(field, "contains a NUL character")
    parsed = urlparse(location)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InputError(field, f"file URIs must name a local file, not host {parsed.netloc!r}")
        path = Path(unquote(parsed.path))
        if "\x00" in str(path):  # %00 decodes to NUL
            raise InputError(field, "contains a NUL character")
    elif parsed.scheme:
        raise InputError(
            field, f"URI scheme {parsed.scheme!r} is not allowed; give a path under a dataset root"
        )
    else:
        path = Path(location)
    if not path.is_absolute():
        raise InputError(field, "must be an absolute path")
    resolved = path.resolve()
    for root in roots:
        if resolved.is_relative_to(root.resolve()):
            return resolved
    raise InputError(field, "is outside the directories datasets may be read from (dataset_roots)")
