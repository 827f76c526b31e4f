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
        """The DRF-shaped body: field-keyed lists of messages."""
        key = self.field or "detail"
        body: dict[str, Any] = {key: [self.message] if self.field else self.message}
        body.update(self.extra)
        return body


class ConflictError(ApplicationError):
    """The resource is not in a state that allows the action (e.g. not ready yet)."""

    status_code = 409


class GoneError(ApplicationError):
    """The resource existed but is no longer available (e.g. an expired download)."""

    status_code = 410
