"""Persistence of sweeps: a manifest that identifies a sweep by content, and atomic, resumable chunk files.

A sweep with ``out_dir`` writes ``manifest.json`` and one ``chunk_#####.npz`` per finished chunk (in a multi-process
sweep, ``chunk_#####.proc{i}of{n}.npz``: the rows process i computed). A re-run with the same sweep loads the
finished chunks and computes the others. The manifest holds, field by field, what determines the numbers:

- ``problem.*``: the problem's class and every attribute set by its constructor (weight decay and its
  perturbation flag, mask, seeds, sizes, …); arrays (the data, test data, mask) as SHA-256 digests of their dtype,
  shape and bytes;
- ``method``, ``constructor``, ``options`` (the optimizer's static options), ``method_kwargs``, ``grid``;
- ``settings.*``: steps, batch size, logging, sampling, dtype, start point digest, …; ``version``: the package's.

A folder whose manifest differs raises a `ValueError` naming the differing fields. A chunk that cannot be read
(truncated, not a zip, missing arrays) is named in a warning, moved aside to ``<name>.corrupt`` and recomputed.
Temporary files (``*.tmp``) left by a killed run of this process are removed at start.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_PROBLEM_ATTRS = ("weight_decay", "perturb_weight_decay", "mask", "is_classification", "name")


def digest(value):
    """A JSON-able, content-determined description of ``value``: arrays by SHA-256 of dtype, shape and bytes,
    containers element by element, scalars and strings as themselves, other objects by type and repr.

    Example:
      >>> digest({"b": 1, "a": [0.5, None, "x"]})
      {'a': ['0.5', None, 'x'], 'b': '1'}
      >>> d = digest(np.zeros(2))
      >>> d[:7], len(d), d == digest(np.zeros(2)), d == digest(np.zeros(3)), d == digest(np.zeros(2, np.float32))
      ('sha256:', 71, True, False, False)
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
        return repr(value.item() if isinstance(value, np.generic) else value)
    if isinstance(value, dict):
        return {str(k): digest(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [digest(v) for v in value]
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        arr = np.ascontiguousarray(np.asarray(value))
        h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
        return f"sha256:{h.hexdigest()}"
    if callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', type(value).__name__)}"
    return _ADDRESS.sub("", f"{type(value).__qualname__}:{value!r}")


def problem_fingerprint(problem) -> dict:
    """The class of ``problem`` and every attribute of its instance (constructor arguments, data arrays), digested.

    Example (two problems that differ only in their targets differ in the fields that hold y):
      >>> from sam_theory.problems import LinearRegression
      >>> a = problem_fingerprint(LinearRegression(np.eye(2), np.array([1.0, -1.0])))
      >>> b = problem_fingerprint(LinearRegression(np.eye(2), np.array([1.0, 1.0])))
      >>> a["class"], differing_fields(a, b)
      ('sam_theory.problems.linear_regression.LinearRegression', ['data', 'y'])
    """
    attrs = {k: v for k, v in vars(problem).items() if not k.startswith("_")}
    for k in _PROBLEM_ATTRS:
        attrs.setdefault(k, getattr(problem, k, None))
    return {"class": f"{type(problem).__module__}.{type(problem).__qualname__}", **digest(attrs)}


def _flatten(tree, prefix="") -> dict:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def differing_fields(old: dict, new: dict) -> list[str]:
    """Dotted names of the manifest fields that differ between ``old`` and ``new`` (missing on one side included).

    Example:
      >>> differing_fields({"settings": {"steps": 10, "lr": 1}, "v": 1}, {"settings": {"steps": 20, "lr": 1}, "w": 1})
      ['settings.steps', 'v', 'w']
    """
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))


