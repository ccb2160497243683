"""The console's users file: roles, argon2 hashes, atomic writes, the CLI that edits it."""

import io
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.desk.users import (
    Role,
    UserDirectory,
    UsersFileError,
    add_user,
    read_users,
    remove_user,
)
from pipeline.desk.users_cli import read_new_password

PASSWORD = "correct horse battery"


def test_roles_are_ordered_and_parse_either_spelling() -> None:
    assert Role.ADMIN > Role.COMMUNITY_MANAGER > Role.VIEWER
    assert Role.parse("community-manager") is Role.COMMUNITY_MANAGER
    assert Role.parse(" Viewer ") is Role.VIEWER
    with pytest.raises(ValueError, match="unknown role 'owner'"):
        Role.parse("owner")


def test_a_user_is_kept_as_an_argon2_hash_in_a_file_only_its_owner_reads(
        tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    assert add_user(path, "ana", Role.COMMUNITY_MANAGER, PASSWORD) is True
    text = path.read_text()
    assert PASSWORD not in text and "$argon2id$" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    user = read_users(path)["ana"]
    assert (user.name, user.role) == ("ana", Role.COMMUNITY_MANAGER)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_adding_twice_needs_replace_and_removing_takes_access_away(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    add_user(path, "ana", Role.VIEWER, PASSWORD)
    with pytest.raises(UsersFileError, match="already exists"):
        add_user(path, "ana", Role.ADMIN, PASSWORD)
    assert add_user(path, "ana", Role.ADMIN, PASSWORD + "!", replace=True) is False
    directory = UserDirectory(path)
    assert directory.authenticate("ana", PASSWORD) is None
    assert directory.authenticate("ana", PASSWORD + "!") is not None
    remove_user(path, "ana")
    assert directory.get("ana") is None
    with pytest.raises(UsersFileError, match="no user ana"):
        remove_user(path, "ana")


@pytest.mark.parametrize(("name", "password", "message"), [
    ("Ana Garcia", PASSWORD, "user name"),
    ("ana", "short", "at least 10 characters"),
])
def test_a_bad_name_or_a_short_password_is_refused(tmp_path: Path, name: str, password: str,
                                                   message: str) -> None:
    with pytest.raises(ValueError, match=message):
        add_user(tmp_path / "users.yaml", name, Role.VIEWER, password)


def test_authenticate_answers_the_user_only_for_their_password(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    add_user(path, "ana", Role.VIEWER, PASSWORD)
    directory = UserDirectory(path)
    user = directory.authenticate("ana", PASSWORD)
    assert user is not None and user.role is Role.VIEWER
    assert directory.authenticate("ana", "wrong password") is None
    assert directory.authenticate("nobody", PASSWORD) is None


def test_the_directory_reads_the_file_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    directory = UserDirectory(path)
    assert directory.users() == {}
    add_user(path, "luis", Role.ADMIN, PASSWORD)
    assert directory.get("luis") is not None


@pytest.mark.parametrize(("text", "message"), [
    ("users: nope", "expected a mapping with a 'users' list"),
    ("users:\n- {name: ana, role: viewer}", "password is missing"),
    ("users:\n- {name: ana, role: boss, password: x}", "unknown role"),
    ("users:\n- {name: ana, role: viewer, password: plain}", "not an argon2 hash"),
    ("users: [", "users.yaml"),
])
def test_a_broken_users_file_says_where_and_why(tmp_path: Path, text: str,
                                                message: str) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(text)
    with pytest.raises(UsersFileError, match=message):
        UserDirectory(path)


def test_the_password_is_the_first_line_of_a_pipe() -> None:
    assert read_new_password(io.StringIO(f"{PASSWORD}\nignored\n")) == PASSWORD


def test_the_cli_adds_lists_and_removes_users(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"

    def mentions(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pipeline.cli", "desk", "user", *args,
                               "--users-file", str(path)], input=stdin, capture_output=True,
                              text=True, timeout=60, check=False)

    added = mentions("add", "ana", "--role", "community-manager", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "added ana (community_manager)" in added.stdout
    assert mentions("list").stdout == "ana\tcommunity_manager\n"
    again = mentions("add", "ana", "--role", "viewer", stdin=PASSWORD + "\n")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert mentions("remove", "ana").returncode == 0
    assert mentions("list").stdout == ""
