"""File helpers shared by the model conversion, the ONNX export and the index manifest."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def remove_abandoned(root: Path, pattern: str, min_age_s: float = 3600) -> None:
    """Delete the folders under `root` matching `pattern` older than `min_age_s`.

    A killed conversion or export leaves its temporary folder; a recent one may be another
    process still at work, so only old ones go.
    """
    for tmp in root.glob(pattern):
        try:
            if time.time() - tmp.stat().st_mtime > min_age_s:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass
