"""Corpus curation: tools for the raw captures of faq_data/raw/, not used at runtime."""
