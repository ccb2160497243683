"""The console's users: names, roles and argon2 password hashes, kept in one YAML file.

``PIPELINE_DESK_USERS_FILE`` names the file; ``mentions desk user add NAME --role ROLE``
writes it (the password from a prompt or standard input, never a flag: flags end up in shell
histories and process lists). The file holds hashes only, is written whole to a temporary file
and renamed (a reader never sees half of it), and is created readable by its owner alone::

    # mentions desk users: add or change one with `mentions desk user add NAME --role ROLE`
    users:
    - name: ana
      role: community_manager
      password: $argon2id$v=19$m=65536,t=3,p=4$...

Roles are ordered: a ``viewer`` reads every page and API answer, a ``community_manager`` also
exports mentions as CSV (the export takes authors and texts out of the desk in bulk), an
``admin`` also sees who has access (``/users``). The desk reads the file again when it changes,
so a user added or removed takes effect without a restart.
"""

from __future__ import annotations

import enum
import os
import re
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

NAME_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
MIN_PASSWORD_CHARS: Final = 10
_HEADER: Final = ("# mentions desk users: add or change one with "
                  "`mentions desk user add NAME --role ROLE`\n")
# argon2-cffi's defaults (RFC 9106's second recommendation: 64 MiB, 3 passes)
_HASHER: Final = PasswordHasher()
# verified when the name is unknown, so a wrong name costs as long as a wrong password
_DUMMY_HASH: Final = _HASHER.hash("not a password of anyone's")


class Role(enum.IntEnum):
    """What a user may do; each role may do what the ones below it may."""

    VIEWER = 1
    COMMUNITY_MANAGER = 2
    ADMIN = 3

    @property
    def id(self) -> str:
        """The role as the users file and the CLI write it (``community_manager``)."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        """``Role.parse("community-manager")`` or ``Role.parse("admin")``.

        >>> Role.parse("Community-Manager")
        <Role.COMMUNITY_MANAGER: 2>
        """
        try:
            return cls[text.strip().upper().replace("-", "_")]
        except KeyError:
            names = ", ".join(role.id for role in cls)
            raise ValueError(f"unknown role {text!r}: one of {names}") from None


@dataclass(frozen=True, slots=True)
class User:
    """One person with access to the console."""

    name: str
    role: Role
    password_hash: str


class UsersFileError(ValueError):
    """A users file that cannot be read or written; the message says which and why."""


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (a new salt each time), as the users file keeps it."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    return _HASHER.hash(password)


def check_name(name: str) -> str:
    """``name`` if it can be a user name (lower case letters, digits, ``._@-``).

    >>> check_name("ana.garcia")
    'ana.garcia'
    """
    if not NAME_PATTERN.match(name):
        raise ValueError(f"user name {name!r}: lower case letters, digits and . _ @ -, "
                         "at most 64, starting with a letter or digit")
    return name


def read_users(path: Path) -> dict[str, User]:
    """The users in ``path`` by name; an absent file has none."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return {}
    except (OSError, yaml.YAMLError) as error:
        raise UsersFileError(f"{path}: {error}") from None
    entries = document.get("users") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise UsersFileError(f"{path}: expected a mapping with a 'users' list")
    users: dict[str, User] = {}
    for position, entry in enumerate(entries, 1):
        users_entry = _user(entry, f"{path}: user {position}")
        users[users_entry.name] = users_entry
    return users


def _user(entry: Any, where: str) -> User:
    if not isinstance(entry, Mapping):
        raise UsersFileError(f"{where}: expected name, role and password")
    try:
        name = check_name(str(entry["name"]))
        role = Role.parse(str(entry["role"]))
        password_hash = str(entry["password"])
    except KeyError as missing:
        raise UsersFileError(f"{where}: {missing.args[0]} is missing") from None
    except ValueError as error:
        raise UsersFileError(f"{where}: {error}") from None
    if not password_hash.startswith("$argon2"):
        raise UsersFileError(f"{where} ({name}): the password is not an argon2 hash")
    return User(name, role, password_hash)


def write_users(path: Path, users: Mapping[str, User]) -> None:
    """Replace ``path`` with ``users``, atomically, readable by its owner only."""
    entries = [{"name": user.name, "role": user.role.id, "password": user.password_hash}
               for user in sorted(users.values(), key=lambda user: user.name)]
    text = _HEADER + yaml.safe_dump({"users": entries}, sort_keys=False, allow_unicode=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as output:
            output.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add_user(path: Path, name: str, role: Role, password: str, *,
             replace: bool = False) -> bool:
    """Add ``name`` to the users file (or, with ``replace``, change it); True if it was new."""
    check_name(name)
    users = read_users(path)
    new = name not in users
    if not new and not replace:
        raise UsersFileError(f"{path}: {name} already exists (--replace changes their role "
                             "and password)")
    users[name] = User(name, role, hash_password(password))
    write_users(path, users)
    return new


def remove_user(path: Path, name: str) -> None:
    """Take ``name`` out of the users file."""
    users = read_users(path)
    if users.pop(name, None) is None:
        raise UsersFileError(f"{path}: no user {name}")
    write_users(path, users)


class UserDirectory:
    """The users file as the desk reads it: reloaded when it changes, checked on each login."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, User] = {}
        self.users()  # a broken file stops the desk at start-up, not at the first login

    def users(self) -> dict[str, User]:
        """Every user, from the file as it is now."""
        try:
            status = self.path.stat()
            stamp = (status.st_mtime_ns, status.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        with self._lock:
            if stamp != self._stamp:
                self._users = read_users(self.path)
                self._stamp = stamp
            return self._users

    def get(self, name: str) -> User | None:
        """The user called ``name``, if they still have access."""
        return self.users().get(name)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user whose name and password these are, else None (in about the same time)."""
        user = self.get(name)
        try:
            _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return user
