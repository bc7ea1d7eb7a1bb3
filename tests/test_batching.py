"""chatbot.batching: the micro-batching queue (off by default) gives each caller its own vectors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from chatbot.batching import MicroBatchEncoder
from chatbot.config import Settings
from chatbot.errors import ConfigError
from embeddings.encoder import FakeEncoder


def test_concurrent_questions_share_batches_and_get_their_own_vectors():
    inner = FakeEncoder()
    batched = MicroBatchEncoder(inner, window_s=0.02, max_batch=8, workers=1)
    texts = [f"Combien touche un éditeur pour le dispositif {i} ?" for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda t: batched.encode_queries_with_words([t]), texts))
    for text, (vectors, words) in zip(texts, got, strict=True):
        want_vectors, want_words = inner.encode_queries_with_words([text])
        np.testing.assert_allclose(vectors, want_vectors, atol=1e-6)
        assert words[0].words == want_words[0].words
    assert batched.questions == 24 and batched.batches < 24  # some questions shared a pass
    assert batched.fingerprint == inner.fingerprint and batched.dim == inner.dim


def test_an_encoding_error_reaches_the_caller():
    class Broken(FakeEncoder):
        def encode_queries_with_words(self, texts, progress=False):
            raise RuntimeError("panne")

    with pytest.raises(RuntimeError, match="panne"):
        MicroBatchEncoder(Broken(), window_s=0.001).encode_queries_with_words(["question"])


def test_the_setting_is_off_by_default_and_bounded():
    assert Settings.from_env({}).microbatch_ms == 0
    assert Settings.from_env({"FAQBOT_MICROBATCH_MS": "3"}).microbatch_ms == 3
    with pytest.raises(ConfigError, match="FAQBOT_MICROBATCH_MS"):
        Settings.from_env({"FAQBOT_MICROBATCH_MS": "-1"})


def test_the_wrapped_encoders_calibration_is_kept() -> None:
    from embeddings.encoder import calibration_fingerprint

    class Int8Like(FakeEncoder):
        calibration_fingerprint = "the-weights"  # its own fingerprint differs (int8)

    batched = MicroBatchEncoder(Int8Like(), window_s=0.001)
    assert batched.fingerprint == Int8Like().fingerprint
    assert calibration_fingerprint(batched) == "the-weights"
