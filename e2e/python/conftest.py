"""Fixtures: one stack (Forgejo double + broker) for the whole session."""

from __future__ import annotations

import pytest

from harness import Stack


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory):
    stack = Stack.start(tmp_path_factory.mktemp("stack"))
    yield stack
    codes = stack.stop()
    # SIGTERM is the documented way to stop both; anything but a clean exit is a bug.
    assert codes == {"fjmcp-broker": 0, "forgejo-double": 0}, f"unclean shutdown {codes}\n{stack.log_tails()}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(stack, Stack):
        report.sections.append(("stack logs (tails)", stack.log_tails()))
