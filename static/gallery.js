// Gallery and image pages: upload (picker, drop, paste) with progress,
// copy link formats, delete without reload, "Load more".
import './page.js';
import { ApiError, NETWORK_LOST, api, csrfToken, route } from './api.js';
import { announce, copyText } from './clipboard.js';
import { formatLink } from './links.js';
import { describe } from './upload-errors.js';

const MAX_PARALLEL = 3;
const main = document.getElementById('main');
const grid = document.querySelector('[data-grid]');
const empty = document.querySelector('[data-empty]');
const countEl = document.querySelector('[data-gallery-count]');
const usedEl = document.querySelector('[data-used]');
const tileTemplate = document.getElementById('tile-template');
const rowTemplate = document.getElementById('upload-row-template');
const uploadList = document.querySelector('[data-upload-list]');
const clearButton = document.querySelector('[data-clear-uploads]');

const config = main.dataset;
const maxBytes = Number(config.maxUploadBytes) || 0;
const allowedTypes = (config.allowedTypes || '').split(',').map((t) => t.trim().toLowerCase()).filter(Boolean);
const stats = { total: Number(config.total) || 0, used: Number(config.usedBytes) || 0 };
let cursor = config.nextCursor || '';

// ---------------------------------------------------------------- helpers

const mb = (bytes) => String(Number((bytes / 1048576).toFixed(1)));
const tooBig = () => (maxBytes ? `Too big (max ${mb(maxBytes)} MB)` : 'Too big');

/** Same style as Jinja's filesizeformat, which the server uses. */
export function humanSize(bytes) {
  if (bytes === 1) return '1 Byte';
  if (bytes < 1000) return `${bytes} Bytes`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let value = bytes;
  let i = -1;
  do {
    value /= 1000;
    i += 1;
  } while (value >= 1000 && i < units.length - 1);
  return `${value.toFixed(1)} ${units[i]}`;
}

function updateStats(deltaCount, deltaBytes) {
  stats.total = Math.max(0, stats.total + deltaCount);
  stats.used = Math.max(0, stats.used + deltaBytes);
  if (countEl) {
    countEl.textContent = `${stats.total} image${stats.total === 1 ? '' : 's'}`;
    countEl.dataset.count = String(stats.total);
  }
  if (usedEl) {
    const quota = Number(config.quotaBytes) || 0;
    usedEl.textContent = stats.used
      ? `${humanSize(stats.used)} used${quota ? ` of ${humanSize(quota)}` : ''}`
      : 'Nothing stored yet';
  }
  if (empty) empty.hidden = grid.children.length > 0 || Boolean(cursor);
}

const findTile = (id) => grid && grid.querySelector(`[data-image-id="${CSS.escape(id)}"]`);

/** Clone <template id="tile-template"> and fill it with `image` (API image JSON). */
function renderTile(image) {
  const tile = tileTemplate.content.firstElementChild.cloneNode(true);
  const id = String(image.id);
  Object.assign(tile.dataset, {
    imageId: id,
    url: image.public_url || '',
    filename: image.filename || '',
    width: image.width || '',
    height: image.height || '',
    sizeBytes: image.size_bytes || 0,
  });
  tile.querySelector('.tile-link').href = route('image', { id });
  const img = tile.querySelector('img');
  img.src = image.thumbnail_url || image.public_url;
  img.alt = image.filename || '';
  for (const dim of ['width', 'height']) {
    if (image[dim]) img.setAttribute(dim, image[dim]);
    else img.removeAttribute(dim);
  }
  const name = tile.querySelector('.tile-name');
  name.id = `tile-name-${id}`;
  name.textContent = image.filename || '';
  name.title = image.filename || '';
  for (const el of tile.querySelectorAll('[aria-describedby]')) el.setAttribute('aria-describedby', name.id);
  tile.querySelector('form[data-delete]').setAttribute('action', route('image_delete', { id }));
  return tile;
}

function tileImage(tile) {
  const d = tile.dataset;
  return { id: d.imageId, public_url: d.url, filename: d.filename, width: d.width, height: d.height };
}

// ------------------------------------------------------------ copy + delete

document.addEventListener('click', (event) => {
  const button = event.target.closest('[data-copy-format]');
  if (!button) return;
  const tile = button.closest('.tile');
  if (!tile) return;
  copyText(formatLink(button.dataset.copyFormat, tileImage(tile)));
  const menu = button.closest('details');
  if (menu) {
    menu.open = false;
    menu.querySelector('summary').focus();
  }
});

