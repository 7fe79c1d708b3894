"""Versioned model artifacts: one directory per version, with a `meta.json` checked at load.

Layout under the registry root (``models/artifacts`` by default)::

    <task>/<version>/meta.json      task, kind, labels, metrics, data hashes, file hashes
    <task>/<version>/README.md      the model card
    <task>/<version>/...            the model's own files, written by ``model.save``
    <task>/registry.json            {"promoted": version, "history": [oldest ... newest]}

A version is written into a temporary directory and renamed into place, so a failed write (disk
full, crash) never leaves a half artifact and never touches the promoted version.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import pkgutil
import platform
import shutil
import tempfile
import warnings
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, TypeVar, runtime_checkable

from pydantic import BaseModel, Field, ValidationError

DEFAULT_ROOT = Path(__file__).resolve().parent / "artifacts"
META_FILE = "meta.json"
CARD_FILE = "README.md"
INDEX_FILE = "registry.json"
META_SCHEMA_VERSION = 1
TRACKED_LIBRARIES = ("scikit-learn", "numpy", "torch", "transformers", "onnxruntime")


class ArtifactError(Exception):
    """An artifact is missing, corrupt or incompatible; the message names the problem."""


class PromotionRefused(ArtifactError):
    """A candidate scores below the promoted version on the evaluation suite."""


# A version's metrics may hold its comparison with the version served when it was trained, both
# scored on one machine and paired on the same test rows (written by `sawt train`):
# {"version", "primary": {"metric", "candidate", "served"}, "groups": [{"group", "delta",
# "ci95", "worse"}]}. Dynamic-int8 numerics differ between CPUs, so when it names the version
# being replaced it is the fairer gate than two scores stored on different machines.
VERSUS_SERVED = "versus_served"


def _check_paired(version: str, paired: dict[str, Any]) -> None:
    served = paired["version"]
    primary = paired.get("primary")
    if isinstance(primary, dict) and primary.get("candidate", 0) < primary.get("served", 0):
        raise PromotionRefused(
            f"{version} scores {primary.get('metric')}={primary['candidate']:.4f}, below the "
            f"promoted {served} ({primary['served']:.4f}) scored beside it on one machine; "
            "pass force=True (--force) to override"
        )
    worse = [str(g.get("group")) for g in paired.get("groups", []) if g.get("worse")]
    if worse:
        raise PromotionRefused(
            f"{version} is worse than the promoted {served} on {', '.join(worse)} (95% paired "
            "bootstrap interval below zero); pass force=True (--force) to override"
        )


@runtime_checkable
class SavableModel(Protocol):
    """What the registry needs from a model class."""

    kind: ClassVar[str]
    labels_: list[str]

    def save(self, directory: Path) -> None: ...

    @classmethod
    def load(cls, directory: Path) -> Self: ...


MODEL_KINDS: dict[str, type[SavableModel]] = {}
_M = TypeVar("_M", bound=type)


def _import_model_kinds() -> None:
    """The shipped model classes register themselves when their modules are imported."""
    import models.heads
    import models.language

    for module in pkgutil.iter_modules(models.heads.__path__, "models.heads."):
        importlib.import_module(module.name)


def register_model_kind(cls: _M) -> _M:
    """Class decorator: lets the registry rebuild a model of this `kind` from its directory."""
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"{cls.__name__} needs a class attribute `kind: ClassVar[str]`")
    MODEL_KINDS[kind] = cls
    return cls


class ArtifactMeta(BaseModel):
    """The contents of `meta.json`."""

    schema_version: int = META_SCHEMA_VERSION
    task: str
    version: str
    kind: str
    created_at: datetime
    labels: list[str]
    metrics: dict[str, Any] = Field(default_factory=dict)
    primary_metric: str | None = None
    training_data: list[dict[str, Any]] = Field(default_factory=list)
    library_versions: dict[str, str] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict, description="relative path -> sha256")
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def primary_score(self) -> float | None:
        if self.primary_metric is None:
            return None
        value = self.metrics.get(self.primary_metric)
        return float(value) if isinstance(value, int | float) else None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.fchmod(fd, 0o644)  # mkstemp makes 0600; artifacts are read by other users (containers)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, ensure_ascii=False, indent=2, default=str)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encoder_of(meta: ArtifactMeta) -> tuple[bool, str | None]:
    """(whether the heads read encoder embeddings, the adapter merged into that encoder).

    Heads trained by ``training.fit`` record their ``training_config``, which names
    ``encoder_adapter`` (absent or None: the base encoder); text-only heads record none.
    """
    config = meta.extra.get("training_config")
    if not isinstance(config, dict):
        return False, None
    adapter = config.get("encoder_adapter")
    return True, str(adapter) if adapter else None


class Registry:
    """Reads, writes, promotes and rolls back versioned artifacts under one root directory."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else DEFAULT_ROOT

    # -- reading -------------------------------------------------------------------------
    def tasks(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name[0] not in "._")

    def versions(self, task: str) -> list[ArtifactMeta]:
        task_dir = self.root / task
        if not task_dir.is_dir():
            return []
        metas = []
        for child in task_dir.iterdir():
            if child.is_dir() and not child.name.startswith(".") and (child / META_FILE).exists():
                try:
                    metas.append(self._read_meta(child))
                except ArtifactError as exc:
                    warnings.warn(str(exc), stacklevel=2)
        return sorted(metas, key=lambda m: m.created_at)

    def promoted_version(self, task: str) -> str | None:
        promoted = self._index(task).get("promoted")
        return str(promoted) if promoted else None

    def history(self, task: str) -> list[str]:
        return [str(v) for v in self._index(task).get("history", [])]

    def path(self, task: str, version: str) -> Path:
        return self.root / task / version

    def load_meta(self, task: str, version: str | None = None) -> ArtifactMeta:
        """Validate an artifact (meta schema, file hashes, library versions) and return its meta."""
        version = version or self.promoted_version(task)
        if version is None:
            raise ArtifactError(f"no promoted '{task}' model in {self.root / task}")
        directory = self.path(task, version)
        if not directory.is_dir():
            raise ArtifactError(f"artifact {task}/{version} not found in {self.root}")
        meta = self._read_meta(directory)
        _import_model_kinds()
        if meta.task != task:
            raise ArtifactError(f"{directory}: meta.json says task '{meta.task}', not '{task}'")
        if meta.kind not in MODEL_KINDS:
            known = ", ".join(sorted(MODEL_KINDS)) or "none registered"
            raise ArtifactError(f"{directory}: unknown model kind '{meta.kind}' (known: {known})")
        for relative, expected in meta.files.items():
            file_path = directory / relative
            if not file_path.exists():
                raise ArtifactError(f"{directory}: '{relative}' (listed in meta.json) is missing")
            if sha256_file(file_path) != expected:
                raise ArtifactError(f"{directory}: file '{relative}' is corrupt (sha256 mismatch)")
        self._warn_on_library_drift(meta)
        return meta

    def load(self, task: str, version: str | None = None) -> tuple[Any, ArtifactMeta]:
        meta = self.load_meta(task, version)
        model_cls = MODEL_KINDS[meta.kind]
        try:
            model = model_cls.load(self.path(task, meta.version))
        except Exception as exc:
            raise ArtifactError(
                f"artifact {task}/{meta.version} ({meta.kind}) failed to load: {exc}"
            ) from exc
        return model, meta

    # -- writing -------------------------------------------------------------------------
    def publish(
        self,
        model: SavableModel,
        *,
        task: str,
        metrics: dict[str, Any] | None = None,
        primary_metric: str | None = None,
        training_data: list[dict[str, Any]] | None = None,
        card: str = "",
        version: str | None = None,
        extra: dict[str, Any] | None = None,
        promote: bool = False,
        force: bool = False,
    ) -> ArtifactMeta:
        """Write a new version atomically; optionally promote it (see `promote`)."""
        created = datetime.now(UTC)
        version = version or f"{model.kind}-{created:%Y%m%d-%H%M%S}"
        task_dir = self.root / task
        task_dir.mkdir(parents=True, exist_ok=True)
        final_dir = task_dir / version
        if final_dir.exists():
            raise ArtifactError(f"artifact {task}/{version} already exists")
        staging = Path(tempfile.mkdtemp(dir=task_dir, prefix=f".staging-{version}-"))
        try:
            model.save(staging)
            files = {
                str(p.relative_to(staging)): sha256_file(p)
                for p in sorted(staging.rglob("*"))
                if p.is_file() and p.name not in (META_FILE, CARD_FILE)
            }
            meta = ArtifactMeta(
                task=task,
                version=version,
                kind=model.kind,
                created_at=created,
                labels=list(model.labels_),
                metrics=metrics or {},
                primary_metric=primary_metric,
                training_data=training_data or [],
                library_versions=library_versions(),
                files=files,
                extra=extra or {},
            )
            (staging / CARD_FILE).write_text(card or f"# {task} {version}\n", encoding="utf-8")
            _write_json_atomic(staging / META_FILE, meta.model_dump(mode="json"))
            os.replace(staging, final_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if promote:
            self.promote(task, version, force=force)
        return meta

    def promote(self, task: str, version: str, *, force: bool = False) -> ArtifactMeta:
        """Make `version` the served one; refuse a candidate that scores below the current one."""
        candidate = self.load_meta(task, version)
        current_version = self.promoted_version(task)
        if current_version and current_version != version and not force:
            current = self.load_meta(task, current_version)
            self._check_not_worse(candidate, current)
        if not force:
            self._check_same_encoder(candidate)
        index = self._index(task)
        history = [v for v in index.get("history", []) if v != version]
        history.append(version)
        _write_json_atomic(self.root / task / INDEX_FILE, {"promoted": version, "history": history})
        return candidate

    def rollback(self, task: str) -> str:
        """Re-promote the version promoted before the current one."""
        history = self.history(task)
        if len(history) < 2:
            raise ArtifactError(f"no earlier promoted '{task}' version to roll back to")
        previous = history[-2]
        self.load_meta(task, previous)
        _write_json_atomic(
            self.root / task / INDEX_FILE, {"promoted": previous, "history": history[:-1]}
        )
        return previous

    # -- internals -----------------------------------------------------------------------
    def _index(self, task: str) -> dict[str, Any]:
        path = self.root / task / INDEX_FILE
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{path} is not valid JSON: {exc}") from exc
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _read_meta(directory: Path) -> ArtifactMeta:
        path = directory / META_FILE
        if not path.exists():
            raise ArtifactError(f"{directory}: no {META_FILE}")
        try:
            meta = ArtifactMeta.model_validate_json(path.read_text(encoding="utf-8"))
        except (ValidationError, ValueError) as exc:
            raise ArtifactError(f"{path} is invalid: {exc}") from exc
        if meta.schema_version > META_SCHEMA_VERSION:
            raise ArtifactError(
                f"{path}: schema_version {meta.schema_version} is newer than this code "
                f"understands ({META_SCHEMA_VERSION}); upgrade sawt"
            )
        if meta.version != directory.name:
            raise ArtifactError(f"{path}: version '{meta.version}' != directory '{directory.name}'")
        return meta

    @staticmethod
    def _warn_on_library_drift(meta: ArtifactMeta) -> None:
        current = library_versions()
        for name, trained_with in meta.library_versions.items():
            if name == "python":
                continue
            running = current.get(name)
            if running and running.split(".")[:2] != trained_with.split(".")[:2]:
                warnings.warn(
                    f"{meta.task}/{meta.version} was trained with {name} {trained_with}, "
                    f"running {running}: predictions may differ",
                    stacklevel=3,
                )

    def _check_same_encoder(self, candidate: ArtifactMeta) -> None:
        """One encoder pass feeds every head, so heads fit on different encoders cannot be
        served together: the API would refuse to start. Refused here, before it is served."""
        bound, adapter = encoder_of(candidate)
        if not bound:
            return
        for task in self.tasks():
            version = self.promoted_version(task)
            if task == candidate.task or version is None:
                continue
            other = self.load_meta(task, version)
            other_bound, other_adapter = encoder_of(other)
            if other_bound and other_adapter != adapter:
                raise PromotionRefused(
                    f"{candidate.version} was fit on {adapter or 'the base encoder'} but the "
                    f"promoted {task}/{version} on {other_adapter or 'the base encoder'}; train "
                    "it on the same encoder (`encoder_adapter`) or pass force=True (--force)"
                )

    @staticmethod
    def _check_not_worse(candidate: ArtifactMeta, current: ArtifactMeta) -> None:
        paired = candidate.metrics.get(VERSUS_SERVED)
        if isinstance(paired, dict) and paired.get("version") == current.version:
            _check_paired(candidate.version, paired)
            return
        old = current.primary_score
        if old is None or current.primary_metric is None:
            return
        value = candidate.metrics.get(current.primary_metric)
        new = float(value) if isinstance(value, int | float) else None
        if new is None:
            raise PromotionRefused(
                f"{candidate.version} has no '{current.primary_metric}' score to compare with "
                f"{current.version} ({old:.4f}); evaluate it first or pass force=True"
            )
        if new < old:
            raise PromotionRefused(
                f"{candidate.version} scores {current.primary_metric}={new:.4f}, below "
                f"the promoted {current.version} ({old:.4f}); pass force=True (--force) to override"
            )
