"""The one module that sends requests to S3: a bucket behind a boto3 client.

Every request the library makes goes through :class:`S3Bucket`, which runs it inside
``_translate.translated`` so that no botocore exception leaves this module, adds the
repository's write options to every write, and returns plain typed values (``Stat``,
``Page``...) rather than boto3's response dictionaries.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from ._client import client_for, lean_put, long_client
from ._errors import (
    IntegrityError,
    NotExistError,
    NotSupportedError,
    RepositoryError,
    UnavailableError,
)
from ._leanput import AttemptFailed, LeanPut, learning
from ._listparse import fast_listing
from ._options import StoreOptions, expect_owner, expected_owner
from ._store import DeleteOutcomeUnknown, DeleteThrottled, ObjectInfo, Page, PendingUpload, Stat
from ._translate import translated

__all__ = ["Body", "S3Bucket", "server_time"]

log = logging.getLogger("s3repo")

#: Whether a server checks a declared ChecksumSHA256, by (endpoint URL, region).
_verifies_checksums: dict[tuple[str, str], bool] = {}


def server_time(response: Mapping[str, Any]) -> datetime:
    """The server's clock from a response's Date header, so ages need no synced clocks."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        when = parsedate_to_datetime(date) if date else datetime.now(UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class Body:
    """A response body whose reads raise the library's errors, not botocore's."""

    def __init__(self, raw: Any, size: int, etag: str | None, what: str, key: str) -> None:
        self._raw = raw
        self.size = size
        self.etag = etag
        self._what = what
        self._key = key

    def read(self, amount: int | None = None) -> bytes:
        with translated(self._what, self._key):
            data: bytes = self._raw.read() if amount is None else self._raw.read(amount)
        return data

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# botocore would resend a DeleteObjects whose answer it did not get, possibly long after
# the observation that justified it; collections resend only after looking again.
_no_retry = threading.local()
#: What the PutObject this thread is sending must be: (hex SHA-256, the bytes), if anything.
_payload = threading.local()
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


#: Whether the GetObject this thread is sending is of bytes its caller hashes in full.
_hashed_read = threading.local()
_SKIP_ID = "s3repo-hashed-read"


def _skip_response_checksum(context: dict[str, Any], **_: Any) -> None:
    """botocore's before-call hook: no response checksum for a read ``open`` was told
    is ``hashed`` (botocore then neither wraps the body nor checks the CRC at its end)."""
    if getattr(_hashed_read, "active", False):
        checksum = context.get("checksum")
        if checksum is not None:
            checksum["response_algorithms"] = []


def _check_payload(request: Any, **_: Any) -> None:
    """botocore's before-send hook: no PutObject leaves whose bytes are not the digest.

    Over plain HTTP botocore signs the SHA-256 of the body (``x-amz-content-sha256``),
    which is then the digest itself: it is compared, not computed twice. Where the body
    is not signed (HTTPS, where botocore may also frame it as aws-chunked), the bytes
    handed to botocore are hashed here; no one else holds them, so they are what is sent.
    """
    expected = getattr(_payload, "expected", None)
    if expected is None:
        return
    sha256, data = expected
    signed = request.headers.get("X-Amz-Content-SHA256")
    signed = signed.decode() if isinstance(signed, bytes) else signed
    if isinstance(signed, str) and _HEX_SHA256.fullmatch(signed):
        actual = signed
    else:
        actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise IntegrityError(f"the body hashes to sha256:{actual}, not sha256:{sha256}")


def _refuse_delete_retries(attempts: int, response: Any, caught_exception: Any, **_: Any) -> None:
    if not getattr(_no_retry, "active", False):
        return
    if response is not None and response[1].get("Error", {}).get("Code") == "SlowDown":
        raise DeleteThrottled("SlowDown")  # not applied: the collector backs off and resends
    if caught_exception is not None or (response is not None and response[0].status_code >= 500):
        raise DeleteOutcomeUnknown(str(caught_exception or response[0].status_code))