document.addEventListener('submit', async (event) => {
  const form = event.target;
  if (!form.matches('form[data-delete]')) return;
  event.preventDefault();
  const tile = form.closest('.tile');
  const source = tile ? tile.dataset : form.dataset;
  const id = source.imageId;
  if (!window.confirm(`Delete “${source.filename}”? This cannot be undone.`)) return;
  const button = form.querySelector('button');
  button.disabled = true;
  try {
    await api('DELETE', route('api.image', { id }));
  } catch (err) {
    if (!(err instanceof ApiError) || err.code !== 'not_found') {
      button.disabled = false;
      announce(`Could not delete: ${err.message}`, true);
      return;
    }
    // not_found: already gone; remove it here too.
  }
  if (!tile) {
    window.location.assign(form.dataset.redirect || route('gallery'));
    return;
  }
  const neighbour = tile.nextElementSibling || tile.previousElementSibling;
  tile.remove();
  updateStats(-1, -(Number(source.sizeBytes) || 0));
  (neighbour ? neighbour.querySelector('.tile-link') : main).focus();
  announce(`Deleted ${source.filename}`);
});

// ------------------------------------------------------------------ uploads

/** Where to PUT: a signed URL on the app itself (local storage) goes to the origin this
 * page came from, which is the same server even when the page was opened under another
 * name for it (127.0.0.1 for localhost) than PUBLIC_BASE_URL's; a bucket's URL as is. */
function uploadTarget(signed) {
  const url = new URL(signed, window.location.href);
  if (url.origin !== config.publicOrigin) return url.href;
  return window.location.origin + url.pathname + url.search;
}

/** Put the File to the presigned URL with XHR so we get upload progress. */
function putFile(ticket, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', uploadTarget(ticket.upload_url));
    for (const [name, value] of Object.entries(ticket.headers || {})) {
      if (!/^(content-length|host|connection)$/i.test(name)) xhr.setRequestHeader(name, value);
    }
    // Only our own origin may see the CSRF token (the local storage backend).
    if (new URL(uploadTarget(ticket.upload_url)).origin === window.location.origin) {
      xhr.setRequestHeader('X-CSRF-Token', csrfToken());
    }
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve();
        return;
      }
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        // S3 answers XML; keep the status only.
      }
      reject(new ApiError(
        xhr.status,
        (data && data.error) || `Upload failed (HTTP ${xhr.status})`,
        data && data.detail,
        (data && data.code) || '',
      ));
    };
    xhr.onerror = () => reject(new ApiError(0, NETWORK_LOST, null, 'network_lost'));
    xhr.onabort = xhr.onerror;
    xhr.ontimeout = xhr.onerror;
    xhr.send(file);
  });
}

/** The client's own checks, with the codes the server would answer. */
function precheck(file) {
  const limits = { allowed: allowedTypes, max_bytes: maxBytes };
  if (allowedTypes.length && file.type && !allowedTypes.includes(file.type.toLowerCase())) {
    return new ApiError(415, 'Not a supported image', limits, 'unsupported_type');
  }
  if (maxBytes && file.size > maxBytes) return new ApiError(413, tooBig(), limits, 'file_too_large');
  if (file.size === 0) return new ApiError(400, 'Empty file', null, 'empty_file');
  return null;
}

function setRow(job, state, text, hint = '', retry = false) {
  job.row.dataset.state = state;
  job.status.textContent = text;
  job.hint.textContent = hint;
  job.retry.hidden = !(state === 'error' && retry);
  if (clearButton) clearButton.hidden = !uploadList.querySelector('[data-state="done"]');
}

async function upload(job) {
  const { file } = job;
  job.progress.value = 0;
  setRow(job, 'active', 'Starting…');
  try {
    const problem = precheck(file);
    if (problem) throw problem;
    const ticket = await api('POST', route('api.upload_url'), {
      filename: file.name,
      content_type: file.type || 'application/octet-stream',
      size_bytes: file.size,
    });
    setRow(job, 'active', 'Uploading…');
    await putFile(ticket, file, (fraction) => { job.progress.value = Math.round(fraction * 100); });
    job.progress.removeAttribute('value'); // indeterminate while the server checks the bytes
    setRow(job, 'active', 'Checking…');
    const image = await api('POST', route('api.confirm'), { r2_key: ticket.r2_key });
    job.progress.value = 100;
    if (!findTile(String(image.id))) {
      grid.prepend(renderTile(image));
      updateStats(1, Number(image.size_bytes) || 0);
    }
    setRow(job, 'done', 'Uploaded');
  } catch (err) {
    job.progress.value = 0;
    const said = describe(err, { maxBytes, allowedTypes });
    setRow(job, 'error', said.status, said.hint, said.retry);
  }
}

