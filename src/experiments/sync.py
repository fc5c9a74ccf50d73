"""`python -m experiments.sync FOLDER [FOLDER ...]`: sends the records that runs kept
in their output folders because the tracking store failed (`unsent_records.jsonl`), to
the runs and stores they belong to, then closes each run with its true status.

A folder may be one run's output folder, a sweep's folder or any folder above them; every
run below it is synced, with what its runs kept in the temporary folder when their disk
was full (tracking.replay). Sending twice duplicates nothing. A line cut by a crash is
named (file and line) and set aside; every complete record around it is sent. Exit code
0 when every complete record arrived, 1 when something is left (each folder's line says
why).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def sync_folder(folder: Path) -> tuple[str, bool]:
    """One line about the folder, and whether everything in it has arrived. A torn
    line (a crash cut its write) is named on stderr, with its file and line, when it is
    set aside; the folder's line counts those set aside so far."""
    # MLflow once the arguments are good: `--help` and a bad folder answer at once.
    from experiments.tracking import kept_records, replay
    from experiments.tracking.recorder import RunRecorder
    from experiments.tracking.store import open_store

    kept = kept_records.read(folder)
    for line in kept.torn:
        print(f"warning: {line}", file=sys.stderr)
    torn = kept_records.torn_count(folder)
    where = folder / kept_records.TORN_FILE
    aside = f" ({torn} torn line{'s' * (torn != 1)} set aside in {where})" if torn else ""
    records = kept.records
    if not records:
        return f"{folder}: nothing left to send{aside}", True
    clients = {}

    def recorder_for(record):
        uri = record["tracking_uri"]
        if uri not in clients:
            clients[uri] = open_store(uri, create=False)
        return RunRecorder(clients[uri], record["run_id"])

    outcome = replay.replay(folder, recorder_for)  # a store that cannot open: in outcome.error
    runs = sorted({r["run_id"] for _, r in records})
    line = f"{folder}: {outcome.sent} records sent to run {', '.join(runs)}{aside}"
    if outcome.left:
        return f"{line}; {outcome.left} left ({outcome.error}); run sync again", False
    return line, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gradlab-sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, metavar="FOLDER")
    args = parser.parse_args(argv)
    # MLflow (through replay) once the arguments are good, as above.
    from experiments.tracking.replay import unsent_folders

    complete = True
    for root in args.folders:
        if not root.is_dir():
            print(f"error: {root} is not a folder", file=sys.stderr)
            return 1
        found = list(unsent_folders(root))
        if not found:
            print(f"{root}: no run below it kept records to send")
        for folder in found:
            line, done = sync_folder(folder)
            print(line)
            complete &= done
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
