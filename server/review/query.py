"""Query strings and forms of the workspace, read as pydantic models, refused with a 400 that names the field.

- ``bounded_query`` (a dependency): 414 for a query string over ``MAX_QUERY_CHARS``; 400 for a parameter
  given twice (a model would silently keep one of them);
- ``form_model(Model)`` (a dependency factory): reads an ``application/x-www-form-urlencoded`` body of at
  most ``MAX_FORM_BYTES`` (413 otherwise, refused before it is read) into ``Model``;
- ``install(app)``: a validation error on a workspace page becomes a 400 page naming the field (the search
  page shows its form again with the error), under ``/review/api/`` a 400 JSON; elsewhere FastAPI's own
  answer stands.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from core.ascii_digits import parse_digits

MAX_QUERY_CHARS = 1024
MAX_FORM_BYTES = 8 * 1024
M = TypeVar("M", bound=BaseModel)

FIELD_NAMES = {
    "number": "номер протокола / protocol number",
    "plate": "госномер / plate",
    "badge": "жетон / badge",
    "iin": "ИИН / IIN",
    "name": "ФИО / name",
    "date": "дата / date",
    "date_from": "с даты / from",
    "date_to": "по дату / to",
}


class QueryTooLong(Exception):
    pass


def bounded_query(request: Request) -> None:
    """414 for an overlong query string, 400 for a parameter given twice."""
    if len(request.url.query) > MAX_QUERY_CHARS:
        raise HTTPException(414, f"query string is longer than {MAX_QUERY_CHARS} characters")
    seen: set[str] = set()
    for key, _ in request.query_params.multi_items():
        if key in seen:
            raise HTTPException(400, f"parameter {key[:40]!r} is given twice")
        seen.add(key)


def describe(errors: Sequence[Any]) -> str:
    """The first validation error in words: which field, what is wrong."""
    if not errors:
        return "invalid input"
    error = errors[0]
    loc = [str(p) for p in error.get("loc", ()) if p not in ("query", "body", "path")]
    field = loc[-1] if loc else ""
    if error.get("type") == "extra_forbidden":
        return f"unknown field {field[:40]!r}: not one of this page's fields"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if field and field not in message and FIELD_NAMES.get(field, "~") not in message:
        return f"{FIELD_NAMES.get(field, field)}: {message}"
    return message


def form_model(model: type[M], max_fields: int = 16) -> Callable[[Request], Awaitable[M]]:
    """A dependency that reads a bounded urlencoded form into ``model`` (400 naming the field if invalid)."""

    async def read(request: Request) -> M:
        length = parse_digits(request.headers.get("content-length", ""))
        if length is None or length > MAX_FORM_BYTES:
            raise HTTPException(413, f"form: send at most {MAX_FORM_BYTES} bytes with a Content-Length")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            raise HTTPException(400, "form: expected application/x-www-form-urlencoded")
        form = await request.form(max_files=0, max_fields=max_fields)
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            return model.model_validate(values)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from None

    read.__name__ = f"form_{model.__name__}"
    return read


def install(app: FastAPI, on_review_error: Callable[[Request, str], Response]) -> None:
    """Validation errors under ``/review`` answered by ``on_review_error(request, reason)`` with a 400."""

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if request.url.path.startswith("/review/api/"):
            return JSONResponse({"detail": describe(exc.errors())}, status_code=400)
        if request.url.path.startswith("/review"):
            return on_review_error(request, describe(exc.errors()))
        return await request_validation_exception_handler(request, exc)

    app.add_exception_handler(RequestValidationError, handler)