const queue = [];
let running = 0;

function pump() {
  while (running < MAX_PARALLEL && queue.length) {
    const job = queue.shift();
    running += 1;
    upload(job).finally(() => {
      running -= 1;
      pump();
    });
  }
}

function enqueue(job) {
  setRow(job, 'queued', 'Waiting…');
  queue.push(job);
  pump();
}

function addFiles(files) {
  const stamp = Date.now();
  [...files].forEach((original, i) => {
    let file = original;
    if (!file.name) {
      const ext = (file.type.split('/')[1] || 'png').replace('jpeg', 'jpg').replace(/[^a-z0-9]/gi, '');
      file = new File([file], `pasted-${stamp}${i ? `-${i}` : ''}.${ext}`, { type: file.type || 'image/png' });
    }
    const row = rowTemplate.content.firstElementChild.cloneNode(true);
    row.querySelector('[data-name]').textContent = file.name;
    const job = {
      file,
      row,
      progress: row.querySelector('progress'),
      status: row.querySelector('[data-upload-status]'),
      hint: row.querySelector('[data-upload-hint]'),
      retry: row.querySelector('[data-upload-retry]'),
    };
    job.progress.setAttribute('aria-label', `Upload progress of ${file.name}`);
    job.retry.setAttribute('aria-label', `Retry ${file.name}`);
    job.retry.addEventListener('click', () => {
      job.row.tabIndex = -1;
      job.row.focus(); // the Retry button is about to hide
      enqueue(job);
    });
    uploadList.append(row);
    enqueue(job);
  });
}

function initUploads() {
  const input = document.querySelector('[data-upload-input]');
  const overlay = document.querySelector('[data-drop-overlay]');

  input.addEventListener('change', () => {
    addFiles(input.files);
    input.value = ''; // picking the same file again fires change again
  });

  const hasFiles = (e) => Boolean(e.dataTransfer) && [...e.dataTransfer.types].includes('Files');
  let depth = 0;
  const hide = () => {
    depth = 0;
    overlay.hidden = true;
  };
  document.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth += 1;
    overlay.hidden = false;
  });
  document.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  document.addEventListener('dragleave', (e) => {
    if (!hasFiles(e)) return;
    depth -= 1;
    if (depth <= 0) hide();
  });
  document.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    hide();
    addFiles(e.dataTransfer.files);
  });

  document.addEventListener('paste', (e) => {
    const data = e.clipboardData;
    if (!data) return;
    let files = [...(data.files || [])];
    if (!files.length) {
      files = [...(data.items || [])].filter((item) => item.kind === 'file').map((item) => item.getAsFile()).filter(Boolean);
    }
    if (!files.length) return; // plain text: let it paste normally
    e.preventDefault();
    addFiles(files);
  });

  if (clearButton) {
    clearButton.addEventListener('click', () => {
      for (const row of uploadList.querySelectorAll('[data-state="done"]')) row.remove();
      clearButton.hidden = true;
      input.focus();
    });
  }
}

// ---------------------------------------------------------------- load more

function initLoadMore() {
  const link = document.querySelector('[data-load-more]');
  if (!link) return;
  let busy = false;
  link.addEventListener('click', async (event) => {
    event.preventDefault();
    if (busy || !cursor) return;
    busy = true;
    link.setAttribute('aria-busy', 'true');
    const label = link.textContent;
    link.textContent = 'Loading…';
    try {
      const page = await api('GET', `${route('api.images')}?cursor=${encodeURIComponent(cursor)}&limit=50`);
      let first = null;
      for (const image of page.images || []) {
        if (findTile(String(image.id))) continue;
        const tile = renderTile(image);
        grid.append(tile);
        first = first || tile;
      }
      cursor = page.next_cursor || '';
      main.dataset.nextCursor = cursor;
      if (cursor) {
        link.href = `${route('gallery')}?cursor=${encodeURIComponent(cursor)}`;
      } else {
        link.closest('.more').remove();
        (first ? first.querySelector('.tile-link') : main).focus();
      }
      updateStats(0, 0);
    } catch (err) {
      announce(`Could not load more: ${err.message}`, true);
    } finally {
      busy = false;
      link.removeAttribute('aria-busy');
      link.textContent = label;
    }
  });
}

if (grid && tileTemplate && rowTemplate && uploadList) {
  initUploads();
  initLoadMore();
}
