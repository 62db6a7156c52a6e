"""mailbot's private mail stack for tests: Dovecot (IMAP, IMAPS, LMTP) and an SMTP server.

``mailstack.sh`` runs it, ``smtpd.py`` is its SMTP server, ``stack.MailStack`` is the
Python API that the pytest fixtures in ``tests/conftest.py`` hand to tests.
"""

from .stack import MailStack, MailStackError

__all__ = ["MailStack", "MailStackError"]
