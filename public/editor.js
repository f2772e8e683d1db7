// The file editor's conveniences (the form works without them): an "Unsaved changes" marker
// while the text differs from what was loaded or saved, and Ctrl/Cmd-S to save.
(() => {
  'use strict';
  const formOf = (el) => el.closest('form[data-editor]');
  document.addEventListener('input', (event) => {
    const form = event.target instanceof HTMLTextAreaElement && formOf(event.target);
    if (!form) return;
    const marker = form.querySelector('[data-unsaved]');
    if (marker) marker.hidden = false;
  });
  document.addEventListener('submit', (event) => {
    const form = event.target instanceof HTMLFormElement && event.target.matches('[data-editor]') && event.target;
    const marker = form && form.querySelector('[data-unsaved]');
    if (marker) marker.hidden = true;
  });
  document.addEventListener('keydown', (event) => {
    if (!(event.ctrlKey || event.metaKey) || event.key.toLowerCase() !== 's') return;
    const form = document.activeElement && formOf(document.activeElement);
    if (!form) return;
    event.preventDefault();
    form.requestSubmit();
  });
})();
