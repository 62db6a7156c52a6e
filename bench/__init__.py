"""mailbot's benchmark: a generated mailbox in the private Dovecot, measured in one run.

``python -m bench.run --help`` (or ``make bench``); see bench/README.md.
"""
