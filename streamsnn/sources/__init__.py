"""Async sources of EventBatch: file and dataset replay, iniVation cameras, DV network streams; `serve` is the other
end of a DV stream (a recording served as one)."""

_WHERE = {"ReplaySource": "files", "CameraSource": "camera", "DvStreamSource": "dvstream", "SourceBase": "base"}

__all__ = list(_WHERE)


def __getattr__(name: str):
    """Import a source class on first use, so `import streamsnn.sources` stays light."""
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
