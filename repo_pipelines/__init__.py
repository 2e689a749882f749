"""The Dagster code location over s3repo_core: resources, ops, jobs and a schedule.

``workspace.yaml`` loads ``defs``. The repository is configured by ``S3REPO_*``
environment variables (see :meth:`S3RepoResource.from_env` and the README).
"""

from .checks import stored_output_checks
from .definitions import build_definitions
from .io_manager import S3RepoIOManager, load_asset_value
from .resources import S3RepoResource

__all__ = [
    "S3RepoIOManager",
    "S3RepoResource",
    "build_definitions",
    "defs",
    "load_asset_value",
    "stored_output_checks",
]

defs = build_definitions(S3RepoResource.from_env())
