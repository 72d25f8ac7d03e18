"""The Hub's transient failures (a 5xx, a 429, a timeout, a connection dropped mid-file) retried with exponential
backoff, then one clear error; anything else (a missing repo, a bad token, offline mode) is raised at once.

A push is one commit (`upload_folder`), so a retried push leaves the repo with that commit or none; a download resumes
from the partial file huggingface_hub keeps in its cache, so a retry never starts from a poisoned cache.
"""

import logging
import os
import time
from collections.abc import Callable
from typing import TypeVar

from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

logger = logging.getLogger(__name__)
T = TypeVar("T")

HUB_ATTEMPTS = 4  # one try and three retries: about 14 s of backoff in all at the default base
BACKOFF_SECONDS = float(os.environ.get("VEEGAN_HUB_BACKOFF_SECONDS", "2"))  # doubles after every failure


def is_transient(err: BaseException) -> bool:
    """A failure that the same request may not meet again: the server's, the network's or the clock's."""
    if isinstance(err, OfflineModeIsEnabled):
        return False  # a ConnectionError by class, but offline mode answers the same way every time
    if isinstance(err, LocalEntryNotFoundError):
        # snapshot_download reports a failed request as "not in the cache": transient only when what failed was
        cause = err.__cause__ or err.__context__
        return cause is not None and is_transient(cause)
    if isinstance(err, HfHubHTTPError):
        status = err.response.status_code if err.response is not None else None
        return status is None or status >= 500 or status == 429
    import httpx

    return isinstance(err, (httpx.TransportError, TimeoutError, ConnectionError))


class HubUnavailableError(ValueError):
    """The Hub kept failing after every retry; the message says what was tried and what to do."""


def with_hub_retries(call: Callable[[], T], what: str, attempts: int = HUB_ATTEMPTS) -> T:
    """`call()`, retried on transient failures with backoff BACKOFF_SECONDS * 2^k; `what` names it in messages."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as err:
            if not is_transient(err):
                raise
            if attempt == attempts:
                reason = " ".join(str(err).split())[:200]  # one line: the Hub's messages span several
                raise HubUnavailableError(
                    f"{what} failed {attempts} times ({type(err).__name__}: {reason}); the Hub or the network is "
                    "failing. Nothing was half-written: try again later."
                ) from err
            delay = BACKOFF_SECONDS * 2 ** (attempt - 1)
            logger.warning(
                "%s: %s (try %d of %d); retrying in %.1f s", what, type(err).__name__, attempt, attempts, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")
