"""Where a data set comes from and under which terms: the licence and attribution text a data
folder carries, for the descriptions of runs and registered model versions (a model built from a
data set must keep its attribution)."""

from __future__ import annotations

import re
from pathlib import Path

LICENCE_FILES = ("LICENSE", "LICENCE", "COPYING", "LICENSE.txt", "LICENSE.md")
README_FILES = ("README.md", "README.txt", "README")
MAX_CHARS = 1500


def data_notice(folder: str | Path) -> str:
    """The licence and attribution a data folder carries, as markdown ("" when none is found).

    Read, in this order, and joined:
    - the folder's README paragraphs that mention a licence;
    - the first line and the copyright lines of its LICENSE (LICENCE, COPYING) file;
    - the first bullet of the parent folder's README that names the folder and a licence or
      copyright (e.g. ``../shared/data/README.md``'s "Sources and licences" entry for ``dhsd``).

    Cut to :data:`MAX_CHARS` characters.
    """
    folder = Path(folder).expanduser()
    parts = [_readme_paragraphs(folder), _licence_lines(folder), _parent_bullet(folder)]
    text = "\n\n".join(p for p in parts if p)
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS - 1] + "…"


def _first_file(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _readme_paragraphs(folder: Path) -> str:
    readme = _first_file(folder, README_FILES)
    if readme is None:
        return ""
    paragraphs = re.split(r"\n\s*\n", readme.read_text(encoding="utf-8", errors="replace"))
    return "\n\n".join(p.strip() for p in paragraphs if re.search(r"licen[cs]e", p, re.I))


def _licence_lines(folder: Path) -> str:
    licence = _first_file(folder, LICENCE_FILES)
    if licence is None:
        return ""
    lines = [line.strip() for line in licence.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    kept = lines[:1] + [line for line in lines[1:] if line.lower().startswith("copyright")]
    return f"Licence ({licence.name}): " + "; ".join(kept) if kept else ""


def _parent_bullet(folder: Path) -> str:
    readme = _first_file(folder.resolve().parent, README_FILES)
    if readme is None:
        return ""
    name = re.split(r"[-_ .]", folder.resolve().name)[0].lower()
    bullets = re.split(r"\n(?=- )", readme.read_text(encoding="utf-8", errors="replace"))
    found = [b.strip() for b in bullets if b.startswith("- ") and name and name in b.lower()
             and re.search(r"licen[cs]|copyright|\(c\)|\bCC BY", b, re.I)]
    return "\n".join(" ".join(line.strip() for line in b.splitlines()) for b in found[:1])
