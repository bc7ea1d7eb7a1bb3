"""The curator's loop: question log, review queue, curated corpus edits, live reload.

Nothing heavy at import: each module is imported where it is used.
"""
