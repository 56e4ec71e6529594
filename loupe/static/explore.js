// The explore views: duplicate groups (POST /duplicates) and a map of the collection
// (POST /map), both drawn from the service's answers with the stored previews.
import {PageError, itemProblem, post} from './api.js';
import {el, fileName, formatScore, picture, toResult} from './cards.js';

const $ = id => document.getElementById(id);
let page = null;

export function setupExplore(handlers) {
  page = handlers;
  $('dup-form').addEventListener('submit', event => {
    event.preventDefault();
    findDuplicates();
  });
  $('map-form').addEventListener('submit', event => {
    event.preventDefault();
    drawMap();
  });
  setupPanZoom($('map'));
}

async function busy(statusId, text, work) {
  page.clearError();
  $(statusId).textContent = text;
  try {
    await work();
  } catch (error) {
    if (!(error instanceof PageError)) throw error;
    $(statusId).textContent = '';
    page.showError(error);
  }
}

// ---- duplicates ----------------------------------------------------------------------------

// One document answers: its matches are the members of every group (`group` numbers them),
// the one to keep first; the others say how they joined (`joined_by`, similarity as score).
function groupsFrom(data) {
  const doc = data[0] || {};
  const problem = itemProblem(doc);
  if (problem) throw new PageError(problem);
  const groups = new Map();
  for (const m of doc.matches || []) {
    const key = m.group ?? 0;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push({...toResult(m), joinedBy: m.joined_by || null,
                          similarity: m.joined_by ? m.score : null});
  }
  return [...groups.keys()].sort((a, b) => a - b).map(k => ({members: groups.get(k)}));
}

function findDuplicates() {
  const method = $('dup-method').value;
  return busy('dup-status', 'Looking for duplicates…', async () => {
    const groups = groupsFrom(await post('/duplicates', [{}], {method, with_preview: true}));
    const images = groups.reduce((n, g) => n + g.members.length, 0);
    $('dup-status').textContent = groups.length
      ? `${groups.length} group${groups.length === 1 ? '' : 's'} of duplicates (${images} images); ` +
        'the first of each group is the one to keep.'
      : 'No duplicates found.';
    $('dup-groups').replaceChildren(...groups.map((group, g) => groupRow(group, g)));
  });
}

function groupRow(group, g) {
  const row = el('section', 'dup-group');
  const kinds = [...new Set(group.members.map(m => m.joinedBy).filter(Boolean))];
  row.append(el('h3', '', `Group ${g + 1}: ${group.members.length} images` +
    (kinds.length ? ` (${kinds.join(', ')})` : '')));
  const strip = el('div', 'dup-members');
  group.members.forEach((member, i) => {
    const item = el('figure', 'dup-member' + (i === 0 ? ' keep' : ''));
    item.tabIndex = 0;
    item.dataset.id = member.id;
    item.append(picture(member, {showBox: false}));
    const caption = el('figcaption');
    caption.append(el('b', '', i === 0 ? 'keep' : 'duplicate'));
    if (member.width && member.height) caption.append(` ${member.width} × ${member.height}`);
    if (member.joinedBy) {
      const how = member.joinedBy === 'exact' ? 'exact: the same bytes'
        : `${member.joinedBy}: ${member.joinedBy === 'perceptual'
          ? `${Math.round((1 - member.similarity) * 64)} of 64 hash bits differ`  // similarity = 1 - bits / 64
          : `cosine similarity ${formatScore(member.similarity)}`}`;
      caption.append(el('div', 'joined', how));
    }
    for (const path of member.paths.length ? member.paths : [fileName(member)]) {
      caption.append(el('div', 'path', path));
    }
    item.append(caption);
    item.addEventListener('click', () => page.openDetail(group.members, i));
    item.addEventListener('keydown', event => {
      if (event.key === 'Enter') page.openDetail(group.members, i);
    });
    strip.append(item);
  });
  row.append(strip);
  return row;
}

// ---- map -----------------------------------------------------------------------------------

