"""``loupe map`` output: ``map.png`` (thumbnails at their map positions) and ``map.html``
(pan, zoom, hover for the path, click to open), which loads only files beside it, so it works
from disk without a server or any CDN."""
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np
from PIL import Image, ImageDraw

from loupe.explore.mapping import grid_layout
from loupe.sources import is_url

THUMBS = 'thumbs'
PNG_MAX_SIDE = 4096
# A perceptually ordered ramp (viridis' end points and middle) for similarity colours.
RAMP = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)],
                float)


@dataclass
class MapPoint:
    id: str
    uri: Optional[str]
    x: float  # projected position, each axis in [0, 1]
    y: float
    similarity: Optional[float] = None  # to the --query text
    paths: List[str] = field(default_factory=list)
    thumbnail: Optional[bytes] = field(default=None, repr=False)  # JPEG


def colour(value: float) -> tuple:
    """``value`` in [0, 1] on the ramp."""
    position = float(np.clip(value, 0, 1)) * (len(RAMP) - 1)
    low = int(np.floor(position))
    high = min(low + 1, len(RAMP) - 1)
    mixed = RAMP[low] + (RAMP[high] - RAMP[low]) * (position - low)
    return tuple(int(round(c)) for c in mixed)


def _scaled(points: List[MapPoint]) -> List[Optional[float]]:
    values = [p.similarity for p in points]
    known = [v for v in values if v is not None]
    if not known:
        return [None] * len(points)
    lo, hi = min(known), max(known)
    return [None if v is None else (v - lo) / (hi - lo) if hi > lo else 1.0 for v in values]


def _thumb(point: MapPoint, side: int) -> Optional[Image.Image]:
    if not point.thumbnail:
        return None
    try:
        image = Image.open(io.BytesIO(point.thumbnail)).convert('RGB')
    except OSError:
        return None
    image.thumbnail((side, side), Image.Resampling.BICUBIC)
    return image


def _link(point: MapPoint, thumb_name: Optional[str]) -> str:
    if point.uri and is_url(point.uri):
        return point.uri
    if point.uri:
        return Path(point.uri).resolve().as_uri()
    return f'{THUMBS}/{thumb_name}' if thumb_name else ''


