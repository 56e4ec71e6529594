// The search page: text and example searches, result grid, detail view, votes and
// "more like these", keyboard navigation, and the tabs of the other views.
import {PageError, fileToBase64, itemProblem, post, setApiKey} from './api.js';
import {card, el, fileName, formatScore, picture, toResult} from './cards.js';
import {setupAdd, addFiles} from './add.js';
import {setupExplore} from './explore.js';

const $ = id => document.getElementById(id);

const state = {
  results: [],          // what the grid shows now
  ask: [],              // suggestions to vote on, after "more like these"
  votes: new Map(),     // image id -> {vote: 1 | -1, result}
  filter: new Map(),    // tag name -> Set of accepted values
  tags: new Map(),      // tag name -> Map(value key -> value) seen in results
  last: null,           // the last query, to run again when a filter changes
  sequence: 0,          // answers to older requests are dropped
  detail: null,         // {list, index} shown in the dialog
};

// ---- errors and status ---------------------------------------------------------------------

export function showError(error) {
  const box = $('error');
  const message = error instanceof PageError ? error.message
    : 'Something went wrong on this page. Reload it and try again.';
  if (!(error instanceof PageError)) console.warn(error);  // for a developer; not shown
  box.textContent = message;
  box.hidden = false;
  if (error instanceof PageError && error.status === 401) {
    $('key-form').hidden = false;
    $('api-key').focus();
  }
}

export function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

function setStatus(text) {
  $('status').textContent = text;
}

// ---- searching -----------------------------------------------------------------------------

function parameters(extra = {}) {
  const out = {limit: Number($('limit').value), with_preview: true, ...extra};
  if (state.filter.size) {
    out.filter = {};
    for (const [name, values] of state.filter) {
      const list = [...values];
      out.filter[name] = list.length === 1 ? list[0] : list;
    }
  }
  return out;
}

function describeFilter() {
  if (!state.filter.size) return '';
  const parts = [...state.filter].map(([k, vs]) => `${k}=${[...vs].join('|')}`);
  return `, tagged ${parts.join(', ')}`;
}

// A query is {kind, label, send(rerank)}; it is sent again, with the controls as they are
// then, when a tag filter, the rerank toggle or the number of results changes.
async function run(query) {
  clearError();
  state.last = query;
  const mine = ++state.sequence;
  const grid = $('results');
  const rerank = query.kind !== 'recommend' && $('rerank').checked;
  grid.setAttribute('aria-busy', 'true');
  setStatus(query.kind === 'recommend' ? 'Ranking by your votes…' : 'Searching…');
  try {
    const answer = await query.send(rerank);
    if (mine !== state.sequence) return;
    show(answer.results, answer.ask || [],
         `${query.label}${rerank ? ', reranked' : ''}${describeFilter()}`);
  } catch (error) {
    if (mine !== state.sequence) return;
    if (!(error instanceof PageError)) throw error;
    showError(error);
    setStatus(state.results.length ? 'The results below are from the previous search.' : '');
  } finally {
    if (mine === state.sequence) grid.removeAttribute('aria-busy');
  }
}

async function searchAnswer(doc, params) {
  const data = await post('/search', [doc], params);
  const problem = itemProblem(data[0]);
  if (problem) throw new PageError(problem);
  return {results: ((data[0] && data[0].matches) || []).map(toResult)};
}

function searchText(text) {
  if (!text.trim()) {
    clearError();
    showError(new PageError('Type what you are looking for first (the query is empty).'));
    return;
  }
  run({
    kind: 'text', label: `for “${text.trim()}”`,
    send: rerank => searchAnswer({text}, parameters({rerank})),
  });
}

async function searchExample(file) {
  if (!file) return;
  let blob;
  try {
    blob = await fileToBase64(file);
  } catch (error) {
    showError(error);
    return;
  }
  showTab('search');
  run({
    kind: 'example', label: `like ${file.name}`,
    send: async rerank => {
      try {
        return await searchAnswer({blob}, parameters({rerank}));
      } catch (error) {
        if (error instanceof PageError && (!error.status || error.status === 400)) {
          throw new PageError(`${file.name} could not be used as an example: ${error.message}`);
        }
        throw error;
      }
    },
  });
}

// "More like these": the service ranks the collection by the votes (POST /recommend).
function recommendRequest(likes, dislikes) {
  const params = parameters({like: likes, dislike: dislikes, ask: ASK});
  return post('/recommend', [{}], params);
}

function recommend(likes, dislikes, label) {
  run({
    kind: 'recommend', label,
    send: async () => recommendAnswer(await recommendRequest(likes, dislikes)),
  });
}

