"""``loupe duplicates --save DIR``: an ``index.html`` with one row per group (the copy to keep
first), thumbnails in ``thumbs/``; it loads only files beside it."""
import html
import io
from pathlib import Path
from typing import List

from PIL import Image

THUMB_SIDE = 240


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def save_groups(groups: List[list], directory) -> Path:
    """``groups``: lists of ``loupe.client.DuplicateMember`` (with previews when available)."""
    out = Path(directory)
    (out / 'thumbs').mkdir(parents=True, exist_ok=True)
    rows = []
    for g, members in enumerate(groups, start=1):
        cards = []
        for m, member in enumerate(members):
            picture = '<div class="missing">no preview</div>'
            if member.preview:
                name = f'thumbs/{g:04d}-{m:02d}.jpg'
                try:
                    image = Image.open(io.BytesIO(member.preview)).convert('RGB')
                    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
                    image.save(out / name, quality=85)
                    picture = f'<img src="{_e(name)}" alt="{_e(member.uri or member.id)}">'
                except OSError:
                    pass
            label = ('keep' if m == 0 else
                     f'{member.method} {member.similarity:.3f}' if member.similarity is not None
                     else member.method or '')
            paths = ''.join(f'<li>{_e(p)}</li>' for p in member.uris) or f'<li>{_e(member.id)}</li>'
            cards.append(f'<figure class="{"keep" if m == 0 else "dup"}">{picture}<figcaption>'
                         f'<b>{_e(label)}</b> {member.width}x{member.height}<ul>{paths}</ul>'
                         f'</figcaption></figure>')
        rows.append(f'<section><h2>group {g} ({len(members)} images)</h2>'
                    f'<div class="row">{"".join(cards)}</div></section>')
    page = out / 'index.html'
    page.write_text(f'''<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>loupe: duplicates</title>
<link rel="icon" href="data:,">
<style>
body {{ font-family: sans-serif; margin: 16px; background: #f4f4f4; color: #222; }}
section {{ background: #fff; margin: 0 0 16px; padding: 8px; box-shadow: 0 1px 3px #0003; }}
h2 {{ font-size: 15px; margin: 0 0 8px; }}
.row {{ display: flex; gap: 12px; overflow-x: auto; }}
figure {{ margin: 0; width: {THUMB_SIDE}px; flex: none; }}
figure.keep {{ outline: 3px solid #2a2; }}
img {{ max-width: 100%; display: block; }}
figcaption {{ font-size: 12px; overflow-wrap: anywhere; }}
ul {{ margin: 4px 0; padding-left: 16px; }}
</style></head><body><h1>{len(groups)} groups of duplicates</h1>
{chr(10).join(rows)}
</body></html>
''', encoding='utf-8')
    return page
