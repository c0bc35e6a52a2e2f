// The time an expiring image has left, on gallery tiles and the detail page: the server
// renders it (imagehost/web/timeleft.py, the same words); this keeps it current, and
// fills it in on the tiles of new uploads. Loaded by gallery.js only when needed.

/** "5 min left" (minutes rounded up) under an hour, hours under two days, else days. */
export function timeLeft(iso, now = Date.now()) {
  const seconds = (Date.parse(iso) - now) / 1000;
  if (!(seconds > 0)) return 'Expired';
  if (seconds < 3600) return `${Math.ceil(seconds / 60)} min left`;
  if (seconds < 2 * 86400) return `${Math.floor(seconds / 3600)} h left`;
  return `${Math.floor(seconds / 86400)} d left`;
}

function refresh() {
  for (const el of document.querySelectorAll('[data-expires-at]:not([hidden])')) {
    el.textContent = timeLeft(el.dataset.expiresAt);
    el.title = `Deleted at ${new Date(el.dataset.expiresAt).toLocaleString()}`;
  }
}

/** A new tile's badge (the tile template's is blank and hidden). */
export function show(tile, iso) {
  const badge = tile.querySelector('[data-expires-at]');
  if (!badge) return;
  badge.dataset.expiresAt = iso;
  badge.hidden = false;
  refresh();
}

refresh();
setInterval(refresh, 30 * 1000);
