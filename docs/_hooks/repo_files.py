"""MkDocs hook: the repository's own notes beside the pages (pipelines/README.md, benchmarks/README.md, the
benchmark scripts and their results), so pages link them by their repository paths and a broken link fails."""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, InclusionLevel

ROOT = Path(__file__).resolve().parents[2]
#: Folders of the repository published with the docs, under their own paths.
FOLDERS = ("pipelines", "benchmarks")
#: Of those, the pages listed in the nav (mkdocs.yml); the rest are reached by links only.
IN_NAV = {"pipelines/README.md", "benchmarks/README.md"}


def on_files(files, config):
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if not path.is_file() or "__pycache__" in rel or rel.endswith((".tmp", ".pyc")):
                continue
            inclusion = InclusionLevel.INCLUDED if rel in IN_NAV else InclusionLevel.NOT_IN_NAV
            files.append(File(rel, str(ROOT), config["site_dir"], config["use_directory_urls"], inclusion=inclusion))
    return files
