"""Data sets in S3-compatible object storage: ``data=s3://bucket/prefix`` for every verb.

A remote data set is read through a *local view*: a folder that mirrors the prefix's layout and
holds only the objects the run reads (the labels CSV and the images its rows name; for page
folders and unlabelled folders, every image and ``.xml`` object), so all the local checks
(path escapes, missing files, bad rows) apply unchanged. Objects are fetched in parallel with
boto3 into a content-addressed cache (one file per ETag, i.e. per object content) and hard-linked
into the view, so a second run, or a second prefix holding the same images, downloads nothing.

The endpoint is boto3's own ``AWS_ENDPOINT_URL``, else ``MLFLOW_S3_ENDPOINT_URL`` (the variable
MLflow's S3 artifact store reads), else AWS; credentials as boto3 finds them (``AWS_ACCESS_KEY_ID``
/ ``AWS_SECRET_ACCESS_KEY``, ``~/.aws``). Knows nothing of models or MLflow.
"""

from __future__ import annotations

import os
import posixpath
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd
from tqdm import tqdm

from hwr.config import DataConfig
from hwr.errors import BadInputError

SCHEME = "s3://"
CACHE = Path("~/.cache/hwr/s3")  # objects/<etag> (the content) and views/<bucket>/<prefix>/ (hard links)
CACHE_ENV = "HWR_S3_CACHE"  # overrides CACHE
FETCH_THREADS = 16
PAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".xml")


def is_remote(data: str) -> bool:
    """Whether ``data`` names an object-storage prefix (``s3://bucket/prefix``)."""
    return data.strip().lower().startswith(SCHEME)


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b/`` -> ``("bucket", "a/b")``.

    Raises:
        BadInputError: no bucket name.
    """
    bucket, _, prefix = uri.strip()[len(SCHEME):].partition("/")
    if not bucket:
        raise BadInputError(f"data={uri!r}: expected s3://bucket/prefix")
    return bucket, prefix.strip("/")


def inside(relative: str) -> str | None:
    """The normalised key of ``relative`` below the prefix, or None when it leaves the prefix
    (``../x``, ``/etc/passwd``): such keys are never fetched (the local check then rejects the row)."""
    if not relative or relative.startswith("/"):
        return None
    key = posixpath.normpath(relative)
    return None if key == ".." or key.startswith("../") else key


@dataclass(frozen=True)
class Listing:
    """The objects under a prefix: relative key -> ETag (the content's identity)."""

    bucket: str
    prefix: str
    etags: dict[str, str]

    def uri(self, key: str = "") -> str:
        return SCHEME + "/".join(p for p in (self.bucket, self.prefix, key) if p)

    def full_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key


def s3_client():
    """A boto3 S3 client for ``AWS_ENDPOINT_URL`` or ``MLFLOW_S3_ENDPOINT_URL`` (either may be unset)."""
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=60,
                    max_pool_connections=FETCH_THREADS)
    return boto3.client("s3", endpoint_url=endpoint, config=config)


def endpoint_name(client) -> str:
    return client.meta.endpoint_url


def list_objects(client, uri: str) -> Listing:
    """Every object under ``uri``'s prefix.

    Raises:
        BadInputError: no such bucket, nothing under the prefix, the endpoint does not answer,
        or no credentials / access denied; each names the URI and the endpoint.
    """
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    bucket, prefix = split_uri(uri)
    etags: dict[str, str] = {}
    where = f"{uri} (endpoint {endpoint_name(client)})"
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else "")
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"][len(prefix) + 1:] if prefix else item["Key"]
                if key and not key.endswith("/"):
                    etags[key] = item["ETag"].strip('"')
    except NoCredentialsError as exc:
        raise BadInputError(f"data={where}: no S3 credentials; set AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY (make server prints them)") from exc
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            raise BadInputError(f"data={where}: bucket {bucket!r} does not exist") from exc
        raise BadInputError(f"data={where}: {code or exc}") from exc
    except BotoCoreError as exc:
        raise BadInputError(f"data={where}: {exc}") from exc
    if not etags:
        raise BadInputError(f"data={where}: no objects under this prefix")
    return Listing(bucket, prefix, etags)


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or CACHE).expanduser().resolve()


