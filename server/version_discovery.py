"""Version discovery from the file system, as TF Serving's FileSystemStoragePathSource: the numeric
sub-folders of a model's base path are its versions; a fingerprint of a version's files tells the model
manager (lifecycle.py) when a version that failed to load has changed and is worth another attempt."""
from __future__ import annotations

import contextlib
import logging
import os

from . import config as config_mod

log = logging.getLogger("server.lifecycle")


def fingerprint(path: str) -> tuple:
    """Names, sizes and mtimes of every file under path: changes when the version's files change."""
    items = []
    for root, _dirs, files in os.walk(path):
        for f in files:
            full = os.path.join(root, f)
            with contextlib.suppress(OSError):
                st = os.stat(full)
                items.append((os.path.relpath(full, path), st.st_size, st.st_mtime_ns))
    return tuple(sorted(items))


def discover_versions(name: str, base_path: str) -> dict[int, str] | None:
    """{version number: folder} for the numeric sub-folders of base_path; None if it cannot be listed."""
    found: dict[int, str] = {}
    try:
        entries = sorted(os.scandir(base_path), key=lambda e: e.name)
    except OSError as e:
        log.warning("Cannot list base path %s of model %s: %s", base_path, name, e.strerror)
        return None
    for entry in entries:
        if not entry.is_dir():
            continue
        if not config_mod.is_version_dir_name(entry.name):
            log.debug("Ignoring non-version folder %s of model %s", entry.path, name)
            continue
        found.setdefault(int(entry.name), entry.path)
    return found