const ASK = 6;  // suggestions to vote on next

// /recommend answers one document: its matches are the ranking, and the ones marked `ask`
// are the images whose vote would teach the model most.
function recommendAnswer(data) {
  const doc = data[0] || {};
  const problem = itemProblem(doc);
  if (problem) throw new PageError(problem);
  const matches = doc.matches || [];
  return {results: matches.filter(m => !m.ask).map(toResult),
          ask: matches.filter(m => m.ask).map(toResult)};
}

// ---- showing results -----------------------------------------------------------------------

function show(results, ask, label) {
  state.results = results;
  state.ask = ask;
  const count = results.length;
  setStatus(count ? `${count} result${count === 1 ? '' : 's'} ${label}`
                  : `No results ${label}.` + (state.filter.size ? ' Try without the tag filter.'
                    : ' Is the collection empty? Add pictures under “Add images”.'));
  fillGrid($('results'), results);
  $('ask').hidden = !ask.length;
  fillGrid($('ask-cards'), ask);
  learnTags(results);
}

function fillGrid(grid, results) {
  grid.replaceChildren(...results.map((r, i) => card(r, i, voteOf(r.id))));
}

function voteOf(id) {
  const entry = state.votes.get(id);
  return entry ? entry.vote : 0;
}

function learnTags(results) {
  for (const r of results) {
    for (const [name, value] of Object.entries(r.tags || {})) {
      if (value === null || typeof value === 'object') continue;  // filters match plain values
      if (!state.tags.has(name)) state.tags.set(name, new Map());
      state.tags.get(name).set(`${typeof value}:${value}`, value);
    }
  }
  renderFilters();
}

function renderFilters() {
  const chips = [];
  for (const [name, values] of [...state.tags].sort()) {
    for (const value of values.values()) {
      const chip = el('button', 'chip', `${name}=${value}`);
      chip.type = 'button';
      const on = state.filter.has(name) && state.filter.get(name).has(value);
      chip.setAttribute('aria-pressed', String(on));
      chip.addEventListener('click', () => toggleFilter(name, value));
      chips.push(chip);
    }
  }
  $('filter-chips').replaceChildren(...chips);
  $('filters').hidden = !chips.length;
}

function toggleFilter(name, value) {
  const values = state.filter.get(name) || new Set();
  if (values.has(value)) values.delete(value); else values.add(value);
  if (values.size) state.filter.set(name, values); else state.filter.delete(name);
  renderFilters();
  if (state.last) run(state.last);
}

// ---- votes ---------------------------------------------------------------------------------

function findResult(id) {
  return state.results.find(r => r.id === id) || state.ask.find(r => r.id === id)
    || (state.votes.get(id) || {}).result;
}

function setVote(id, value) {
  const current = voteOf(id);
  if (current === value) state.votes.delete(id);
  else state.votes.set(id, {vote: value, result: findResult(id)});
  const now = voteOf(id);
  for (const button of document.querySelectorAll('button.vote')) {
    const owner = button.closest('[data-id]');
    if (owner && owner.dataset.id === id) {
      button.setAttribute('aria-pressed', String(Number(button.dataset.vote) === now));
    }
  }
  renderVotes();
}

function renderVotes() {
  const likes = [...state.votes.values()].filter(v => v.vote > 0).length;
  const dislikes = state.votes.size - likes;
  $('votes').hidden = !state.votes.size;
  $('vote-count').textContent = `${likes} relevant, ${dislikes} not relevant`;
  $('more-like-these').disabled = !likes;
  $('more-like-these').title = likes ? '' : 'Mark at least one result as relevant';
}

function moreLikeThese() {
  const likes = [], dislikes = [];
  for (const [id, {vote}] of state.votes) (vote > 0 ? likes : dislikes).push(id);
  if (!likes.length) {
    showError(new PageError('Mark at least one result as relevant first.'));
    return;
  }
  recommend(likes, dislikes, `like your ${likes.length} relevant` +
    (dislikes.length ? ` and unlike your ${dislikes.length} not relevant` : '') + ' images');
}

// "More like this" for one image: /recommend with one like; a service without /recommend
// gets the image's stored preview as an example search instead.
function moreLikeThis(result) {
  run({
    kind: 'recommend', label: `like ${fileName(result)}`,
    send: async () => {
      try {
        return recommendAnswer(await recommendRequest([result.id], []));
      } catch (error) {
        if (!(error instanceof PageError && [404, 405].includes(error.status) && result.preview)) throw error;
        return searchAnswer({blob: result.preview}, parameters());
      }
    },
  });
}

// ---- the detail view -----------------------------------------------------------------------

