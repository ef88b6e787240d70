// Offline support: registers the service worker (public/sw.js) and has it
// keep this page and the files it loaded, so that a reload without a
// network still shows the chat. html[data-sw="ready"] says they are kept
// ("partial" when something could not be).
(function () {
  if (!('serviceWorker' in navigator)) return;
  var ASSET = /^\/(?:pkg\/|vendor\/|icons\/|theme\.js$|pwa\.js$|favicon\.ico$|manifest\.webmanifest$)/;
  var ALWAYS = ['/theme.js', '/pwa.js', '/favicon.ico', '/manifest.webmanifest', '/icons/icon-192.png'];
  // A page the worker answered for was kept on its way in; only one loaded
  // without it (the first visit) is fetched again to be kept.
  var page = !navigator.serviceWorker.controller && location.pathname.indexOf('/chat/') === 0 ? location.pathname : undefined;
  var sent = {};

  // The same-origin files this page has loaded so far and not yet sent.
  function unsent() {
    var paths = ALWAYS.slice();
    performance.getEntriesByType('resource').forEach(function (entry) {
      var url = new URL(entry.name, location.href);
      if (url.origin === location.origin && ASSET.test(url.pathname)) paths.push(url.pathname);
    });
    return paths.filter(function (path) {
      return !sent[path] && (sent[path] = true);
    });
  }

  function ask(worker, message) {
    return new Promise(function (resolve) {
      var channel = new MessageChannel();
      channel.port1.onmessage = function (event) {
        resolve(event.data || {});
      };
      worker.postMessage(message, [channel.port2]);
    });
  }

  var loaded = new Promise(function (resolve) {
    if (document.readyState === 'complete') resolve();
    else addEventListener('load', resolve, { once: true });
  });

  // After the load, so the WASM and its modules are among the files; a file
  // that arrived while the first answer was on its way goes in a second round.
  function rounds(worker, left, ok) {
    var assets = unsent();
    if (!assets.length && page === undefined) return Promise.resolve(ok);
    var message = { type: 'cache-page', url: page, assets: assets };
    page = undefined;
    return ask(worker, message).then(function (reply) {
      if (reply.ok === false) console.warn('Not kept for offline use:', reply.failed);
      ok = ok && reply.ok !== false;
      return left > 1 ? rounds(worker, left - 1, ok) : ok;
    });
  }

  navigator.serviceWorker
    .register('/sw.js', { scope: '/' })
    .then(function () {
      return Promise.all([navigator.serviceWorker.ready, loaded]);
    })
    .then(function (both) {
      return rounds(both[0].active, 3, true);
    })
    .then(function (ok) {
      document.documentElement.dataset.sw = ok ? 'ready' : 'partial';
    })
    .catch(function (error) {
      console.warn('Offline support is off:', error);
    });
})();
