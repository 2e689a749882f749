"""Asset checks for assets stored by ``S3RepoIOManager``: is the latest output still there?

The check reads the digest, format and size from the asset's latest materialization
and asks the core (``s3repo_core.values.check_value``) whether the object, and a
tree's files, are stored with those sizes; with ``verify`` every byte is read back and
re-hashed. A check that fails names each problem; a blocking check stops the assets
downstream of it in the same run.

.. code-block:: python

    checks = stored_output_checks([model, table], verify=True, blocking=True)
    defs = build_definitions(repository, io_manager=io_manager, assets=[model, table],
                             asset_checks=checks)
"""

# No "from __future__ import annotations": Dagster reads the checks' annotations at run time.
from collections.abc import Sequence
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    asset_check,
)

from s3repo_core import NotExistError
from s3repo_core.values import check_value

from .errors import repository_step
from .io_manager import latest_stored_output
from .resources import S3RepoResource

__all__ = ["stored_output_checks"]


def stored_output_checks(
    assets: Sequence[Any],
    *,
    verify: bool = False,
    blocking: bool = False,
    name: str = "stored_in_s3repo",
) -> list[AssetChecksDefinition]:
    """One check per asset key of ``assets`` (asset definitions, specs or keys): its
    latest materialization's object exists with its size (and, with ``verify``, its
    bytes hash to its digest). The checks need the ``repository`` resource."""
    keys: list[AssetKey] = []
    for item in assets:
        if hasattr(item, "keys"):  # an AssetsDefinition: every asset it makes
            keys.extend(item.keys)
        elif hasattr(item, "key"):  # an AssetSpec
            keys.append(item.key)
        else:
            keys.append(AssetKey.from_coercible(item))
    return [_check_for(key, verify=verify, blocking=blocking, name=name) for key in keys]


def _check_for(key: AssetKey, *, verify: bool, blocking: bool, name: str) -> AssetChecksDefinition:
    how = "re-hashed" if verify else "its size checked"

    @asset_check(
        asset=key,
        name=name,
        blocking=blocking,
        description=f"The latest materialization's object is in the repository, {how}.",
    )
    def stored(context: AssetCheckExecutionContext, repository: S3RepoResource) -> AssetCheckResult:
        try:
            output = latest_stored_output(context.instance, key, any_partition=True)
        except NotExistError as error:
            return AssetCheckResult(
                passed=False,
                severity=AssetCheckSeverity.ERROR,
                description=str(error),
            )
        with repository_step(f"checking {key.to_user_string()}"):
            problems = check_value(
                repository.repository(),
                output.digest,
                output.format,
                size=output.size,
                verify=verify,
            )
        return AssetCheckResult(
            passed=not problems,
            severity=AssetCheckSeverity.ERROR,
            description="; ".join(problems[:10]) if problems else f"stored and {how}",
            metadata={
                "digest": str(output.digest),
                "verified": verify,
                "problems": len(problems),
                "from_run": output.run_id or "",
            },
        )

    return stored
