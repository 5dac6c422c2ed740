"""Downloads: streamed to a cache with a progress bar, resumed after a cut, verified, and
extracted without letting an archive write outside its folder.

``fetch_weedai("<dataset-id>")`` fetches ``<base>/code/download/<dataset-id>.zip``; the base URL
defaults to Weed-AI's site and is set by ``base_url=``, ``--weedai-url`` or ``CVFT_WEEDAI_URL``.

Example (against a local server, as the tests do):
    >>> fetch_weedai("my-dataset", base_url="http://127.0.0.1:1")     # doctest: +SKIP
    PosixPath('/root/.cache/cvft/weedai/my-dataset')
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from .archive import MAX_RATIO, RATIO_FLOOR, check_member
from .errors import CvftError, MalformedFileError, UnsafePathError

WEEDAI_URL = "https://weed-ai.sydney.edu.au"
#: Refuse archives that would expand past these (zip bombs).
MAX_EXTRACT_BYTES = 64 << 30
CHUNK = 1 << 20


class DownloadError(CvftError):
    """A network or integrity problem, with the URL and what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("CVFT_CACHE", Path.home() / ".cache" / "cvft"))


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to the same host (and never from https to http): a dataset URL that
    sends the download elsewhere is refused, not trusted."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        if new.hostname != old.hostname or (old.scheme == "https" and new.scheme != "https"):
            raise DownloadError(f"{req.full_url}: the server redirects to {newurl}, another host; refused "
                                "(download it yourself and ingest the file if you trust that host)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SameHostRedirects)


def download(url: str, dest: Path, *, progress: bool = True, timeout: float = 60.0) -> Path:
    """Stream ``url`` to ``dest`` through ``dest.part``, resuming a previous partial file with an
    HTTP Range request; ``dest`` appears only when the transfer is complete. Redirects to another
    host are refused."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "cvft", **({"Range": f"bytes={have}-"} if have else {})})
    try:
        resp = _OPENER.open(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the partial file is already complete
            os.replace(part, dest)
            return dest
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}; check the dataset id and --weedai-url") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: cannot connect ({getattr(exc, 'reason', exc)}); check the network or the URL; "
                            f"a partial download is kept at {part} and resumed next time") from None
    with resp:
        resumed = resp.status == 206
        if have and not resumed:
            have = 0  # the server ignored Range: start again
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=dest.name)
        try:
            with open(part, "ab" if resumed else "wb") as f:
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    if bar:
                        bar.update(len(chunk))
        except (OSError, urllib.error.URLError) as exc:
            raise DownloadError(f"{url}: the transfer broke off ({exc}); run the same command again to resume "
                                f"from {part.stat().st_size if part.exists() else 0} bytes") from None
        finally:
            if bar:
                bar.close()
    got = part.stat().st_size
    if total is not None and got != total:
        raise DownloadError(f"{url}: got {got} of {total} bytes; run the same command again to resume")
    os.replace(part, dest)
    return dest


def verify_sha256(path: Path, expected: str) -> None:
    """Refuse (and delete) a download whose SHA-256 is not the pinned one."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    if h.hexdigest() != expected.strip().lower():
        path.unlink(missing_ok=True)
        raise DownloadError(f"{path.name}: SHA-256 is {h.hexdigest()}, the pinned one is {expected}; the download "
                            "was deleted (the dataset changed on the server, or the transfer was tampered with)")


def verify_zip(path: Path) -> None:
    """A readable zip whose every member passes its CRC check; a bad one is deleted."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        path.unlink(missing_ok=True)
        raise MalformedFileError(f"the download is not a valid zip ({exc}); it was deleted, run again to re-fetch",
                                 file=str(path), item=path.name, expected="a complete zip archive") from None
    if bad is not None:
        path.unlink(missing_ok=True)
        raise MalformedFileError(f"member {bad} fails its CRC check; the download was deleted, run again",
                                 file=str(path), item=bad, expected="members matching their checksums")


def safe_extract(archive: Path, dest: Path, *, max_bytes: int = MAX_EXTRACT_BYTES, max_ratio: float = MAX_RATIO) -> Path:
    """Extract ``archive`` into ``dest`` (through a temporary folder, renamed at the end).

    Every member is checked before anything is written: no absolute names, no ``..``, no links, and
    no more than ``max_bytes`` in all nor a compression ratio above ``max_ratio`` (zip bombs).
    """
    dest = Path(dest)
    with zipfile.ZipFile(archive) as z:
        infos = z.infolist()
        total = packed = 0
        for i in infos:
            name = i.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
                raise UnsafePathError(f"archive member {i.filename!r} would be written outside {dest}",
                                      file=str(archive), item=i.filename, expected="relative member names")
            if (i.external_attr >> 16) & 0o170000 == 0o120000:
                raise UnsafePathError(f"archive member {i.filename!r} is a symbolic link", file=str(archive),
                                      item=i.filename, expected="regular files only")
            total += i.file_size
            packed += i.compress_size
            check_member(i, archive, max_bytes=max_bytes, max_ratio=max_ratio)   # one member, the same rule as in place
        if total > max_bytes:
            raise MalformedFileError(f"the archive expands to {total} bytes", file=str(archive), item=archive.name,
                                     expected=f"at most {max_bytes} bytes")
        # many small members, each under the per-member floor, can still add up to a bomb
        if total > RATIO_FLOOR and total > max_ratio * max(packed, 1):
            raise MalformedFileError(f"the archive's {len(infos)} members expand {total / max(packed, 1):.0f}x in all",
                                     file=str(archive), item=archive.name, expected=f"at most {max_ratio}x")
        tmp = dest.with_name(dest.name + ".extracting")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        for i in infos:
            target = tmp.joinpath(*PurePosixPath(i.filename.replace("\\", "/")).parts)
            if i.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(i) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def fetch_weedai(dataset_id: str, *, base_url: str | None = None, cache: Path | None = None,
                 progress: bool = True, sha256: str | None = None) -> Path:
    """Download (or reuse) a Weed-AI dataset zip, verify it (its CRCs, and ``sha256`` when the
    dataset is pinned), extract it safely; returns the folder. A bad archive is deleted from the
    cache with an error that says so."""
    if not dataset_id or "/" in dataset_id or ".." in dataset_id:
        raise DownloadError(f"{dataset_id!r} is not a Weed-AI dataset id")
    base = (base_url or os.environ.get("CVFT_WEEDAI_URL") or WEEDAI_URL).rstrip("/")
    root = Path(cache or cache_dir()) / "weedai"
    folder = root / dataset_id
    if (folder / ".complete").exists():
        return folder
    archive = root / f"{dataset_id}.zip"
    if not archive.exists():
        download(f"{base}/code/download/{dataset_id}.zip", archive, progress=progress)
    if sha256:
        verify_sha256(archive, sha256)
    verify_zip(archive)
    try:
        safe_extract(archive, folder)
    except (MalformedFileError, UnsafePathError) as exc:
        archive.unlink(missing_ok=True)
        raise type(exc)(f"{exc.message}; the archive was deleted from the cache", file=exc.file, item=exc.item,
                        expected=exc.expected) from None
    (folder / ".complete").write_text(base)
    return folder


def fetch_roboflow(spec: str, *, fmt: str = "coco", cache: Path | None = None) -> Path:
    """Pull a Roboflow dataset version (``workspace/project/version``) with the ``roboflow`` package,
    when it is installed and ``ROBOFLOW_API_KEY`` is set; returns the export folder (cached).

    ``fmt`` is Roboflow's export name (``coco``, ``yolov8``, ``voc``, ``createml``, ``folder``...).
    """
    parts = spec.strip("/").split("/")
    if len(parts) != 3 or not parts[2].isdigit():
        raise DownloadError(f"roboflow:{spec}: expected roboflow:<workspace>/<project>/<version number>")
    try:
        import roboflow
    except ImportError:
        raise DownloadError("pulling from Roboflow needs its package: pip install roboflow "
                            "(or download the export in the Roboflow app and ingest the folder)") from None
    key = os.environ.get("ROBOFLOW_API_KEY")
    if not key:
        raise DownloadError("set ROBOFLOW_API_KEY to pull from Roboflow (Roboflow app > Settings > API key)")
    workspace, project, version = parts
    folder = Path(cache or cache_dir()) / "roboflow" / workspace / project / f"{version}-{fmt}"
    if (folder / ".complete").exists():
        return folder
    tmp = folder.with_name(folder.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        rf = roboflow.Roboflow(api_key=key)
        rf.workspace(workspace).project(project).version(int(version)).download(fmt, location=str(tmp), overwrite=True)
    except Exception as exc:  # the package raises its own types for network and API errors
        shutil.rmtree(tmp, ignore_errors=True)
        raise DownloadError(f"roboflow:{spec}: the download failed ({type(exc).__name__}: {exc})") from None
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    (folder / ".complete").write_text(spec)
    return folder
