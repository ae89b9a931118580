"""Async sources of EventBatch: file and dataset replay, iniVation cameras, DV network streams."""
