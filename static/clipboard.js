// Copy text to the clipboard and say so in the page's aria-live status.

let hideTimer;

/** Show `message` in the status toast (role=status, aria-live=polite). */
export function announce(message, isError = false) {
  const el = document.querySelector('[data-copied-status]');
  if (!el) return;
  clearTimeout(hideTimer);
  const show = () => {
    el.textContent = message;
    el.classList.toggle('is-error', isError);
    hideTimer = setTimeout(() => { el.textContent = ''; }, isError ? 6000 : 2500);
  };
  if (el.textContent === message) {
    // Same text again: clear first so screen readers announce it a second time.
    el.textContent = '';
    setTimeout(show, 50);
  } else {
    show();
  }
}

function copyWithTextarea(text) {
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.className = 'offscreen';
  const focused = document.activeElement;
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  area.remove();
  if (focused && focused.focus) focused.focus();
  return ok;
}

/** Copy `text`; announce "Copied" (or a failure). Resolves to true on success. */
export async function copyText(text) {
  let ok = false;
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch {
      ok = false;
    }
  }
  if (!ok) ok = copyWithTextarea(text);
  announce(ok ? 'Copied' : 'Could not copy — select the text and copy it by hand', !ok);
  return ok;
}
