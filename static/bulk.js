// Bulk actions in the gallery: select tiles (a click on a tile's checkbox, shift-click
// for a range, Space or Enter on a focused checkbox), then delete them (one confirm),
// add them to an album (an existing one or a new one), or copy all their links at once.
// Loaded by gallery.js with import() the first time a checkbox is used.
import { ApiError, api, route } from './api.js';
import { announce, copyText } from './clipboard.js';
import { formatLink } from './links.js';

const $ = (selector) => document.querySelector(selector);
const bar = $('[data-bulk-bar]');
const countEl = $('[data-bulk-count]');
const dialog = $('[data-album-dialog]');
let anchor = null; // the last checkbox clicked: shift-click selects from it
let updateStats = () => {};

const boxes = () => [...document.querySelectorAll('[data-grid] [data-select]')];
const selected = () => boxes().filter((box) => box.checked).map((box) => box.closest('.tile'));

function refresh() {
  const tiles = selected();
  for (const box of boxes()) box.closest('.tile').classList.toggle('is-selected', box.checked);
  bar.hidden = tiles.length === 0;
  document.getElementById('main').classList.toggle('is-selecting', tiles.length > 0);
  countEl.textContent = `${tiles.length} selected`;
}

function onClick(event) {
  const box = event.target.closest('[data-select]');
  if (box) {
    if (event.shiftKey && anchor && anchor !== box && anchor.isConnected) {
      const all = boxes();
      const [a, b] = [all.indexOf(anchor), all.indexOf(box)].sort((x, y) => x - y);
      for (const other of all.slice(a, b + 1)) other.checked = box.checked;
    }
    anchor = box;
    refresh();
    return;
  }
  const action = event.target.closest('[data-bulk]');
  if (action) ACTIONS[action.dataset.bulk]();
}

function onKey(event) {
  // Space toggles a checkbox by itself; Enter does too here, as on a tile's button.
  if (event.key === 'Enter' && event.target.matches('[data-select]')) {
    event.preventDefault();
    event.target.click();
  }
  if (event.key === 'Escape' && !bar.hidden && !dialog.open) clear();
}

function clear() {
  for (const box of boxes()) box.checked = false;
  anchor = null;
  refresh();
}

const ids = (tiles) => tiles.map((tile) => tile.dataset.imageId);

async function remove() {
  const tiles = selected();
  if (!tiles.length) return;
  const n = tiles.length;
  if (!window.confirm(`Delete ${n} image${n === 1 ? '' : 's'}? Their links stop working. This cannot be undone.`)) return;
  try {
    await api('POST', route('api.images_delete'), { image_ids: ids(tiles) });
  } catch (err) {
    announce(`Could not delete: ${err.message}${err instanceof ApiError && err.code === 'not_found' ? ' — reload the page' : ''}`, true);
    return;
  }
  const bytes = tiles.reduce((sum, tile) => sum + (Number(tile.dataset.sizeBytes) || 0), 0);
  for (const tile of tiles) tile.remove();
  updateStats(-n, -bytes);
  refresh();
  document.getElementById('main').focus();
  announce(`Deleted ${n} image${n === 1 ? '' : 's'}`);
}

function copy() {
  const format = $('[data-bulk-format]').value;
  const links = selected().map((tile) => {
    const d = tile.dataset;
    return formatLink(format, { public_url: d.url, filename: d.filename, width: d.width, height: d.height });
  });
  if (links.length) copyText(links.join('\n'));
}

// ------------------------------------------------------------------ albums

const choice = dialog.querySelector('[data-album-choice]');
const title = dialog.querySelector('[data-album-title]');
const error = dialog.querySelector('[data-album-error]');

function showNew() {
  dialog.querySelector('[data-album-new]').hidden = choice.value !== '';
}

async function openAlbums() {
  if (!selected().length) return;
  error.hidden = true;
  title.value = '';
  try {
    const page = await api('GET', `${route('api.albums')}?limit=100`);
    choice.replaceChildren(choice.options[0]);
    for (const album of page.albums) choice.add(new Option(album.title, album.id));
  } catch (err) {
    announce(`Could not load your albums: ${err.message}`, true);
    return;
  }
  choice.value = choice.options.length > 1 ? choice.options[1].value : '';
  showNew();
  dialog.showModal();
}

async function addToAlbum(event) {
  if (event.submitter && event.submitter.value !== 'add') return;
  event.preventDefault();
  const tiles = selected();
  try {
    let id = choice.value;
    let name = id ? choice.selectedOptions[0].textContent : title.value.trim();
    if (!id) {
      if (!name) {
        title.focus();
        throw new Error('Give the new album a title.');
      }
      const visibility = dialog.querySelector('[data-album-visibility]').value;
      const album = await api('POST', route('api.albums'), { title: name, visibility });
      id = album.id;
      name = album.title;
    }
    await api('PUT', route('api.album_images', { id }), { image_ids: ids(tiles) });
    dialog.close();
    announce(`Added ${tiles.length} image${tiles.length === 1 ? '' : 's'} to “${name}”`);
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
  }
}

const ACTIONS = { delete: remove, album: openAlbums, copy, clear };

let started = false;

/** Take over from gallery.js's first-use hook (it calls this on every click or key on a
 * tile's checkbox; only the first one starts). `stats(deltaCount, deltaBytes)` keeps the
 * gallery's counts. */
export function init(event, stats) {
  if (started) return;
  started = true;
  updateStats = stats;
  const css = document.createElement('link');
  css.rel = 'stylesheet';
  css.href = new URL('./bulk.css', import.meta.url).href;
  document.head.append(css);
  document.addEventListener('click', onClick);
  document.addEventListener('keydown', onKey);
  choice.addEventListener('change', showNew);
  dialog.querySelector('form').addEventListener('submit', addToAlbum);
  if (event.type === 'keydown') onKey(event);
  else onClick(event);
}
