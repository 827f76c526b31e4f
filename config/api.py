"""API plumbing shared by every app: pagination and the one exception handler."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, pagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import ApplicationError


class Pagination(pagination.PageNumberPagination):
    """``count``/``next``/``previous``/``results`` pages; ``?page_size=`` up to 500."""

    page_size_query_param = "page_size"
    max_page_size = 500


def _django_validation_body(exc: DjangoValidationError) -> Any:
    if hasattr(exc, "error_dict"):
        return {
            (field if field != "__all__" else "non_field_errors"): [str(m) for e in errors for m in e.messages]
            for field, errors in exc.error_dict.items()
        }
    return {"non_field_errors": exc.messages}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map domain errors and Django's ValidationError to DRF responses; the rest to DRF."""
    if isinstance(exc, ApplicationError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(_django_validation_body(exc))
    return drf_exception_handler(exc, context)
