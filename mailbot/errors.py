"""One exception root, split by whose fault it is.

* ``ConfigError``: ours or the owner's to fix (bad config, unreadable database).
  Fatal: retrying cannot help, so the daemon stops with the message.
* ``MailServerError``: the other side's (network, login, TLS, server refusal).
  The daemon retries with backoff; ``mailbot check`` prints the sentence.
* ``InputError``: a message or file we were given is malformed. The item is
  skipped (or the command refused) with the message; nothing is changed.
"""

from __future__ import annotations


class MailbotError(Exception):
    """Root of every error mailbot raises on purpose. ``str()`` is one clear sentence."""


class ConfigError(MailbotError):
    """The configuration or local state is wrong; fix it and start again."""


class StoreError(ConfigError):
    """The database file cannot be read or written; it is left untouched."""


class InputError(MailbotError):
    """A message, mailbox file or CSV we were given cannot be used."""


class MailServerError(MailbotError):
    """The IMAP or SMTP server, or the network to it, failed. Usually retried."""


class AuthError(MailServerError):
    """The server refused the username or password. Not retried quickly."""


class TLSError(MailServerError):
    """The TLS handshake or certificate check failed."""
