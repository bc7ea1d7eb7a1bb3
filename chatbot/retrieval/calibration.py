"""The calibration: fusion weights, confidence and scope models, dialogue thresholds, and the
encoder they were fitted with. Shipped as package data; refitted by `python -m chatbot calibrate`."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from chatbot.retrieval.confidence import (
    DEFAULT_MODEL,
    DEFAULT_SCOPE_MODEL,
    FEATURES,
    SCOPE_FEATURES,
    Coefficients,
)
from chatbot.retrieval.modes import Mode

log = logging.getLogger("faqbot")

# Where `python -m chatbot calibrate` writes, in a source checkout; read through
# importlib.resources (shipped_calibration), so that an installed package finds it too.
CALIBRATION_PATH = Path(__file__).resolve().parent.parent / "data" / "calibration.json"
REFIT = "python -m chatbot calibrate"


def shipped_calibration() -> Traversable:
    """The calibration shipped with the package (chatbot/data/calibration.json)."""
    return resources.files("chatbot") / "data" / "calibration.json"


def _short(fingerprint: str | None) -> str:
    return f"{fingerprint[:12]}…" if fingerprint else "inconnue"


@dataclass(frozen=True)
class Calibration:
    """Fusion weights and the logistic models turning hit features into a confidence.

    Fitted on the dev split for one encoder; `Calibration()` holds the unfitted defaults.
    """

    dense_weight: float = 0.7
    # An entry's dense score: its best title/alternate cosine plus this share of its
    # answer's cosine (the answer confirms a title match; measured on dev).
    answer_weight: float = 0.35
    # Hybrid only: share of the word alignment lift (min-max normalised) in the fusion.
    lift_weight: float = 0.0
    # mode -> (coefficients over FEATURES, intercept); one model per mode so that a
    # confidence means the same thing whichever mode is selected.
    models: dict[str, Coefficients] = field(
        default_factory=lambda: {m.value: DEFAULT_MODEL for m in Mode}
    )
    # mode -> in-scope model over SCOPE_FEATURES
    scope: dict[str, Coefficients] = field(
        default_factory=lambda: {m.value: DEFAULT_SCOPE_MODEL for m in Mode}
    )
    fitted_on: str = "defaults"
    extra: dict[str, float] = field(default_factory=dict)  # the dialogue's fitted thresholds
    # sha256 of the encoder the dense and hybrid models (and the weights) were fitted with;
    # None: fitted with none (the defaults).
    encoder_fingerprint: str | None = None

    @classmethod
    def load(
        cls, encoder_fingerprint: str | None, source: Path | Traversable | None = None
    ) -> Calibration:
        """The shipped calibration (or `source`), for the encoder whose fingerprint is given.

        Fitted for another encoder, only the BM25 model (which reads no embedding) is kept:
        the rest falls back to the defaults, with a warning saying how to refit.
        `encoder_fingerprint` None: no encoder in use (BM25 only), nothing to check.
        """
        source = source or shipped_calibration()
        if not source.is_file():
            log.warning(
                "Calibration introuvable (%s) : poids et modèles par défaut. Pour la recréer : %s",
                source,
                REFIT,
            )
            return cls()
        data = json.loads(source.read_text("utf-8"))
        if data.get("features") != list(FEATURES) or data.get("scope_features") != list(
            SCOPE_FEATURES
        ):
            log.warning(
                "Calibration %s ajustée pour d'autres variables : modèles par défaut. "
                "Pour recalibrer : %s",
                source,
                REFIT,
            )
            return cls()
        fitted = cls.from_dict(data)
        if encoder_fingerprint is None or fitted.encoder_fingerprint == encoder_fingerprint:
            return fitted
        log.warning(
            "Calibration ajustée pour un autre encodeur (empreinte %s ; encodeur utilisé %s) : "
            "les modèles dense et hybride, les poids de fusion et les seuils du dialogue "
            "reprennent leurs valeurs par défaut, seul le modèle bm25 est conservé. "
            "Pour recalibrer avec cet encodeur : %s",
            _short(fitted.encoder_fingerprint),
            _short(encoder_fingerprint),
            REFIT,
        )
        return fitted.bm25_only()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """The calibration a `to_dict` wrote (feature lists checked by `load`)."""

        def per_mode(raw: dict[str, Any], default: Coefficients) -> dict[str, Coefficients]:
            # Mode(m): a mode this version does not know is an error, not a silent extra.
            fitted = {
                Mode(m).value: (tuple(float(c) for c in v["coef"]), float(v["intercept"]))
                for m, v in raw.items()
            }
            return {**{m.value: default for m in Mode}, **fitted}

        return cls(
            dense_weight=float(data["dense_weight"]),
            answer_weight=float(data.get("answer_weight", cls.answer_weight)),
            lift_weight=float(data.get("lift_weight", cls.lift_weight)),
            models=per_mode(data["models"], DEFAULT_MODEL),
            scope=per_mode(data["scope"], DEFAULT_SCOPE_MODEL),
            fitted_on=str(data.get("fitted_on", "")),
            extra={k: float(v) for k, v in data.get("extra", {}).items()},
            encoder_fingerprint=data.get("encoder_fingerprint"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "dense_weight": self.dense_weight,
            "answer_weight": self.answer_weight,
            "lift_weight": self.lift_weight,
            "features": list(FEATURES),
            "models": {m: {"coef": list(c), "intercept": b} for m, (c, b) in self.models.items()},
            "scope_features": list(SCOPE_FEATURES),
            "scope": {m: {"coef": list(c), "intercept": b} for m, (c, b) in self.scope.items()},
            "fitted_on": self.fitted_on,
            "encoder_fingerprint": self.encoder_fingerprint,
            "modes": list(self.models),
            "extra": self.extra,
        }

    def save(self, path: Path = CALIBRATION_PATH) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", "utf-8")

    def bm25_only(self) -> Calibration:
        """The defaults, but for the BM25 models, which depend on no encoder."""
        bm25 = Mode.BM25.value
        defaults = Calibration()
        return replace(
            defaults,
            models={**defaults.models, bm25: self.models[bm25]},
            scope={**defaults.scope, bm25: self.scope[bm25]},
            fitted_on=f"defaults; bm25 models: {self.fitted_on}",
        )

    def weighs_lift(self) -> bool:
        """Whether the word alignment lift counts: in the hybrid fusion or in a model's features."""
        lift, best_lift = FEATURES.index("lift"), SCOPE_FEATURES.index("best_lift")
        return bool(self.lift_weight) or any(
            self.models[m.value][0][lift] or self.scope[m.value][0][best_lift]
            for m in Mode
            if m.uses_dense
        )
