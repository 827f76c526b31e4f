"""Domain errors shared by every app; the API maps them to HTTP answers in one place."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A rule of the domain was broken; shown to the user as a 400 with field keys."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra or {}

    def as_dict(self) -> dict[str, Any]:
        """The DRF-shaped body: field-keyed lists of messages; a dotted field
        (``columns.identity_reason``) nests as DRF's nested serializers do."""
        if not self.field:
            return {"detail": self.message, **self.extra}
        *parents, leaf = self.field.split(".")
        body: dict[str, Any] = {leaf: [self.message]}
        for parent in reversed(parents):
            body = {parent: body}
        body.update(self.extra)
        return body


class ForbiddenError(ApplicationError):
    """The user may see the resource but not do this with it (e.g. reveal identities)."""

    status_code = 403

    def as_dict(self) -> dict[str, Any]:
        return {"detail": self.message, **self.extra}


class ConflictError(ApplicationError):
    """The resource is not in a state that allows the action (e.g. not ready yet)."""

    status_code = 409


class GoneError(ApplicationError):
    """The resource existed but is no longer available (e.g. an expired download)."""

    status_code = 410
