// Drawing results: a picture with its highlight box, and the result cards of the grids.
// Boxes are [x1, y1, x2, y2] in the original image's pixels; the overlay is placed in percent
// of the picture, so it is exact at any displayed size and whatever the preview's size.

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// One result as the page uses it, from a match of /search or /recommend (or a group member).
export function toResult(match) {
  // Every name the image was indexed under (`paths` or `uris`, whichever the service fills).
  const named = [match.paths, match.uris].find(list => Array.isArray(list) && list.length);
  const paths = named || (match.uri ? [match.uri] : []);
  return {
    id: match.parent_id || match.id,
    uri: match.uri || paths[0] || null,
    paths,
    score: typeof match.score === 'number' ? match.score : null,
    scores: match.scores || {},
    box: Array.isArray(match.highlight_box) && match.highlight_box.length === 4
      ? match.highlight_box : (Array.isArray(match.box) && match.box.length === 4 ? match.box : null),
    boxSource: match.highlight_source || null,
    chunkKind: match.chunk_kind || null,
    tags: match.tags || {},
    width: match.width || null,
    height: match.height || null,
    preview: match.preview || null,
  };
}

export function fileName(result) {
  const where = result.uri || '';
  const name = where.split(/[\\/]/).filter(Boolean).pop();
  return name || `image ${String(result.id).slice(0, 8)}`;
}

export function formatScore(value) {
  return typeof value === 'number' ? value.toFixed(3) : '–';
}

function previewSource(preview) {
  if (!preview) return null;
  return /^(data|https?):/.test(preview) ? preview : `data:image/jpeg;base64,${preview}`;
}

// The picture fitted into its frame (the frame is a CSS size container), box drawn over it.
export function picture(result, {showBox = true} = {}) {
  const frame = el('div', 'frame');
  const pic = el('div', 'pic');
  const ratio = result.width && result.height ? result.width / result.height : null;
  if (ratio) {
    pic.style.aspectRatio = `${result.width} / ${result.height}`;
    pic.style.width = `min(100cqw, calc(100cqh * ${ratio.toFixed(6)}))`;
  } else {
    pic.classList.add('unsized');
  }
  const source = previewSource(result.preview);
  if (source) {
    const img = el('img');
    img.alt = fileName(result);
    img.src = source;
    img.draggable = false;
    pic.append(img);
  } else {
    pic.append(el('span', 'no-preview', 'no preview stored'));
  }
  if (showBox && result.box && ratio) {
    const [x1, y1, x2, y2] = result.box;
    const box = el('span', 'box');
    const clamp = v => Math.min(100, Math.max(0, v));
    box.style.left = `${clamp(100 * x1 / result.width)}%`;
    box.style.top = `${clamp(100 * y1 / result.height)}%`;
    box.style.width = `${clamp(100 * (x2 - x1) / result.width)}%`;
    box.style.height = `${clamp(100 * (y2 - y1) / result.height)}%`;
    box.title = `[${result.box.map(v => Math.round(v)).join(', ')}]`;
    pic.append(box);
  }
  frame.append(pic);
  return frame;
}

const THUMB = 'M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06' +
  'L14.17 1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05' +
  'c.09-.23.14-.47.14-.73v-2z';

export function thumbIcon(down = false) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  if (down) svg.setAttribute('transform', 'rotate(180)');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', THUMB);
  svg.append(path);
  return svg;
}

// A result card: picture and box, score, file name, and the two vote buttons.
// `vote` is the current vote (1, -1 or 0); the buttons carry data-vote for the page's handler.
export function card(result, index, vote = 0) {
  const node = el('article', 'card');
  node.tabIndex = 0;
  node.setAttribute('role', 'listitem');
  node.dataset.id = result.id;
  node.dataset.index = String(index);
  node.setAttribute('aria-label', `${fileName(result)}, score ${formatScore(result.score)}`);
  node.append(picture(result));
  const meta = el('div', 'meta');
  meta.append(el('span', 'score', formatScore(result.score)));
  const name = el('span', 'name', fileName(result));
  name.title = result.paths.join('\n') || result.id;
  meta.append(name);
  node.append(meta);
  const votes = el('div', 'votes');
  for (const [value, label] of [[1, 'Relevant'], [-1, 'Not relevant']]) {
    const button = el('button', value > 0 ? 'vote up' : 'vote down');
    button.type = 'button';
    button.dataset.vote = String(value);
    button.title = label;
    button.setAttribute('aria-label', label);
    button.setAttribute('aria-pressed', String(vote === value));
    button.append(thumbIcon(value < 0));
    votes.append(button);
  }
  node.append(votes);
  return node;
}
