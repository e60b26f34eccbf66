"""``STUDY_DIR/state.json``: the study's settings and a done marker per finished step.

A step (``train:<id>``, ``score:<method>:<dataset>``, ``mos:<dataset>``...) is marked done only after
its outputs are written (atomically), with what identifies them (the generator's SHA-256, the
per-image score file); a re-run skips marked steps whose outputs are still there and unchanged. The
file itself is replaced atomically, so a kill at any instant leaves the previous or the new state.
"""

from __future__ import annotations

import json
from pathlib import Path

from srkeras.files import sha256_file, write_atomically
from srkeras.study.errors import StudyConfigError

STATE_FILE = "state.json"


sha256_of = sha256_file  # one file-hash helper (the model sidecars use it too)


def write_json(path: Path, data) -> None:
    text = json.dumps(data, indent=2, default=str)
    write_atomically(Path(path), lambda tmp: Path(tmp).write_text(text))


class StudyState:
    """The done markers of one study folder, bound to the settings it was made with."""

    def __init__(self, out: Path, fingerprint: dict):
        self.out = Path(out)
        self.path = self.out / STATE_FILE
        self.out.mkdir(parents=True, exist_ok=True)
        data = self._read()
        old = data.get("settings")
        new = json.loads(json.dumps(fingerprint, default=str))
        # A setting missing from an older state file counts as its default (None).
        diff = sorted(k for k in set(old or {}) | set(new) if old is not None and old.get(k) != new.get(k))
        if diff:
            raise StudyConfigError(
                f"{self.out} holds a study made with other settings ({', '.join(diff)} differ); "
                "give the same arguments to resume it, or another --out for a new study"
            )
        self.data = {"settings": fingerprint, "done": data.get("done", {}), "info": data.get("info", {})}
        self.save()

    def _read(self) -> dict:
        """The recorded state ({} for a new study); a truncated or damaged file is an error naming it."""
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            problem = f"{type(e).__name__}: {e}"
        else:
            if isinstance(data, dict) and isinstance(data.get("done", {}), dict) and isinstance(data.get("info", {}), dict):
                return data
            problem = "not a study state (a JSON object with 'settings', 'done' and 'info')"
        raise StudyConfigError(
            f"{self.path}: cannot read the study state ({problem}); restore it, move it away to redo the "
            "study's steps in this folder, or give another --out"
        )

    def save(self) -> None:
        write_json(self.path, self.data)

    def done(self, key: str) -> dict | None:
        return self.data["done"].get(key)

    def mark(self, key: str, **record) -> None:
        self.data["done"][key] = record
        self.save()

    def forget(self, key: str) -> None:
        if self.data["done"].pop(key, None) is not None:
            self.save()

    def note(self, key: str, value) -> None:
        """Information that is not a step (probe timings, skipped backbones)."""
        self.data["info"][key] = value
        self.save()

    def info(self, key: str, default=None):
        return self.data["info"].get(key, default)


__all__ = ["STATE_FILE", "StudyState", "sha256_of", "write_json"]
