r"""``mentions desk user add|remove|list``: the console's users file from the command line.

The password is never a flag (flags end up in shell histories and process lists): it is typed
twice at a terminal, or read as the first line of standard input, so a script can pipe it::

    printf '%s\n' "$PASSWORD" | mentions desk user add ana --role community_manager
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from pipeline.config import load_settings


def _users_file(args: argparse.Namespace) -> Path:
    path = args.users_file or load_settings().desk_users_file
    if path is None:
        raise FileNotFoundError("name the users file: --users-file or PIPELINE_DESK_USERS_FILE")
    return Path(path)


def read_new_password(stdin: Any = None) -> str:
    """The new user's password: typed twice at a terminal, else the first line of stdin."""
    import getpass

    stdin = stdin or sys.stdin
    if not stdin.isatty():
        return str(stdin.readline()).rstrip("\r\n")
    password = getpass.getpass("password: ")
    if getpass.getpass("again: ") != password:
        raise ValueError("the two passwords differ")
    return password


def cmd_desk_user_add(args: argparse.Namespace) -> int:
    """Add a console user (or change one, with --replace); the password from stdin."""
    from pipeline.desk.users import Role, add_user

    path = _users_file(args)
    try:
        role = Role.parse(args.role)
        new = add_user(path, args.name, role, read_new_password(), replace=args.replace)
    except ValueError as error:
        print(f"mentions desk user add: {error}", file=sys.stderr)
        return 2
    print(f"{'added' if new else 'changed'} {args.name} ({role.id}) in {path}", flush=True)
    return 0


def cmd_desk_user_remove(args: argparse.Namespace) -> int:
    """Take a user's access away."""
    from pipeline.desk.users import UsersFileError, remove_user

    path = _users_file(args)
    try:
        remove_user(path, args.name)
    except UsersFileError as error:
        print(f"mentions desk user remove: {error}", file=sys.stderr)
        return 2
    print(f"removed {args.name} from {path}", flush=True)
    return 0


def cmd_desk_user_list(args: argparse.Namespace) -> int:
    """Print every user and their role."""
    from pipeline.desk.users import read_users

    for user in sorted(read_users(_users_file(args)).values(), key=lambda user: user.name):
        print(f"{user.name}\t{user.role.id}", flush=True)
    return 0


COMMANDS: Final[dict[str, Callable[[argparse.Namespace], int]]] = {
    "add": cmd_desk_user_add, "remove": cmd_desk_user_remove, "list": cmd_desk_user_list,
}


def _desk_user(action: str) -> Any:
    """The handler of ``mentions desk user ACTION``."""

    def handler(args: argparse.Namespace) -> int:
        return int(COMMANDS[action](args))

    return handler


def add_user_commands(desk: argparse.ArgumentParser) -> None:
    """``mentions desk user add|remove|list``: the console's users file."""
    user = desk.add_subparsers(dest="desk_command").add_parser(
        "user", help="the console's users: add (password from a prompt or stdin), remove, list")
    commands = user.add_subparsers(dest="user_command", required=True)
    add = commands.add_parser("add", help="add a user, or change one with --replace")
    add.add_argument("name")
    add.add_argument("--role", required=True,
                     help="viewer, community_manager (also exports CSV) or admin")
    add.add_argument("--replace", action="store_true", help="change an existing user")
    add.set_defaults(handler=_desk_user("add"))
    remove = commands.add_parser("remove", help="take a user's access away")
    remove.add_argument("name")
    remove.set_defaults(handler=_desk_user("remove"))
    listing = commands.add_parser("list", help="every user and their role")
    listing.set_defaults(handler=_desk_user("list"))
    for command in (add, remove, listing):
        command.add_argument("--users-file", type=Path, default=None,
                             help="(PIPELINE_DESK_USERS_FILE)")
