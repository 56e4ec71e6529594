"""The result gallery: each result's image with its highlight drawn, and an ``index.html``.

The page loads nothing but files beside it (relative paths), so it opens from ``file://``.
Its thumbnails are clean and the highlight is an overlay placed in percent of the image, exact
at any display size; the full-size ``NN.jpg`` files have the box drawn in, for use elsewhere.
"""
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from PIL import Image, ImageDraw

from loupe.boxes import clip_to_image, scale
from loupe.errors import ImageLoadError
from loupe.images import decode, image_size, read_source
from loupe.sources import is_url

BOX_COLOUR = (255, 32, 32)
SAVED_MAX_SIDE = 1600
THUMB_MAX_SIDE = 640  # sharp at twice the displayed size (high-DPI screens)
THUMB_FRAME = (300, 240)  # CSS pixels a thumbnail is fitted into
THUMBS = 'thumbs'
ORIGINAL, PREVIEW = 'original', 'stored preview'


@dataclass
class Picture:
    image: Image.Image  # RGB, EXIF orientation applied, longest side <= the asked maximum
    box: Optional[List[float]]  # the highlight in ``image``'s pixels
    source: str  # ORIGINAL or PREVIEW


def load_picture(result, max_side: int = SAVED_MAX_SIDE) -> Picture:
    """The result's image: the original where it is a readable local file that still has the
    indexed size, else the preview the service stored. Raises ImageLoadError saying why not."""
    problems = []
    if result.uri and not is_url(result.uri):
        try:
            return _picture(read_source(result.uri), result, ORIGINAL, max_side)
        except ImageLoadError as e:
            problems.append(f'original: {e}')
    elif result.uri:
        problems.append('original: remote, not fetched')
    else:
        problems.append('no uri')
    if not result.preview:
        problems.append('no stored preview')
    else:
        try:
            return _picture(result.preview, result, PREVIEW, max_side)
        except ImageLoadError as e:
            problems.append(f'stored preview: {e}')
    raise ImageLoadError('; '.join(problems))


def _picture(data: bytes, result, source: str, max_side: int) -> Picture:
    width, height = image_size(data)
    decoded = decode(data, min_side=math.ceil(max_side * min(width, height) / max(width, height)))
    original = (result.width, result.height) if result.width and result.height else None
    if source == ORIGINAL:
        if original and original != (decoded.width, decoded.height):
            # The box refers to the image as indexed; the preview still shows that one.
            raise ImageLoadError(f'{result.uri} is {decoded.width}x{decoded.height} now, '
                                 f'{original[0]}x{original[1]} when indexed')
        original = (decoded.width, decoded.height)
    image = decoded.image
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    box = None
    if result.highlight and original:  # a preview without the original size cannot place it
        box = scale(clip_to_image(result.highlight, *original), image.width / original[0],
                    image.height / original[1])[0].tolist()
    return Picture(image=image, box=box, source=source)


def draw_highlight(image: Image.Image, box: Optional[Sequence[float]]) -> Image.Image:
    """A copy with the box's outline drawn just inside its edges."""
    out = image.copy()
    if box:
        x1, y1, x2, y2 = (round(v) for v in box)
        line = max(2, round(max(out.size) / 250))
        ImageDraw.Draw(out).rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)],
                                      outline=BOX_COLOUR, width=line)
    return out


def save_results(results: List, directory, query: str) -> Path:
    """Write ``NN.jpg`` per result (box drawn), ``thumbs/NN.jpg`` and ``index.html``;
    returns the page's path. A result without a readable image gets a card saying why."""
    directory = Path(directory)
    (directory / THUMBS).mkdir(parents=True, exist_ok=True)
    cards = []
    for rank, result in enumerate(results, start=1):
        try:
            picture = load_picture(result)
        except ImageLoadError as e:
            cards.append(result_card(rank, result, None, None, str(e)))
            continue
        name = f'{rank:02d}.jpg'
        draw_highlight(picture.image, picture.box).save(directory / name, quality=90)
        thumb = picture.image.copy()
        thumb.thumbnail((THUMB_MAX_SIDE, THUMB_MAX_SIDE), Image.Resampling.BICUBIC)
        thumb.save(directory / THUMBS / name, quality=85)
        cards.append(result_card(rank, result, picture, name, None))
    page = directory / 'index.html'
    page.write_text(gallery_html(query, cards), encoding='utf-8')
    return page


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _number(value) -> str:
    return '-' if value is None else f'{value:.4f}'


