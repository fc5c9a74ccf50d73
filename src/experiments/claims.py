"""Claims, so that two processes never run one configuration twice at once nor write
into one output folder.

Two identical sweeps started at once (two people, two terminals, a scheduler that
launched a job twice) would otherwise run every configuration twice, and runs that
Hydra gives one output folder (the same `hydra.sweep.dir` twice, a sweep re-run into its
folder, two single runs started in the same second) would write their history, model
and kept records over each other's.

- A configuration is claimed, for the life of its run, by its digest in its store and
  experiment. A job that finds it claimed says by whom and waits for that process to
  end; then the job is skipped if the configuration FINISHED (tracking.resume), or runs.
- An output folder belongs to the first run that writes into it, for good: a later run
  (at once or a week later) that Hydra sends there writes into a new sibling folder
  (`3` -> `3-2`) and says so.

Claims are flock(2) locks on small files. The kernel drops a lock when its process ends,
however it ends (SIGKILL included), so a claim never outlives its owner, and waiting on
one lasts no longer than the owner's life. They are seen by the processes of one machine
(and of machines that share the folder on a file system with shared flock locks).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

# In every output folder: which run owns it, and a lock held while that run is open.
FOLDER_CLAIM = ".gradlab-run.json"
# Claims of configurations: keyed by store, experiment and digest, in the temporary
# folder, as tracking.store keys its lock (the store's own folder may not be writable).
CONFIG_CLAIMS_DIR = "gradlab-claims"


class Claim:
    """An exclusive flock on `path`, which also says who holds it (pid, host, run)."""

    def __init__(self, path: Path):
        self.path = path
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def try_take(self) -> bool:
        """Takes the claim if no live process holds it; never waits."""
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def take(self) -> None:
        """Takes the claim, waiting for the process that holds it to end (or release it);
        Ctrl-C and SIGTERM still interrupt the wait."""
        handle = open(self.path, "a+")
        fcntl.flock(handle, fcntl.LOCK_EX)
        self._file = handle

    def note(self, **fields: Any) -> None:
        """Writes who holds the claim into its file (read by `holder`). A disk too full
        for these few bytes costs the note, not the run: the lock itself still holds."""
        assert self._file is not None
        try:
            self._file.seek(0)
            self._file.truncate()
            self._file.write(json.dumps({"pid": os.getpid(), "host": platform.node(), **fields}))
            self._file.flush()
        except OSError as e:
            log.warning("could not note the owner of %s: %s", self.path, e)

    def holder(self) -> dict[str, Any]:
        """What the holder wrote of itself ({} if it wrote nothing yet)."""
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the last descriptor drops the flock
            self._file = None


def describe(holder: dict[str, Any]) -> str:
    who = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}"
    return f"run {holder['run_id']} ({who})" if holder.get("run_id") else who


def config_claim(tracking_uri: str, experiment_id: str, digest: str) -> Claim:
    """The claim on one configuration (its config digest) in one store and experiment,
    taken now or after waiting for the process that holds it."""
    folder = Path(tempfile.gettempdir()) / CONFIG_CLAIMS_DIR
    folder.mkdir(exist_ok=True)
    store = hashlib.sha256(f"{tracking_uri}\n{experiment_id}".encode()).hexdigest()[:16]
    claim = Claim(folder / f"{store}-{digest}.lock")
    if not claim.try_take():
        holder = claim.holder()
        log.warning(
            "configuration %s is being run by %s: waiting for it to end",
            digest,
            describe(holder),
        )
        started = time.monotonic()
        claim.take()
        log.info(
            "configuration %s: %s ended after %.0f s",
            digest,
            describe(holder),
            time.monotonic() - started,
        )
    claim.note()
    return claim


def _free(claim: Claim, run_id: str | None) -> bool:
    """Whether the claim's folder is free: no live process holds it and no run wrote
    there but `run_id`. If it is, this process now holds the claim."""
    if not claim.try_take():
        return False
    if claim.holder().get("run_id") not in (None, run_id):
        claim.release()
        return False
    return True


def own_output_folder(folder: Path, run_id: str | None = None) -> tuple[Path, Claim]:
    """An output folder this run alone writes into: `folder` itself when no other run
    owns it (`run_id`: a run continued in the folder it wrote before), else the first
    free sibling `<folder>-2`, `<folder>-3`, ... Returns the folder and its claim
    (`Claim.note(run_id=...)` once the run is open)."""
    candidate = folder
    for number in range(2, 10_000):
        candidate.mkdir(parents=True, exist_ok=True)
        claim = Claim(candidate / FOLDER_CLAIM)
        if _free(claim, run_id):
            if candidate != folder:
                log.warning(
                    "output folder %s belongs to %s: this run writes into %s",
                    folder,
                    describe(_owner_of(folder)),
                    candidate,
                )
                _follow_log_to(folder, candidate)
            return candidate, claim
        candidate = folder.with_name(f"{folder.name}-{number}")
    raise OSError(f"no free output folder beside {folder} (10,000 are taken)")


def _owner_of(folder: Path) -> dict[str, Any]:
    return Claim(folder / FOLDER_CLAIM).holder()


def _follow_log_to(old: Path, new: Path) -> None:
    """Hydra's job log file (`<output folder>/<job>.log`) follows the run to its folder,
    with the `.hydra` record of the job's config that Hydra wrote beside it."""
    for handler in logging.getLogger().handlers:
        name = getattr(handler, "baseFilename", None)
        if isinstance(handler, logging.FileHandler) and name and Path(name).parent == old:
            moved = new / Path(name).name
            previous = handler.setStream(open(moved, "a"))
            handler.baseFilename = str(moved)
            if previous is not None:
                previous.close()
    if (old / ".hydra").is_dir() and not (new / ".hydra").exists():
        shutil.copytree(old / ".hydra", new / ".hydra")
