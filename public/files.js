// Uploads in the file manager: files dropped anywhere on the Files tab or chosen in its form,
// several at once, sent with a progress bar. The limits the page states are checked here
// before anything is sent (the server checks them again, and refuses what goes over).
(() => {
  'use strict';

  // As the server writes sizes (model::human_bytes): binary units, one decimal unless the
  // size is a whole number of them.
  const human = (n) => {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${Number.isInteger(n) ? n : n.toFixed(1)} ${units[i]}`;
  };
  const uploadForm = () => document.querySelector('form[data-upload]');

  function say(form, text, kind) {
    const box = form.querySelector('[data-upload-progress]');
    const status = form.querySelector('[data-upload-status]');
    box.hidden = false;
    box.className = `upload-progress ${kind || ''}`;
    status.textContent = text;
  }

  function send(form, chosen) {
    const files = Array.from(chosen || []);
    if (!files.length) return say(form, 'Choose files to upload first.', 'error');
    const fileLimit = Number(form.dataset.fileLimit);
    const totalLimit = Number(form.dataset.totalLimit);
    const big = files.filter((f) => f.size > fileLimit);
    if (big.length) {
      return say(form, `${big.map((f) => f.name).join(', ')}: larger than the ${human(fileLimit)} a file may be. Nothing was sent.`, 'error');
    }
    const total = files.reduce((sum, f) => sum + f.size, 0);
    if (total > totalLimit) {
      return say(form, `These files make ${human(total)}, more than the ${human(totalLimit)} one upload may carry. Nothing was sent.`, 'error');
    }
    const data = new FormData();
    if (form.querySelector('input[name="replace"]')?.checked) data.append('replace', '1');
    for (const f of files) data.append('file', f, f.name);
    const bar = form.querySelector('progress');
    const xhr = new XMLHttpRequest();
    xhr.open('POST', form.action);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      bar.value = (e.loaded / e.total) * 100;
      say(form, `Uploading ${files.length} file(s): ${human(e.loaded)} of ${human(e.total)}`);
    };
    xhr.onload = () => {
      let report = null;
      try { report = JSON.parse(xhr.responseText); } catch { /* not JSON: a refusal before the upload */ }
      if (!report) return say(form, xhr.responseText || `The upload failed (${xhr.status}).`, 'error');
      bar.value = 100;
      if (!report.refused.length) {
        // The listing comes back with the new files.
        const url = new URL(window.location.href);
        url.searchParams.set('uploaded', String(report.saved.length));
        url.searchParams.delete('refused');
        if (!document.querySelector('[data-unsaved]')) return window.location.assign(url);
        return say(form, `${report.saved.length} file(s) uploaded. Save your file, then reload to see them.`, 'ok');
      }
      const refused = report.refused.map((r) => `${r.name}: ${r.message}`).join(' ');
      const saved = report.saved.length ? `${report.saved.length} file(s) uploaded (reload to see them). ` : '';
      say(form, `${saved}Refused: ${refused}`, 'error');
    };
    xhr.onerror = () => say(form, 'The upload failed: the connection to Director was lost.', 'error');
    say(form, `Uploading ${files.length} file(s)…`);
    xhr.send(data);
  }

  document.addEventListener('submit', (event) => {
    const form = event.target instanceof HTMLFormElement && event.target.matches('form[data-upload]') && event.target;
    if (!form) return;
    event.preventDefault();
    send(form, form.querySelector('input[type="file"]').files);
  }, true);

  const carriesFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types).includes('Files');
  let depth = 0;
  document.addEventListener('dragenter', (event) => {
    if (!uploadForm() || !carriesFiles(event)) return;
    depth += 1;
    document.body.classList.add('dropping');
  });
  document.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) document.body.classList.remove('dropping');
  });
  document.addEventListener('dragover', (event) => {
    if (uploadForm() && carriesFiles(event)) event.preventDefault();
  });
  document.addEventListener('drop', (event) => {
    const form = uploadForm();
    depth = 0;
    document.body.classList.remove('dropping');
    if (!form || !carriesFiles(event)) return;
    event.preventDefault();
    send(form, event.dataTransfer.files);
  });
})();
