"""MOS study storage: SQLAlchemy models, Alembic migrations, and the data layer of the rater app.

Typical use::

    from db import open_database, service
    db = open_database("sqlite:///mos/mos.db")
    token = service.start_rater(db, "srgan-set14")
    trial = service.next_trial(db, token)
    service.submit_rating(db, token, trial.trial_id, score=4)
"""

from db.engine import Database, open_database

__all__ = ["Database", "open_database"]
