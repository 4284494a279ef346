// tracesift's service worker: after one visit, the app and its demo data open and work
// with the network off (a workshop on bad Wi-Fi).
//
// It keeps one snapshot per build: precache.js, written by `cargo xtask precache` after
// every Trunk build, lists the build's files and a hash of their contents. Installing a
// new build caches all of its files under that hash, so a page never mixes the files of
// two builds (the page, its worker and their wasm always come from one snapshot).
//
// It answers only same-origin GET requests for the files of that list and navigations to
// the app's own page. Anything else — another site (a `#data=` link), a same-origin file
// that is not part of the app, a POST — goes to the network untouched and is never stored,
// so nobody's data ends up in the cache. Files dropped into the page are never requested
// at all.
//
// The sentence-embedding model of `semantic` similarity (90 MB, TRACESIFT_ON_DEMAND) is not
// part of the snapshot: it is cached the first time a run asks for it, in a cache of its
// own that every build shares (its files are pinned by sha256), so a workshop downloads it
// once and only if it uses it.
importScripts('precache.js');

const BUILD = self.TRACESIFT_BUILD;
const FILES = self.TRACESIFT_FILES;
const CACHE = `tracesift-${BUILD}`;
const MODEL_CACHE = 'tracesift-model-all-MiniLM-L6-v2';
const ON_DEMAND = self.TRACESIFT_ON_DEMAND || [];
const scope = new URL(self.registration.scope);
const cachedPaths = new Set(FILES.map((file) => new URL(file, scope).pathname));
const onDemandPaths = new Set(ON_DEMAND.map((file) => new URL(file, scope).pathname));
const pagePaths = new Set([scope.pathname, new URL('index.html', scope).pathname]);

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    // `no-cache` revalidates with the server, so an unhashed file (worker.js, the demo) is
    // never taken from an older build's HTTP cache entry.
    await cache.addAll(FILES.map((file) => new Request(new URL(file, scope), { cache: 'no-cache' })));
    // The new snapshot is complete: use it from the next page load on. A page already
    // open keeps the code it has loaded.
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('tracesift-') && name !== CACHE && name !== MODEL_CACHE) {
        await caches.delete(name);
      }
    }
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== scope.origin) return;
  if (onDemandPaths.has(url.pathname)) {
    event.respondWith((async () => {
      const cache = await caches.open(MODEL_CACHE);
      const cached = await cache.match(url.href, { ignoreSearch: true });
      if (cached) return cached;
      const response = await fetch(request);
      if (response.ok) await cache.put(url.href, response.clone());
      return response;
    })());
    return;
  }
  const isPage = request.mode === 'navigate' && pagePaths.has(url.pathname);
  if (!isPage && !cachedPaths.has(url.pathname)) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const cached = await cache.match(isPage ? new URL('index.html', scope).href : url.href, { ignoreSearch: true });
    return cached ?? fetch(request);
  })());
});
