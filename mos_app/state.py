"""Shared plumbing of the rater app and the admin page: the cached database, configuration lookups,
and :func:`guarded`, the one place where errors become what a rater may see."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from db import Database, DatabaseGone, MosError, open_database

log = logging.getLogger("mos_app")
F = TypeVar("F", bound=Callable)

#: Shown for any unexpected failure (a database error, a bug): the details go to the server log only.
#: True because an answer is acknowledged only after its transaction committed to the database file.
APOLOGY = ("Sorry, something went wrong on our side and this step could not be completed. "
           "Your answers so far are saved. Please try again in a few minutes.")
#: Shown when the database file was deleted or replaced under the server: nothing is claimed as saved.
GONE = ("Sorry, the study cannot take answers at the moment: its data store is no longer available on the "
        "server, so your last answer was not saved. Please let the study organisers know; there is no need "
        "to keep trying.")
#: Shown on an admin page that failed unexpectedly.
ADMIN_APOLOGY = ("This page could not be shown because of an error on the server; the details are in the "
                 "server log.")

DB_URL_ENV = "MOS_DB_URL"
STUDY_ENV = "MOS_STUDY"
ADMIN_PASSWORD_ENV = "MOS_ADMIN_PASSWORD"


class ConfigError(RuntimeError):
    """The app is not configured (no database URL, no study): shown to the user as is."""


@st.cache_resource(show_spinner=False)
def get_database(url: str) -> Database:
    """One engine / connection pool per URL for the whole server process (shared by every session).

    The URL is an argument so several databases (tests, two studies) each get their own cached instance.
    """
    return open_database(url)


def database_url() -> str:
    url = os.environ.get(DB_URL_ENV, "").strip()
    if not url:
        raise ConfigError(
            f"No database configured: set {DB_URL_ENV} to an SQLAlchemy URL "
            "(e.g. sqlite:///mos.db) before `streamlit run`."
        )
    return url


def query_param(name: str) -> str | None:
    value = st.query_params.get(name)
    if isinstance(value, list):  # AppTest may hand lists through
        value = value[-1] if value else None
    value = (value or "").strip()
    return value or None


def admin_password() -> str | None:
    """The admin password from Streamlit secrets (``admin_password``) or env MOS_ADMIN_PASSWORD."""
    try:
        secret = st.secrets.get("admin_password")
    except Exception:  # no secrets.toml at all: Streamlit raises rather than returning None
        secret = None
    secret = secret or os.environ.get(ADMIN_PASSWORD_ENV)
    return str(secret) if secret else None


def user_message(err: Exception) -> str:
    """What a rater may read about ``err``: the data layer's own words for its deliberate errors
    (:class:`~db.errors.MosError`), a plain apology for anything else; details go to the log."""
    if isinstance(err, DatabaseGone):
        log.error("rater app: %s", err)
        return GONE
    if isinstance(err, MosError):
        return str(err)
    log.error("rater app: unexpected %s", type(err).__name__, exc_info=err)
    return APOLOGY


def admin_message(err: Exception) -> str:
    """What the admin pages show about ``err``: the data layer's own words for its deliberate errors, a short
    line for anything else (no SQL, paths or traceback on the page); the details go to the server log."""
    if isinstance(err, MosError) and not isinstance(err, DatabaseGone):
        return str(err)
    log.error("admin page: %s", type(err).__name__, exc_info=err)
    return ADMIN_APOLOGY


def guarded(show: Callable[[str], None], message: Callable[[Exception], str] = user_message) -> Callable[[F], F]:
    """Decorator for every entry point of the apps (a page, the page script, each widget callback):
    no exception escapes to Streamlit's traceback display; ``show`` gets ``message(err)`` instead
    (:func:`user_message` for raters, :func:`admin_message` on the admin pages).
    Streamlit's own control flow (``st.rerun``, ``st.stop``) derives from ``BaseException`` and passes."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as err:
                show(message(err))
                return None

        return run  # type: ignore[return-value]

    return wrap
