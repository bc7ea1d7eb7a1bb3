"""Micro-batching: questions arriving within a few milliseconds share one forward pass.

Off by default (FAQBOT_MICROBATCH_MS=0). Measured on the 2-core machine (docs/benchmark.md),
when each pass ran on one thread (the default before 06/12, now two): a batch of 4
questions cost more per question than 4 single passes (padding to the longest), so it did
not raise /api/chat throughput. Not measured again on two threads per pass.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from embeddings.encoder import calibration_fingerprint, word_vector_encoder

if TYPE_CHECKING:
    from embeddings.encoder import Encoder, WordVectors


@dataclass
class _Pending:
    """One question waiting for its batch: the worker fills `result` (or `error`), then sets `done`."""

    text: str
    done: threading.Event = field(default_factory=threading.Event)
    result: tuple[np.ndarray, WordVectors] | None = None
    error: BaseException | None = None


class MicroBatchEncoder:
    """The Encoder contract over `inner`; single-question `encode_queries_with_words` calls
    (the serving path) are queued and encoded together by `workers` threads.

    A worker takes the first waiting question, waits at most `window_s` for up to
    `max_batch - 1` more, then runs one forward pass for them all.
    """

    supports_word_vectors = True

    def __init__(
        self, inner: Encoder, window_s: float = 0.003, max_batch: int = 8, workers: int = 2
    ) -> None:
        words = word_vector_encoder(inner)
        if words is None:
            raise ValueError("le micro-batching demande un encodeur qui donne les mots")
        self._with_words = words
        self.inner = inner
        self.name = inner.name
        self.window_s = window_s
        self.max_batch = max_batch
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self.batches = 0  # batches run and questions encoded, for the measurements
        self.questions = 0
        for n in range(workers):
            threading.Thread(target=self._work, name=f"microbatch-{n}", daemon=True).start()

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    @property
    def calibration_fingerprint(self) -> str:
        # The inner encoder's (int8: the weights'), or the shipped calibration is lost.
        return calibration_fingerprint(self.inner)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self.inner.encode_queries(texts)

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self.inner.encode_passages(texts, progress=progress)

    def encode_queries_with_words(self, texts: list[str]) -> tuple[np.ndarray, list[WordVectors]]:
        """Vectors and word vectors; one question waits for its batch, several go straight through."""
        if len(texts) != 1:
            return self._inner_with_words(list(texts))
        pending = _Pending(texts[0])
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        vector, words = pending.result
        return vector[None, :], [words]

    def _inner_with_words(self, texts: list[str]) -> tuple[np.ndarray, list[WordVectors]]:
        vectors, words = self._with_words.encode_queries_with_words(texts)
        return vectors, list(words)

    def _work(self) -> None:
        while True:
            batch = [self._queue.get()]
            deadline = time.perf_counter() + self.window_s
            while len(batch) < self.max_batch:
                left = deadline - time.perf_counter()
                try:
                    batch.append(
                        self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
            try:
                vectors, words = self._inner_with_words([p.text for p in batch])
            except BaseException as exc:  # handed to every waiting caller
                for p in batch:
                    p.error = exc
                    p.done.set()
                continue
            self.batches += 1
            self.questions += len(batch)
            for i, p in enumerate(batch):
                p.result = (vectors[i], words[i])
                p.done.set()


__all__ = ["MicroBatchEncoder"]
