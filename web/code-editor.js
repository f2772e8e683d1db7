// The file manager's code editor: CodeMirror 6 from npm, bundled by scripts/build (esbuild)
// into /codemirror/code-editor.js and loaded by public/editor.js only when a file is opened.
import { basicSetup } from 'codemirror';
import { EditorView, keymap } from '@codemirror/view';
import { Compartment, EditorState, Prec } from '@codemirror/state';
import { oneDark } from '@codemirror/theme-one-dark';
import { indentWithTab } from '@codemirror/commands';
import { StreamLanguage } from '@codemirror/language';
import { html } from '@codemirror/lang-html';
import { css } from '@codemirror/lang-css';
import { javascript } from '@codemirror/lang-javascript';
import { json } from '@codemirror/lang-json';
import { python } from '@codemirror/lang-python';
import { markdown } from '@codemirror/lang-markdown';
import { php } from '@codemirror/lang-php';
import { xml } from '@codemirror/lang-xml';
import { yaml } from '@codemirror/lang-yaml';
import { sql } from '@codemirror/lang-sql';
import { shell } from '@codemirror/legacy-modes/mode/shell';
import { toml } from '@codemirror/legacy-modes/mode/toml';
import { dockerFile } from '@codemirror/legacy-modes/mode/dockerfile';
import { nginx } from '@codemirror/legacy-modes/mode/nginx';
import { ruby } from '@codemirror/legacy-modes/mode/ruby';
import { go } from '@codemirror/legacy-modes/mode/go';
import { rust } from '@codemirror/legacy-modes/mode/rust';
import { lua } from '@codemirror/legacy-modes/mode/lua';
import { properties } from '@codemirror/legacy-modes/mode/properties';

const legacy = (mode) => () => StreamLanguage.define(mode);

// By extension; a few files go by their whole name.
const byExtension = {
  html: html, htm: html, css: css, scss: css,
  js: javascript, mjs: javascript, cjs: javascript,
  jsx: () => javascript({ jsx: true }),
  ts: () => javascript({ typescript: true }),
  tsx: () => javascript({ jsx: true, typescript: true }),
  json: json, webmanifest: json,
  py: python, md: markdown, markdown: markdown, php: php,
  xml: xml, svg: xml, yaml: yaml, yml: yaml, sql: sql,
  sh: legacy(shell), bash: legacy(shell), toml: legacy(toml), conf: legacy(nginx),
  rb: legacy(ruby), go: legacy(go), rs: legacy(rust), lua: legacy(lua),
  ini: legacy(properties), env: legacy(properties), cfg: legacy(properties),
};
const byName = {
  'run.sh': legacy(shell), Dockerfile: legacy(dockerFile), '.htaccess': legacy(properties),
  Gemfile: legacy(ruby), Rakefile: legacy(ruby),
};

function languageFor(path) {
  const name = path.split('/').pop() || '';
  const make = byName[name] || byExtension[name.includes('.') ? name.split('.').pop().toLowerCase() : ''];
  return make ? [make()] : [];
}

// Dark when the system is, like the rest of the manager; it follows a change while open.
const dark = window.matchMedia('(prefers-color-scheme: dark)');
const theme = () => (dark.matches ? oneDark : []);

/// Builds an editor in `host` with `doc`; `onChange(text)` after every change, `onSave()` on
/// Ctrl/Cmd-S and `onRun()` on Ctrl/Cmd-Enter (each when given). Returns the view.
export function mount(host, { doc, path, onChange, onSave, onRun }) {
  const keys = [];
  if (onSave) keys.push({ key: 'Mod-s', preventDefault: true, run: () => { onSave(); return true; } });
  if (onRun) keys.push({ key: 'Mod-Enter', preventDefault: true, run: () => { onRun(); return true; } });
  const colours = new Compartment();
  const view = new EditorView({
    parent: host,
    state: EditorState.create({
      doc,
      extensions: [
        basicSetup,
        // Tab indents (Escape, then Tab, leaves the editor, as CodeMirror documents).
        keymap.of([indentWithTab]),
        Prec.highest(keymap.of(keys)),
        languageFor(path),
        colours.of(theme()),
        EditorView.contentAttributes.of({ 'aria-label': `Contents of ${path}` }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) onChange(update.state.doc.toString());
        }),
      ],
    }),
  });
  const follow = () => {
    if (!view.dom.isConnected) return dark.removeEventListener('change', follow);
    view.dispatch({ effects: colours.reconfigure(theme()) });
  };
  dark.addEventListener('change', follow);
  return view;
}
