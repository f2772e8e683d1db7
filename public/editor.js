// The file editor: the page's form works with its plain text box; this replaces the box with
// CodeMirror (syntax highlighting, search, brackets, undo) once the bundle has loaded, keeping
// the text box as the form's field. Every change is copied into it and announced with an
// `input` event, which the page uses for its "Unsaved changes" marker; Ctrl/Cmd-S saves. A form
// with `data-run-key` (the SQL console) is sent with Ctrl/Cmd-Enter instead; `data-field` names
// its text box when that is not `text`.
(() => {
  'use strict';
  let bundle = null;
  const load = () => (bundle ??= import('/codemirror/code-editor.js'));

  function enhance(form) {
    if (form.dataset.codeEditor) return;
    form.dataset.codeEditor = 'loading';
    const textarea = form.querySelector(`textarea[name="${form.dataset.field || 'text'}"]`);
    const runs = 'runKey' in form.dataset;
    const host = form.querySelector('[data-code-editor]');
    if (!textarea || !host) return;
    load().then(({ mount }) => {
      if (!textarea.isConnected) return;
      const view = mount(host, {
        doc: textarea.value,
        path: form.dataset.path || '',
        onChange: (text) => {
          textarea.value = text;
          textarea.dispatchEvent(new Event('input', { bubbles: true }));
        },
        onSave: runs ? null : () => form.requestSubmit(),
        onRun: runs ? () => form.requestSubmit() : null,
      });
      textarea.hidden = true;
      form.dataset.codeEditor = 'ready';
      view.focus();
    }).catch((err) => {
      // The plain text box stays: editing still works.
      form.dataset.codeEditor = 'failed';
      console.warn('the code editor did not load', err);
    });
  }

  // Only once the page is hydrated: its input handler then sees every change (what is typed
  // before goes into the text box, and the editor starts from it).
  const scan = () => {
    if (!document.documentElement.hasAttribute('data-hydrated')) return;
    document.querySelectorAll('form[data-editor]').forEach(enhance);
  };
  new MutationObserver(scan).observe(document.documentElement, {
    childList: true, subtree: true, attributes: true, attributeFilter: ['data-hydrated'],
  });
  document.addEventListener('DOMContentLoaded', scan);
  scan();

  // Ctrl/Cmd-S (Ctrl/Cmd-Enter in the console) in the plain text box (CodeMirror has its own).
  document.addEventListener('keydown', (event) => {
    if (event.defaultPrevented || !(event.ctrlKey || event.metaKey)) return;
    const form = event.target instanceof HTMLTextAreaElement && event.target.closest('form[data-editor]');
    if (!form) return;
    const key = 'runKey' in form.dataset ? 'enter' : 's';
    if (event.key.toLowerCase() !== key) return;
    event.preventDefault();
    form.requestSubmit();
  });

  // Leaving with unsaved changes asks first: the page (reload, close) and links followed
  // inside the manager (caught before its router sees them).
  const unsaved = () => document.querySelector('[data-unsaved]') !== null;
  window.addEventListener('beforeunload', (event) => {
    if (unsaved()) event.preventDefault();
  });
  document.addEventListener('click', (event) => {
    const link = event.target instanceof Element && event.target.closest('a[href]');
    if (!link || link.hasAttribute('download') || !unsaved()) return;
    if (!window.confirm('Leave this file without saving your changes?')) {
      event.preventDefault();
      event.stopPropagation();
    }
  }, true);
})();
