"""Partition a data set's images the way the segmenter does, batched for model methods."""
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

from tqdm import tqdm

from loupe.errors import ImageLoadError
from loupe.images import decode
from loupe.segment import Partitioner, Proposal, Settings, decode_side


def partition_files(paths: Sequence[Path], settings: Settings, partitioner: Partitioner,
                    progress: bool = False, desc: str = ''
                    ) -> Iterator[Tuple[int, Optional[List[Proposal]], Optional[str]]]:
    """(index, proposals, None) per image, or (index, None, reason) when it cannot be decoded.

    Images are decoded at the size the method needs (draft JPEG decoding, as the segmenter does)
    and partitioned ``settings.batch_size`` at a time.
    """
    side = decode_side(settings)
    bar = tqdm(total=len(paths), desc=desc, unit='img', disable=not progress, leave=False)
    with bar:
        for start in range(0, len(paths), settings.batch_size):
            batch, decoded = [], []
            for i in range(start, min(start + settings.batch_size, len(paths))):
                try:
                    decoded.append(decode(paths[i].read_bytes(), min_side=side))
                    batch.append(i)
                except (ImageLoadError, OSError) as e:
                    yield i, None, str(e)
            for i, proposals in zip(batch, partitioner.partition(decoded, settings)):
                yield i, proposals, None
            bar.update(min(settings.batch_size, len(paths) - start))
