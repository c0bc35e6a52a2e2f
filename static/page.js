// Enhancements for every page: [data-copy] buttons, confirm on
// form[data-confirm], menus that close, times in the reader's zone.
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

// <details class="menu">: one open at a time, closed by a click elsewhere or Escape.
document.addEventListener('click', (event) => {
  for (const menu of document.querySelectorAll('details.menu[open]')) {
    if (!menu.contains(event.target)) menu.open = false;
  }
});
document.addEventListener('keydown', (event) => {
  if (event.key !== 'Escape') return;
  const menu = event.target.closest && event.target.closest('details.menu[open]');
  if (menu) {
    menu.open = false;
    menu.querySelector('summary').focus();
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