function openDetail(list, index) {
  const result = list[index];
  if (!result) return;
  state.detail = {list, index};
  const dialog = $('detail');
  dialog.querySelector('.detail-picture').replaceChildren(picture(result));
  dialog.querySelector('.detail-name').textContent = fileName(result);
  const facts = [];
  const fact = (term, ...values) => {
    facts.push(el('dt', '', term));
    for (const value of values) facts.push(el('dd', '', value));
  };
  fact(result.paths.length > 1 ? 'Paths' : 'Path', ...(result.paths.length ? result.paths : ['–']));
  fact('Score', formatScore(result.score));
  const order = ['chunk', 'rerank', 'final'];  // the pipeline's stages, first to last
  const rank = k => (order.includes(k) ? order.indexOf(k) : order.length);
  const stages = Object.entries(result.scores || {}).sort((a, b) => rank(a[0]) - rank(b[0]));
  if (stages.length) fact('Per stage', ...stages.map(([k, v]) => `${k}: ${formatScore(v)}`));
  if (result.box) {
    const where = [result.boxSource, result.chunkKind && `${result.chunkKind} chunk`]
      .filter(Boolean).join(', ');
    fact('Box', `[${result.box.map(v => Math.round(v)).join(', ')}]${where ? ` from ${where}` : ''}`);
  }
  if (result.width && result.height) fact('Size', `${result.width} × ${result.height} px`);
  const tags = Object.entries(result.tags || {});
  fact('Tags', ...(tags.length ? tags.map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`) : ['none']));
  fact('Id', result.id);
  dialog.querySelector('.detail-facts').replaceChildren(...facts);
  dialog.dataset.id = result.id;
  for (const button of dialog.querySelectorAll('button.vote')) {
    button.dataset.vote = button.classList.contains('up') ? '1' : '-1';
    button.setAttribute('aria-pressed', String(Number(button.dataset.vote) === voteOf(result.id)));
  }
  dialog.querySelector('.prev').disabled = index === 0;
  dialog.querySelector('.next').disabled = index === list.length - 1;
  if (!dialog.open) dialog.showModal();
}

function closeDetail() {
  const dialog = $('detail');
  if (!dialog.open) return;
  dialog.close();
}

function stepDetail(step) {
  if (!state.detail) return;
  const {list, index} = state.detail;
  const next = index + step;
  if (next >= 0 && next < list.length) openDetail(list, next);
}

// ---- keyboard ------------------------------------------------------------------------------

// Arrow keys move between the cards of a grid, row by row as they are laid out.
function moveFocus(current, key) {
  const cards = [...current.parentElement.querySelectorAll('.card')];
  const at = cards.indexOf(current);
  let target = null;
  if (key === 'ArrowRight') target = cards[at + 1];
  else if (key === 'ArrowLeft') target = cards[at - 1];
  else if (key === 'Home') target = cards[0];
  else if (key === 'End') target = cards[cards.length - 1];
  else {
    const here = current.getBoundingClientRect();
    const down = key === 'ArrowDown';
    const rows = cards.filter(c => {
      const top = c.getBoundingClientRect().top;
      return down ? top > here.top + 1 : top < here.top - 1;
    });
    if (rows.length) {
      const rowTop = down ? Math.min(...rows.map(c => c.getBoundingClientRect().top))
                          : Math.max(...rows.map(c => c.getBoundingClientRect().top));
      const row = rows.filter(c => Math.abs(c.getBoundingClientRect().top - rowTop) < 1);
      const centre = here.left + here.width / 2;
      target = row.reduce((best, c) => {
        const r = c.getBoundingClientRect();
        const d = Math.abs(r.left + r.width / 2 - centre);
        return !best || d < best.d ? {c, d} : best;
      }, null).c;
    }
  }
  if (target) {
    target.focus();
    target.scrollIntoView({block: 'nearest'});
  }
}

function gridEvents(grid, list) {
  grid.addEventListener('click', event => {
    const button = event.target.closest('button.vote');
    const owner = event.target.closest('.card');
    if (!owner) return;
    if (button) setVote(owner.dataset.id, Number(button.dataset.vote));
    else openDetail(list(), Number(owner.dataset.index));
  });
  grid.addEventListener('keydown', event => {
    const owner = event.target.closest('.card');
    if (!owner) return;
    if (['ArrowRight', 'ArrowLeft', 'ArrowUp', 'ArrowDown', 'Home', 'End'].includes(event.key)) {
      event.preventDefault();
      moveFocus(owner, event.key);
    } else if ((event.key === 'Enter' || event.key === ' ') && event.target === owner) {
      event.preventDefault();
      openDetail(list(), Number(owner.dataset.index));
    }
  });
}

// ---- tabs, drops ---------------------------------------------------------------------------

const VIEWS = ['search', 'duplicates', 'map', 'add'];

export function showTab(view) {
  if (!VIEWS.includes(view)) view = 'search';
  for (const name of VIEWS) $(`view-${name}`).hidden = name !== view;
  for (const tab of document.querySelectorAll('[role=tab]')) {
    tab.setAttribute('aria-selected', String(tab.dataset.view === view));
  }
  if (location.hash.slice(1) !== view) history.replaceState(null, '', `#${view}`);
  document.body.dataset.view = view;
}

function currentView() {
  return document.body.dataset.view || 'search';
}

function hasFiles(event) {
  return event.dataTransfer && [...event.dataTransfer.types].includes('Files');
}

function setupDrops() {
  let depth = 0;
  const overlay = $('drop-overlay');
  window.addEventListener('dragenter', event => {
    if (!hasFiles(event)) return;
    depth += 1;
    $('drop-text').textContent = currentView() === 'add' ? 'Drop to add these images'
      : 'Drop a picture to search by example';
    overlay.hidden = false;
  });
  window.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) overlay.hidden = true;
  });
  window.addEventListener('dragover', event => {
    if (hasFiles(event)) event.preventDefault();
  });
  window.addEventListener('drop', event => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    overlay.hidden = true;
    const files = [...event.dataTransfer.files];
    if (currentView() === 'add') {
      addFiles(files);
    } else if (files.length) {
      if (files.length > 1) setStatus(`Searching with the first of ${files.length} pictures.`);
      searchExample(files[0]);
    }
  });
}

