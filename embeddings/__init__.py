"""Encoders (the bundled offline e5-small and any sentence-transformers model) and the FAISS index."""