def write_atomic(path: Path, write):
    """Call ``write(fh)`` on a temporary file next to ``path`` (``<name>.<pid>.tmp``), then `os.replace` it."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_chunk(path: Path, arrays: dict):
    """Write ``arrays`` to ``path`` atomically (a temporary file in the same folder, then `os.replace`).

    Example:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as d:
      ...     write_chunk(Path(d) / "c.npz", {"x": np.arange(3)})
      ...     names = sorted(p.name for p in Path(d).iterdir())
      ...     x = np.load(Path(d) / "c.npz")["x"].tolist()
      >>> names, x
      (['c.npz'], [0, 1, 2])
    """
    write_atomic(path, lambda fh: np.savez(fh, **arrays))


class SweepStore:
    """The chunk files and manifest of one sweep in ``out_dir`` (see the module docstring).

    ``process_index``/``process_count``: in a multi-process sweep every process writes and reads its own chunk
    files (its rows of each chunk) and removes only its own stale temporary files.

    Example (a chunk saved, loaded back, a missing one is None, and another sweep is refused in the same folder):
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as d:
      ...     store = SweepStore(d, {"grid": {"lr": [0.1, 0.2]}})
      ...     store.save(0, {"losses": np.ones(2)})
      ...     got = store.load(0, ["losses"])["losses"].tolist(), store.load(1, ["losses"])
      ...     try:
      ...         SweepStore(d, {"grid": {"lr": [0.1, 0.3]}})
      ...     except ValueError as err:
      ...         refused = "differs in grid.lr" in str(err)
      >>> got, refused
      (([1.0, 1.0], None), True)
    """

    def __init__(self, out_dir, manifest: dict, *, process_index: int = 0, process_count: int = 1):
        self.dir = Path(out_dir)
        if self.dir.exists() and not self.dir.is_dir():
            raise ValueError(f"out_dir={str(self.dir)!r} is a file, not a folder")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process_index, self.process_count = process_index, process_count
        self.manifest = json.loads(json.dumps(manifest))
        for stale in self.dir.glob(f"*{self._suffix}.npz.*.tmp" if process_count > 1 else "*.tmp"):
            stale.unlink(missing_ok=True)
        path = self.dir / MANIFEST
        if path.exists():
            try:
                old = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                raise ValueError(f"out_dir={str(self.dir)!r}: {MANIFEST} cannot be read ({err}); use a new out_dir")
            diff = differing_fields(old, self.manifest)
            if diff:
                raise ValueError(f"out_dir={str(self.dir)!r} holds chunks of a different sweep: {MANIFEST} differs "
                                 f"in {', '.join(diff)}; use a new out_dir")
        else:
            write_atomic(path, lambda fh: fh.write(json.dumps(self.manifest, indent=1).encode()))

    @property
    def _suffix(self) -> str:
        return "" if self.process_count == 1 else f".proc{self.process_index}of{self.process_count}"

    def path(self, chunk: int) -> Path:
        """This process's file of ``chunk``: ``chunk_#####.npz`` (``.proc{i}of{n}`` before ``.npz`` if multi-process)."""
        return self.dir / f"chunk_{chunk:05d}{self._suffix}.npz"

    def load(self, chunk: int, keys) -> dict | None:
        """The arrays of a finished chunk, or None if it is missing or corrupt (then moved aside, with a warning)."""
        path = self.path(chunk)
        if not path.exists():
            return None
        try:
            with np.load(path) as f:
                arrays = {k: f[k] for k in f.files}
            missing = set(keys) - set(arrays)
            if missing:
                raise ValueError(f"arrays {sorted(missing)} missing")
            return arrays
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            warnings.warn(f"sweep chunk {str(path)!r} is corrupt ({type(err).__name__}: {err}); moved to "
                          f"{aside.name!r} and recomputed", RuntimeWarning, stacklevel=3)
            return None

    def save(self, chunk: int, arrays: dict):
        """Write the arrays of ``chunk`` atomically (`write_chunk`)."""
        write_chunk(self.path(chunk), arrays)


__all__ = ["SweepStore", "digest", "problem_fingerprint", "differing_fields", "write_chunk", "MANIFEST"]
