// imagehost's service worker, served at /sw.js (scope: the whole site) with
// `self.IMAGEHOST = {share, gallery, version}` prepended by the app (imagehost/web/pwa.py).
//
// It caches static assets only (/static/…): never a page, never /api, never an image,
// so nothing a person uploaded or sees about their account is kept on the device. And it
// receives the share target's POST: the shared files go to the gallery page, which shows
// them and uploads nothing until the person says so.
const { share: SHARE_PATH, gallery: GALLERY_PATH } = self.IMAGEHOST;
const CACHE = 'imagehost-static';
const SHARE_WAIT_MS = 60000;

self.addEventListener('install', () => self.skipWaiting());

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

const sameOrigin = (url) => url.origin === self.location.origin;

self.addEventListener('fetch', (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method === 'POST' && sameOrigin(url) && url.pathname === SHARE_PATH) {
    receiveShare(event);
    return;
  }
  if (request.method !== 'GET' || !sameOrigin(url) || !url.pathname.startsWith('/static/')) return;
  // Versioned URLs (?v=<hash>) never change: cache first. Module imports are unversioned:
  // the network first, the cache when offline.
  event.respondWith(url.searchParams.has('v') ? cacheFirst(request) : networkFirst(request));
});

async function keep(cache, request, response) {
  if (!response.ok || response.type !== 'basic') return;
  const path = new URL(request.url).pathname;
  for (const old of await cache.keys()) {
    if (new URL(old.url).pathname === path && old.url !== request.url) await cache.delete(old); // one version per file
  }
  await cache.put(request, response);
}

async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(request);
  if (hit) return hit;
  const response = await fetch(request);
  await keep(cache, request, response.clone());
  return response;
}

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    await keep(cache, request, response.clone());
    return response;
  } catch (err) {
    const hit = await cache.match(request);
    if (hit) return hit;
    throw err;
  }
}

// ------------------------------------------------------------------ share target

const shares = []; // files waiting for the gallery page the share opened
const readers = []; // gallery pages waiting for files

function deliver() {
  while (readers.length && readers[0].until < Date.now()) readers.shift(); // that page gave up
  while (shares.length && readers.length) readers.shift().give(shares.shift());
}

self.addEventListener('message', (event) => {
  if (!event.data || event.data.type !== 'share-ready' || !event.source) return;
  const client = event.source;
  readers.push({ until: Date.now() + 15000, give: (share) => client.postMessage({ type: 'shared-files', ...share }) });
  deliver();
});

function receiveShare(event) {
  // A share from an app has no referrer; a form on some website has that site's address:
  // the page names it, so nobody uploads what a site slipped in by mistake.
  const referrer = event.request.referrer ? new URL(event.request.referrer) : null;
  const from = referrer && !sameOrigin(referrer) ? referrer.host : '';
  const files = event.request.formData()
    .then((data) => data.getAll('file').filter((f) => typeof f !== 'string'))
    .catch(() => []);
  // A redirect, so that reloading the gallery repeats nothing.
  event.respondWith(Response.redirect(`${GALLERY_PATH}?shared=1`, 303));
  event.waitUntil((async () => {
    const item = { files: await files, from };
    shares.push(item);
    deliver();
    // Stay awake until the page has taken them (or give up: they are only in memory).
    const until = Date.now() + SHARE_WAIT_MS;
    while (shares.includes(item) && Date.now() < until) await new Promise((ok) => setTimeout(ok, 200));
    const left = shares.indexOf(item);
    if (left >= 0) shares.splice(left, 1);
  })());
}
