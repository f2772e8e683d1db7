// The browser terminal: xterm.js on a websocket to /sites/<id>/terminal/ws.
//
// Loaded on every page (it is small); it waits for an element with `data-terminal-site` to
// appear — on first load or after a client-side navigation — then loads xterm.js (served by
// Director, no CDN) and connects. Binary frames carry the terminal's bytes both ways; text
// frames carry JSON: `resize` from here, `session` and `exit` from the server. A dropped socket
// reconnects with backoff to the same shell, whose last screenful the server replays.
(() => {
  'use strict';

  let xtermLoaded = null;
  function loadXterm() {
    if (xtermLoaded) return xtermLoaded;
    const script = (src) => new Promise((resolve, reject) => {
      const el = document.createElement('script');
      el.src = src;
      el.onload = resolve;
      el.onerror = () => reject(new Error(`could not load ${src}`));
      document.head.appendChild(el);
    });
    const css = document.createElement('link');
    css.rel = 'stylesheet';
    css.href = '/xterm/xterm.css';
    document.head.appendChild(css);
    xtermLoaded = script('/xterm/xterm.js').then(() => script('/xterm/addon-fit.js'));
    return xtermLoaded;
  }

  function start(panel) {
    if (panel.dataset.terminalStarted) return;
    panel.dataset.terminalStarted = 'yes';
    const site = panel.dataset.terminalSite;
    // A database shell (psql, mariadb) rather than the site's own shell.
    const shell = panel.dataset.terminalShell || '';
    // The panel arrives empty from the server (hydration never sees what is built here).
    panel.innerHTML = `
      <div class="terminal-bar">
        <span class="terminal-state" role="status" data-terminal-state>connecting</span>
        <span class="terminal-actions">
          <button type="button" class="secondary" data-terminal-restart>Restart shell</button>
          <button type="button" class="secondary" data-terminal-full aria-pressed="false">Full window</button>
        </span>
      </div>
      <div class="terminal-screen" data-terminal-screen></div>`;
    const screen = panel.querySelector('[data-terminal-screen]');
    const stateText = panel.querySelector('[data-terminal-state]');
    const restart = panel.querySelector('[data-terminal-restart]');
    const full = panel.querySelector('[data-terminal-full]');

    let term = null;
    let fit = null;
    let socket = null;
    let session = null;
    let attempt = 0;
    let retryTimer = null;
    let closedForGood = false;

    const setState = (state, detail) => {
      panel.dataset.terminalState = state;
      stateText.textContent = detail ? `${state}: ${detail}` : state;
    };

    // What is typed while the connection is down goes out once it is back (a little of it:
    // a stuck key must not pile up without bound).
    let pending = [];
    let pendingBytes = 0;
    const send = (bytes) => {
      if (socket && socket.readyState === WebSocket.OPEN) {
        socket.send(bytes);
      } else if (!closedForGood && pendingBytes + bytes.length <= 64 * 1024) {
        pending.push(bytes);
        pendingBytes += bytes.length;
      }
    };
    const flush = () => {
      for (const bytes of pending) socket.send(bytes);
      pending = [];
      pendingBytes = 0;
    };

    const sendResize = () => {
      if (!term || !socket || socket.readyState !== WebSocket.OPEN) return;
      socket.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
    };

    const connect = () => {
      clearTimeout(retryTimer);
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      const params = new URLSearchParams({ cols: String(term.cols), rows: String(term.rows) });
      if (session) params.set('session', session);
      if (shell) params.set('shell', shell);
      setState(attempt === 0 ? 'connecting' : 'reconnecting');
      const ws = new WebSocket(`${scheme}://${location.host}/sites/${site}/terminal/ws?${params}`);
      ws.binaryType = 'arraybuffer';
      socket = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        attempt = 0;
        setState('connected');
        sendResize();
        term.focus();
      };
      ws.onmessage = (event) => {
        if (typeof event.data !== 'string') {
          term.write(new Uint8Array(event.data));
          return;
        }
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          return;
        }
        if (message.type === 'session') {
          if (session && !message.reattached) {
            // The old shell had ended meanwhile: this is a new one.
            term.write('\r\n\x1b[2m[a new shell]\x1b[0m\r\n');
          }
          if (message.reattached) term.reset();
          session = message.id;
          flush();
        } else if (message.type === 'exit') {
          closedForGood = true;
          session = null;
          setState('closed', message.reason
            || (message.code === null ? 'the shell ended' : `the shell exited with code ${message.code}`));
        }
      };
      ws.onclose = (event) => {
        if (socket !== ws) return;
        if (closedForGood) return;
        if (!opened && attempt === 0) {
          // Refused before the upgrade (not a member, disabled site…): ask the page why.
          fetch(`/sites/${site}/terminal/ws${shell ? `?shell=${encodeURIComponent(shell)}` : ''}`)
            .then((r) => r.text())
            .then((reason) => setState('closed', reason || `refused (${event.code})`))
            .catch(() => setState('closed', 'refused'));
          closedForGood = true;
          return;
        }
        attempt += 1;
        const delay = Math.min(10_000, 500 * 2 ** Math.min(attempt - 1, 5));
        setState('reconnecting', `in ${Math.round(delay / 100) / 10} s`);
        retryTimer = setTimeout(connect, delay);
      };
    };

    const newShell = () => {
      closedForGood = false;
      session = null;
      pending = [];
      pendingBytes = 0;
      attempt = 0;
      const old = socket;
      socket = null;
      if (old) old.close();
      term.reset();
      connect();
    };

    loadXterm()
      .then(() => {
        term = new window.Terminal({
          cursorBlink: true,
          convertEol: false,
          fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace',
          fontSize: 14,
          scrollback: 5000,
        });
        fit = new window.FitAddon.FitAddon();
        term.loadAddon(fit);
        term.open(screen);
        fit.fit();
        const encoder = new TextEncoder();
        term.onData((data) => send(encoder.encode(data)));
        term.onBinary((data) => {
          const bytes = new Uint8Array(data.length);
          for (let i = 0; i < data.length; i += 1) bytes[i] = data.charCodeAt(i) & 0xff;
          send(bytes);
        });
        term.onResize(sendResize);
        // Copy and paste as in desktop terminals: Ctrl+Shift+C / Ctrl+Shift+V, and Ctrl+C copies
        // when text is selected (without a selection it stays the shell's interrupt).
        term.attachCustomKeyEventHandler((event) => {
          if (event.type !== 'keydown') return true;
          const key = event.key.toLowerCase();
          const copy = (event.ctrlKey || event.metaKey) && key === 'c' && (event.shiftKey || term.hasSelection());
          if (copy && term.hasSelection()) {
            navigator.clipboard?.writeText(term.getSelection());
            event.preventDefault();
            return false;
          }
          if (event.ctrlKey && event.shiftKey && key === 'v') {
            navigator.clipboard?.readText().then((text) => term.paste(text));
            event.preventDefault();
            return false;
          }
          return true;
        });
        new ResizeObserver(() => fit.fit()).observe(screen);
        restart.addEventListener('click', newShell);
        full.addEventListener('click', () => {
          const on = panel.classList.toggle('terminal-full');
          full.textContent = on ? 'Leave full window' : 'Full window';
          full.setAttribute('aria-pressed', String(on));
          fit.fit();
          term.focus();
        });
        // Test hooks: what the screen shows, and a way to drop the socket as a network would.
        panel.terminalText = () => {
          const buffer = term.buffer.active;
          const lines = [];
          for (let i = 0; i < buffer.length; i += 1) lines.push(buffer.getLine(i).translateToString(true));
          return lines.join('\n');
        };
        panel.dropSocket = () => {
          if (!socket) return;
          setState('reconnecting');
          socket.close();
        };
        connect();
      })
      .catch((error) => setState('closed', error.message));

    // Leaving the page (a client-side navigation removes the panel) closes the socket; the
    // shell waits on the server for a while in case the user comes back.
    const watch = new MutationObserver(() => {
      if (!document.body.contains(panel)) {
        closedForGood = true;
        clearTimeout(retryTimer);
        if (socket) socket.close();
        watch.disconnect();
      }
    });
    watch.observe(document.body, { childList: true, subtree: true });
  }

  const scan = () => document.querySelectorAll('[data-terminal-site]').forEach(start);
  new MutationObserver(scan).observe(document.documentElement, { childList: true, subtree: true });
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', scan);
  else scan();
})();
