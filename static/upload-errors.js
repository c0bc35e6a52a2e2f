// What to say about a failed upload, and whether trying again can help. Decided by the
// server's stable error code (imagehost/errors.py CODES), never by its words or status.

const NAMES = {
  'image/jpeg': 'JPEG', 'image/png': 'PNG', 'image/gif': 'GIF', 'image/webp': 'WebP', 'image/avif': 'AVIF',
};

const mb = (bytes) => `${Number((bytes / 1048576).toFixed(1))} MB`;

/** "JPEG, PNG and GIF" from a list of types. */
export function typeList(types) {
  const names = [...new Set((types || []).map((t) => NAMES[String(t).toLowerCase()] || String(t)))];
  if (names.length < 2) return names.join('');
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

// Worth another try: the network, a dependency that is down, a limit that lifts, a
// signed URL that expired meanwhile (a retry asks for a new one).
const TRANSIENT = {
  network_lost: ['Network lost — check your connection', 'Retry when you are back online.'],
  storage_unavailable: ['Server busy', 'Storage is unreachable right now; try again in a moment.'],
  database_unavailable: ['Server busy', 'The server cannot reach its database right now; try again in a moment.'],
  unavailable: ['Server busy', 'Try again in a moment.'],
  rate_limited: ['Too many uploads at once', 'Wait a little, then retry.'],
  internal_error: ['Something went wrong on the server', 'Try again; if it keeps failing, tell whoever runs this server.'],
  upload_expired: ['Took too long', 'The upload was not finished in time; retry.'],
  upload_url_invalid: ['Took too long', 'The upload link expired; retry.'],
  upload_changed: ['Changed while checked', 'Retry.'],
  nothing_uploaded: ['Upload did not arrive', 'Retry.'],
};

/**
 * describe(err, limits) → {status, hint, retry}: a short status, a plain sentence, and
 * whether to offer Retry. `err` is an ApiError (or any Error from the client's own checks,
 * carrying `code`); `limits` is {maxBytes, allowedTypes}.
 */
export function describe(err, limits = {}) {
  const code = (err && err.code) || '';
  const detail = (err && err.detail) || {};
  if (TRANSIENT[code]) {
    const [status, hint] = TRANSIENT[code];
    const wait = code === 'rate_limited' && Number(detail.retry_after);
    return { status, hint: wait ? `Wait ${wait} s, then retry.` : hint, retry: true };
  }
  const accepted = typeList(detail.allowed || limits.allowedTypes);
  const acceptedText = accepted ? ` Accepted: ${accepted}.` : '';
  const max = Number(detail.max_bytes) || limits.maxBytes;
  switch (code) {
    case 'unsupported_type':
      return { status: 'Not a supported image', hint: `This file type cannot be uploaded.${acceptedText}`, retry: false };
    case 'type_mismatch':
      return {
        status: 'Not a supported image',
        hint: `Its contents are not the type its name says.${acceptedText}`,
        retry: false,
      };
    case 'file_too_large':
      return {
        status: max ? `Too big (max ${mb(max)})` : 'Too big',
        hint: max ? `Files up to ${mb(max)} can be uploaded here.` : 'The file is larger than this server accepts.',
        retry: false,
      };
    case 'quota_exceeded':
      return { status: 'Storage quota full', hint: 'Delete some images to make room, then upload again.', retry: false };
    case 'invalid_image':
      return { status: 'Damaged image', hint: 'The file is cut short or corrupt, so it cannot be shown.', retry: false };
    case 'too_many_pixels': {
      const mp = Number(detail.max_pixels) ? ` The limit is ${Math.round(detail.max_pixels / 1e6)} megapixels.` : '';
      return { status: 'Too many pixels', hint: `The image is too large to process.${mp}`, retry: false };
    }
    case 'empty_file':
      return { status: 'Empty file', hint: 'The file has no content.', retry: false };
    case 'authentication_required':
    case 'invalid_credentials':
      return { status: 'Logged out', hint: 'Log in again, then upload.', retry: false };
    case 'csrf_failed':
      return { status: 'Page expired', hint: 'Reload the page, then upload again.', retry: false };
    default:
      return { status: (err && err.message) || 'Upload failed', hint: '', retry: false };
  }
}