const PLANE = 1000;  // the map's coordinates are drawn on a PLANE x PLANE square
const THUMB = 56;

// The answer: one document whose matches are the (sampled) images, each with its `position`
// [x, y] in [0, 1] and its thumbnail as the preview; with a query, its similarity in
// scores.query. The document's tags say how many images there are in all (`total`).
function pointsFrom(data) {
  const doc = data[0] || {};
  const problem = itemProblem(doc);
  if (problem) throw new PageError(problem);
  const points = (doc.matches || []).map(m => {
    const [x, y] = m.position || [];
    const similarity = (m.scores || {}).query;
    return {...toResult(m), x: Number(x), y: Number(y), similarity};
  }).filter(p => Number.isFinite(p.x) && Number.isFinite(p.y));
  return {points, total: Number((doc.tags || {}).total) || points.length};
}

function drawMap() {
  const text = $('map-query').value.trim();
  return busy('map-status', 'Placing the images…', async () => {
    const {points, total} = pointsFrom(await post('/map', [text ? {text} : {}], {}));
    const plane = el('div', 'plane');
    const scores = points.map(p => p.similarity).filter(s => typeof s === 'number');
    const low = Math.min(...scores), high = Math.max(...scores);
    points.forEach((point, i) => {
      const spot = el('button', 'spot');
      spot.type = 'button';
      spot.title = point.paths.join('\n') || point.id;
      spot.style.left = `${point.x * (PLANE - THUMB)}px`;
      spot.style.top = `${point.y * (PLANE - THUMB)}px`;
      if (scores.length && high > low && typeof point.similarity === 'number') {
        const t = (point.similarity - low) / (high - low);
        spot.style.borderColor = `hsl(${Math.round(220 - 220 * t)} 85% 50%)`;
      }
      spot.append(picture(point, {showBox: false}));
      spot.addEventListener('click', event => {
        if (!$('map').dataset.dragged) page.openDetail(points, i);
        event.stopPropagation();
      });
      plane.append(spot);
    });
    $('map').replaceChildren(plane);
    fitMap($('map'));
    const shown = points.length < total ? `${points.length} of ${total} images (a sample)`
                                        : `${points.length} images`;
    $('map-status').textContent = shown +
      (text && scores.length ? `, framed from blue (least like “${text}”) to red (most like it)` : '') +
      '. Drag to pan, use the wheel to zoom, click a picture to open it.';
  });
}

function fitMap(map) {
  const scale = Math.min(map.clientWidth, map.clientHeight) / PLANE || 1;
  map.view = {x: (map.clientWidth - PLANE * scale) / 2, y: (map.clientHeight - PLANE * scale) / 2, scale};
  applyView(map);
}

function applyView(map) {
  const plane = map.querySelector('.plane');
  if (!plane || !map.view) return;
  const {x, y, scale} = map.view;
  plane.style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
}

function setupPanZoom(map) {
  let drag = null;
  map.addEventListener('pointerdown', event => {
    if (!map.view) return;
    drag = {x: event.clientX, y: event.clientY, view: {...map.view}, moved: false};
    delete map.dataset.dragged;
  });
  window.addEventListener('pointermove', event => {
    if (!drag) return;
    const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 4) drag.moved = true;
    if (!drag.moved) return;
    map.view = {...drag.view, x: drag.view.x + dx, y: drag.view.y + dy};
    applyView(map);
  });
  window.addEventListener('pointerup', () => {
    if (drag && drag.moved) map.dataset.dragged = '1';
    drag = null;
  });
  map.addEventListener('wheel', event => {
    if (!map.view) return;
    event.preventDefault();
    const box = map.getBoundingClientRect();
    const px = event.clientX - box.left, py = event.clientY - box.top;
    const factor = Math.exp(-event.deltaY / 500);
    const scale = Math.min(8, Math.max(0.1, map.view.scale * factor));
    const k = scale / map.view.scale;
    map.view = {scale, x: px - (px - map.view.x) * k, y: py - (py - map.view.y) * k};
    applyView(map);
  }, {passive: false});
}
