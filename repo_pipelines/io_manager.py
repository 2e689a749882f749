"""``S3RepoIOManager``: asset and op outputs stored in s3repo by their digest.

A thin shell over ``s3repo_core.values``: ``store_value`` chooses the encoding (bytes,
file, tree, parquet, pickle) and stores through the repository, which chooses every
key; ``load_value`` reads back, verified. What this module adds is Dagster's side:

- the output's metadata (``digest``, ``size``, ``url``, ``format``, ``stored_before``)
  and its data version, which is the digest, so that staleness follows content;
- with ``manifests`` set, a record manifest per output naming every object it needs
  (``s3repo_core.records``), labelled with its asset, partition, run and output, at
  :func:`record_location`: what keeps the output live until retention retires it;
- which object an input is: the one the upstream step stored in the run that
  produced it (found in that run's HANDLED_OUTPUT events), or, for an asset that is
  not produced in the run, its latest materialization for the partition (found in
  the instance's event log). Nothing but the event log says where an output is, so
  an output is never looked up under a key derived from its name.
"""

# No "from __future__ import annotations": Dagster reads field annotations at run time.
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args, get_origin
from urllib.parse import quote

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    ConfigurableIOManager,
    DagsterEventType,
    DagsterInstance,
    DagsterInvariantViolationError,
    DataVersion,
    Failure,
    InputContext,
    OutputContext,
)
from pydantic import Field, ValidationInfo, field_validator

from s3repo_core import (
    Digest,
    InvalidArgumentError,
    NotExistError,
    Repository,
    RepositoryError,
    RetentionPolicy,
    write_record_manifest,
)
from s3repo_core.manifest import check_manifest_location
from s3repo_core.retention import (
    ASSET,
    OUTPUT,
    PARTITION,
    RUN_ID,
    policy_from_metadata,
    policy_labels,
)
from s3repo_core.values import PickleRefusedError, StoredValue, ValueFormat, load_value, store_value

from .assets import stored_observation
from .errors import repository_step
from .resources import S3RepoResource

__all__ = [
    "S3RepoIOManager",
    "StoredOutput",
    "latest_stored_output",
    "load_asset_value",
    "output_metadata",
    "record_location",
]

#: The metadata key that holds an output's digest; with "format" and "name", what an
#: input needs to load it.
DIGEST_KEY = "digest"


