"""Shared pytest fixtures: mailbot's private mail stack (Dovecot + SMTP on 127.0.0.1).

Fixtures:

* ``mail_stack`` (session): one stack for the whole run, started on first use on free
  ports in a new directory under /tmp, stopped by PID file at the end of the session,
  also when tests failed or the run was interrupted (^C, or SIGTERM, which it turns
  into an interrupt while the stack runs).  A machine without Dovecot makes the tests
  that use it fail with the install command; they are never skipped.
* ``stack`` (function): the same stack, with SMTP faults cleared before and after the test
  and Dovecot started again afterwards if the test left it stopped.  Prefer it in tests.
* ``owner`` (function): a fresh mailbox ``owner-<random>@example.test`` for this test only.

Every test that uses the stack gets the ``stack`` marker, so ``pytest -m "not stack"``
runs the rest.  ``MAILSTACK_KEEP=1`` keeps the stack's directory (config, logs, Maildirs)
after the run and prints where it is.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import keyring
import pytest

from mailbot import oauth

from .fakekeyring import MemoryKeyring
from .mailstack import MailStack, MailStackError


@pytest.fixture(scope="session")
def mail_stack(pytestconfig: pytest.Config) -> Iterator[MailStack]:
    """The private mail stack, shared by the whole session."""
    try:
        stack = MailStack.start()
    except MailStackError as exc:
        error = str(exc)
    else:
        error = ""
    if error:  # failed outside the except block, so the report shows no chained traceback
        pytest.fail(f"cannot start the private mail stack: {error}", pytrace=False)
    keep = bool(os.environ.get("MAILSTACK_KEEP"))
    previous = _interrupt_on_sigterm()
    try:
        yield stack
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        stack.stop(remove=not keep)
        reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
        if keep and reporter is not None:
            reporter.write_line(f"mail stack kept in {stack.directory}")


@pytest.fixture
def stack(mail_stack: MailStack) -> Iterator[MailStack]:
    """The session's stack, in normal service before and after this test."""
    mail_stack.clear_smtp_faults()
    yield mail_stack
    mail_stack.clear_smtp_faults()
    if not mail_stack.status()["dovecot"]:
        mail_stack.start_dovecot()


@pytest.fixture
def owner(stack: MailStack) -> str:
    """A new, empty mailbox that only this test uses (password ``stack.password``)."""
    return stack.new_user("owner")


def _interrupt_on_sigterm() -> signal.Handlers | None:
    """Make SIGTERM (a CI timeout, ``kill``) end the run like ^C does, so that pytest still
    tears the session down and the stack is stopped.  Returns the handler to restore, or
    None if someone else handles SIGTERM already (or this is not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        return None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    return signal.SIG_DFL


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the stack with ``stack``."""
    for item in items:
        if "mail_stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """The system keyring, replaced by one in memory for this test (in-process only)."""
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    oauth.reset()
    yield backend
    keyring.set_keyring(previous)
    oauth.reset()
