"""PutObject without botocore's per-request machinery, for the clients s3repo builds.

Why: against moto in a process of its own (16 KiB bodies, one thread), a PutObject
through botocore costs 3.6 ms of client CPU and waits a round trip for ``100-continue``;
the same request, signed by botocore's own signer and sent on the client's own
connection pool, costs 1.3 ms and no extra round trip. On two cores that CPU is the gap
to s5cmd when new files are stored.

What is kept of botocore, so that the request is the one it would send:

- the route: the URL, signing region and service are learned from the client's first
  PutObject to each bucket, which botocore itself sends (:func:`learning`); nothing
  changes until then, and nothing is learned from a URL that is not the key's;
- the signer (``S3SigV4Auth``, with the credentials frozen afresh for each request, so
  refreshed credentials are used), the User-Agent, and the service model's header names
  for the write options, metadata and checksums;
- the client's HTTP session: its pool, TLS settings, proxies and timeouts;
- botocore's parser for error answers, and its standard retry conditions.

What is dropped: event hooks (a caller's hooks never see these requests: that is why a
client a caller built keeps botocore's path), the Expect handshake, and retries. An
attempt that botocore would retry is retried by a companion client allowed one attempt
fewer, after the backoff botocore would wait, so the attempts and the worst case
(``_client.worst_case_seconds``) stay what was configured.
"""

from __future__ import annotations

import base64
import random
import re
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError
from botocore.parsers import RestXMLParser
from botocore.retries import standard
from botocore.utils import percent_encode

from ._errors import IntegrityError
from ._translate import NotS3Response

__all__ = ["AttemptFailed", "LeanPut", "learning"]

#: The key a botocore PutObject of this thread is for, while a route may be learned.
_learning = threading.local()
_SCOPE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=[^/,\s]+/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request"
)


class _Learning:
    def __init__(self, lean: LeanPut, bucket: str, key: str) -> None:
        self.lean, self.bucket, self.key = lean, bucket, key

    def __enter__(self) -> None:
        _learning.current = self

    def __exit__(self, *exc: object) -> None:
        _learning.current = None


def learning(lean: LeanPut, bucket: str, key: str) -> _Learning:
    """A block in which a botocore PutObject of ``key`` teaches ``lean`` its route."""
    return _Learning(lean, bucket, key)


class _Route:
    __slots__ = ("base", "region", "service", "user_agent")

    def __init__(self, base: str, region: str, service: str, user_agent: str | None) -> None:
        self.base, self.region, self.service, self.user_agent = base, region, service, user_agent


class AttemptFailed(Exception):
    """A lean attempt that botocore would retry: what it got, for the retry's report."""

    def __init__(self, context: standard.RetryContext, why: str) -> None:
        super().__init__(why)
        self.context, self.why = context, why


