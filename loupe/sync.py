"""``loupe sync FOLDER...``: make the index follow folders that change.

Compared by content hash (the image id) against every path recorded under the folders:

- added: a file whose content is not indexed is indexed (one whose content is indexed under
  another path only gains this path);
- changed: a recorded path now holds other content: the new content is indexed under it and
  the path leaves the old image;
- moved: a new path whose content lost a path here keeps its embedding, with the new path;
- removed: a recorded path that is gone leaves its image; an image is deleted once none of its
  paths exists (URLs count as existing).
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from loupe.errors import ImageLoadError, InvalidRequestError
from loupe.images import content_hash, read_source
from loupe.schema import ImageDoc
from loupe.sources import ID_LENGTH, Problem, expand, is_url


@dataclass
class SyncReport:
    added: List[str] = field(default_factory=list)
    changed: List[str] = field(default_factory=list)
    moved: List[str] = field(default_factory=list)  # "old -> new"
    removed: List[str] = field(default_factory=list)  # paths gone from the index
    deleted: List[str] = field(default_factory=list)  # images deleted (no path left)
    unchanged: int = 0
    errors: List[Problem] = field(default_factory=list)

    def summary(self) -> str:
        return (f'added {len(self.added)}, changed {len(self.changed)}, moved '
                f'{len(self.moved)}, removed {len(self.removed)} (images deleted '
                f'{len(self.deleted)}), unchanged {self.unchanged}, failed {len(self.errors)}')


def _alive(uri: str) -> bool:
    return is_url(uri) or Path(uri).is_file()


def sync(client, folders: Sequence[str], batch_size: int = 8,
         parameters: Optional[dict] = None, tags: Optional[dict] = None,
         progress_factory: Optional[Callable] = None) -> SyncReport:
    roots = [Path(f).expanduser().resolve() for f in folders]
    for root in roots:
        if not root.is_dir():
            raise InvalidRequestError(f'no such folder: {root}')
    report = SyncReport()
    files = [str(p.resolve()) for p in expand([str(r) for r in roots], report.errors)]
    on_disk: Dict[str, str] = {}  # path -> id of its content now
    for path in files:
        try:
            on_disk[path] = content_hash(read_source(path))[:ID_LENGTH]
        except ImageLoadError as e:
            report.errors.append(Problem(path, str(e)))
    recorded = client.find_under([str(r) for r in roots])  # id -> match with all its uris
    inside = tuple(str(r).rstrip('/') + '/' for r in roots)
    path_of = {u: id_ for id_, m in recorded.items() for u in m.uris if u.startswith(inside)}

    gone = {p: id_ for p, id_ in path_of.items() if on_disk.get(p) != id_}
    lost_by_id: Dict[str, List[str]] = {}
    for path, id_ in gone.items():
        lost_by_id.setdefault(id_, []).append(path)
    indexed = client.exists(set(on_disk.values()))
    new_paths = [p for p, id_ in on_disk.items() if path_of.get(p) != id_]
    report.unchanged = len(on_disk) - len(new_paths)

    to_encode, path_updates, moved_from = [], [], set()
    for path in new_paths:
        id_ = on_disk[path]
        if id_ in indexed:
            path_updates.append(ImageDoc(id=id_, uri=path, tags=dict(tags or {})))
            old = lost_by_id.get(id_)
            if old and path not in gone:
                report.moved.append(f'{old[0]} -> {path}')
                moved_from.add(old[0])
            elif path in gone:
                report.changed.append(path)
            else:
                report.added.append(path)
        else:
            to_encode.append(path)
    if to_encode:
        bar = progress_factory(len(to_encode)) if progress_factory else None
        try:
            result = client.index(to_encode, tags=tags, batch_size=batch_size,
                                  skip_existing=True, parameters=parameters,
                                  progress=bar.update if bar else None)
        finally:
            if bar is not None:
                bar.close()
        report.errors.extend(result.errors)
        for path in result.indexed + [p.source for p in result.skipped]:
            (report.changed if path in gone else report.added).append(path)
    client.update(path_updates)

    if gone:
        for id_, paths in lost_by_id.items():  # per image: a path may have moved to another
            client.update([ImageDoc(id=id_)], remove_uris=paths)
        report.removed.extend(p for p in gone if p not in on_disk and p not in moved_from)
        still_here = set(on_disk.values())
        doomed = [id_ for id_ in lost_by_id if id_ not in still_here and not any(
            _alive(u) for u in recorded[id_].uris if u not in gone)]
        if doomed:
            report.deleted.extend(client.delete(doomed))
    return report
