"""The simulated ArchestrA users known to AuthenticateUser and ArchestrAUserToId.

Passwords are the user names (operator/operator ...). They are compared, never logged.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

__all__ = ["KNOWN_USERS", "User", "authenticate", "user_by_guid"]


@dataclass(frozen=True, slots=True)
class User:
    """A known user: name, MXAccess user id and ArchestrA GUID."""

    name: str
    user_id: int
    guid: str
    password: str = field(repr=False)


KNOWN_USERS: tuple[User, ...] = (
    User("operator", 101, "6a0e4d52-1a11-4c7e-9a01-000000000101", "operator"),
    User("supervisor", 102, "6a0e4d52-1a11-4c7e-9a01-000000000102", "supervisor"),
    User("engineer", 103, "6a0e4d52-1a11-4c7e-9a01-000000000103", "engineer"),
    User("administrator", 104, "6a0e4d52-1a11-4c7e-9a01-000000000104", "administrator"),
)


def authenticate(name: str, password: str) -> User | None:
    """The user whose name (case-insensitive) and password match, else None."""
    wanted = name.strip().lower()
    for user in KNOWN_USERS:
        if user.name == wanted and hmac.compare_digest(user.password.encode(), password.encode()):
            return user
    return None


def user_by_guid(guid: str) -> User | None:
    """The user with ArchestrA GUID ``guid`` (case-insensitive, braces allowed), else None."""
    wanted = guid.strip().strip("{}").lower()
    for user in KNOWN_USERS:
        if user.guid == wanted:
            return user
    return None
