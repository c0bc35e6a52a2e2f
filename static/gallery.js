// Gallery and image pages: upload (picker, drop, paste, share target) with progress in
// a docked tray, copy link formats, delete without reload, "Load more".
import { ApiError, NETWORK_LOST, api, csrfToken, route } from './api.js';
import { announce, copyText } from './clipboard.js';
import { formatLink } from './links.js';
import { describe } from './upload-errors.js';

const MAX_PARALLEL = 3;
const $ = (selector) => document.querySelector(selector);
const main = document.getElementById('main');
const grid = $('[data-grid]');
const empty = $('[data-empty]');
const countEl = $('[data-gallery-count]');
const usedEl = $('[data-used]');
const meter = $('[data-meter]');
const tileTemplate = document.getElementById('tile-template');
const rowTemplate = document.getElementById('upload-row-template');
const tray = $('[data-tray]');
const uploadList = $('[data-upload-list]');
const clearButton = $('[data-clear-uploads]');
const picker = $('[data-expiry]');

const config = main.dataset;
const maxBytes = Number(config.maxUploadBytes) || 0;
const quota = Number(config.quotaBytes) || 0;
const allowedTypes = (config.allowedTypes || '').split(',').map((t) => t.trim().toLowerCase()).filter(Boolean);
const stats = { total: Number(config.total) || 0, used: Number(config.usedBytes) || 0 };
let cursor = config.nextCursor || '';

// ---------------------------------------------------------------- helpers

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
    usedEl.textContent = stats.used
      ? `${humanSize(stats.used)} used${quota ? ` of ${humanSize(quota)}` : ''}`
      : 'Nothing stored yet';
  }
  if (meter) {
    meter.value = stats.used;
    meter.textContent = `${humanSize(stats.used)} of ${humanSize(quota)}`;
  }
  if (empty && grid) empty.hidden = grid.children.length > 0 || Boolean(cursor);
}

const findTile = (id) => grid && grid.querySelector(`[data-image-id="${CSS.escape(id)}"]`);

/** The tile's share of its row (see templates/_tile.html): ratio × 10, 4–30. */
function aspect(w, h) {
  return w && h ? String(Math.min(30, Math.max(4, Math.round((w / h) * 10)))) : '13';
}

/** Clone <template id="tile-template"> and fill it with `image` (API image JSON). The
 * thumbnail's own size when the server made one, so the space is reserved before it loads. */
function renderTile(image) {
  const tile = tileTemplate.content.firstElementChild.cloneNode(true);
  const id = String(image.id);
  const w = Number(image.thumbnail_width || image.width) || 0;
  const h = Number(image.thumbnail_height || image.height) || 0;
  Object.assign(tile.dataset, {
    imageId: id,
    url: image.public_url || '',
    pageUrl: image.page_url || '',
    filename: image.filename || '',
    width: image.width || '',
    height: image.height || '',
    sizeBytes: image.size_bytes || 0,
    ar: aspect(w, h),
  });
  const detail = route('image', { id });
  tile.querySelector('.tile-link').href = detail;
  tile.querySelector('[data-details]').href = detail;
  tile.querySelector('[data-open-original]').href = image.public_url || '';
  const img = tile.querySelector('img');
  for (const [dim, value] of [['width', w], ['height', h]]) {
    if (w && h) img.setAttribute(dim, value);
    else img.removeAttribute(dim);
  }
  img.src = image.thumbnail_url || image.public_url;
  tile.querySelector('[data-animated]').hidden = !image.animated; // the thumbnail is its first frame
  if (image.expires_at) import('./expiry.js').then((m) => m.show(tile, image.expires_at));
  img.alt = image.filename || '';
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
  return { id: d.imageId, public_url: d.url, page_url: d.pageUrl, filename: d.filename, width: d.width, height: d.height };
}

// ------------------------------------------------------------ copy + delete

