// The service's public HTTP endpoints, exactly as any other client calls them:
// POST /<endpoint> with JSON {"data": [documents], "parameters": {...}}.
// Every failure becomes a PageError whose message is plain words for the page.

export class PageError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.status = status;
  }
}

const BUSY = 'The service is busy right now. Try again in a moment.';
const KEY = 'loupe-api-key';

// A service started with an API key wants it on every call; the page asks once per tab.
export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key); else sessionStorage.removeItem(KEY);
}

export async function post(endpoint, docs, parameters = {}) {
  let response;
  const headers = {'Content-Type': 'application/json', 'Accept': 'application/json'};
  const key = sessionStorage.getItem(KEY);
  if (key) headers['X-API-Key'] = key;
  try {
    response = await fetch(endpoint, {
      method: 'POST',
      headers,
      body: JSON.stringify({data: docs, parameters}),
    });
  } catch (e) {
    throw new PageError('The service cannot be reached. Is "loupe serve" still running?');
  }
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  if (!response.ok) {
    throw new PageError(httpProblem(endpoint, response.status, body), response.status);
  }
  if (!body || !Array.isArray(body.data)) {
    throw new PageError(`The service sent an answer to ${endpoint} that this page cannot read.`);
  }
  return body.data;
}

function httpProblem(endpoint, status, body) {
  if (status === 401) return 'This service needs an API key: enter it at the top of the page.';
  // 405: the page's own folder answers GET only, so an endpoint the service lacks lands there.
  if (status === 404 || status === 405) return `This service has no ${endpoint} endpoint.`;
  if (status === 413) return 'That is too much to send at once: send fewer or smaller files.';
  if (status === 429 || status === 503 || status === 504) return BUSY;
  const said = serviceMessage(body);
  if (status >= 400 && status < 500) {
    return said || `The service refused the request (HTTP ${status}).`;
  }
  return said ? `The service failed: ${said}`
              : `The service failed to answer (HTTP ${status}); its log says why.`;
}

// The reason a service gave, whatever shape the error body has (FastAPI's "detail" string or
// list, or {"error": ...}), made fit to show.
function serviceMessage(body) {
  if (!body) return '';
  let said = body.detail ?? body.error ?? body.message ?? (body.header && body.header.status &&
    body.header.status.description) ?? '';
  if (Array.isArray(said)) {
    said = said.map(item => (item && item.msg) ? `${(item.loc || []).slice(1).join('.')}: ${item.msg}`
                                              : String(item)).join('; ');
  } else if (typeof said === 'object') {
    said = said.message || said.error || JSON.stringify(said);
  }
  return plainWords(String(said));
}

// Messages from the service can carry Python's noise: a traceback, an object address.
// Keep the sentence a person needs.
export function plainWords(message) {
  let text = String(message || '');
  const traceback = text.indexOf('Traceback');
  if (traceback >= 0) {
    const lines = text.slice(traceback).trim().split('\n');
    text = (text.slice(0, traceback) + ' ' + lines[lines.length - 1]).trim();
  }
  text = text.replace(/:?\s*cannot identify image file <[^>]*>/g, '')
             .replace(/<[^>]* at 0x[0-9a-f]+>/gi, '')
             .replace(/\s+/g, ' ').trim();
  return text.length > 400 ? text.slice(0, 397) + '…' : text;
}

// A document's own error (the request went through, this item did not).
export function itemProblem(doc) {
  return doc && doc.error ? plainWords(doc.error) : '';
}

export function fileToBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      resolve(url.slice(url.indexOf(',') + 1));
    };
    reader.onerror = () => reject(new PageError(`${file.name} could not be read from your disk.`));
    reader.readAsDataURL(file);
  });
}

// The id the Python client gives an image: the first 32 hex digits of its bytes' SHA-256, so
// the same picture is indexed once whatever its name. Browsers offer SHA-256 only on secure
// origins (localhost counts); elsewhere the service assigns the id.
export async function contentId(base64) {
  if (!(globalThis.crypto && crypto.subtle)) return null;
  const bytes = Uint8Array.from(atob(base64), c => c.charCodeAt(0));
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest.slice(0, 16), b => b.toString(16).padStart(2, '0')).join('');
}