def result_card(rank: int, result, picture: Optional[Picture], name: Optional[str],
                problem: Optional[str]) -> str:
    if picture is None:
        figure = f'<div class="frame missing"><p>no image: {_e(problem)}</p></div>'
    else:
        width, height = picture.image.size
        fit = min(THUMB_FRAME[0] / width, THUMB_FRAME[1] / height)
        overlay = ''
        if picture.box:
            x1, y1, x2, y2 = picture.box
            overlay = (f'<span class="box" style="left:{100 * x1 / width:.4f}%;'
                       f'top:{100 * y1 / height:.4f}%;width:{100 * (x2 - x1) / width:.4f}%;'
                       f'height:{100 * (y2 - y1) / height:.4f}%"></span>')
        figure = (f'<a class="frame" href="{name}" title="full size, box drawn">'
                  f'<span class="pic" style="width:{width * fit:.1f}px;'
                  f'aspect-ratio:{width}/{height}">'
                  f'<img src="{THUMBS}/{name}" alt="result {rank}">{overlay}</span></a>')
    stages = ', '.join(f'{_e(k)} {_number(v)}' for k, v in result.scores.items())
    rows = [f'<b>#{rank}</b> score {_number(result.score)}', f'stages: {stages or "-"}']
    if result.highlight:
        box = ', '.join(f'{v:.0f}' for v in result.highlight)
        kind = f', {_e(result.chunk_kind)} chunk' if result.chunk_kind else ''
        rows.append(f'box [{box}] from {_e(result.highlight_source or "-")}{kind}')
    else:
        rows.append('no box')
    size = f'{result.width}x{result.height}' if result.width and result.height else 'size unknown'
    rows.append(f'original {size}' + (f', shown from {picture.source}' if picture else ''))
    if result.tags:
        rows.append('tags: ' + ', '.join(f'{_e(k)}={_e(v)}' for k, v in result.tags.items()))
    rows.append(f'<span class="uri">{_e(result.uri or f"id {result.id}")}</span>')
    return (f'<figure class="result" id="result-{rank}">{figure}<figcaption>'
            + '<br>'.join(rows) + '</figcaption></figure>')


def gallery_html(query: str, cards: List[str]) -> str:
    count = f'{len(cards)} result' + ('' if len(cards) == 1 else 's')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>loupe: {_e(query)}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; background: #f4f4f4; color: #222; }}
h1 {{ font-size: 20px; margin: 0 0 4px; overflow-wrap: anywhere; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }}
figure.result {{ margin: 0; width: {THUMB_FRAME[0]}px; background: #fff; padding: 8px;
  box-shadow: 0 1px 3px #0003; }}
.frame {{ display: flex; align-items: center; justify-content: center;
  height: {THUMB_FRAME[1]}px; background: #e4e4e4; }}
.pic {{ position: relative; display: block; max-width: 100%; }}
.pic img {{ position: absolute; inset: 0; width: 100%; height: 100%; display: block; }}
.box {{ position: absolute; box-sizing: border-box; border: 2px solid rgb{BOX_COLOUR};
  box-shadow: 0 0 0 1px #fffa; }}
.missing p {{ margin: 12px; color: #700; overflow-wrap: anywhere; }}
figcaption {{ font-size: 13px; line-height: 1.4; margin-top: 6px; }}
.uri {{ color: #555; overflow-wrap: anywhere; }}
</style></head>
<body><h1>{_e(query)}</h1><p>{count}</p>
<div class="grid">
{chr(10).join(cards)}
</div></body></html>
"""
