"""Reading what a document's ``uri`` names, only where the service is configured to allow it.

By default the service reads nothing on a client's behalf: a ``uri`` is a label stored with the
image, and the bytes come in ``blob``. An operator may allow local folders and URL patterns;
then files must be regular files inside an allowed folder (after symlinks are resolved), every
read is capped in bytes, and all reads of one request run concurrently within one time box, so
a slow source only delays the request that named it.
"""
import asyncio
import ipaddress
import os
import stat
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

from loupe.config import GatewaySettings
from loupe.errors import ImageLoadError

ENV_ALLOW_FOLDERS = 'LOUPE_ALLOW_FOLDERS'  # os.pathsep-separated folders
ENV_ALLOW_URLS = 'LOUPE_ALLOW_URLS'  # comma-separated scheme://host patterns
_DEFAULTS = GatewaySettings()
_URL_SCHEMES = ('http', 'https')
NOT_ALLOWED = ('not read: this service reads no path or URL named by a client unless its '
               'operator allows it (send the image bytes as blob)')


@dataclass(frozen=True)
class SourcePolicy:
    """What the service may read. ``urls`` holds ``scheme://host[:port]`` patterns, where host
    may be ``*.example.com``, or ``*`` for any host whose addresses are all public."""

    folders: Tuple[Path, ...] = ()
    urls: Tuple[str, ...] = ()
    max_bytes: int = _DEFAULTS.max_blob_bytes
    timeout: float = _DEFAULTS.fetch_timeout
    concurrency: int = _DEFAULTS.fetch_concurrency

    @classmethod
    def create(cls, folders: Sequence[str] = (), urls: Sequence[str] = (),
               **caps) -> 'SourcePolicy':
        """The configured values plus those of the environment (LOUPE_ALLOW_FOLDERS/URLS)."""
        folders = [*(folders or ()), *_split(os.environ.get(ENV_ALLOW_FOLDERS), os.pathsep)]
        urls = [*(urls or ()), *_split(os.environ.get(ENV_ALLOW_URLS), ',')]
        for pattern in urls:
            if urlsplit(pattern).scheme not in _URL_SCHEMES or not urlsplit(pattern).netloc:
                raise ValueError(f'allowed URL pattern {pattern!r}: expected http(s)://HOST')
        return cls(folders=tuple(Path(f).expanduser().resolve() for f in folders),
                   urls=tuple(urls), **{k: v for k, v in caps.items() if v is not None})

    @property
    def reads_anything(self) -> bool:
        return bool(self.folders or self.urls)


def _split(value: Optional[str], sep: str) -> List[str]:
    return [part.strip() for part in (value or '').split(sep) if part.strip()]


async def fetch_all(uris: Sequence[str], policy: SourcePolicy) -> List[Union[bytes, ImageLoadError]]:
    """The bytes of each uri, or the error saying why not; never longer than ``policy.timeout``."""
    if not uris:
        return []
    gate = asyncio.Semaphore(max(1, policy.concurrency))

    async def one(uri):
        async with gate:
            return await fetch(uri, policy)

    tasks = [asyncio.ensure_future(one(uri)) for uri in uris]
    done, pending = await asyncio.wait(tasks, timeout=policy.timeout)
    for task in pending:
        task.cancel()
    if pending:  # let them end, and take their errors so that nothing is logged as unretrieved
        await asyncio.wait(pending, timeout=1.0)
        for task in pending:
            if task.done() and not task.cancelled():
                task.exception()
    results = []
    for uri, task in zip(uris, tasks):
        if task in pending:
            results.append(ImageLoadError(f'{uri}: not read within {policy.timeout:g} s'))
        elif isinstance(task.exception(), ImageLoadError):
            results.append(task.exception())
        elif task.exception() is not None:
            results.append(ImageLoadError(f'{uri}: cannot read: {task.exception()}'))
        else:
            results.append(task.result())
    return results


