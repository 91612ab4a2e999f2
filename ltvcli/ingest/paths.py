"""Image paths named by a source's files, kept inside the folder the user named.

A label table's ``image`` column, MIMIC's ``dicom_id`` / ``subject_id`` /
``study_id`` and OpenI's image names all become paths under the image folder
(``--images``). Those names come from files the user may not have written: a
name that is absolute (``/etc/passwd``) or climbs out with ``..``
(``../../secret.png``) would make ltv read a file outside the folder it was
pointed at. Such a name is refused the same way for every source: the file
is never opened, and the image is listed in ``skipped.csv`` with the reason
(``--strict`` stops at it instead).

The check is on the name as written, not on where the file system leads: a
symbolic link *inside* the image folder is followed, since only someone with
access to that folder can have put it there (linking an archive on another
disk into place is common), whereas the names come from the data.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Iterable


def outside_reason(name: str) -> str | None:
    """Why the relative path ``name`` would leave the folder it is joined to, or None if it stays inside."""
    if "\0" in name:
        return "its path holds a NUL character; not a file name"
    path = PurePosixPath(name)
    if path.is_absolute():
        return "its path is absolute; image paths must be relative to the image folder, which is never left"
    if ".." in path.parts:
        return "its path climbs out of the image folder with '..'; files outside it are never read"
    return None


def image_sources(root: Path, names: Iterable[str]) -> tuple[list[str], dict[int, str]]:
    """``root / name`` for each name, and {position: reason} for the names that would leave ``root``."""
    sources, refused = [], {}
    for position, name in enumerate(names):
        reason = outside_reason(name)
        if reason is not None:
            refused[position] = reason
        sources.append(str(root / name))
    return sources, refused
