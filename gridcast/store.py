"""The BentoML model store adapter: training writes here, the service only reads.

Every fitted forecaster is saved with :func:`bentoml.models.create` as the model
``gridcast-{alias}-{region}`` (one version per training run), with labels
(``alias``, ``region``) and metadata (training range, data hash, feature spec,
hyper-parameters, validation metrics, library versions).

Which version is *served* for a (region, alias) is recorded in the store itself: a
tiny model ``gridcast-served`` whose metadata lists the served tags. Each promotion
writes a new version of it, so ``gridcast-served:latest`` is always the current
mapping, it is auditable (older versions are the history), and it travels into a
Bento and its container like any other model — the service can reference it at
class scope and load the tags it names.

Promotion rule: a new model becomes the served one for its (region, alias) only if
its validation MAPE beats the served model's, or nothing is served yet.

Example:
    >>> model_name("lstm", "Region 1")
    'gridcast-lstm-region-1'
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gridcast.errors import ModelNotFoundError, UserInputError

# BentoML's private API, kept on purpose and only here. BentoML 1.4 (checked on 1.4.40)
# has no public way to choose a model store: ``bentoml.models`` (create, get, list,
# delete, import_model, export_model, push, pull) all work on the store BentoML resolved
# once per process, and take another one only through the private ``_model_store``
# keyword, built from ``bentoml._internal`` (``ModelStore``, ``BentoMLContainer``).
# gridcast needs that in one case: a process whose ``BENTOML_HOME`` changed after BentoML
# read it (the tests' isolated stores; :func:`model_store`). Saving, reading and listing
# models otherwise go through ``bentoml.models.create`` / ``get`` only.
if TYPE_CHECKING:
    from bentoml._internal.models.model import ModelStore

    from gridcast.models.base import Forecaster
    from gridcast.settings import Settings

log = logging.getLogger(__name__)

PREFIX = "gridcast"
SERVED_NAME = f"{PREFIX}-served"
#: subdirectory of a model's path holding the forecaster's own files
FORECASTER_DIR = "forecaster"
MODULE = "gridcast.store"
_TAG_MAX = 63


@dataclass(frozen=True)
class SaveResult:
    """What :func:`save_model` did: the new tag and whether it is now served (and why)."""

    tag: str
    promoted: bool
    reason: str


@dataclass(frozen=True)
class StoredModel:
    """A served model: its tag, alias, region and the metadata it was saved with."""

    tag: str
    alias: str
    region: str
    metadata: dict[str, Any]


def sanitize(text: str) -> str:
    """A valid BentoML tag fragment: lower case, ``[a-z0-9._-]``, starting alphanumeric."""
    out = re.sub(r"[^a-z0-9._-]+", "-", text.strip().lower()).strip("-._")
    if not out:
        raise UserInputError(f"cannot build a model name from {text!r}", field="region")
    return out


def model_name(alias: str, region: str) -> str:
    """The store name of a region's model: ``gridcast-{alias}-{region}`` (sanitised)."""
    name = f"{PREFIX}-{sanitize(alias)}-{sanitize(region)}"
    if len(name) > _TAG_MAX:
        raise UserInputError(f"model name {name!r} is longer than {_TAG_MAX} characters", field="region")
    return name


def model_store() -> ModelStore:
    """The BentoML model store this process should use.

    Normally BentoML's own (inside a Bento, the loader points it at the Bento's
    models). BentoML resolves ``BENTOML_HOME`` once per process; when the variable
    has changed since (tests isolate the store with a fixture), a store under the
    new home is used instead so nothing leaks into the user's store.
    """
    from bentoml._internal.configuration.containers import BentoMLContainer

    env_home = os.environ.get("BENTOML_HOME")
    if env_home:
        wanted = Path(os.path.expandvars(env_home)).expanduser().resolve()
        current = Path(BentoMLContainer.bentoml_home.get()).expanduser().resolve()
        if wanted != current:
            return _store_at(str(wanted / "models"))
    return BentoMLContainer.model_store.get()


@lru_cache(maxsize=16)
def _store_at(path: str) -> ModelStore:
    from bentoml._internal.models.model import ModelStore

    Path(path).mkdir(parents=True, exist_ok=True)
    return ModelStore(path)


@contextlib.contextmanager
def _served_lock(store: ModelStore) -> Iterator[None]:
    """Serialise read-modify-write of the served pointer between processes."""
    lock_path = Path(store._path) / f".{SERVED_NAME}.lock"  # the store's folder: no public accessor either
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _served_entries(store: ModelStore) -> list[dict[str, Any]]:
    """The current served mapping (``[{region, alias, tag, mape}]``); empty if none."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        pointer = bentoml.models.get(f"{SERVED_NAME}:latest", _model_store=store)
    except NotFound:
        return []
    return [dict(e) for e in pointer.info.metadata.get("served", [])]


def served_pointer() -> str | None:
    """The tag of the current served pointer (changes with every promotion); None if none yet.

    One metadata read: what a watcher polls before reading every served model's.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return str(bentoml.models.get(f"{SERVED_NAME}:latest", _model_store=model_store()).tag)
    except NotFound:
        return None


