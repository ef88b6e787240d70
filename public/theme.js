// Light or dark before anything is drawn: the pick kept in the chat_theme
// cookie, or else the system's setting (followed when it changes). The
// colour mode menu calls chatApplyTheme again after writing the cookie.
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
})();
