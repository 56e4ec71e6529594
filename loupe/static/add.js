// "Add images": dropped or picked files are sent as bytes to POST /index, a few per request,
// with a progress bar and one line per file saying what happened to it.
import {PageError, contentId, fileToBase64, itemProblem, plainWords, post} from './api.js';
import {el} from './cards.js';

const $ = id => document.getElementById(id);
const BATCH_FILES = 4;
const BATCH_BYTES = 16 * 1024 * 1024;
const IMAGE_NAME = /\.(jpe?g|png|webp|bmp|gif|tiff?|heic|heif|avif)$/i;

let page = null;
let busy = false;
const queue = [];

export function setupAdd(handlers) {
  page = handlers;
  $('add-files').addEventListener('change', event => {
    const files = [...event.target.files];
    event.target.value = '';
    addFiles(files);
  });
}

// "album=holiday, place=rome" -> {album: 'holiday', place: 'rome'}
function parseTags(text) {
  const tags = {};
  for (const part of text.split(',').map(s => s.trim()).filter(Boolean)) {
    const at = part.indexOf('=');
    if (at <= 0) throw new PageError(`Tags are written name=value, separated by commas; “${part}” is not.`);
    tags[part.slice(0, at).trim()] = part.slice(at + 1).trim();
  }
  return tags;
}

function log(kind, name, text) {
  const line = el('li', kind);
  line.append(el('span', 'file', name), el('span', 'what', text));
  $('add-log').append(line);
}

export async function addFiles(files) {
  if (!files.length) return;
  page.clearError();
  let tags;
  try {
    tags = parseTags($('add-tags').value);
  } catch (error) {
    page.showError(error);
    return;
  }
  queue.push({files, tags});
  if (busy) return;
  busy = true;
  try {
    while (queue.length) {
      const job = queue.shift();
      await addJob(job.files, job.tags);
    }
  } finally {
    busy = false;
  }
}

async function addJob(files, tags) {
  const progress = $('add-progress');
  const counts = {added: 0, skipped: 0, failed: 0};
  let done = 0;
  progress.hidden = false;
  progress.max = files.length;
  progress.value = 0;
  $('add-log').replaceChildren();
  const status = () => {
    $('add-status').textContent = `${done} of ${files.length} files: ${counts.added} added, ` +
      `${counts.skipped} already in the collection, ${counts.failed} failed`;
  };
  const finish = (n = 1) => {
    done += n;
    progress.value = done;
    status();
  };
  status();
  const seen = new Map();
  let batch = [], bytes = 0;
  const flush = async () => {
    if (!batch.length) return;
    const items = batch;
    batch = [];
    bytes = 0;
    try {
      const result = await sendBatch(items, tags);
      for (const {item, kind, text} of result) {
        counts[kind] += 1;
        log(kind, item.file.name, text);
      }
    } catch (error) {
      if (!(error instanceof PageError)) throw error;
      for (const item of items) {
        counts.failed += 1;
        log('failed', item.file.name, error.message);
      }
      if (!error.status) page.showError(error);  // unreachable: the rest would fail the same way
    }
    finish(items.length);
  };
  for (const file of files) {
    if (!(file.type.startsWith('image/') || IMAGE_NAME.test(file.name))) {
      counts.failed += 1;
      log('failed', file.name, 'not an image file, not sent');
      finish();
      continue;
    }
    if (!file.size) {
      counts.failed += 1;
      log('failed', file.name, 'empty file (0 bytes)');
      finish();
      continue;
    }
    let blob, id;
    try {
      blob = await fileToBase64(file);
      id = await contentId(blob);
    } catch (error) {
      counts.failed += 1;
      log('failed', file.name, error instanceof PageError ? error.message : 'could not be read');
      finish();
      continue;
    }
    if (id && seen.has(id)) {
      counts.skipped += 1;
      log('skipped', file.name, `the same picture as ${seen.get(id)}`);
      finish();
      continue;
    }
    if (id) seen.set(id, file.name);
    batch.push({file, blob, id});
    bytes += blob.length;
    if (batch.length >= BATCH_FILES || bytes >= BATCH_BYTES) await flush();
  }
  await flush();
  $('add-status').textContent = `Done: ${counts.added} added, ${counts.skipped} already in the ` +
    `collection, ${counts.failed} failed (of ${files.length} files).`;
}

// Ask which are indexed already (POST /exists), send the rest (POST /index); one outcome a file.
async function sendBatch(items, tags) {
  const out = [];
  let fresh = items;
  const ids = items.map(i => i.id).filter(Boolean);
  if (ids.length) {
    const known = await post('/exists', ids.map(id => ({id})), {});
    const indexed = new Set(known.filter(d => d.status === 'indexed').map(d => d.id));
    fresh = items.filter(i => !indexed.has(i.id));
    for (const item of items) {
      if (indexed.has(item.id)) out.push({item, kind: 'skipped', text: 'already in the collection'});
    }
  }
  if (!fresh.length) return out;
  const docs = fresh.map(i => ({...(i.id ? {id: i.id} : {}), blob: i.blob, uri: i.file.name, tags}));
  const answer = await post('/index', docs, {});
  fresh.forEach((item, n) => {
    const doc = (item.id && answer.find(d => d.id === item.id)) || answer[n];
    const problem = doc ? itemProblem(doc) : 'the service did not answer for this file';
    if (problem || (doc && doc.status === 'error')) {
      out.push({item, kind: 'failed', text: plainWords(problem || 'not indexed')});
    } else {
      const size = doc.width && doc.height ? ` (${doc.width} × ${doc.height})` : '';
      out.push({item, kind: 'added', text: `added${size}`});
    }
  });
  return out;
}