def write_map(points: List[MapPoint], out_dir, title: str, notes: List[str]) -> dict:
    """Write map.png, map.html and thumbs/; returns {'png': path, 'html': path, 'shown': n}."""
    out = Path(out_dir)
    (out / THUMBS).mkdir(parents=True, exist_ok=True)
    cells, cols, rows = grid_layout(np.array([[p.x, p.y] for p in points]).reshape(-1, 2))
    cell = int(np.clip(PNG_MAX_SIDE // max(cols, rows), 24, 96))
    pad, legend = 2, 40 if any(p.similarity is not None for p in points) else 0
    canvas = Image.new('RGB', (cols * cell, rows * cell + legend), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    scaled = _scaled(points)
    entries = []
    for i, (point, (cx, cy), value) in enumerate(zip(points, cells.tolist(), scaled)):
        name = f'{i:05d}.jpg'
        image = _thumb(point, 192)
        left, top = cx * cell, cy * cell
        if value is not None:
            draw.rectangle([left, top, left + cell - 1, top + cell - 1], fill=colour(value))
        if image is not None:
            image.save(out / THUMBS / name, quality=85)
            small = image.copy()
            small.thumbnail((cell - 2 * pad - (4 if value is not None else 0),) * 2)
            canvas.paste(small, (left + (cell - small.width) // 2, top + (cell - small.height) // 2))
        entries.append({'id': point.id, 'path': point.uri or f'(no path) {point.id}',
                        'paths': point.paths, 'col': cx, 'row': cy,
                        'thumb': f'{THUMBS}/{name}' if image is not None else None,
                        'href': _link(point, name if image is not None else None),
                        'similarity': point.similarity,
                        'colour': None if value is None else '#%02x%02x%02x' % colour(value)})
    if legend:
        top = rows * cell + 8
        width = min(canvas.width - 20, 400)
        for x in range(width):
            draw.line([(10 + x, top), (10 + x, top + 10)], fill=colour(x / max(1, width - 1)))
        draw.text((10, top + 14), f'{title}: low -> high similarity', fill=(230, 230, 230))
    png = out / 'map.png'
    canvas.save(png)
    html_path = out / 'map.html'
    html_path.write_text(_page(title, notes, entries, cols, rows), encoding='utf-8')
    return {'png': png, 'html': html_path, 'shown': len(points)}


def _page(title: str, notes: List[str], entries: list, cols: int, rows: int) -> str:
    data = json.dumps({'cols': cols, 'rows': rows, 'points': entries}).replace('</', '<\\/')
    escape = lambda s: (s.replace('&', '&amp;').replace('<', '&lt;')  # noqa: E731
                        .replace('>', '&gt;'))
    note_html = ''.join(f'<span>{escape(n)}</span>' for n in notes)
    return _TEMPLATE.replace('__TITLE__', escape(title)).replace('__NOTES__', note_html) \
        .replace('__DATA__', data)


_TEMPLATE = '''<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>loupe map: __TITLE__</title>
<link rel="icon" href="data:,">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
html, body { margin: 0; height: 100%; background: #181818; color: #ddd; font: 14px sans-serif; }
#bar { position: fixed; top: 0; left: 0; right: 0; padding: 6px 10px; background: #000c;
       z-index: 2; display: flex; gap: 16px; flex-wrap: wrap; }
#status { position: fixed; bottom: 0; left: 0; right: 0; padding: 6px 10px; background: #000c;
          z-index: 2; min-height: 1.2em; word-break: break-all; }
#view { position: absolute; inset: 0; overflow: hidden; cursor: grab; touch-action: none; }
#world { position: absolute; left: 0; top: 0; transform-origin: 0 0; }
#world a { position: absolute; display: flex; align-items: center; justify-content: center;
           box-sizing: border-box; }
#world img { max-width: 100%; max-height: 100%; display: block; }
</style></head><body>
<div id="bar"><b>__TITLE__</b>__NOTES__<span>drag to pan, wheel to zoom, click opens</span></div>
<div id="view"><div id="world"></div></div>
<div id="status"></div>
<script id="map-data" type="application/json">__DATA__</script>
<script>
(function () {
  const data = JSON.parse(document.getElementById('map-data').textContent);
  const CELL = 100, PAD = 3;
  const world = document.getElementById('world'), view = document.getElementById('view');
  const status = document.getElementById('status');
  world.style.width = (data.cols * CELL) + 'px';
  world.style.height = (data.rows * CELL) + 'px';
  for (const p of data.points) {
    const a = document.createElement('a');
    a.href = p.href || '#';
    a.target = '_blank';
    a.rel = 'noopener';
    a.title = p.path;
    a.style.left = (p.col * CELL) + 'px';
    a.style.top = (p.row * CELL) + 'px';
    a.style.width = a.style.height = CELL + 'px';
    a.style.padding = PAD + 'px';
    if (p.colour) a.style.background = p.colour;
    if (p.thumb) {
      const img = document.createElement('img');
      img.src = p.thumb;
      img.alt = p.path;
      img.className = 'thumb';
      a.appendChild(img);
    } else {
      a.textContent = '?';
    }
    a.addEventListener('mouseenter', () => {
      status.textContent = p.path + (p.paths.length > 1 ? '  (+' + (p.paths.length - 1) + ' more paths)' : '') +
        (p.similarity === null ? '' : '  similarity ' + p.similarity.toFixed(3));
    });
    world.appendChild(a);
  }
  let scale = Math.min(view.clientWidth / (data.cols * CELL), view.clientHeight / (data.rows * CELL), 1);
  let x = (view.clientWidth - data.cols * CELL * scale) / 2, y = 40;
  const apply = () => { world.style.transform = `translate(${x}px, ${y}px) scale(${scale})`; };
  apply();
  view.addEventListener('wheel', (e) => {
    e.preventDefault();
    const factor = Math.exp(-e.deltaY * 0.0015);
    const next = Math.min(8, Math.max(0.02, scale * factor));
    x = e.clientX - (e.clientX - x) * next / scale;
    y = e.clientY - (e.clientY - y) * next / scale;
    scale = next;
    apply();
  }, { passive: false });
  let drag = null, moved = false;
  view.addEventListener('pointerdown', (e) => { drag = { x: e.clientX - x, y: e.clientY - y }; moved = false; });
  window.addEventListener('pointermove', (e) => {
    if (!drag) return;
    x = e.clientX - drag.x; y = e.clientY - drag.y; moved = true; apply();
  });
  window.addEventListener('pointerup', () => { drag = null; });
  world.addEventListener('click', (e) => { if (moved) { e.preventDefault(); moved = false; } }, true);
})();
</script></body></html>
'''