async def fetch(uri: str, policy: SourcePolicy) -> bytes:
    scheme = urlsplit(uri).scheme.lower()
    if scheme in _URL_SCHEMES:
        return await _fetch_url(uri, policy)
    if scheme in ('', 'file') and policy.folders:
        path = uri[len('file://'):] if scheme == 'file' else uri
        return await asyncio.to_thread(_read_file, path, policy)
    raise ImageLoadError(f'{uri}: {NOT_ALLOWED}')


def _read_file(name: str, policy: SourcePolicy) -> bytes:
    # The lexical check comes first, so a refusal says nothing about what exists elsewhere.
    path = Path(os.path.abspath(name))
    if not any(path.is_relative_to(folder) for folder in policy.folders):
        raise ImageLoadError(f'{name}: {NOT_ALLOWED}')
    try:
        real = path.resolve(strict=True)
        if not any(real.is_relative_to(folder) for folder in policy.folders):
            raise ImageLoadError(f'{name}: {NOT_ALLOWED}')  # a link out of the folder
        # O_NONBLOCK: opening a FIFO would otherwise wait for a writer; fstat then refuses it.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > policy.max_bytes:
            os.close(fd)
            raise ImageLoadError(f'{name}: ' + ('not a regular file' if not stat.S_ISREG(
                info.st_mode) else f'larger than {policy.max_bytes} bytes'))
        with os.fdopen(fd, 'rb') as f:
            data = f.read(policy.max_bytes + 1)
    except FileNotFoundError:
        raise ImageLoadError(f'{name}: no such file') from None
    except OSError as e:
        raise ImageLoadError(f'{name}: cannot read: {e.strerror or e}') from None
    if len(data) > policy.max_bytes:  # it grew since fstat
        raise ImageLoadError(f'{name}: larger than {policy.max_bytes} bytes')
    return data


def url_allowed(uri: str, policy: SourcePolicy) -> bool:
    """Whether a pattern allows the URL (``*`` hosts are checked for public addresses later)."""
    parts = urlsplit(uri)
    for pattern in policy.urls:
        allowed = urlsplit(pattern)
        if allowed.scheme.lower() != parts.scheme.lower():
            continue
        if allowed.port is not None and allowed.port != parts.port:
            continue
        if fnmatchcase((parts.hostname or '').lower(), (allowed.hostname or '').lower()):
            return True
    return False


def _only_wildcards(uri: str, policy: SourcePolicy) -> bool:
    """Whether the URL is allowed by a bare ``*`` host only (then its addresses must be public)."""
    host = (urlsplit(uri).hostname or '').lower()
    return not any(fnmatchcase(host, (urlsplit(p).hostname or '').lower())
                   for p in policy.urls if urlsplit(p).hostname not in (None, '*'))


async def _public(host: str) -> bool:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_global for info in infos)


async def _fetch_url(uri: str, policy: SourcePolicy) -> bytes:
    import aiohttp

    if not url_allowed(uri, policy):
        raise ImageLoadError(f'{uri}: {NOT_ALLOWED}')
    if _only_wildcards(uri, policy) and not await _public(urlsplit(uri).hostname or ''):
        raise ImageLoadError(f'{uri}: {NOT_ALLOWED}')
    try:
        timeout = aiohttp.ClientTimeout(total=policy.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            # Redirects are not followed: they could lead anywhere the patterns do not allow.
            async with session.get(uri, allow_redirects=False,
                                   headers={'User-Agent': 'loupe'}) as response:
                if response.status != 200:
                    raise ImageLoadError(f'{uri}: HTTP {response.status}')
                if (response.content_length or 0) > policy.max_bytes:
                    raise ImageLoadError(f'{uri}: larger than {policy.max_bytes} bytes')
                parts, size = [], 0
                async for part in response.content.iter_chunked(1 << 16):
                    size += len(part)
                    if size > policy.max_bytes:
                        raise ImageLoadError(f'{uri}: larger than {policy.max_bytes} bytes')
                    parts.append(part)
    except aiohttp.ClientError as e:
        raise ImageLoadError(f'{uri}: cannot read: {e}') from None
    return b''.join(parts)
