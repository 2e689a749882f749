"""The contract suite: the ``Repository`` contract, run against every implementation.

Every test here takes the fixture ``impl`` (a :class:`contract_kit.Impl`: the
repository under test, ``impl.repo``, and what the test must do behind its back) and
runs once per implementation, with the implementation as its id:

- ``moto``: ``S3Repository`` in a fresh bucket on moto's server (its clock moves, so
  ageing is instant);
- ``juicefs``: ``S3Repository`` in a fresh bucket on the JuiceFS S3 gateway (ageing
  waits in real time);
- ``file``: ``FileRepository`` in a fresh directory under ``tmp_path`` (ageing sets
  file times back).

The S3 servers are the session's own (``tests/conftest.py`` starts each once and stops
it at the end), chosen as for the rest of the suite by ``S3REPO_TEST_SERVERS``
(default ``moto,juicefs``). ``file`` needs no server and always runs: that variable
names S3 servers for the whole suite, so it cannot hold ``file``. Each test is also
marked with its implementation's name, so ``-m file`` (or ``-m "not file"``, ``-m
moto``) picks implementations; ``S3REPO_TEST_SERVERS=`` (empty) runs ``file`` alone
and starts no server.

What an implementation lacks is declared in ``Impl.lacks`` (the test skips, with the
reason) and where it is known to break the contract in ``Impl.deviations`` (the test
is a strict xfail); never a copy of a test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType

import pytest
from contract_kit import Impl, Implementations

#: Every implementation the suite knows.
KINDS = ("moto", "juicefs", "file")
_SESSION_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"


def _session_fixtures(config: pytest.Config) -> ModuleType:
    """``tests/conftest.py``, whose servers the whole session shares.

    It is found among the loaded plugins, not imported: every ``conftest.py`` outside
    a package is a module named ``conftest``, and importing it again would start a
    second set of servers that nothing stops or resets.
    """
    for plugin in config.pluginmanager.get_plugins():
        file = getattr(plugin, "__file__", None)
        if file is not None and Path(file).resolve() == _SESSION_CONFTEST:
            return plugin
    raise RuntimeError(f"{_SESSION_CONFTEST} is not loaded")


def implementation_kinds(config: pytest.Config) -> list[str]:
    """The S3 servers of ``S3REPO_TEST_SERVERS``, then ``file``."""
    return [*(s for s in _session_fixtures(config).SERVERS if s in KINDS), "file"]


def pytest_configure(config: pytest.Config) -> None:
    for kind in KINDS:
        config.addinivalue_line("markers", f"{kind}: a contract test of the {kind} implementation")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "impl" in metafunc.fixturenames:
        kinds = implementation_kinds(metafunc.config)
        params = [pytest.param(kind, id=kind, marks=getattr(pytest.mark, kind)) for kind in kinds]
        metafunc.parametrize("impl", params, indirect=True)


@pytest.fixture
def impl(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Impl]:
    """The implementation named by the test's id, on fresh storage (directories outside
    the test's ``tmp_path``, which stays the test's own)."""
    session = _session_fixtures(request.config)
    directory = tmp_path_factory.mktemp("repositories")
    with ExitStack() as cleanup:
        maker = Implementations(
            implementation_kinds(request.config), session._server, directory, cleanup
        )
        yield maker.make(request.param)
