"""Shared plumbing of the rater app and the admin page: the cached database and configuration lookups."""

from __future__ import annotations

import os

import streamlit as st

from db import Database, open_database

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