def local_view(cfg: DataConfig, cache: Path | None = None) -> DataConfig:
    """``cfg`` itself for a local folder; for ``s3://`` data the same configuration on a local
    view of the objects the run reads (see the module docstring), fetched as needed.

    Raises:
        BadInputError: see :func:`list_objects`; under ``on_bad_input=error`` also a CSV row whose
        image object does not exist (naming the row and the key).
    """
    if not is_remote(cfg.data):
        return cfg
    client = s3_client()
    listing = list_objects(client, cfg.data)
    root = cache or cache_root()
    view = root / "views" / listing.bucket / listing.prefix
    wanted = wanted_keys(client, listing, cfg, root, view)
    fetch(client, listing, sorted(wanted), root, view)
    prune(view, listing)
    return cfg.replace(data=str(view))


def wanted_keys(client, listing: Listing, cfg: DataConfig, root: Path, view: Path) -> set[str]:
    """The keys the run reads: the labels CSV and the images its rows name when the CSV is in the
    prefix (or ``labels`` is a local file), else every image and page (``.xml``) object."""
    labels = Path(cfg.labels)
    if labels.is_absolute():
        return _named_images(listing, cfg, labels, set())
    key = inside(PurePosixPath(cfg.labels).as_posix())
    if key in listing.etags:
        fetch(client, listing, [key], root, view)
        return _named_images(listing, cfg, view / key, {key})
    return {k for k in listing.etags if k.lower().endswith(PAGE_SUFFIXES)}


def _named_images(listing: Listing, cfg: DataConfig, csv_path: Path, keys: set[str]) -> set[str]:
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError):
        return keys  # read_labels reports it, naming the CSV
    if cfg.image_col not in table.columns:
        return keys  # read_labels reports the missing column
    for row, image in enumerate(table[cfg.image_col].str.strip(), start=2):
        key = inside(image)
        if key is None:
            continue  # leaves the prefix: never fetched, rejected by read_labels as a path escape
        if key in listing.etags:
            keys.add(key)
        elif cfg.on_bad_input == "error" and image:
            raise BadInputError(f"{listing.uri(cfg.labels)}, row {row} (image {image!r}): object "
                                f"{listing.uri(key)} does not exist. Fix the row, or pass "
                                "on_bad_input=skip to skip such rows.")
    return keys


def fetch(client, listing: Listing, keys: list[str], root: Path, view: Path) -> None:
    """Download the keys not yet in the cache (``FETCH_THREADS`` at a time) and link each into
    the view. Raises BadInputError naming the key when an object cannot be fetched."""
    objects = root / "objects"
    objects.mkdir(parents=True, exist_ok=True)
    missing = [k for k in keys if not blob(objects, listing.etags[k]).is_file()]
    if missing:
        with ThreadPoolExecutor(FETCH_THREADS) as pool:
            jobs = pool.map(lambda k: _download(client, listing, k, blob(objects, listing.etags[k])), missing)
            list(tqdm(jobs, total=len(missing), desc=f"fetching {listing.uri()}", unit="obj", leave=False))
    for key in keys:
        _link(blob(objects, listing.etags[key]), view / key)


def blob(objects: Path, etag: str) -> Path:
    return objects / re.sub(r"[^0-9A-Za-z-]", "_", etag)


def _download(client, listing: Listing, key: str, target: Path) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    partial = target.with_name(f"{target.name}.{uuid.uuid4().hex}.part")
    try:
        client.download_file(listing.bucket, listing.full_key(key), str(partial))
        os.replace(partial, target)
    except (BotoCoreError, ClientError) as exc:
        partial.unlink(missing_ok=True)
        raise BadInputError(f"cannot fetch {listing.uri(key)}: {exc}") from exc


def _link(source: Path, dest: Path) -> None:
    """Make ``dest`` the same file as ``source`` (a hard link; a copy across file systems),
    atomically, so concurrent runs on the same view never see a half-written file."""
    if dest.is_file() and dest.samefile(source):
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}")
    try:
        os.link(source, staged)
    except OSError:
        import shutil
        shutil.copyfile(source, staged)
    os.replace(staged, dest)


def prune(view: Path, listing: Listing) -> None:
    """Remove files of the view whose objects are no longer in the bucket (a deleted image must
    read as missing, not as its old copy)."""
    for path in view.rglob("*"):
        if path.is_file() and not path.name.startswith(".") \
                and path.relative_to(view).as_posix() not in listing.etags:
            path.unlink(missing_ok=True)
