"""Drawing highlight boxes on result images and writing a self-contained HTML gallery."""
import html
import json
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from PIL import Image, ImageDraw

from loupe.boxes import scale
from loupe.errors import ImageLoadError
from loupe.images import decode, read_source

BOX_COLOUR = (255, 32, 32)


def result_picture(result) -> Tuple[Image.Image, Optional[list]]:
    """The result's image and its highlight in that image's pixels.

    The original file where it is readable here, else the preview the service stored.
    """
    decoded = None
    if result.uri:
        try:
            decoded = decode(read_source(result.uri))
        except ImageLoadError:
            decoded = None
    if decoded is None:
        if not result.preview:
            raise ImageLoadError(f'{result.uri or result.id}: neither the file nor a preview '
                                 'is available')
        decoded = decode(result.preview)
    width, height = result.width or decoded.width, result.height or decoded.height
    box = None
    if result.highlight:
        box = scale(result.highlight, decoded.image.width / width,
                    decoded.image.height / height)[0].tolist()
    return decoded.image, box


def draw_highlight(image: Image.Image, box: Optional[Sequence[float]]) -> Image.Image:
    out = image.copy()
    if box:
        line = max(2, round(max(out.size) / 200))
        ImageDraw.Draw(out).rectangle([round(v) for v in box], outline=BOX_COLOUR, width=line)
    return out


def save_results(results: List, directory, query: str) -> Path:
    """Write ``NN.jpg`` per result (box drawn) and ``index.html``; returns the page's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for rank, result in enumerate(results, start=1):
        name = f'{rank:02d}.jpg'
        try:
            image, box = result_picture(result)
        except ImageLoadError as e:
            entries.append((rank, None, result, str(e), None))
            continue
        draw_highlight(image, box).save(directory / name, quality=92)
        entries.append((rank, name, result, None, image.size))
    page = directory / 'index.html'
    page.write_text(gallery_html(entries, query))
    return page


def gallery_html(entries, query: str) -> str:
    cards = []
    for rank, name, result, problem, size in entries:
        data = html.escape(json.dumps({'id': result.id, 'highlight': result.highlight,
                                       'width': result.width, 'height': result.height}))
        scores = ', '.join(f'{k} {v:.3f}' for k, v in result.scores.items())
        body = (f'<img src="{name}" alt="result {rank}" width="{size[0]}" height="{size[1]}">'
                if name else f'<p class="missing">{html.escape(problem)}</p>')
        cards.append(
            f'<figure class="result" data-result="{data}">{body}<figcaption>'
            f'<b>#{rank}</b> score {result.score:.3f}<br>{html.escape(result.uri or result.id)}'
            f'<br><small>box {html.escape(str(result.highlight))} from '
            f'{html.escape(str(result.highlight_source))}; {html.escape(scores)}</small>'
            '</figcaption></figure>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>loupe: {html.escape(query)}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; background: #fafafa; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 16px; }}
figure.result {{ margin: 0; width: 320px; background: #fff; padding: 8px;
  box-shadow: 0 1px 3px #0003; }}
figure.result img {{ width: 100%; height: auto; display: block; }}
figcaption {{ font-size: 13px; margin-top: 6px; word-break: break-all; }}
</style></head>
<body><h1>{html.escape(query)}</h1><p>{len(entries)} results</p>
<div class="grid">
{chr(10).join(cards)}
</div></body></html>
"""
