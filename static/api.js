// JSON calls to the imagehost API with the session cookie and the CSRF token.

export const NETWORK_LOST = 'Network lost — check your connection';

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : '';
}

let routes = null;

/** The path of a named route (the server's route table, sent as path templates in the
 * page's `#routes` block), with `{name}` parts filled in and URL-encoded. */
export function route(name, parts = {}) {
  if (routes === null) {
    const block = document.getElementById('routes');
    routes = block ? JSON.parse(block.textContent) : {};
  }
  const template = routes[name];
  if (template === undefined) throw new Error(`unknown route ${name}`);
  return template.replace(/\{(\w+)\}/g, (_, key) => encodeURIComponent(parts[key]));
}

/** An error answer: `status` is the HTTP status (0 when the network failed); `code` is the
 * server's stable error code (decide by it, never by the words; `network_lost` when no
 * answer came); `detail` its details. */
export class ApiError extends Error {
  constructor(status, message, detail, code = '') {
    super(message);
    this.status = status;
    this.detail = detail;
    this.code = code;
  }
}

/** fetch() `url` and return its JSON body (null for 204); throw ApiError otherwise. */
export async function api(method, url, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrfToken();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(url, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, NETWORK_LOST, null, 'network_lost');
  }
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {
    // not JSON: keep data null
  }
  if (!res.ok) {
    throw new ApiError(
      res.status,
      (data && data.error) || `Request failed (HTTP ${res.status})`,
      data && data.detail,
      (data && data.code) || '',
    );
  }
  return data;
}
