"""Model folder fingerprints, and the conversion record that lets a start skip hashing them.

Shared by the converter (which writes the record) and the encoders (which read
it), so neither imports the other.
"""

from __future__ import annotations

import hashlib
import json
import threading
from functools import partial
from pathlib import Path
from typing import Any

# The converter's record in a converted model folder: what it converted, and the
# fingerprint of what it wrote (read back by `folder_fingerprint`).
RECORD_FILE = "conversion.json"

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_CONFIG_SUFFIXES = (".json", ".model", ".txt")
# Alternative backends' exports and VCS metadata do not change what torch computes.
_SKIP_DIRS = {".git", ".cache", "onnx", "openvino"}
_SKIP_FILES = {RECORD_FILE, "README.md"}

_fingerprint_cache: dict[tuple[str, str], str] = {}
_fingerprint_lock = threading.Lock()


def _fingerprint_files(folder: Path) -> list[Path]:
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part in _SKIP_DIRS for part in rel.parts[:-1]) or rel.name in _SKIP_FILES:
            continue
        if path.is_file() and path.suffix in _WEIGHT_SUFFIXES + _CONFIG_SUFFIXES:
            files.append(path)
    return files


def _file_stats(folder: Path) -> dict[str, list[int]]:
    stats = {}
    for path in _fingerprint_files(folder):
        st = path.stat()
        stats[path.relative_to(folder).as_posix()] = [st.st_size, st.st_mtime_ns]
    return stats


def _recorded_fingerprint(folder: Path, stats: dict[str, list[int]]) -> str | None:
    # The converter records the fingerprint of what it wrote; while the files
    # keep their size and mtime, reuse it instead of hashing ~500 MB per start.
    try:
        record = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))["fingerprint"]
        if record["files"] == stats and isinstance(record["sha256"], str):
            return str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def folder_fingerprint(folder: Path) -> str:
    """sha256 over a model folder's weights, tokenizer and config files (cached)."""
    folder = folder.resolve()
    stats = _file_stats(folder)
    key = (str(folder), json.dumps(stats, sort_keys=True))
    with _fingerprint_lock:
        cached = _fingerprint_cache.get(key) or _recorded_fingerprint(folder, stats)
        if cached is not None:
            _fingerprint_cache[key] = cached
            return cached
        h = hashlib.sha256()
        for rel in sorted(stats):
            h.update(rel.encode() + b"\0")
            with (folder / rel).open("rb") as f:
                for chunk in iter(partial(f.read, 1 << 20), b""):
                    h.update(chunk)
            h.update(b"\0")
        digest = h.hexdigest()
        _fingerprint_cache[key] = digest
        return digest


def fingerprint_record(folder: Path) -> dict[str, Any]:
    """What the converter stores in RECORD_FILE so `folder_fingerprint` can skip hashing."""
    return {"sha256": folder_fingerprint(folder), "files": _file_stats(folder.resolve())}
