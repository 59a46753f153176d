"""The errors a user fixes: each message says what to fix, in one line.

One base class, so that the command line reports all of them alike without importing the modules
that raise them (they load NumPy, SciPy or Kafka clients).
"""


class UsageError(Exception):
    """Input, configuration or environment that cannot be used; the message says what to fix."""
