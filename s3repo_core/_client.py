"""Which S3 client talks to which bucket, and how long it waits and retries.

Code that has a client passes it: a repository takes ``client=``, and so does every
manifest function. For code that does not, as in the seed, a process sets one default
client (or one per bucket) with :func:`set_client`, and :func:`client_for` finds it;
with none set, the default is built once from boto3's standard configuration: the
credential chain, ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``,
``AWS_REGION``/``AWS_DEFAULT_REGION`` and the shared config files. So the same code runs
against AWS and any S3-compatible store.

One cache holds the clients s3repo builds to share: :func:`shared_client`, one per
distinct setting, built on first use (boto3 clients are thread-safe; sessions are not,
so a client is built under a lock and then shared). The default client is its entry for
no settings; the Dagster resource takes its clients from it too. What
:func:`set_client` sets is not cached: it is the caller's choice, kept until changed.

Timeouts and retries: one set of defaults, shared by the default client, the ``s3repo``
command and the Dagster resource. Each setting comes from, in this order:

1. an explicit argument (a CLI flag, a resource field, an argument of :func:`make_client`);
2. boto3's standard configuration, for the retries: ``AWS_MAX_ATTEMPTS`` and
   ``AWS_RETRY_MODE``, or ``max_attempts`` and ``retry_mode`` in the profile's section
   of ``~/.aws/config`` (botocore has no standard setting for timeouts);
3. s3repo's defaults, which replace botocore's (60 s timeouts, which leave a dead
   endpoint silent for minutes): :data:`DEFAULT_MAX_ATTEMPTS` attempts in
   :data:`DEFAULT_RETRY_MODE` mode, :data:`DEFAULT_CONNECT_TIMEOUT` to connect and
   :data:`DEFAULT_READ_TIMEOUT` to wait for each read.

With the defaults, an ordinary request to an endpoint that accepts the connection and
never answers fails after 3 * 15 s = 45 s (plus at most 0.15 s of backoff); to one that
drops connection attempts, after 3 * 5 s = 15 s; the worst case of all, a connection
that takes just under 5 s and then a response that never comes, each time, is
:func:`worst_case_seconds` = 3 * (5 + 15) s + 3 s of backoff = 63 s (a server's
``x-amz-retry-after`` may add up to 5 s per retry). Server-side operations that take as
long as the object is large (CopyObject, UploadPartCopy, CompleteMultipartUpload) go
through :func:`long_client`, which waits :data:`LONG_READ_TIMEOUT` for a response.

Clients are built from a botocore session, not a boto3 one, so that a process that
only stats or reads objects never imports boto3 and s3transfer (a third of ``s3repo
stat``'s start-up). They are the clients boto3 would build, with the same settings,
credentials and region: boto3's managed-transfer methods (``upload_file``,
``download_file``, ``upload_fileobj``, ``download_fileobj``, ``copy``) are there too,
and import boto3 on their first call. Only the User-Agent differs (no ``Boto3/``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import math
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import botocore.session
from botocore.config import Config

from ._errors import InvalidArgumentError
from ._leanput import LeanPut
from ._translate import check_response, translated

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_RETRY_MODE",
    "LONG_READ_TIMEOUT",
    "RETRY_MODES",
    "ClientSettings",
    "check_endpoint_url",
    "client_for",
    "default_config",
    "lean_put",
    "long_client",
    "make_client",
    "prepare_client",
    "resolve_settings",
    "set_client",
    "shared_client",
    "using_client",
    "worst_case_seconds",
]

#: Attempts per request, the first included (botocore's standard mode also makes 3).
DEFAULT_MAX_ATTEMPTS = 3
#: botocore's standard retry mode: exponential backoff with jitter, a retry quota.
DEFAULT_RETRY_MODE = "standard"
#: Seconds to open a connection.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds to wait for each read of a response (not for the whole response).
DEFAULT_READ_TIMEOUT = 15.0
#: Seconds :func:`long_client` waits for the response of a long server-side operation.
LONG_READ_TIMEOUT = 900.0
RETRY_MODES = ("standard", "adaptive", "legacy")
#: Enough pooled connections for the transfer thread pools of a few repositories.
MAX_POOL_CONNECTIONS = 64

_lock = threading.Lock()
#: What set_client set: the default client (None: unset) and one client per bucket.
_default: Any = None
_by_bucket: dict[str, Any] = {}
#: The one client cache: what shared_client built, by a hash of its settings.
_shared: dict[str, Any] = {}
_shared_lock = threading.Lock()
#: The companion of each client make_client built: (builder, the companion once built).
_companions: weakref.WeakKeyDictionary[Any, _Companion] = weakref.WeakKeyDictionary()
#: The direct PutObject of each client make_client built (see ``_leanput``).
_lean: weakref.WeakKeyDictionary[Any, LeanPut] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """How long a client waits and how often it tries: see the module docstring."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_mode: str = DEFAULT_RETRY_MODE
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT

    def __post_init__(self) -> None:
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise InvalidArgumentError(f"max_attempts must be an integer >= 1, got {attempts!r}")
        if self.retry_mode not in RETRY_MODES:
            raise InvalidArgumentError(
                f"retry_mode must be 'standard', 'adaptive' or 'legacy', got {self.retry_mode!r}"
            )
        for name in ("connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise InvalidArgumentError(f"{name} must be a positive number, got {value!r}")

    def config(self, *, read_timeout: float | None = None, **overrides: Any) -> Config:
        """The botocore Config of these settings (``read_timeout`` replaces theirs)."""
        settings: dict[str, Any] = {
            "retries": {"mode": self.retry_mode, "total_max_attempts": self.max_attempts},
            "connect_timeout": self.connect_timeout,
            "read_timeout": read_timeout if read_timeout is not None else self.read_timeout,
            "max_pool_connections": MAX_POOL_CONNECTIONS,
        }
        settings.update(overrides)
        return Config(**settings)


def worst_case_seconds(settings: ClientSettings) -> float:
    """The longest an ordinary request can take to fail, without ``x-amz-retry-after``.

    Every attempt waits its full connect and read timeouts, and every retry waits the
    longest backoff of botocore's standard mode (``min(2 ** i, 20)`` seconds before
    retry ``i + 1``, counted from 0, for throttling; 1/20 of that otherwise).
    """
    backoff = sum(min(2.0**i, 20.0) for i in range(settings.max_attempts - 1))
    per_attempt = settings.connect_timeout + settings.read_timeout
    return settings.max_attempts * per_attempt + backoff


def _standard_setting(session: Any, name: str, variable: str) -> str | None:
    """``name`` from boto3's standard configuration: ``$variable``, else the profile's."""
    value = os.environ.get(variable, "").strip()
    if value:
        return value
    with translated("reading the AWS configuration"):
        found = session.get_scoped_config().get(name)
    return str(found).strip() if found is not None and str(found).strip() else None


def resolve_settings(
    session: Any = None,
    *,
    max_attempts: int | None = None,
    retry_mode: str | None = None,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
) -> ClientSettings:
    """The settings a client gets: each argument, else the standard configuration, else
    s3repo's default (see the module docstring). ``session`` is a botocore session
    (default: a new one, which reads ``$AWS_PROFILE``).

    Raises InvalidArgumentError for an unusable value, naming where it came from.
    """
    session = session if session is not None else botocore.session.Session()
    if max_attempts is None:
        text = _standard_setting(session, "max_attempts", "AWS_MAX_ATTEMPTS")
        if text is not None:
            try:
                max_attempts = int(text)
            except ValueError:
                raise InvalidArgumentError(
                    f"AWS_MAX_ATTEMPTS (or max_attempts in ~/.aws/config) must be an integer "
                    f">= 1, got {text!r}"
                ) from None
    if retry_mode is None:
        retry_mode = _standard_setting(session, "retry_mode", "AWS_RETRY_MODE")
    return ClientSettings(
        max_attempts=max_attempts if max_attempts is not None else DEFAULT_MAX_ATTEMPTS,
        retry_mode=retry_mode if retry_mode is not None else DEFAULT_RETRY_MODE,
        connect_timeout=connect_timeout if connect_timeout is not None else DEFAULT_CONNECT_TIMEOUT,
        read_timeout=read_timeout if read_timeout is not None else DEFAULT_READ_TIMEOUT,
    )


def default_config(**overrides: Any) -> Config:
    """The botocore Config s3repo uses by default (see the module docstring), with
    ``overrides`` (Config's own arguments) on top."""
    return resolve_settings().config(**overrides)


def check_endpoint_url(endpoint_url: str) -> str:
    """``endpoint_url`` if it is an ``http(s)://host[:port][/path]`` URL.

    InvalidArgumentError otherwise (botocore would raise a bare ValueError for
    ``localhost:9000``), without repeating a password the URL might hold.
    """
    if not isinstance(endpoint_url, str):
        raise InvalidArgumentError(
            f"an endpoint URL is a string, got {type(endpoint_url).__name__}"
        )
    try:
        parsed = urlsplit(endpoint_url)
        parsed.port  # noqa: B018 (parses the port: ValueError if it is not a number)
    except ValueError:
        parsed = None
    if parsed is not None and "@" in parsed.netloc:
        raise InvalidArgumentError(
            "invalid S3 endpoint URL: it holds a user name or password; give the "
            "credentials separately"
        )
    if (
        parsed is None
        or parsed.scheme.lower() not in ("http", "https")
        or not parsed.hostname
        or endpoint_url != endpoint_url.strip()
        or any(ord(c) < 33 or ord(c) == 127 for c in endpoint_url)
        or parsed.query
        or parsed.fragment
    ):
        raise InvalidArgumentError(
            f"invalid S3 endpoint URL {endpoint_url!r}: expected http://HOST[:PORT] or "
            "https://HOST[:PORT], e.g. http://127.0.0.1:9000"
        )
    return endpoint_url


class _Companion:
    """The long-timeout client of a client, built on first use."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build: Callable[[], Any] | None = build
        self._client: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._client is None:
                assert self._build is not None
                self._client = self._build()
                self._build = None
            return self._client


def long_client(client: Any) -> Any:
    """The client to send CopyObject, UploadPartCopy and CompleteMultipartUpload through.

    For a client s3repo built (:func:`make_client`, the default client), a companion on
    the same session (so the same credentials), endpoint, region and retries, that
    waits ``max(read_timeout, long_read_timeout)`` (default :data:`LONG_READ_TIMEOUT`)
    for a response, built once on first use. Any other client (one a caller built and
    passed to :func:`set_client` or to a repository) is returned as it is: its owner
    chose its timeouts.
    """
    companion = _companions.get(client)
    return companion.get() if companion is not None else client


def lean_put(client: Any) -> LeanPut | None:
    """How ``client`` sends PutObject without botocore's per-request work, if it is one
    :func:`make_client` built; None for any other (its owner's hooks must see all)."""
    return _lean.get(client)


def make_client(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    max_attempts: int | None = None,
    retry_mode: str | None = None,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
    long_read_timeout: float = LONG_READ_TIMEOUT,
    on_retry: Callable[[str], None] | None = None,
) -> Any:
    """A new S3 client prepared for s3repo, from explicit settings.

    What is left as None comes from boto3's standard configuration, as for the default
    client, and then from s3repo's defaults (see the module docstring). Its companion
    for long server-side operations is :func:`long_client`. ``on_retry`` is called with
    one line (operation, attempt, what failed; never a credential) before each retry.

    Raises InvalidArgumentError for an unusable setting (a retry count below 1, an
    endpoint URL without ``http://`` or ``https://``...).
    """
    if endpoint_url is not None:
        check_endpoint_url(endpoint_url)
    ClientSettings(read_timeout=long_read_timeout)  # checks it
    with translated("building an S3 client"):
        session = botocore.session.Session(profile=profile)
        settings = resolve_settings(
            session,
            max_attempts=max_attempts,
            retry_mode=retry_mode,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        # What boto3.session.Session(...) does with these, without importing boto3.
        if access_key_id or secret_access_key or session_token:
            session.set_credentials(
                access_key_id,  # type: ignore[arg-type]  # None is boto3's too
                secret_access_key,  # type: ignore[arg-type]
                session_token,
            )
        if region is not None:
            session.set_config_variable("region", region)
        session.register(
            "creating-client-class.s3", _add_transfer_methods, unique_id="s3repo-transfers"
        )

    def build(read_timeout: float, retried: int = 0) -> Any:
        """A client of these settings; ``retried``: attempts made already, elsewhere."""
        attempts = settings.max_attempts - retried
        with translated("building an S3 client"):
            try:
                client = session.create_client(
                    "s3",
                    endpoint_url=endpoint_url,
                    config=dataclasses.replace(settings, max_attempts=attempts).config(
                        read_timeout=read_timeout
                    ),
                )
            except ValueError as exc:  # botocore: "Invalid endpoint: ..."
                raise InvalidArgumentError(
                    f"invalid S3 endpoint URL (from AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL "
                    f"or ~/.aws/config): {exc}; expected http://HOST[:PORT] or "
                    "https://HOST[:PORT]"
                ) from None
        prepare_client(client)
        if on_retry is not None:
            _report_retries(client, on_retry, settings.max_attempts, retried)
        return client

    client = build(settings.read_timeout)
    long_timeout = max(settings.read_timeout, long_read_timeout)
    _companions[client] = _Companion(lambda: build(long_timeout))
    retrying = _Companion(lambda: build(settings.read_timeout, retried=1))
    _lean[client] = LeanPut(
        client, session.get_credentials, settings.max_attempts, retrying.get, on_retry
    )
    return client


#: The methods boto3 adds to every S3 client class (``boto3.s3.inject``).
_TRANSFER_METHODS = ("upload_file", "download_file", "upload_fileobj", "download_fileobj", "copy")


def _transfer_method(name: str) -> Callable[..., Any]:
    """boto3's ``name`` client method, imported (with s3transfer) on its first call."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        from boto3.s3 import inject

        return getattr(inject, name)(self, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"boto3's managed transfer ``{name}`` (see ``boto3.s3.inject``)."
    return method


def _add_transfer_methods(**kwargs: Any) -> None:
    """botocore's creating-client-class hook: what boto3's session registers for S3."""
    class_attributes: dict[str, Any] = kwargs["class_attributes"]
    for name in _TRANSFER_METHODS:
        class_attributes[name] = _transfer_method(name)


def _outcome(exception: Any, parsed: Any) -> str:
    """What went wrong with one attempt, in a few words (no headers, no credentials)."""
    if exception is not None:
        return f"{type(exception).__name__}: {exception}"
    if isinstance(parsed, dict):
        error = parsed.get("Error") or {}
        status = parsed.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = error.get("Code")
        return f"HTTP {status}" + (f" {code}" if code else "")
    return "the attempt failed"


def _report_retries(
    client: Any, report: Callable[[str], None], attempts: int, retried: int = 0
) -> None:
    """Call ``report`` with one line before each retry that ``client`` makes, counting
    ``retried`` attempts made before its first (which the maker of those reports)."""

    def remember(context: dict[str, Any], exception: Any = None, **kwargs: Any) -> None:
        context["s3repo-last-outcome"] = _outcome(exception, kwargs.get("parsed_response"))

    def announce(request: Any, operation_name: str, **_: Any) -> None:
        context = getattr(request, "context", None) or {}
        attempt = context.get("retries", {}).get("attempt", 1) + retried
        if attempt > 1 + retried:
            why = context.get("s3repo-last-outcome", "the attempt failed")
            report(f"retrying {operation_name} (attempt {attempt} of {attempts}) after {why}")

    events = client.meta.events
    events.register("response-received.s3", remember, unique_id="s3repo-retry-outcome")
    events.register("request-created.s3", announce, unique_id="s3repo-retry-report")


def _add_content_md5(request: Any, **_: Any) -> None:
    """Send Content-MD5 with DeleteObjects.

    S3 once required it, and gateways built on MinIO still do (the JuiceFS gateway
    answers MissingContentMD5); recent botocore sends a CRC checksum instead.
    """
    body = request.body
    if isinstance(body, str):
        body = body.encode()
    if body and "Content-MD5" not in request.headers:
        md5 = hashlib.md5(body, usedforsecurity=False).digest()
        request.headers["Content-MD5"] = base64.b64encode(md5).decode()


def prepare_client(client: Any) -> Any:
    """Make an S3 client (botocore's or boto3's) fit for s3repo (idempotent) and return it."""
    client.meta.events.register(
        "before-sign.s3.DeleteObjects", _add_content_md5, unique_id="s3repo-content-md5"
    )
    client.meta.events.register("after-call.s3", check_response, unique_id="s3repo-check-response")
    return client


def _settings_key(settings: dict[str, Any]) -> str:
    """A cache key for ``settings``: a hash, so that no secret sits in a dict's repr.

    A setting left as None is the same as one not given.
    """
    given = sorted((name, value) for name, value in settings.items() if value is not None)
    return hashlib.sha256(repr(given).encode()).hexdigest()


def shared_client(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    max_attempts: int | None = None,
    retry_mode: str | None = None,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
    long_read_timeout: float = LONG_READ_TIMEOUT,
) -> Any:
    """This process's client for these settings: :func:`make_client` builds it on first
    use, and every later call with the same settings gets the same client.

    With no settings, it is the default client of :func:`client_for`. Raises what
    :func:`make_client` raises (and caches nothing then).
    """
    settings: dict[str, Any] = {
        "endpoint_url": endpoint_url,
        "region": region,
        "profile": profile,
        "access_key_id": access_key_id,
        "secret_access_key": secret_access_key,
        "session_token": session_token,
        "max_attempts": max_attempts,
        "retry_mode": retry_mode,
        "connect_timeout": connect_timeout,
        "read_timeout": read_timeout,
        "long_read_timeout": None if long_read_timeout == LONG_READ_TIMEOUT else long_read_timeout,
    }
    key = _settings_key(settings)
    with _shared_lock:
        client = _shared.get(key)
        if client is None:
            client = _shared[key] = make_client(
                **{name: value for name, value in settings.items() if value is not None}
            )
        return client


def set_client(client: Any, bucket: str | None = None) -> None:
    """Use ``client`` for ``bucket``, or for every bucket without its own when None.

    ``set_client(None)`` forgets the default client, and the one built from the
    standard configuration: the next is built afresh (so it sees a changed environment).
    ``set_client(None, bucket)`` forgets the bucket's client.
    """
    global _default
    with _lock:
        if bucket is None:
            _default = prepare_client(client) if client is not None else None
        elif client is None:
            _by_bucket.pop(bucket, None)
        else:
            _by_bucket[bucket] = prepare_client(client)
    if bucket is None and client is None:
        with _shared_lock:
            _shared.pop(_settings_key({}), None)


@contextmanager
def using_client(client: Any) -> Iterator[Any]:
    """Make ``client`` the default client for the block, then restore the one before."""
    global _default
    with _lock:
        before, _default = _default, prepare_client(client)
    try:
        yield client
    finally:
        with _lock:
            _default = before


def client_for(bucket: str, given: Any = None) -> Any:
    """``given`` (prepared for s3repo) if there is one; else the client set for
    ``bucket``, else the one set as default, else the shared client of the standard
    configuration (built on first use)."""
    if given is not None:
        return prepare_client(given)
    with _lock:
        client = _by_bucket.get(bucket)
        if client is None:
            client = _default
    return client if client is not None else shared_client()
