"""Measurement of faqbot: evaluation sets, metrics, calibration, dialogue replay, benchmark.

Not part of the runtime: `chatbot/` and `embeddings/` never import it. Its dependencies
come with the `eval` extra (`pip install -e '.[eval]'`, or `make install`).
"""