def _write_served(store: ModelStore, entries: list[dict[str, Any]], reason: str) -> str:
    import bentoml

    entries = sorted(entries, key=lambda e: (e["region"], e["alias"]))
    with bentoml.models.create(
        SERVED_NAME,
        labels={"app": PREFIX, "kind": "served-pointer"},
        metadata={"served": entries, "reason": reason, "written_at": _now()},
        module=MODULE,
        _model_store=store,
    ) as pointer:
        Path(pointer.path, "served.json").write_text(json.dumps(entries, indent=2))
    return str(pointer.tag)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _clean(obj: Any) -> Any:
    """BentoML metadata takes no ``None``: drop such keys, blank such list items."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [("" if v is None else _clean(v)) for v in obj]
    return obj


def _mape(metadata: dict[str, Any]) -> float:
    value = (metadata.get("validation") or {}).get("mape")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.inf
    return value if math.isfinite(value) else math.inf


def save_model(forecaster: Forecaster, *, region: str, metadata: dict[str, Any]) -> SaveResult:
    """Save a fitted forecaster as a new version and promote it if it validates better.

    Args:
        forecaster: a fitted forecaster (any alias).
        region: the region it was trained for (used in the name and labels).
        metadata: training context; ``metadata["validation"]["mape"]`` (percent) decides
            promotion. ``alias`` and ``region`` are added.

    Returns:
        The new tag, whether it is now the served model, and a one-line reason.
    """
    import bentoml

    store = model_store()
    alias = forecaster.alias
    meta = _clean({**metadata, "alias": alias, "region": region, "saved_at": _now()})
    with bentoml.models.create(
        model_name(alias, region),
        labels={"app": PREFIX, "alias": alias, "region": sanitize(region)},
        metadata=meta,
        module=MODULE,
        _model_store=store,
    ) as bento_model:
        forecaster.save(Path(bento_model.path) / FORECASTER_DIR)
    tag = str(bento_model.tag)
    new_mape = _mape(meta)

    with _served_lock(store):
        entries = _served_entries(store)
        current = next((e for e in entries if e["region"] == region and e["alias"] == alias), None)
        if current is None:
            promoted, reason = True, "nothing served yet for this region and model"
        elif new_mape < float(current.get("mape", math.inf)):
            promoted = True
            reason = f"validation MAPE {new_mape:.3f}% beats served {current['tag']} ({float(current['mape']):.3f}%)"
        else:
            promoted = False
            reason = (
                f"validation MAPE {new_mape:.3f}% does not beat served {current['tag']} "
                f"({float(current.get('mape', math.inf)):.3f}%)"
            )
        if promoted:
            entries = [e for e in entries if e is not current]
            entries.append({"region": region, "alias": alias, "tag": tag, "mape": new_mape})
            _write_served(store, entries, reason=f"promote {tag}: {reason}")
    log.info("saved %s (%s): %s", tag, "promoted" if promoted else "not promoted", reason)
    return SaveResult(tag=tag, promoted=promoted, reason=reason)


def unserve(tags: Sequence[str]) -> None:
    """Drop these tags from the served pointer (the models stay in the store for audit)."""
    store = model_store()
    with _served_lock(store):
        entries = _served_entries(store)
        kept = [e for e in entries if e["tag"] not in set(tags)]
        if len(kept) != len(entries):
            _write_served(store, kept, reason=f"unserve {', '.join(tags)}")


def served_models() -> list[StoredModel]:
    """The served model per (region, alias), read from ``gridcast-served:latest``.

    Entries whose model was deleted from the store are skipped (with a warning).
    """
    import bentoml
    from bentoml.exceptions import NotFound

    store = model_store()
    out = []
    for entry in _served_entries(store):
        try:
            model = bentoml.models.get(entry["tag"], _model_store=store)
        except NotFound:
            log.warning("served model %s is missing from the store; skipped", entry["tag"])
            continue
        out.append(StoredModel(tag=str(model.tag), alias=entry["alias"], region=entry["region"],
                               metadata=dict(model.info.metadata)))
    return out


def served_tags() -> list[str]:
    """Tags a Bento must include to serve: the served pointer and every served model."""
    import bentoml
    from bentoml.exceptions import NotFound

    store = model_store()
    try:
        pointer = bentoml.models.get(f"{SERVED_NAME}:latest", _model_store=store)
    except NotFound:
        return []
    return [str(pointer.tag), *(m.tag for m in served_models())]


def load_forecaster(tag: str) -> Forecaster:
    """Load the forecaster saved under ``tag`` (``name:version`` or ``name:latest``).

    Raises:
        ModelNotFoundError: no such model in the store.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    from gridcast.models.base import Forecaster

    try:
        model = bentoml.models.get(tag, _model_store=model_store())
    except NotFound:
        raise ModelNotFoundError(f"model {tag!r} is not in the model store", field="model") from None
    return Forecaster.load(Path(model.path) / FORECASTER_DIR)
