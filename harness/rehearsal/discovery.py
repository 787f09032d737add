"""Finding rehearsal files and the files they name: which YAML files are rehearsals
(`is_rehearsal_file`, for the pytest plugin's collection), where a rehearsal's
``topology:`` is (`find_topology`), and how messages name a path (`display_path`).
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.toolchain import repo_root

REHEARSAL_DIR = "rehearsals"
_STEPS_KEY_RE = re.compile(r"^steps[ \t]*:", re.MULTILINE)


def is_rehearsal_file(path: Path, *, explicit: bool, root: Path | None = None) -> bool:
    """A `.yaml`/`.yml` file in a `rehearsals/` folder (below `root`), or one named
    explicitly whose top level has a `steps:` key."""
    if path.suffix not in (".yaml", ".yml"):
        return False
    try:
        folders = path.parent.relative_to(root).parts if root else (path.parent.name,)
    except ValueError:
        folders = (path.parent.name,)
    if REHEARSAL_DIR in folders:
        return True
    if not explicit:
        return False
    try:
        return bool(_STEPS_KEY_RE.search(path.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return False


def display_path(path: Path) -> str:
    """`path` relative to the working folder when below it (messages stay short)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def find_topology(ref: str, base_dir: Path) -> tuple[Path | None, list[Path]]:
    """The topology file `ref` names — relative to the rehearsal, in its `topologies/`,
    in the built-in `scenarios/topologies/`, in the working folder, with or without
    `.yaml` — and the folders looked in."""
    p = Path(ref)
    names = [p] if p.suffix in (".yaml", ".yml") else [p, p.with_name(p.name + ".yaml")]
    folders = [Path()] if p.is_absolute() else []
    folders += [base_dir, base_dir / "topologies", repo_root() / "scenarios" / "topologies"]
    folders.append(Path.cwd())
    for folder in folders:
        for name in names:
            candidate = folder / name
            try:
                if candidate.is_file():
                    return candidate.resolve(), folders
            except OSError:
                continue
    return None, folders