// A tile's copy items need JavaScript, so the page carries them once and a tile's menu
// gets them as it first opens (the server-rendered menu works without: open, delete).
const menuTemplate = document.getElementById('tile-menu-template');
function fillMenu(menu) {
  if (!menuTemplate || menu.dataset.filled) return;
  menu.dataset.filled = 'true';
  menu.querySelector('.menu-list').prepend(menuTemplate.content.cloneNode(true));
}
// On the click (Enter and Space click too) that opens it, so the items are there for the
// very next Tab; on toggle for any other way it opens.
document.addEventListener('click', (event) => {
  const summary = event.target.closest('.tile-menu > summary');
  if (summary) fillMenu(summary.parentElement);
}, true);
document.addEventListener('toggle', (event) => {
  if (event.target.open && event.target.matches && event.target.matches('.tile-menu')) fillMenu(event.target);
}, true);

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
  const menu = form.closest('details');
  if (!window.confirm(`Delete “${source.filename}”? Its links stop working. This cannot be undone.`)) {
    if (menu) menu.querySelector('summary').focus();
    return;
  }
  const button = form.querySelector('button');
  button.disabled = true;
  try {
    await api('DELETE', route('api.image', { id }));
  } catch (err) {
    if (!(err instanceof ApiError) || err.code !== 'not_found') {
      button.disabled = false;
      announce(`Could not delete: ${describe(err).status}`, true);
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
    const target = uploadTarget(ticket.upload_url);
    xhr.open('PUT', target);
    for (const [name, value] of Object.entries(ticket.headers || {})) {
      if (!/^(content-length|host|connection)$/i.test(name)) xhr.setRequestHeader(name, value);
    }
    // Only our own origin may see the CSRF token (the local storage backend).
    if (new URL(target).origin === window.location.origin) xhr.setRequestHeader('X-CSRF-Token', csrfToken());
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
  if (maxBytes && file.size > maxBytes) return new ApiError(413, 'Too big', limits, 'file_too_large');
  if (file.size === 0) return new ApiError(400, 'Empty file', null, 'empty_file');
  return null;
}

// The tray: one row per file, a title that sums them up, collapse and close.
const trayTitle = $('[data-tray-title]');
const trayToggle = $('[data-tray-toggle]');
const trayClose = $('[data-tray-close]');

function updateTray() {
  const rows = [...uploadList.children];
  const count = (state) => rows.filter((r) => r.dataset.state === state).length;
  const busy = count('queued') + count('active');
  const done = count('done');
  const failed = count('error');
  tray.hidden = rows.length === 0;
  if (busy) trayTitle.textContent = `Uploading ${busy} of ${rows.length}…`;
  else if (failed) trayTitle.textContent = `${done} uploaded, ${failed} failed`;
  else trayTitle.textContent = `${done} upload${done === 1 ? '' : 's'} complete`;
  clearButton.hidden = !done;
  trayClose.hidden = busy > 0;
}

function removeRow(row) {
  const img = row.querySelector('[data-preview]');
  if (img.src) URL.revokeObjectURL(img.src);
  row.remove();
}

function setRow(job, state, text, hint = '', retry = false) {
  job.row.dataset.state = state;
  job.status.textContent = text;
  job.hint.textContent = hint;
  job.retry.hidden = !(state === 'error' && retry);
  job.remove.hidden = state !== 'error';
  updateTray();
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
      expires_in: picker.value || undefined,
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
    row.querySelector('[data-name]').title = file.name;
    if (file.type.startsWith('image/') && file.size && (!maxBytes || file.size <= maxBytes)) {
      const preview = row.querySelector('[data-preview]');
      preview.src = URL.createObjectURL(file);
      preview.hidden = false;
    }
    const job = {
      file,
      row,
      progress: row.querySelector('progress'),
      status: row.querySelector('[data-upload-status]'),
      hint: row.querySelector('[data-upload-hint]'),
      retry: row.querySelector('[data-upload-retry]'),
      remove: row.querySelector('[data-upload-remove]'),
    };
    job.progress.setAttribute('aria-label', `Upload progress of ${file.name}`);
    row.querySelector('[data-retry-label]').textContent = `Retry ${file.name}`;
    row.querySelector('[data-remove-label]').textContent = `Remove ${file.name} from the list`;
    job.retry.addEventListener('click', () => {
      job.row.tabIndex = -1;
      job.row.focus(); // the Retry button is about to hide
      enqueue(job);
    });
    job.remove.addEventListener('click', () => {
      const next = row.nextElementSibling || row.previousElementSibling;
      removeRow(row);
      updateTray();
      (next ? next.querySelector('button:not([hidden])') || tray : $('[data-upload-input]')).focus();
    });
    uploadList.append(row);
    enqueue(job);
  });
  if (trayToggle.getAttribute('aria-expanded') === 'false') trayToggle.click();
}

