"""MOS study storage: SQLAlchemy models, Alembic migrations, and the data layer of the rater app.

Modules: ``engine`` (opening a database, :meth:`Database.run` = one retried transaction), ``models``
(schema and the ``StrEnum`` vocabularies), ``errors`` (:class:`~db.errors.MosError` and subclasses),
``views`` (dataclasses handed to the apps), ``queries`` (shared reads), ``assignment`` (balanced trial
lists, pure), ``studies``, ``raters``, ``ratings`` (the hot path), the admin side ``status``, ``qc``,
``export`` and ``frames``, and ``service``: the public API of all of them in one namespace.

Typical use::

    from db import open_database, service
    db = open_database("sqlite:///mos/mos.db")
    token = service.start_rater(db, "srgan-set14")
    trial = service.next_trial(db, token)
    service.submit_rating(db, token, trial.trial_id, score=4)
"""

from db.engine import Database, open_database

__all__ = ["Database", "open_database"]
