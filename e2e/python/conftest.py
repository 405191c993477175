"""Fixtures: one stack (Forgejo double + broker) for the whole session, and a second one,
started only if a test asks for it, whose broker fetches client metadata documents from
plain-http loopback URLs (its test-only switch)."""

from __future__ import annotations

import pytest

from harness import Stack


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def running(stack: Stack):
    yield stack
    codes = stack.stop()
    # SIGTERM is the documented way to stop both; anything but a clean exit is a bug.
    assert codes == {"fjmcp-broker": 0, "forgejo-double": 0}, f"unclean shutdown {codes}\n{stack.log_tails()}"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory):
    yield from running(Stack.start(tmp_path_factory.mktemp("stack")))


@pytest.fixture(scope="session")
def loopback_cimd_stack(tmp_path_factory: pytest.TempPathFactory):
    env = {"FJMCP_CLIENT_METADATA_ALLOW_LOOPBACK_HTTP": "true"}
    yield from running(Stack.start(tmp_path_factory.mktemp("cimd-stack"), broker_env=env))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        if isinstance(value, Stack):
            report.sections.append((f"{name} logs (tails)", value.log_tails()))