class S3RepoIOManager(ConfigurableIOManager):
    """Stores each output in the repository by the SHA-256 of its bytes.

    Equal outputs are stored once: re-materialising an unchanged asset uploads
    nothing, and the output's data version is its digest. Values: ``bytes``; a
    ``pathlib.Path`` to a file (streamed) or a directory (its files and a tree object);
    a ``pyarrow.Table``, ``pandas.DataFrame`` or ``polars.DataFrame`` (Parquet, fixed
    writer settings); anything else pickled, unless ``allow_pickle`` is off. An input loads as its
    annotation asks: ``Path`` (a local copy), ``bytes``, a table type, or, with no
    annotation, as what was stored.

    .. code-block:: python

        from dagster import Definitions, EnvVar, asset
        from repo_pipelines import S3RepoIOManager, S3RepoResource

        @asset
        def model() -> bytes:
            return b"weights"

        repository = S3RepoResource(bucket=EnvVar("S3REPO_BUCKET"), prefix="artifacts")
        defs = Definitions(
            assets=[model],
            resources={"io_manager": S3RepoIOManager(repository=repository)},
        )
    """

    repository: S3RepoResource = Field(description="The repository outputs are stored in.")
    allow_pickle: bool = Field(
        default=True,
        description="Pickle values of other types (protocol 5) and unpickle them on load. "
        "Off: such an output fails with PickleRefusedError, and so does loading a pickle.",
    )
    work_dir: str | None = Field(
        default=None,
        description="Where inputs loaded as a Path are written: a new directory under it "
        "per input, left for the step to remove. Unset: the system's temporary directory.",
    )
    manifests: str | None = Field(
        default=None,
        description="Where each output's record manifest goes: a local directory or "
        "s3://bucket/prefix/, laid out by asset and partition. collect_job, with this IO "
        "manager as its own, retires the records the policy no longer keeps and reads the "
        "rest. Unset: no records, and nothing keeps outputs live but the manifests you write.",
    )
    compacted: str | None = Field(
        default=None,
        description="Where collect_job keeps a compacted copy of the records: a local "
        "directory or s3://bucket/prefix/ outside manifests. Set it when records are "
        "many: each collection, after retention, copies the kept records into one sorted "
        "snapshot there and reads it, plus the records written within the grace before "
        "that, instead of every record in every shard step. Unset: records are read as "
        "they are.",
    )
    keep_last: int = Field(
        default=3,
        description="Materializations kept per asset and partition (at least 1: the "
        "latest is always kept); an asset's metadata 's3repo/keep_last' overrides it.",
    )
    keep_within_days: float = Field(
        default=7.0,
        description="Outputs younger than this are kept too, whatever keep_last says; op "
        "outputs only by this. An asset's metadata 's3repo/keep_within_days' overrides it.",
    )

    @field_validator("keep_last")
    @classmethod
    def _at_least_one(cls, keep_last: int) -> int:
        if keep_last < 1:
            raise ValueError("keep_last is at least 1: the latest materialization is kept")
        return keep_last

    @field_validator("keep_within_days")
    @classmethod
    def _not_negative(cls, days: float) -> float:
        if days < 0:
            raise ValueError("keep_within_days is 0 or more")
        return days

    @field_validator("manifests")
    @classmethod
    def _a_folder(cls, manifests: str | None) -> str | None:
        if manifests is not None:
            try:
                check_manifest_location(manifests)
            except RepositoryError as error:
                raise ValueError(str(error)) from None
        return manifests

    @field_validator("compacted")
    @classmethod
    def _a_folder_of_its_own(cls, compacted: str | None, info: ValidationInfo) -> str | None:
        if compacted is None:
            return None
        if not compacted.endswith("/"):
            raise ValueError("compacted is a folder: end it with '/'")
        try:
            check_manifest_location(compacted)
        except RepositoryError as error:
            raise ValueError(str(error)) from None
        manifests = info.data.get("manifests")
        if manifests is None:
            raise ValueError("compacted is a copy of the records: set manifests too")
        folder = manifests if manifests.endswith("/") else manifests + "/"
        if compacted.startswith(folder) or folder.startswith(compacted):
            raise ValueError(
                f"compacted ({compacted}) and manifests ({manifests}) may not hold one "
                "another: the copy is not a record"
            )
        return compacted

    def retention_policy(self) -> RetentionPolicy:
        """The policy of assets that set none in their metadata, and of op outputs."""
        return RetentionPolicy(self.keep_last, timedelta(days=self.keep_within_days))

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        what = f"storing output {_output_name(context)}"
        if obj is None and not self.allow_pickle:
            raise _refused(
                what,
                "the output is None, which only pickle could store: annotate the "
                "function's return as None (-> None) so that Dagster stores nothing",
            )
        started = time.monotonic()  # before the first store: what the record counts from
        with repository_step(what):
            repo = self.repository.repository()
            try:
                stored = store_value(repo, obj, allow_pickle=self.allow_pickle)
            except PickleRefusedError as error:
                raise _refused(what, str(error)) from None
        metadata = output_metadata(stored, repo.url, context.mapping_key)
        if self.manifests is not None:
            with repository_step(f"recording output {_output_name(context)}"):
                metadata["record"] = self._record(context, repo, stored, started)
        context.add_output_metadata(metadata)
        context.log_event(
            stored_observation(repo.url, stored.objects, stored.written, _output_name(context))
        )
        if context.has_asset_key:
            _set_data_version(context, stored.digest)
        context.log.debug(
            f"{stored.format.value} {stored.digest} ({stored.file.size} bytes) "
            f"{'was already' if stored.stored_before else 'is now'} in {repo.short_string()}"
        )

    def _record(
        self, context: OutputContext, repo: Repository, stored: StoredValue, started: float
    ) -> str:
        """Write the output's record manifest; where it is."""
        assert self.manifests is not None
        labels = _record_labels(context)
        # The policy travels in the record, so that retention needs no definitions.
        metadata = context.definition_metadata if context.has_asset_key else {}
        labels.update(policy_labels(policy_from_metadata(metadata or {}, self.retention_policy())))
        dest = record_location(self.manifests, labels, datetime.now(UTC))
        if not dest.startswith("s3://"):
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
        info = write_record_manifest(
            repo,  # type: ignore[arg-type]  # every s3repo repository has grace and keep
            dest,
            stored.objects,
            started=started,
            source=labels.get(ASSET) or f"{labels.get('step')}.{labels[OUTPUT]}",
            created_by=f"dagster run {labels[RUN_ID]}",
            labels=labels,
            client=self.repository.client() if dest.startswith("s3://") else None,
            on_late=lambda why: context.log.warning(f"record {dest}: {why}"),
        )
        return info.location

    def load_input(self, context: InputContext) -> Any:
        wanted = _typing_type(context)
        with repository_step(f"loading input {_input_name(context)}"):
            located = _stored_outputs_for(context)
            repo = self.repository.repository()
            for partition, stored in located.items():
                shown = "" if partition is None else f" partition {partition!r}"
                context.log.debug(
                    f"input {_input_name(context)}{shown}: {stored.format.value} "
                    f"{stored.digest}, stored by run {stored.run_id}"
                )
            if len(located) == 1 and not _wants_mapping(wanted, located):
                (stored,) = located.values()
                if not context.has_asset_key:
                    # For an asset input Dagster would log this as an observation of the
                    # upstream asset, at every load: the debug line above says it instead.
                    context.add_input_metadata(stored.metadata())
                return self._load(repo, stored, wanted)
            element = _mapping_element(wanted)
            return {key: self._load(repo, stored, element) for key, stored in located.items()}

    def _load(self, repo: Repository, stored: "StoredOutput", wanted: object) -> object:
        return load_value(
            repo,
            stored.digest,
            stored.format,
            as_type=wanted,
            allow_pickle=self.allow_pickle,
            work_dir=self.work_dir,
            name=stored.name,
        )


