// Light or dark before anything is drawn: the pick kept in the chat_theme
// cookie, or else the system's setting (followed when it changes). The
// colour mode menu calls chatApplyTheme again after writing the cookie.
// Also what a room's page needs before its WASM: the newest messages in view.
(function () {
  var root = document.documentElement;
  var dark = matchMedia('(prefers-color-scheme: dark)');
  function apply() {
    var pick = document.cookie.match(/(?:^|; )chat_theme=(light|dark)(?:;|$)/);
    root.setAttribute('data-bs-theme', pick ? pick[1] : dark.matches ? 'dark' : 'light');
  }
  apply();
  dark.addEventListener('change', apply);
  window.chatApplyTheme = apply;
  // A room's page arrives with its latest messages: the list opens at the
  // newest, as the app keeps it once it runs, not at the top for a moment.
  document.addEventListener('DOMContentLoaded', function () {
    var list = document.getElementById('message-scroller');
    if (list) list.scrollTop = list.scrollHeight;
  });
})();
