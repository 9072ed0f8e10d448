"""Sign-in at the start of a shift (badge and PIN), the lock screen after the idle time, the officer's own
language, and signing out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from edge.officer_app.guards import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    Officer,
    Redirect,
    app_of,
    check_token,
    form_checked,
    safe_next,
    same_origin,
    signed_in,
    signin_token,
)
from edge.officer_app.i18n import LANGUAGES

router = APIRouter()


class SignInForm(BaseModel):
    badge: str = Field(max_length=32)
    pin: str = Field(max_length=16)
    csrf: str = Field(max_length=100)
    next: str = Field(default="/", max_length=500)
    lang: str = Field(default="", max_length=2)


class PinForm(BaseModel):
    pin: str = Field(max_length=16)
    csrf: str = Field(max_length=100)
    next: str = Field(default="/", max_length=500)


class TokenForm(BaseModel):
    csrf: str = Field(max_length=100)
    next: str = Field(default="/", max_length=500)
    lang: str = Field(default="", max_length=2)


def _cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", path="/")


@router.get("/", include_in_schema=False)
def home(officer: Annotated[Officer, Depends(signed_in)]) -> RedirectResponse:
    return RedirectResponse("/stops/new", status_code=303)


def _signin_page(request: Request, lang: str, next_: str, status: int = 200, **context: Any) -> HTMLResponse:
    app = app_of(request)
    t = app.translator(lang)
    token = signin_token(request)
    response = app.page(
        request,
        "signin.html",
        t,
        status=status,
        token=token,
        next=safe_next(next_),
        lang=t.lang,
        chosen=lang if lang in LANGUAGES else "",
        **context,
    )
    _cookie(response, SIGNIN_COOKIE, token)
    return response


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request, next: str = "/", lang: str = "") -> HTMLResponse:
    return _signin_page(request, lang, next)


@router.post("/signin", response_model=None)
def signin(request: Request, form: Annotated[SignInForm, Form()]) -> Response:
    same_origin(request)
    check_token(request.cookies.get(SIGNIN_COOKIE) or "", form.csrf)
    app = app_of(request)
    result = app.accounts.sign_in(form.badge, form.pin)
    if result.outcome == "ok" and result.token:
        if form.lang in LANGUAGES:
            app.accounts.set_language(form.badge.strip(), form.lang)
        response = RedirectResponse(safe_next(form.next), status_code=303)
        _cookie(response, SESSION_COOKIE, result.token, int(app.accounts.policy.session_for.total_seconds()))
        return response
    t = app.translator(form.lang)
    if result.outcome == "locked" and result.locked_until is not None:
        error = t(
            "signin.locked",
            until=t.moment(result.locked_until),
            minutes=int(app.accounts.policy.lock_for.total_seconds() // 60),
        )
        return _signin_page(request, form.lang, form.next, 423, error=error, badge=form.badge)
    error = t(
        "signin.wrong",
        left=result.tries_left,
        minutes=int(app.accounts.policy.lock_for.total_seconds() // 60),
    )
    return _signin_page(request, form.lang, form.next, 401, error=error, badge=form.badge)


@router.get("/lock", response_class=HTMLResponse)
def lock_screen(request: Request, next: str = "/") -> HTMLResponse:
    app = app_of(request)
    view = app.accounts.session(request.cookies.get(SESSION_COOKIE), touch=False)
    if view is None:
        raise Redirect(f"/signin?next={safe_next(next)}")
    if not view.locked:
        raise Redirect(safe_next(next))
    t = app.translator(view.language)
    minutes = int(app.accounts.policy.idle_lock.total_seconds() // 60) or 1
    return app.page(request, "lock.html", t, name=view.full_name, badge=view.badge, token=view.csrf,
                    next=safe_next(next), minutes=minutes)  # fmt: skip


@router.post("/lock/unlock", response_model=None)
def unlock(request: Request, form: Annotated[PinForm, Form()]) -> Response:
    same_origin(request)
    app = app_of(request)
    token = request.cookies.get(SESSION_COOKIE) or ""
    view = app.accounts.session(token, touch=False)
    if view is None:
        raise Redirect("/signin")
    check_token(view.csrf, form.csrf)
    result = app.accounts.unlock(token, form.pin)
    if result.outcome == "ok":
        return RedirectResponse(safe_next(form.next), status_code=303)
    t = app.translator(view.language)
    if result.outcome == "locked" and result.locked_until is not None:
        error = t(
            "signin.locked",
            until=t.moment(result.locked_until),
            minutes=int(app.accounts.policy.lock_for.total_seconds() // 60),
        )
        status = 423
    else:
        error = t(
            "signin.wrong",
            left=result.tries_left,
            minutes=int(app.accounts.policy.lock_for.total_seconds() // 60),
        )
        status = 401
    minutes = int(app.accounts.policy.idle_lock.total_seconds() // 60) or 1
    return app.page(request, "lock.html", t, status=status, name=view.full_name, badge=view.badge, token=view.csrf,
                    next=safe_next(form.next), minutes=minutes, error=error)  # fmt: skip


@router.post("/lock", response_model=None)
def lock_now(
    request: Request, officer: Annotated[Officer, Depends(signed_in)], form: Annotated[TokenForm, Form()]
) -> Response:
    form_checked(request, officer, form.csrf)
    app_of(request).accounts.lock(request.cookies.get(SESSION_COOKIE) or "")
    return RedirectResponse(f"/lock?next={safe_next(form.next)}", status_code=303)


@router.post("/signout", response_model=None)
def sign_out(request: Request, form: Annotated[TokenForm, Form()]) -> Response:
    same_origin(request)
    app = app_of(request)
    token = request.cookies.get(SESSION_COOKIE) or ""
    view = app.accounts.session(token, touch=False)
    if view is not None:
        check_token(view.csrf, form.csrf)
        app.accounts.sign_out(token)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/activity", status_code=204, response_model=None)
def activity(
    request: Request, officer: Annotated[Officer, Depends(signed_in)], form: Annotated[TokenForm, Form()]
) -> Response:
    """The officer is typing or tapping on a page: that keeps the app from locking (``signed_in`` touched it)."""
    form_checked(request, officer, form.csrf)
    return Response(status_code=204)


@router.post("/language", response_model=None)
def language(
    request: Request, officer: Annotated[Officer, Depends(signed_in)], form: Annotated[TokenForm, Form()]
) -> Response:
    form_checked(request, officer, form.csrf)
    if form.lang in LANGUAGES:
        app_of(request).accounts.set_language(officer.badge, form.lang)
    return RedirectResponse(safe_next(form.next), status_code=303)