# -- record manifests ------------------------------------------------------------------

#: The partition segment of an unpartitioned asset's records.
UNPARTITIONED = "_"


def _record_labels(context: OutputContext) -> dict[str, str]:
    """What a record says it is of: retention groups and orders records by these."""
    labels = {RUN_ID: context.run_id, OUTPUT: context.name}
    if context.has_asset_key:
        labels[ASSET] = context.asset_key.to_user_string()
        if context.has_asset_partitions:
            keys = context.asset_partition_keys
            if len(keys) != 1:
                raise InvalidArgumentError(
                    f"output {_output_name(context)} covers {len(keys)} partitions; a "
                    "record is of one (materialise one partition per run)"
                )
            labels[PARTITION] = keys[0]
    else:
        labels["step"] = context.step_key
        if context.mapping_key is not None:
            labels["mapping_key"] = context.mapping_key
    return labels


def record_location(manifests: str, labels: Mapping[str, str], now: datetime) -> str:
    """Where a record goes under ``manifests``: an asset's under
    ``assets/<asset path>/<partition or _>/``, an op output's under ``runs/<run id>/``,
    named so that names sort by time. Segments are percent-encoded."""
    folder = manifests if manifests.endswith("/") else manifests + "/"
    stamp = f"{now:%Y%m%dT%H%M%S.%fZ}"
    run = labels[RUN_ID]
    if ASSET in labels:
        path = "/".join(quote(part, safe="") for part in labels[ASSET].split("/"))
        partition = quote(labels[PARTITION], safe="") if PARTITION in labels else UNPARTITIONED
        name = f"{stamp}-{run}-{quote(labels[OUTPUT], safe='')}.parquet"
        return f"{folder}assets/{path}/{partition}/{name}"
    step = quote(labels["step"], safe="")
    mapped = f".{quote(labels['mapping_key'], safe='')}" if "mapping_key" in labels else ""
    return f"{folder}runs/{run}/{step}.{quote(labels[OUTPUT], safe='')}{mapped}.parquet"


# -- output metadata and the data version ----------------------------------------------


def output_metadata(
    stored: StoredValue, url: str, mapping_key: str | None = None
) -> dict[str, Any]:
    """What an output's materialization shows, and what an input reads to load it."""
    metadata: dict[str, Any] = {
        DIGEST_KEY: str(stored.digest),
        "size": stored.file.size,
        "url": url,
        "format": stored.format.value,
        "stored_before": stored.stored_before,
    }
    if stored.name is not None:
        metadata["name"] = stored.name
    if stored.tree is not None:
        metadata["files"] = len(stored.tree.entries)
        metadata["files_size"] = stored.tree.size
    if stored.rows is not None:
        metadata["dagster/row_count"] = stored.rows
    if mapping_key is not None:
        # A dynamic output's events do not say which mapping key they are for.
        metadata["mapping_key"] = mapping_key
    return metadata


