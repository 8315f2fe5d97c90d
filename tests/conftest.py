"""Suite-wide pytest configuration."""
from __future__ import annotations

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # "No tests ran" must be a failure, never a quiet exit 5 that a runner could read as success.
    if session.testscollected == 0 and exitstatus in (0, 5):
        session.exitstatus = 1
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("edgegen: no tests were collected; that is a failure", red=True)
