"""Encoders behind one contract (encoder), their backends (backends), the offline conversion and the FAISS index."""