def _set_data_version(context: OutputContext, digest: Digest) -> None:
    """Make ``digest`` the data version of the output's materialization.

    INTERNAL DAGSTER API. Dagster 1.13 gives an IO manager no public way to set the
    data version; ``StepExecutionContext.set_data_version`` is what Dagster itself
    calls, and the materialization it logs next takes the version from there (tag
    ``dagster/data_version``). Logging an AssetMaterialization instead would double
    the materializations. ``test_io_manager.py::test_the_data_version_is_the_digest``
    fails the day Dagster changes this. Outside a run (a context built with
    ``build_output_context``) there is no materialization to version.
    """
    try:
        step = context.step_context
    except DagsterInvariantViolationError:
        return
    step.set_data_version(context.asset_key, DataVersion(str(digest)))


# -- which object an input is --------------------------------------------------------------


@dataclass(frozen=True)
class StoredOutput:
    """An output stored by the IO manager, as its metadata says: what to load, and from
    which run (None for a materialization reported outside a run)."""

    digest: Digest
    format: ValueFormat
    name: str | None
    run_id: str | None
    #: The object's size, as the output's metadata says (None if it does not).
    size: int | None = None

    @classmethod
    def from_metadata(
        cls, metadata: Mapping[str, Any], run_id: str | None, what: str
    ) -> "StoredOutput":
        values = {key: getattr(value, "value", value) for key, value in metadata.items()}
        if DIGEST_KEY not in values or "format" not in values:
            raise NotExistError(
                f"{what} has no s3repo digest in its metadata: it was not stored by S3RepoIOManager"
            )
        name = values.get("name")
        size = values.get("size")
        return cls(
            Digest.parse(values[DIGEST_KEY]),
            ValueFormat(values["format"]),
            name if isinstance(name, str) else None,
            run_id,
            size if isinstance(size, int) and not isinstance(size, bool) else None,
        )

    def metadata(self) -> dict[str, Any]:
        """What an op input's LOADED_INPUT event shows."""
        shown: dict[str, Any] = {DIGEST_KEY: str(self.digest), "format": self.format.value}
        if self.run_id is not None:
            shown["from_run"] = self.run_id
        return shown


def _producing_step(upstream: OutputContext) -> tuple[str, str, str] | None:
    """The run, step and output said to have produced the upstream output. For an
    asset not produced in this run, Dagster builds a stand-in output context that
    lacks some of them or has a placeholder run, whose events hold no output."""
    try:
        return upstream.run_id, upstream.step_key, upstream.name
    except DagsterInvariantViolationError:
        return None


def _stored_outputs_for(context: InputContext) -> dict[str | None, StoredOutput]:
    """The stored output(s) an input is, by partition (None: not partitioned).

    The output of the step that produced it in its run, if that run stored it; else,
    for an asset, the latest materialization of each partition the input maps to.
    """
    upstream = context.upstream_output
    if upstream is None:
        raise NotExistError(f"input {_input_name(context)} has no upstream output to load")
    partitions: Sequence[str | None] = (
        list(context.asset_partition_keys) if context.has_asset_partitions else [None]
    )
    step = _producing_step(upstream)
    if step is not None and len(partitions) == 1:
        stored = stored_output_in_run(context.instance, *step, upstream.mapping_key)
        if stored is not None:
            return {partitions[0]: stored}
    if not context.has_asset_key:
        raise NotExistError(
            f"input {_input_name(context)}: the upstream output was not stored by "
            f"S3RepoIOManager in its run"
        )
    return {p: latest_stored_output(context.instance, context.asset_key, p) for p in partitions}


