"""Installs our SillyTavern extension (the ``sillytavern/`` folder beside the package) into a SillyTavern::

    install_extension("~/SillyTavern")                       # -> data/default-user/extensions/talkinghead-nb
    install_extension("~/SillyTavern", for_all_users=True)   # -> public/scripts/extensions/third-party/talkinghead-nb

SillyTavern serves a third-party extension at ``/scripts/extensions/third-party/<name>/``. Since 1.12 it reads it from
the user's data folder (``<dataRoot>/<user>/extensions/<name>``, dataRoot ``./data`` unless config.yaml says
otherwise); 1.12.6 reads only that one. Later releases also read ``public/scripts/extensions/third-party/<name>``
("global": for all users), where a user's own copy wins. After installing, reload SillyTavern's page and turn the
extension on under Extensions → "Talkinghead (talkinghead-nb)".
"""

from __future__ import annotations

import filecmp
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .paths import PROJECT_ROOT

log = logging.getLogger(__name__)

EXTENSION_NAME = "talkinghead-nb"
GLOBAL_EXTENSIONS = Path("public", "scripts", "extensions", "third-party")
DEFAULT_USER = "default-user"
REQUIRED_FILES = ("manifest.json", "index.js", "style.css", "settings.html")


class InstallError(RuntimeError):
    """The extension cannot be installed there; the message says why and what to do."""


def extension_source() -> Path:
    """The extension's folder: ``$TALKINGHEAD_NB_SILLYTAVERN``, else ``sillytavern/`` in the project (a source checkout
    or an editable install)."""
    source = Path(os.environ.get("TALKINGHEAD_NB_SILLYTAVERN") or PROJECT_ROOT / "sillytavern")
    missing = [name for name in REQUIRED_FILES if not (source / name).is_file()]
    if missing:
        raise InstallError(f"cannot find the SillyTavern extension: {source} lacks {', '.join(missing)}. It ships in "
                           "the project's sillytavern/ folder, not in the wheel: install talkinghead-nb from a "
                           "checkout (pip install -e .), or set TALKINGHEAD_NB_SILLYTAVERN to that folder")
    return source


def check_sillytavern(st_folder: str | os.PathLike) -> Path:
    """The SillyTavern folder, resolved; ``InstallError`` unless it has ``server.js`` and
    ``public/scripts/extensions``."""
    folder = Path(st_folder).expanduser().resolve()
    if not folder.is_dir():
        raise InstallError(f"{folder} is not a folder: give the folder SillyTavern is installed in")
    if not (folder / "server.js").is_file() or not (folder / "public" / "scripts" / "extensions").is_dir():
        raise InstallError(f"{folder} is not a SillyTavern folder (it has no server.js and "
                           "public/scripts/extensions): give the folder SillyTavern is installed in")
    return folder


def extensions_folder(st_folder: Path, user: str = DEFAULT_USER, for_all_users: bool = False) -> Path:
    """Where SillyTavern looks for the third-party extensions of ``user`` (or of all users)."""
    if for_all_users:
        return st_folder / GLOBAL_EXTENSIONS
    if not re.fullmatch(r"[\w-]+", user):
        raise InstallError(f"{user!r} is not a SillyTavern user handle (letters, digits, '-' and '_')")
    data_root = "./data"
    config = st_folder / "config.yaml"
    if config.is_file():
        found = re.search(r"^dataRoot:\s*[\"']?([^\"'#\n]+?)[\"']?\s*(#.*)?$", config.read_text(errors="replace"),
                          re.MULTILINE)
        data_root = found.group(1).strip() if found else data_root
    return (st_folder / Path(data_root).expanduser()).resolve() / user / "extensions"


def _files(folder: Path) -> list[Path]:
    """The extension's files, relative, without hidden files and caches."""
    return sorted(p.relative_to(folder) for p in folder.rglob("*")
                  if p.is_file() and not any(part.startswith(".") or part == "__pycache__"
                                             for part in p.relative_to(folder).parts))


def _same(source: Path, target: Path) -> bool:
    files = _files(source)
    return files == _files(target) and all(filecmp.cmp(source / f, target / f, shallow=False) for f in files)


def install_extension(st_folder: str | os.PathLike, *, overwrite: bool = False, user: str = DEFAULT_USER,
                      for_all_users: bool = False, say: Callable[[str], None] | None = None) -> Path:
    """Copy the extension into SillyTavern's extensions folder for ``user`` (``<dataRoot>/<user>/extensions/
    talkinghead-nb``; SillyTavern 1.12 and later) or, with ``for_all_users``, into
    ``public/scripts/extensions/third-party/talkinghead-nb`` (releases after 1.12.6) and return that folder. An
    identical install is left as it is; a different one is replaced only with ``overwrite``. The copy goes to a
    scratch folder beside it first and is renamed into place, so SillyTavern never sees half an extension. ``say``
    gets one line on what was done (default: the log)."""
    say = say or log.info
    folder = check_sillytavern(st_folder)
    source = extension_source()
    parent = extensions_folder(folder, user, for_all_users)
    target = parent / EXTENSION_NAME
    if target.exists() or target.is_symlink():
        if not target.is_dir() or target.is_symlink():
            raise InstallError(f"{target} exists and is not a folder of ours: move it away first")
        if _same(source, target):
            say(f"the extension in {target} is already up to date: nothing to do")
            return target
        if not overwrite:
            raise InstallError(f"{target} holds another version of the extension (or one changed by hand): "
                               "pass overwrite=True to replace it")
    parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{EXTENSION_NAME}-new-", dir=parent))
    old = None
    try:
        for name in _files(source):
            (scratch / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, scratch / name)
        scratch.chmod(0o755)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{EXTENSION_NAME}-old-", dir=parent))
            old.rmdir()
            target.rename(old)
        scratch.rename(target)
    except BaseException:
        if old is not None and old.exists() and not target.exists():
            old.rename(target)  # put the previous install back
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    say(f"{'replaced' if old is not None else 'installed'} the SillyTavern extension in {target}: reload "
        "SillyTavern's page, then turn it on under Extensions → \"Talkinghead (talkinghead-nb)\"")
    return target
