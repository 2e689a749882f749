"""Config checks at launch: a run whose config its steps would refuse is never created.

Dagster checks run config against the job's schema when a run is launched, but a
schema cannot say "at least one path" or "a digest". An op's pydantic validators run
only when its step starts, after the run exists and its process has started. The one
place where Dagster runs a job's own code while it resolves run config (the
launchpad's plan preview, a launch, ``dagster job execute``, a schedule's run request)
is a job-level ConfigMapping. ``checked_job`` gives a job one that builds each op's
Config class from its config and applies the job's own rules, then hands the config
on unchanged. A refusal is a ``DagsterInvalidConfigError`` that names the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dagster import (
    Config,
    ConfigMapping,
    DagsterInvalidConfigError,
    GraphDefinition,
    JobDefinition,
    Permissive,
)
from pydantic import ValidationError

from s3repo_core import Digest, InvalidArgumentError

__all__ = ["Rule", "checked_job", "digest_text", "op_config"]

#: A job's own rule: given the run config, what is wrong with it, or None.
Rule = Callable[[Mapping[str, Any]], str | None]


def digest_text(text: str) -> str:
    """``text`` if it is a digest, for a Config's validator: else a ValueError saying why."""
    try:
        Digest.parse(text)
    except InvalidArgumentError as error:
        raise ValueError(str(error)) from None
    return text


def op_config(run_config: Mapping[str, Any], op_name: str) -> Mapping[str, Any]:
    """The ``config`` an op is given in ``run_config`` (empty if none)."""
    ops = run_config.get("ops") or {}
    return (ops.get(op_name) or {}).get("config") or {}


def refusals(
    run_config: Mapping[str, Any], configs: Mapping[str, type[Config]], rules: Sequence[Rule]
) -> list[str]:
    """What each op's Config class and each rule say is wrong, field by field."""
    found: list[str] = []
    for op_name, config_class in configs.items():
        try:
            config_class(**op_config(run_config, op_name))
        except ValidationError as error:
            for detail in error.errors():
                where = ".".join(str(part) for part in ("ops", op_name, "config", *detail["loc"]))
                found.append(f"{where}: {detail['msg'].removeprefix('Value error, ')}")
    found.extend(message for rule in rules if (message := rule(run_config)) is not None)
    return found


def checked_job(
    graph: GraphDefinition,
    *,
    configs: Mapping[str, type[Config]],
    rules: Sequence[Rule] = (),
    **to_job: Any,
) -> JobDefinition:
    """``graph.to_job(**to_job)``, whose run config is checked by ``configs`` (op name to
    its Config class) and ``rules`` whenever Dagster resolves it.

    The mapping's own schema is the job's ``ops`` schema (what the launchpad scaffolds
    and completes); the other sections (resources, execution, loggers) pass through it
    to the job's full schema, which checks them as it would without the mapping.
    """
    unchecked = graph.to_job(**to_job)
    ops_field = unchecked.run_config_schema.config_type.fields["ops"]
    name = unchecked.name

    def check(run_config: dict[str, Any]) -> dict[str, Any]:
        found = refusals(run_config, configs, rules)
        if found:
            raise DagsterInvalidConfigError(
                f"Error in config for job {name}: " + "; ".join(found), [], run_config
            )
        return run_config

    mapping = ConfigMapping(config_fn=check, config_schema=Permissive({"ops": ops_field}))
    return graph.to_job(config=mapping, **to_job)