def stored_output_in_run(
    instance: DagsterInstance,
    run_id: str,
    step_key: str,
    output_name: str,
    mapping_key: str | None = None,
) -> StoredOutput | None:
    """The output as the IO manager stored it in ``run_id`` (its last attempt), or None
    if that run holds no such output stored by it."""
    found: StoredOutput | None = None
    what = f"output {output_name!r} of step {step_key!r} in run {run_id}"
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.HANDLED_OUTPUT):
        event = entry.dagster_event
        if event is None or event.step_key != step_key:
            continue
        data = event.event_specific_data
        metadata = getattr(data, "metadata", None) or {}
        if getattr(data, "output_name", None) != output_name or DIGEST_KEY not in metadata:
            continue
        if getattr(metadata.get("mapping_key"), "value", None) != mapping_key:
            continue
        found = StoredOutput.from_metadata(metadata, run_id, what)
    return found


def latest_stored_output(
    instance: DagsterInstance,
    asset_key: AssetKey,
    partition: str | None = None,
    *,
    any_partition: bool = False,
) -> StoredOutput:
    """The latest materialization of ``asset_key`` (in ``partition``), as stored.

    NotExistError if it has none, if the latest was not stored by the IO manager, or if
    the asset is partitioned and no partition is given (unless ``any_partition``: then
    the latest of any partition).
    """
    what = f"asset {asset_key.to_user_string()!r}" + (
        f" partition {partition!r}" if partition is not None else ""
    )
    records = instance.fetch_materializations(
        AssetRecordsFilter(
            asset_key=asset_key, asset_partitions=None if partition is None else [partition]
        ),
        limit=1,
    ).records
    if not records:
        raise NotExistError(f"{what} has no materialization")
    materialization = records[0].asset_materialization
    if materialization is None:
        raise NotExistError(f"{what} has no materialization")
    if partition is None and materialization.partition is not None and not any_partition:
        raise NotExistError(f"{what} is partitioned: name the partition to load")
    return StoredOutput.from_metadata(
        materialization.metadata, records[0].run_id or None, f"the latest materialization of {what}"
    )


def load_asset_value(
    instance: DagsterInstance,
    repository: S3RepoResource,
    asset_key: AssetKey | str | Sequence[str],
    partition: str | None = None,
    *,
    as_type: object = None,
    allow_pickle: bool = True,
    work_dir: str | None = None,
) -> object:
    """The value of the latest materialization of an asset (in ``partition``), outside a
    run: in a notebook or a script, with only the instance and the repository.

    ``as_type`` is what an input's annotation would be (``bytes``, ``Path``, a table
    type; None: as stored). NotExistError if the asset has no such materialization.
    """
    stored = latest_stored_output(instance, AssetKey.from_coercible(asset_key), partition)
    resolved = repository.process_config_and_initialize()  # EnvVar fields, resolved
    return load_value(
        resolved.repository(),
        stored.digest,
        stored.format,
        as_type=as_type,
        allow_pickle=allow_pickle,
        work_dir=work_dir,
        name=stored.name,
    )


# -- small helpers -------------------------------------------------------------------------


def _refused(what: str, why: str) -> Failure:
    """The failure of an output only pickle could store, with pickle off."""
    return Failure(
        description=f"{what} failed: {why}",
        metadata={
            "error": PickleRefusedError.__name__,
            "hint": "return bytes, a pathlib.Path, a pyarrow.Table or a pandas or polars "
            "DataFrame, or set allow_pickle (pickles run code when loaded)",
        },
    )


def _output_name(context: OutputContext) -> str:
    if context.has_asset_key:
        return context.asset_key.to_user_string()
    try:
        return f"{context.step_key}.{context.name}"
    except DagsterInvariantViolationError:
        return "(unnamed)"


def _input_name(context: InputContext) -> str:
    if context.has_asset_key:
        return context.asset_key.to_user_string()
    return context.name if context.has_input_name else "(unnamed)"


def _typing_type(context: InputContext) -> object:
    try:
        return context.dagster_type.typing_type
    except DagsterInvariantViolationError:
        return None


def _wants_mapping(wanted: object, located: Mapping[str | None, StoredOutput]) -> bool:
    """A single partition is a value, unless the annotation asks for a mapping."""
    return None not in located and get_origin(wanted) in (dict, Mapping)


def _mapping_element(wanted: object) -> object:
    """The value type of a ``dict[str, X]`` annotation (None: as stored)."""
    if get_origin(wanted) in (dict, Mapping):
        args = get_args(wanted)
        return args[1] if len(args) == 2 else None
    return None