class LeanPut:
    """The PutObjects of one client s3repo built (see the module docstring).

    ``credentials`` returns the client's credentials (its session's), ``retry_client``
    the companion to retry through, ``on_retry`` is the client's retry report.
    """

    def __init__(
        self,
        client: Any,
        credentials: Callable[[], Any],
        max_attempts: int,
        retry_client: Callable[[], Any],
        on_retry: Callable[[str], None] | None,
    ) -> None:
        self._http = client._endpoint.http_session
        self._credentials = credentials
        self.max_attempts = max_attempts
        self._retry_client = retry_client
        self._on_retry = on_retry
        self._routes: dict[str, _Route] = {}
        self._model = client.meta.service_model.operation_model("PutObject")
        self._members = self._model.input_shape.members
        self._parser = RestXMLParser()
        self._conditions = standard.StandardRetryConditions(max_attempts=max_attempts)
        self._throttled = standard.OrRetryChecker(
            [
                standard.ThrottledRetryableChecker(),
                standard.ThrottlingStatusCodeChecker(),  # type: ignore[attr-defined]
            ]
        )
        client.meta.events.register(
            "before-send.s3.PutObject", self._learn, unique_id="s3repo-lean-put-route"
        )

    def knows(self, bucket: str) -> bool:
        return bucket in self._routes

    def retry_client(self) -> Any:
        return self._retry_client()

    def _learn(self, request: Any, **_: Any) -> None:
        """botocore's before-send hook: the route of the PutObject :func:`learning` names."""
        current: _Learning | None = getattr(_learning, "current", None)
        if current is None or current.lean is not self or current.bucket in self._routes:
            return
        url: str = request.url
        quoted = percent_encode(current.key, safe="/~")
        auth = _text(request.headers.get("Authorization"))
        scope = _SCOPE.match(auth) if auth else None
        if "?" in url or not url.endswith("/" + quoted) or scope is None:
            return  # not a route this module can rebuild: botocore keeps sending
        agent = _text(request.headers.get("User-Agent"))
        base = url[: len(url) - len(quoted)]
        self._routes[current.bucket] = _Route(base, scope.group(1), scope.group(2), agent)

    def headers(self, args: Mapping[str, Any]) -> dict[str, str] | None:
        """The headers of PutObject's ``args`` (its parameter names), by the service
        model; None if one is not a plain header this module can write."""
        headers: dict[str, str] = {}
        for name, value in args.items():
            member = self._members.get(name)
            where = member.serialization.get("location") if member is not None else None
            if where == "header":
                if isinstance(value, bool):
                    headers[member.serialization["name"]] = "true" if value else "false"
                elif isinstance(value, str) and value.isascii():
                    headers[member.serialization["name"]] = value
                else:
                    return None
            elif where == "headers" and isinstance(value, Mapping):
                prefix = member.serialization["name"]
                for field, text in value.items():
                    if not (isinstance(text, str) and text.isascii() and str(field).isascii()):
                        return None
                    headers[prefix + str(field)] = text
            else:
                return None
        return headers

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes | bytearray,
        headers: dict[str, str],
        sha256: str | None,
        crc32: bool,
    ) -> Mapping[str, Any]:
        """One PutObject; the answer as botocore's ``ResponseMetadata`` would carry it.

        Raises IntegrityError, and sends nothing, if ``data`` does not hash to
        ``sha256``; a botocore error for a definite refusal (for ``translated``); and
        ``AttemptFailed`` for what botocore would retry.
        """
        route = self._routes[bucket]
        if crc32:
            headers["x-amz-checksum-crc32"] = base64.b64encode(
                zlib.crc32(data).to_bytes(4, "big")
            ).decode()
            headers["x-amz-sdk-checksum-algorithm"] = "CRC32"
        headers["Content-Length"] = str(len(data))
        if route.user_agent:
            headers["User-Agent"] = route.user_agent
        request = AWSRequest("PUT", route.base + percent_encode(key, safe="/~"), headers, data)
        credentials = self._credentials()
        S3SigV4Auth(credentials.get_frozen_credentials(), route.service, route.region).add_auth(
            request
        )
        signed = request.headers["X-Amz-Content-SHA256"]
        if sha256 is not None and signed != sha256:
            raise IntegrityError(f"the body hashes to sha256:{signed}, not sha256:{sha256}")
        try:
            response = self._http.send(request.prepare())
        except (ConnectionError, HTTPClientError) as exc:
            context = standard.RetryContext(1, self._model, caught_exception=exc)
            if self._conditions.is_retryable(context):
                raise AttemptFailed(context, f"{type(exc).__name__}: {exc}") from exc
            raise
        status = response.status_code
        if 200 <= status < 300:
            if "ETag" not in response.headers:
                raise NotS3Response(detail=f"its {status} answer to PutObject has no ETag")
            return {"ResponseMetadata": {"HTTPHeaders": {"date": response.headers.get("Date")}}}
        parsed = self._parser.parse(
            {"status_code": status, "headers": response.headers, "body": response.content},
            self._model.output_shape,
        )
        context = standard.RetryContext(
            1, self._model, parsed_response=parsed, http_response=response
        )
        if self._conditions.is_retryable(context):
            code = parsed.get("Error", {}).get("Code")
            raise AttemptFailed(context, f"HTTP {status}" + (f" {code}" if code else ""))
        raise ClientError(parsed, "PutObject")

    def before_retry(self, failed: AttemptFailed) -> None:
        """Report the retry as the client would, and wait the backoff botocore would."""
        if self._on_retry is not None:
            self._on_retry(
                f"retrying PutObject (attempt 2 of {self.max_attempts}) after {failed.why}"
            )
        scale = 1.0 if self._throttled.is_retryable(failed.context) else 0.05
        time.sleep(random.random() * scale)


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