// ---- wiring --------------------------------------------------------------------------------

function setup() {
  $('search-form').addEventListener('submit', event => {
    event.preventDefault();
    searchText($('query').value);
  });
  $('query').addEventListener('keydown', event => {
    if (event.key === 'ArrowDown' && state.results.length) {
      event.preventDefault();
      $('results').querySelector('.card').focus();
    }
  });
  $('example-file').addEventListener('change', event => {
    const file = event.target.files[0];
    event.target.value = '';  // picking the same file again searches again
    searchExample(file);
  });
  gridEvents($('results'), () => state.results);
  gridEvents($('ask-cards'), () => state.ask);
  $('more-like-these').addEventListener('click', moreLikeThese);
  for (const control of [$('rerank'), $('limit')]) {
    control.addEventListener('change', () => {
      if (state.last) run(state.last);
    });
  }
  $('clear-votes').addEventListener('click', () => {
    state.votes.clear();
    for (const b of document.querySelectorAll('button.vote')) b.setAttribute('aria-pressed', 'false');
    renderVotes();
  });

  const dialog = $('detail');
  dialog.querySelector('.close').addEventListener('click', closeDetail);
  dialog.querySelector('.prev').addEventListener('click', () => stepDetail(-1));
  dialog.querySelector('.next').addEventListener('click', () => stepDetail(1));
  dialog.querySelector('.more-like-this').addEventListener('click', () => {
    const {list, index} = state.detail;
    closeDetail();
    moreLikeThis(list[index]);
  });
  for (const button of dialog.querySelectorAll('button.vote')) {
    button.addEventListener('click', () => setVote(dialog.dataset.id, Number(button.dataset.vote)));
  }
  dialog.addEventListener('keydown', event => {
    if (event.key === 'ArrowLeft') stepDetail(-1);
    else if (event.key === 'ArrowRight') stepDetail(1);
  });
  dialog.addEventListener('click', event => {
    if (event.target === dialog) closeDetail();  // a click on the backdrop
  });
  dialog.addEventListener('close', () => {
    const {list, index} = state.detail || {};
    const grid = list === state.ask ? $('ask-cards') : $('results');
    const back = grid.querySelector(`.card[data-index="${index}"]`);
    if (back) back.focus();
  });

  $('key-form').addEventListener('submit', event => {
    event.preventDefault();
    setApiKey($('api-key').value.trim());
    $('key-form').hidden = true;
    clearError();
    if (state.last) run(state.last);
  });
  for (const tab of document.querySelectorAll('[role=tab]')) {
    tab.addEventListener('click', () => showTab(tab.dataset.view));
  }
  window.addEventListener('hashchange', () => showTab(location.hash.slice(1)));
  setupDrops();
  setupAdd({showError, clearError});
  setupExplore({showError, clearError, openDetail});
  showTab(location.hash.slice(1) || 'search');
  $('query').focus();
}

window.addEventListener('unhandledrejection', event => {
  event.preventDefault();
  showError(event.reason);
});

setup();
