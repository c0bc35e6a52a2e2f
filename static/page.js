// Every page: [data-copy] buttons, confirm on form[data-confirm], menus that close,
// the `/` shortcut to the search box, times in the reader's zone, the service worker.
import { copyText } from './clipboard.js';

// <button data-copy="ID"> copies the value (inputs) or text (anything else) of #ID.
document.addEventListener('click', (event) => {
  const button = event.target.closest('[data-copy]');
  if (!button) return;
  const target = document.getElementById(button.dataset.copy);
  if (!target) return;
  copyText(target.matches('input, textarea') ? target.value : target.textContent);
});

document.addEventListener('submit', (event) => {
  const form = event.target;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// Menus (<details data-menu>): one open at a time; a click elsewhere, focus leaving it,
// or Escape closes it (Escape gives focus back to its button).
const openMenus = () => document.querySelectorAll('details[data-menu][open]');

export function closeMenu(menu, refocus = false) {
  menu.open = false;
  if (refocus) menu.querySelector('summary').focus();
}

document.addEventListener('toggle', (event) => {
  const menu = event.target;
  if (!menu.matches || !menu.matches('details[data-menu]') || !menu.open) return;
  for (const other of openMenus()) if (other !== menu) other.open = false;
}, true);

document.addEventListener('click', (event) => {
  for (const menu of openMenus()) if (!menu.contains(event.target)) menu.open = false;
});

document.addEventListener('focusout', (event) => {
  const menu = event.target.closest && event.target.closest('details[data-menu][open]');
  if (menu && event.relatedTarget && !menu.contains(event.relatedTarget)) menu.open = false;
});

document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape') {
    const inside = event.target.closest && event.target.closest('details[data-menu][open]');
    for (const menu of openMenus()) closeMenu(menu, menu === inside);
    return;
  }
  // `/` focuses the search box, once there is one ([data-search]), unless typing.
  if (event.key === '/' && !event.ctrlKey && !event.metaKey && !event.altKey) {
    const typing = event.target.closest && event.target.closest('input, textarea, select, [contenteditable]');
    const search = document.querySelector('[data-search]');
    if (search && !typing) {
      event.preventDefault();
      search.focus();
    }
  }
});

// Server renders UTC; show local time (date only when the server showed a date only).
export function localizeTimes(root = document) {
  for (const el of root.querySelectorAll('time[datetime]')) {
    const date = new Date(el.dateTime);
    if (Number.isNaN(date.getTime())) continue;
    el.title = el.dateTime;
    el.textContent = el.textContent.trim().length > 10
      ? date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })
      : date.toLocaleDateString(undefined, { dateStyle: 'medium' });
  }
}
localizeTimes();

// The service worker: static assets offline-fast, and the share target (static/sw.js).
const worker = document.querySelector('link[rel="manifest"]');
if ('serviceWorker' in navigator && worker && worker.dataset.worker) {
  navigator.serviceWorker.register(worker.dataset.worker, { scope: '/', type: 'classic' }).catch(() => {});
}