class S3Bucket:
    """The ``Store`` of one bucket, and the S3 requests only S3 repositories need.

    With no ``client``, the client set for the bucket (:func:`~s3repo_core.set_client`)
    is looked up on each use, so one set later is used too. Copies and the completion
    of multipart uploads take as long as the object is large: they go through the
    client's long-timeout companion (``_client.long_client``).
    """

    def __init__(self, name: str, client: Any = None, options: StoreOptions | None = None):
        self.name = name
        self._client = client
        self.options = options or StoreOptions()

    @property
    def client(self) -> Any:
        client = self._client if self._client is not None else client_for(self.name)
        if self.options.owner is not None:
            expect_owner(client, self.name, self.options.owner)
        return client

    @property
    def _slow_client(self) -> Any:
        client = long_client(self.client)
        if self.options.owner is not None:
            expect_owner(client, self.name, self.options.owner)
        return client

    def where(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    def same_endpoint(self, other: S3Bucket) -> bool:
        """Whether a server-side copy between the two buckets can work."""
        mine, theirs = self.client, other.client
        return mine is theirs or bool(
            mine.meta.endpoint_url == theirs.meta.endpoint_url
            and mine.meta.region_name == theirs.meta.region_name
        )

    @property
    def sends_checksums(self) -> bool:
        """Whether writes may carry checksums: not if the client was told to send them
        only where S3 requires them (``request_checksum_calculation="when_required"``, as
        for a server that refuses them)."""
        config = getattr(self.client.meta, "config", None)
        calculation = getattr(config, "request_checksum_calculation", None)
        return calculation != "when_required"

    def verifies_checksums(self, probe_key: str | None = None) -> bool:
        """Whether the server refuses bytes that do not match their declared SHA-256.

        Asked once per endpoint and process, and only given a ``probe_key`` (under
        ``uploads/``, which collection sweeps): a PutObject of no bytes with a wrong
        ChecksumSHA256 must get BadDigest (AWS answers so; moto and the JuiceFS gateway
        store the empty object, which is deleted again). Until then, and if the server
        is unavailable, the answer is no.
        """
        client = self.client
        endpoint = (str(client.meta.endpoint_url), str(client.meta.region_name))
        known = _verifies_checksums.get(endpoint)
        if known is not None or probe_key is None or not self.sends_checksums:
            return bool(known) and self.sends_checksums
        wrong = base64.b64encode(hashlib.sha256(b"not the probe's bytes").digest()).decode()
        try:
            self.put(probe_key, b"", None, {"ChecksumSHA256": wrong})
        except IntegrityError:
            verifies = True
        except UnavailableError:
            return False
        except RepositoryError:
            verifies = False  # a server that refuses checksums does not check them
        else:
            self.delete_quietly(probe_key)
            verifies = False
        _verifies_checksums[endpoint] = verifies
        return verifies

    def _write_args(self, metadata: Mapping[str, str] | None) -> dict[str, Any]:
        args = self.options.write_args()
        if metadata:
            args["Metadata"] = dict(metadata)
        return args

    # -- reading ------------------------------------------------------------------------

    def head(self, key: str) -> Stat | None:
        try:
            with translated(self.where(key), key):
                response = self.client.head_object(Bucket=self.name, Key=key)
        except NotExistError:
            return None
        return Stat(
            key,
            int(response["ContentLength"]),
            response["LastModified"],
            server_time(response),
            response.get("ETag"),
        )

    def confirm_missing(self, key: str) -> None:
        """After a HEAD found no ``key``: one LIST, which raises if the bucket is missing.

        A HEAD's 404 has no body, so it cannot tell a missing object from a missing
        bucket, or from a web server that is not S3; the LIST's answer can.
        """
        with translated(f"s3://{self.name}", key):
            self.client.list_objects_v2(Bucket=self.name, Prefix=key, MaxKeys=1)

    def open(
        self,
        key: str,
        start: int = 0,
        end: int | None = None,
        if_match: str | None = None,
        hashed: bool = False,
    ) -> Body:
        """The bytes of ``key`` from ``start`` to ``end`` (exclusive; None: the end).

        ``if_match`` pins the read to one version (an ETag): a key replaced since is an
        error rather than other bytes. The whole object is asked for without a Range, so
        that a server's full-object checksum is checked too, unless ``hashed``: the
        caller checks every byte against the key's SHA-256, and botocore's CRC of the
        same bytes would cost CPU (a second pass over them) and catch nothing more.
        """
        args: dict[str, Any] = {"Bucket": self.name, "Key": key}
        if if_match:
            args["IfMatch"] = if_match
        if start > 0 or end is not None:
            args["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        what = self.where(key)
        client = self.client
        if hashed:
            client.meta.events.register(
                "before-call.s3.GetObject", _skip_response_checksum, unique_id=_SKIP_ID
            )
        _hashed_read.active = hashed
        try:
            with translated(what, key):
                response = client.get_object(**args)
        finally:
            _hashed_read.active = False
        return Body(
            response["Body"], int(response["ContentLength"]), response.get("ETag"), what, key
        )

    def read(self, key: str) -> bytes:
        with self.open(key) as body:
            return body.read()

    def tail(
        self, key: str, count: int, if_match: str | None = None
    ) -> tuple[bytes, int, str | None]:
        """The last ``count`` bytes of ``key`` (all of it if it is shorter), its size
        and its ETag, in one GET with a suffix Range: what a file's footer needs.
        ``if_match`` pins the read to one version, as for :meth:`open`."""
        what = self.where(key)
        args: dict[str, Any] = {"Bucket": self.name, "Key": key, "Range": f"bytes=-{count}"}
        if if_match:
            args["IfMatch"] = if_match
        try:
            with translated(what, key):
                response = self.client.get_object(**args)
                data = response["Body"].read()
        except RepositoryError as exc:
            if exc.code == "InvalidRange":  # an empty object has no last bytes
                return b"", 0, None
            raise
        total = str(response.get("ContentRange", "")).rpartition("/")[2]
        return data, int(total) if total.isdigit() else len(data), response.get("ETag")

    def server_sha256(self, key: str) -> bytes | None:
        """The full-object ChecksumSHA256 S3 keeps of ``key``, from a HEAD with
        ChecksumMode ENABLED; None if it has none (objects are usually stored with a
        CRC32), only a composite one (of parts, ``...-N``), or is missing.

        Not asked of a client that sends checksums only where required, as for a
        server that refuses them.
        """
        if not self.sends_checksums:
            return None
        try:
            with translated(self.where(key), key):
                response = self.client.head_object(
                    Bucket=self.name, Key=key, ChecksumMode="ENABLED"
                )
        except NotExistError:
            return None
        value = response.get("ChecksumSHA256")
        if not value or "-" in value or response.get("ChecksumType") == "COMPOSITE":
            return None
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            return None
        return raw if len(raw) == hashlib.sha256().digest_size else None

    def download_file(self, key: str, path: str) -> None:
        """``key`` into the file at ``path``, with boto3's managed (multipart) transfer."""
        with translated(f"downloading {self.where(key)}", key):
            self.client.download_file(self.name, key, path)

    def list_pages(
        self, prefix: str, start_after: str = "", page_size: int | None = None
    ) -> Iterator[Page]:
        args: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix}
        if start_after:
            args["StartAfter"] = start_after
        if page_size is not None:
            args["MaxKeys"] = page_size
        while True:
            sent_at = time.monotonic()
            client = self.client
            with translated(f"listing s3://{self.name}/{prefix}"), fast_listing(client):
                page = client.list_objects_v2(**args)
            items = [
                ObjectInfo(item["Key"], int(item.get("Size", 0)), item["LastModified"])
                for item in page.get("Contents", [])
            ]
            truncated = bool(page.get("IsTruncated"))
            yield Page(sent_at, items, truncated, server_time(page))
            if not truncated:
                return
            args["ContinuationToken"] = page["NextContinuationToken"]
            args.pop("StartAfter", None)

    def server_now(self, prefix: str) -> datetime:
        """The server's clock, from the Date header of a LIST of at most one key."""
        with translated(f"listing s3://{self.name}/{prefix}"):
            response = self.client.list_objects_v2(Bucket=self.name, Prefix=prefix, MaxKeys=1)
        return server_time(response)

    # -- writing ------------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: bytes | bytearray,
        metadata: Mapping[str, str] | None = None,
        checksums: Mapping[str, str] | None = None,
        sha256: str | None = None,
    ) -> datetime:
        """One PutObject; ``checksums`` (``ChecksumSHA256=...``) are for the server to check.

        ``sha256`` is the hex SHA-256 ``data`` must have: IntegrityError, and nothing
        sent, if it has another (see ``_check_payload``). A bytearray is sent as it is;
        botocore copies bytes twice more (see ``read_buffer``).

        Through a client s3repo built, once botocore has sent one PutObject to the
        bucket, the request is signed and sent directly (see ``_leanput``): the same
        request at a third of the client CPU.
        """
        client = self.client
        lean = lean_put(client)
        args = {**self._write_args(metadata), **(checksums or {})}
        try:
            if lean is not None and lean.knows(self.name):
                owner = expected_owner(client, self.name)
                owned = {"ExpectedBucketOwner": owner} if owner else {}
                headers = lean.headers({**args, **owned})
                if headers is not None:
                    return self._put_lean(lean, key, data, headers, args, sha256)
            if lean is None:
                return self._put_botocore(client, key, data, args, sha256)
            with learning(lean, self.name, key):
                return self._put_botocore(client, key, data, args, sha256)
        except IntegrityError as exc:
            exc.key = exc.key or key
            raise

    def _put_lean(
        self,
        lean: LeanPut,
        key: str,
        data: bytes | bytearray,
        headers: dict[str, str],
        args: Mapping[str, Any],
        sha256: str | None,
    ) -> datetime:
        crc32 = self.sends_checksums and not any(name.startswith("Checksum") for name in args)
        with translated(self.where(key), key):
            try:
                response = lean.put(self.name, key, data, headers, sha256, crc32)
            except AttemptFailed as failed:
                lean.before_retry(failed)
                retry = lean.retry_client()
                owner = expected_owner(self.client, self.name)
                if owner is not None:
                    expect_owner(retry, self.name, owner)
                return self._put_botocore(retry, key, data, args, None)
        return server_time(response)

    def _put_botocore(
        self,
        client: Any,
        key: str,
        data: bytes | bytearray,
        args: Mapping[str, Any],
        sha256: str | None,
    ) -> datetime:
        if sha256 is not None:
            client.meta.events.register(
                "before-send.s3.PutObject", _check_payload, unique_id="s3repo-payload-sha256"
            )
        _payload.expected = (sha256, data) if sha256 is not None else None
        try:
            with translated(self.where(key), key):
                response = client.put_object(Bucket=self.name, Key=key, Body=data, **args)
        finally:
            _payload.expected = None
        return server_time(response)

    def upload_file(self, path: str, key: str, content_type: str | None = None) -> None:
        """The file at ``path`` to ``key``, with boto3's managed (multipart) transfer."""
        extra = self.options.write_args()
        if content_type:
            extra["ContentType"] = content_type
        with translated(f"uploading {self.where(key)}", key):
            self.client.upload_file(path, self.name, key, ExtraArgs=extra)

    def copy(
        self,
        src_key: str,
        dst_key: str,
        metadata: Mapping[str, str] | None = None,
        src_bucket: str | None = None,
    ) -> None:
        """One server-side CopyObject (S3 allows up to 5 GiB), atomic at the destination.

        The options and ``metadata`` are sent again (a copy that does not resend them
        loses the encryption and the digest the source had). The copy gets a CRC32 of
        its own bytes, whatever the source had (moto gives the copy of an object stored
        in parts its per-part checksum as if it were the whole's, which GET then fails).
        """
        source = {"Bucket": src_bucket or self.name, "Key": src_key}
        src = f"s3://{source['Bucket']}/{src_key}"
        extra = {"ChecksumAlgorithm": "CRC32"} if self.sends_checksums else {}
        with translated(f"copying {src} to {self.where(dst_key)}", dst_key):
            self._slow_client.copy_object(
                Bucket=self.name,
                Key=dst_key,
                CopySource=source,
                MetadataDirective="REPLACE",
                **self._write_args(metadata),
                **extra,
            )

    def delete(self, key: str) -> None:
        with translated(self.where(key), key):
            self.client.delete_object(Bucket=self.name, Key=key)

    def delete_unchanged(self, key: str, seen: Stat) -> bool:
        """A HEAD, then a DeleteObject with ``If-Match`` its ETag if it is still ``seen``.

        The HEAD compares size and Last-Modified too; the condition closes the gap
        between the two requests where the server honours it (AWS, moto). A server
        that does not implement it gets the plain delete. False if the key changed or
        is gone.
        """
        found = self.head(key)
        if found is None or (found.size, found.modified, found.etag) != (
            seen.size,
            seen.modified,
            seen.etag,
        ):
            return False
        condition = {"IfMatch": seen.etag} if seen.etag else {}
        try:
            with translated(self.where(key), key):
                self.client.delete_object(Bucket=self.name, Key=key, **condition)
        except NotExistError:
            return False
        except NotSupportedError:
            self.delete(key)
        except RepositoryError as exc:
            if exc.code in ("PreconditionFailed", "412"):
                return False
            raise
        return True

    def delete_quietly(self, key: str) -> None:
        try:
            self.delete(key)
        except Exception as exc:
            log.warning("could not remove %s (collection will): %s", self.where(key), exc)

    def delete_many(self, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        """One DeleteObjects; botocore may not resend it: DeleteOutcomeUnknown if it got
        no answer or a 5xx, DeleteThrottled if it was refused with SlowDown."""
        client = self.client
        client.meta.events.register_first(
            "needs-retry.s3.DeleteObjects",
            _refuse_delete_retries,
            unique_id="s3repo-no-blind-delete-retries",
        )
        try:
            _no_retry.active = True
            with translated(f"deleting {len(keys)} objects from s3://{self.name}"):
                response = client.delete_objects(
                    Bucket=self.name,
                    Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
                )
        finally:
            _no_retry.active = False
        wanted = set(keys)
        return {
            e["Key"]: (e.get("Code", ""), e.get("Message", ""))
            for e in response.get("Errors", [])
            if e.get("Key") in wanted
        }

    # -- multipart uploads ----------------------------------------------------------------

    def create_upload(
        self, key: str, metadata: Mapping[str, str] | None = None, checksum: str | None = None
    ) -> str:
        """Begin a multipart upload to ``key``; its upload id.

        ``checksum`` (``CRC32``, ``SHA256``) declares the algorithm every part's checksum
        is sent in, as S3 wants when parts carry one.
        """
        extra = {"ChecksumAlgorithm": checksum} if checksum else {}
        with translated(f"multipart upload to {self.where(key)}", key):
            response = self.client.create_multipart_upload(
                Bucket=self.name, Key=key, **self._write_args(metadata), **extra
            )
        upload_id: str = response["UploadId"]
        return upload_id

    def upload_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        data: bytes | bytearray,
        checksums: Mapping[str, str] | None = None,
    ) -> str:
        """Upload part ``number`` (1-based); its ETag. ``checksums`` as for :meth:`put`."""
        with translated(f"multipart upload to {self.where(key)}, part {number}", key):
            response = self.client.upload_part(
                Bucket=self.name,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
                **(checksums or {}),
            )
        etag: str = response["ETag"]
        return etag

    def copy_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        source: Mapping[str, str],
        first: int,
        last: int,
    ) -> str:
        """Copy bytes ``first..last`` (inclusive) of ``source`` into part ``number``."""
        with translated(f"multipart upload to {self.where(key)}, copying part {number}", key):
            response = self._slow_client.upload_part_copy(
                Bucket=self.name,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource=dict(source),
                CopySourceRange=f"bytes={first}-{last}",
            )
        etag: str = response["CopyPartResult"]["ETag"]
        return etag

    def complete_upload(
        self,
        key: str,
        upload_id: str,
        etags: Mapping[int, str],
        checksums: Mapping[int, Mapping[str, str]] | None = None,
    ) -> None:
        """Publish the parts as one object, atomically (with each part's checksums, which
        S3 wants again if the upload declared an algorithm)."""
        sent = checksums or {}
        parts = [{"PartNumber": n, "ETag": etags[n], **sent.get(n, {})} for n in sorted(etags)]
        with translated(f"completing multipart upload to {self.where(key)}", key):
            self._slow_client.complete_multipart_upload(
                Bucket=self.name, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )

    def abort_upload(self, upload: PendingUpload) -> bool:
        try:
            with translated(f"aborting a multipart upload to {self.where(upload.key)}", upload.key):
                self.client.abort_multipart_upload(
                    Bucket=self.name, Key=upload.key, UploadId=upload.upload_id
                )
        except NotExistError:
            return False
        return True

    def list_uploads(self, prefix: str) -> Iterator[PendingUpload]:
        args: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix}
        while True:
            with translated(f"listing multipart uploads of s3://{self.name}/{prefix}"):
                page = self.client.list_multipart_uploads(**args)
            for upload in page.get("Uploads", []):
                yield PendingUpload(upload["Key"], upload["UploadId"], upload["Initiated"])
            if not page.get("IsTruncated"):
                return
            args["KeyMarker"] = page.get("NextKeyMarker")
            args["UploadIdMarker"] = page.get("NextUploadIdMarker")


def _is_store(bucket: S3Bucket) -> None:
    """mypy checks here that S3Bucket satisfies the Store protocol."""
    from ._store import Store

    _: Store = bucket
