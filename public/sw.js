// The service worker: lets a reload while offline show the chat as it was
// last loaded. The rules:
// - Chat pages (/chat/, /chat/<room>/) are network first; the copy kept is
//   only the fallback for when the network fails (or the server answers 5xx).
// - It never answers for /api/ or /ws/ (nor health, metrics or itself):
//   those always reach the server, or fail.
// - The server sends a room's page in its one spelling away (to /) only
//   when the session has ended, and serves the login page only to a
//   browser without one: either way every kept page goes, so no one sees a
//   chat they have left. (Offline, the worker cannot know of a session
//   ended elsewhere: the page it keeps shows until the browser is back
//   online, when the socket is refused and the page goes to the login.)
// - Files whose name carries a hash of their content never change and are
//   served from the cache first; other files are network first.
const PAGES = 'chat-pages-v1';
const ASSETS = 'chat-assets-v1';

// A room's page in its one spelling: the lobby is `/chat/`, never `/chat/lobby/`.
const CHAT_PAGE = /^\/chat\/(?:(?!lobby\/)[a-z0-9_-]{1,32}\/)?$/;
const NEVER = /^\/(?:api\/|ws\/|healthz$|metrics$|get_online_users|sw\.js$)/;
const ASSET = /^\/(?:pkg\/|vendor\/|icons\/|theme\.js$|pwa\.js$|favicon\.ico$|manifest\.webmanifest$)/;
// The build's hash between the stem and the extension (22 base64url
// characters, as the server's rule): `chat.kW34B4CooNihzvmOplebUw.js`.
const HASHED = /^\/pkg\/[^/.]+\.[A-Za-z0-9_-]{22}\.[^/]+$/;

// Writes still under way: a `cache-page` answer waits for them, so that
// "cached" is true when it is said.
const writing = new Set();

self.addEventListener('install', () => self.skipWaiting());

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => names.filter((n) => n.startsWith('chat-') && n !== PAGES && n !== ASSETS))
      .then((old) => Promise.all(old.map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin || NEVER.test(url.pathname)) return;
  if (request.mode === 'navigate') {
    event.respondWith(navigate(event, url));
  } else if (ASSET.test(url.pathname)) {
    event.respondWith(HASHED.test(url.pathname) ? cacheFirst(event) : networkFirst(event));
  }
});

async function navigate(event, url) {
  const chat = CHAT_PAGE.test(url.pathname);
  const key = url.origin + url.pathname;
  let response;
  try {
    response = await fetch(event.request);
  } catch {
    return (chat && (await kept(key))) || offline();
  }
  const plain = response.status === 200 && !response.redirected && response.type === 'basic';
  if ((chat && response.type === 'opaqueredirect') || (url.pathname === '/' && plain)) {
    event.waitUntil(keep(caches.delete(PAGES)));
  } else if (chat && plain) {
    const copy = response.clone();
    event.waitUntil(keep(keepPage(key, copy)));
  } else if (chat && response.status >= 500) {
    // The server is there but failing (a restart, say): the kept copy beats an error page.
    return (await kept(key)) || response;
  }
  return response;
}

// One kept page per room, of the rooms loaded last: a browser that went
// through many rooms does not keep them all.
const KEPT_PAGES = 20;

async function keepPage(key, response) {
  const cache = await caches.open(PAGES);
  // Taken out first, so that it goes to the end: the keys are in the order kept.
  await cache.delete(key);
  await cache.put(key, response);
  const keys = await cache.keys();
  for (const old of keys.slice(0, Math.max(0, keys.length - KEPT_PAGES))) await cache.delete(old);
}

function kept(key) {
  return caches.match(key, { cacheName: PAGES, ignoreVary: true });
}

async function cacheFirst(event) {
  return (await caches.match(event.request, { cacheName: ASSETS, ignoreVary: true })) || networkFirst(event);
}

async function networkFirst(event) {
  const request = event.request;
  try {
    const response = await fetch(request);
    if (response.ok && response.type === 'basic') {
      // Kept while the page already gets the file: the WASM compiles as it streams.
      event.waitUntil(keep(store(request.url, response.clone())));
    }
    return response;
  } catch {
    return (await caches.match(request, { cacheName: ASSETS, ignoreVary: true })) || Response.error();
  }
}

// Keeps an asset; a hashed file replaces the older builds of itself
// (`chat.<old>.wasm`), and the kept pages that still name an older build
// go with them: offline they could not start.
async function store(href, response) {
  const cache = await caches.open(ASSETS);
  const path = new URL(href).pathname;
  if (HASHED.test(path)) {
    const family = (p) => p.replace(/\.[^./]+(\.[^./]+)$/, '.*$1');
    const older = [];
    for (const old of await cache.keys()) {
      const oldPath = new URL(old.url).pathname;
      if (oldPath !== path && family(oldPath) === family(path)) {
        older.push(oldPath);
        await cache.delete(old);
      }
    }
    if (older.length) {
      const pages = await caches.open(PAGES);
      for (const page of await pages.keys()) {
        const html = await (await pages.match(page)).text();
        if (older.some((old) => html.includes(old))) await pages.delete(page);
      }
    }
  }
  await cache.put(href, response);
}

// Caching is a help, never a condition: a write that fails (quota, say) is let go.
function keep(promise) {
  const done = promise.catch(() => {}).finally(() => writing.delete(done));
  writing.add(done);
  return done;
}

function offline() {
  const html =
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    '<meta name="color-scheme" content="light dark"><title>Offline · Chat</title></head>' +
    '<body><h1>You are offline</h1>' +
    '<p>The chat opens once the connection is back. <a href="">Try again</a></p></body></html>';
  return new Response(html, { status: 503, headers: { 'Content-Type': 'text/html; charset=utf-8' } });
}

// `{type: 'cache-page', url, assets}` from pwa.js: keep the page it was
// loaded without our help (the first visit) and the files it used.
self.addEventListener('message', (event) => {
  const data = event.data || {};
  const port = event.ports[0];
  if (data.type !== 'cache-page' || !port) return;
  event.waitUntil(
    cachePage(data)
      .catch(() => ['(error)'])
      .then((failed) => port.postMessage(failed.length ? { type: 'cached', ok: false, failed } : { type: 'cached', ok: true })),
  );
});

// Answers the paths it could not keep.
async function cachePage({ url, assets }) {
  const failed = [];
  const origin = self.location.origin;
  await Promise.allSettled([...writing]);
  if (url) {
    const page = new URL(url, origin);
    const response =
      page.origin === origin && CHAT_PAGE.test(page.pathname)
        ? await fetch(page.pathname, { credentials: 'same-origin', redirect: 'manual' }).catch(() => null)
        : null;
    // Sent away: the session has ended (status 0, so it counts as not kept).
    if (response && response.type === 'opaqueredirect') await caches.delete(PAGES);
    if (response && response.status === 200 && !response.redirected) {
      await keepPage(origin + page.pathname, response);
    } else {
      failed.push(page.pathname);
    }
  }
  const wanted = (Array.isArray(assets) ? assets : [])
    .map((a) => new URL(a, origin))
    .filter((a) => a.origin === origin && ASSET.test(a.pathname));
  await Promise.all(
    wanted.map(async (asset) => {
      if (HASHED.test(asset.pathname) && (await caches.match(asset.href, { cacheName: ASSETS, ignoreVary: true }))) return;
      const response = await fetch(asset.href, { credentials: 'same-origin' }).catch(() => null);
      if (response && response.ok && response.type === 'basic') {
        await store(asset.href, response);
      } else {
        failed.push(asset.pathname);
      }
    }),
  );
  return failed;
}
