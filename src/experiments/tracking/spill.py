"""Where a run keeps what its output folder cannot take (its disk is full), and how a
full disk is told from other errors.

The run keeps such files and records in the temporary folder instead:
`<tmp>/gradlab-unsent/<run id>/`, which names the output folder it stands for
(`output_dir`), so `sync <output folder>` finds it. The temporary folder is the one of
the process (`$TMPDIR`, else /tmp): a sync started with another one is given that folder
itself.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

SPILL_DIR = "gradlab-unsent"
ORIGIN_FILE = "output_dir"
# What SQLite (through MLflow) says when the disk under the store is full.
_FULL_WORDS = ("database or disk is full", "No space left on device", "Disk quota exceeded")


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def no_space(error: BaseException) -> bool:
    """Whether the error (or one it came from) is a full disk or quota: an OSError's
    ENOSPC or EDQUOT, or SQLite's 'database or disk is full' as MLflow passes it on."""
    for e in _chain(error):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if no_space_text(str(e)):
            return True
    return False


def no_space_text(message: str) -> bool:
    return any(words in message for words in _FULL_WORDS)


def path_of(error: BaseException) -> Path | None:
    """The file an OSError (or one it came from) names: a copy's destination first."""
    for e in _chain(error):
        if isinstance(e, OSError) and (e.filename2 or e.filename):
            return Path(os.fsdecode(e.filename2 or e.filename))
    return None


def mount_of(path: Path) -> Path:
    """The mount point of the file system that holds `path` (or would hold it)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path):
        path = path.parent
    return path


def spill_root() -> Path:
    return Path(tempfile.gettempdir()) / SPILL_DIR


def spill_folder(run_id: str) -> Path:
    """Where a run keeps what its output folder cannot take (see the module's note)."""
    return spill_root() / run_id


def open_spill(run_id: str, output_dir: Path) -> Path:
    """The run's spill folder, made, naming the output folder it stands for."""
    folder = spill_folder(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    origin = folder / ORIGIN_FILE
    if not origin.is_file():
        try:
            origin.write_text(str(output_dir.resolve()))
        except OSError:
            origin.unlink(missing_ok=True)  # a cut name would send `sync` elsewhere
            raise
    return folder


def origin_of(folder: Path) -> Path | None:
    """The output folder a spill folder stands for (None for an output folder)."""
    try:
        text = (folder / ORIGIN_FILE).read_text().strip()
    except OSError:
        return None
    return Path(text) if text else None