function initTray() {
  trayToggle.addEventListener('click', () => {
    const open = trayToggle.getAttribute('aria-expanded') !== 'true';
    trayToggle.setAttribute('aria-expanded', String(open));
    trayToggle.querySelector('.sr-only').textContent = open ? 'Hide uploads' : 'Show uploads';
    document.getElementById('tray-body').hidden = !open;
    tray.dataset.collapsed = String(!open);
  });
  trayClose.addEventListener('click', () => {
    for (const row of [...uploadList.children]) if (row.dataset.state !== 'active' && row.dataset.state !== 'queued') removeRow(row);
    updateTray();
    $('[data-upload-input]').focus();
  });
  clearButton.addEventListener('click', () => {
    for (const row of uploadList.querySelectorAll('[data-state="done"]')) removeRow(row);
    updateTray();
    (tray.hidden ? $('[data-upload-input]') : trayTitle.closest('section')).focus();
  });
  tray.tabIndex = -1;
}

function initUploads() {
  const input = $('[data-upload-input]');
  const overlay = $('[data-drop-overlay]');

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
}

// ----------------------------------------------------------- share target

/** Files shared from another app (the manifest's share_target): the service worker
 * receives the POST and hands the files to this page, which shows them and uploads
 * nothing until the person says so — a cross-site POST can put files in front of them,
 * never into their gallery. */
async function receiveShared() {
  const params = new URLSearchParams(window.location.search);
  if (!params.has('shared')) return;
  window.history.replaceState(null, '', window.location.pathname); // a reload asks no more
  const box = $('[data-share-inbox]');
  const title = $('[data-share-title]');
  const note = $('[data-share-note]');
  const list = $('[data-share-files]');
  const worker = navigator.serviceWorker && navigator.serviceWorker.controller;
  let share = null;
  if (params.get('shared') !== 'lost' && worker) {
    share = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), 10000);
      navigator.serviceWorker.addEventListener('message', (e) => {
        if (!e.data || e.data.type !== 'shared-files') return;
        clearTimeout(timer);
        resolve(e.data);
      });
      worker.postMessage({ type: 'share-ready' });
    });
  }
  const files = share ? [...(share.files || [])] : [];
  box.hidden = false;
  const upload = $('[data-share-upload]');
  const discard = $('[data-share-discard]');
  const previews = [];
  const close = () => {
    box.hidden = true;
    list.replaceChildren();
    for (const url of previews) URL.revokeObjectURL(url);
  };
  discard.addEventListener('click', () => {
    close();
    announce('Discarded the shared files');
    main.focus();
  });
  if (!files.length) {
    title.textContent = 'Nothing arrived';
    note.textContent = 'The shared images did not reach imagehost. Open imagehost once from your home screen, then share again.';
    upload.hidden = true;
    discard.textContent = 'OK';
    return;
  }
  title.textContent = `${files.length} shared image${files.length === 1 ? '' : 's'}`;
  note.textContent = share.from
    ? `Sent by the website ${share.from}, not shared from an app. Upload only if you meant to.`
    : 'Upload them to your gallery?';
  for (const file of files) {
    const item = document.createElement('li');
    item.className = 'share-file';
    if (file.type.startsWith('image/')) {
      const img = document.createElement('img');
      img.alt = '';
      img.src = URL.createObjectURL(file);
      previews.push(img.src);
      item.append(img);
    }
    const name = document.createElement('span');
    name.textContent = file.name || 'shared image';
    item.append(name);
    list.append(item);
  }
  upload.textContent = `Upload ${files.length} image${files.length === 1 ? '' : 's'}`;
  const shown = Date.now();
  upload.addEventListener('click', () => {
    if (Date.now() - shown < 500) return; // a key still held from the page before is not a yes
    close();
    addFiles(files);
  });
  box.tabIndex = -1;
  box.focus(); // the question, read out; the Upload button takes a deliberate press
}

// ---------------------------------------------------------------- load more

function initLoadMore() {
  const link = $('[data-load-more]');
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
      announce(`Could not load more: ${describe(err).status}`, true);
    } finally {
      busy = false;
      link.removeAttribute('aria-busy');
      link.textContent = label;
    }
  });
}

if (grid && tileTemplate && rowTemplate && uploadList && tray) {
  initTray();
  initUploads();
  initLoadMore();
  receiveShared();
}
// Time left of expiring images (static/expiry.js).
if ($('[data-expires-at]:not([hidden])')) import('./expiry.js');
