"""The Dagster code location over s3repo_core: resources, ops, jobs and schedules.

A placeholder until the Dagster issue lands: the definitions are empty, but the
workspace loads, so ``dagster dev -w workspace.yaml`` already starts.
"""

from dagster import Definitions

defs = Definitions()
