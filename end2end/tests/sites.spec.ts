// Sites end to end in Chromium: a member creates a static site and a Python one and loads them
// at their addresses; another member cannot see them; deleting one takes its address away.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect, test, Page } from '@playwright/test';
import { createUsers, retype, signedIn } from '../helpers';
import { server, siteURL } from '../server';

test.describe.configure({ mode: 'serial' });

const owner = { username: 'siteowner', password: 'siteowner password 1' };
const other = { username: 'outsider', password: 'outsider password 1' };
const admin = { username: 'admin', password: 'admin password 123' };

/** The site's id, from its page's address. */
function siteId(page: Page): number {
  return Number(new URL(page.url()).pathname.split('/').pop());
}

/** What the Docker engine says about a site's service (the CLI, as an operator would ask). */
function inspectService(id: number, format: string): string {
  const service = `${server().namespace}_site_${String(id).padStart(4, '0')}`;
  return execFileSync('/usr/bin/docker', ['service', 'inspect', '--format', format, service], { encoding: 'utf8' }).trim();
}

async function createSite(page: Page, name: string, kind: 'static' | 'dynamic', image: string) {
  await page.getByRole('link', { name: 'New site' }).click();
  await page.getByLabel('Name').fill(name);
  await page.getByLabel(kind === 'static' ? /Static/ : /Dynamic/).check();
  await page.getByLabel('Image').selectOption(image);
  await page.getByLabel('Description').fill(`${name} made by Playwright`);
  await page.getByRole('button', { name: 'Create site' }).click();
  await expect(page.getByRole('heading', { name })).toBeVisible();
  // The page follows the operation live until it is done.
  await expect(page.locator('.operation').first()).toHaveAttribute('data-state', 'done', { timeout: 30_000 });
}

test('users for the sites tests', async ({ page }) => {
  // The admin was made by the accounts tests' setup link.
  await createUsers(page, admin, [owner, other]);
});

test('a static site is live at its address', async ({ page }, testInfo) => {
  await signedIn(page, owner);
  await createSite(page, 'hello-static', 'static', 'busybox');
  const started = Date.now();
  await page.goto(siteURL('hello-static'));
  await expect(page.getByText('This is the starter page of hello-static')).toBeVisible();
  testInfo.annotations.push({ type: 'static site live after', description: `${Date.now() - started} ms` });
  await page.screenshot({ path: testInfo.outputPath('static-site.png') });
});

test('a dynamic site on the Python image is live at its address', async ({ page }, testInfo) => {
  await signedIn(page, owner);
  await createSite(page, 'hello-python', 'dynamic', 'python');
  await expect(async () => {
    const response = await page.goto(siteURL('hello-python'));
    expect(response?.status()).toBe(200);
  }).toPass({ timeout: 30_000 });
  await expect(page.getByText('This is the starter page of hello-python')).toBeVisible();
  await page.goto(server().baseURL);
  await expect(page.locator('[data-site="hello-python"]')).toContainText('running');
  await page.screenshot({ path: testInfo.outputPath('dashboard-with-sites.png'), fullPage: true });
});

test('the new-site form checks the name as it is typed', async ({ page }) => {
  await signedIn(page, owner);
  await page.getByRole('link', { name: 'New site' }).click();
  // The name is checked by the client: typing before it has hydrated would check nothing.
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
  const name = page.getByLabel('Name');
  await name.pressSequentially('hello-python');
  await expect(page.locator('#site-name-check')).toHaveText('The name hello-python is taken.');
  await name.fill('');
  await name.pressSequentially('admin');
  await expect(page.locator('#site-name-check')).toHaveText('The name admin is reserved.');
  await name.fill('');
  await name.pressSequentially('a-free-name');
  await expect(page.locator('#site-name-check')).toHaveText('✓ Available');
});

test("a dynamic site's output appears on its page as it is written, stderr marked", async ({ page }, testInfo) => {
  await signedIn(page, owner);
  await page.locator('[data-site="hello-python"] a.site-name').click();
  await expect(page.getByRole('heading', { name: 'Output' })).toBeVisible();
  // Python's http.server logs each request on stderr; this one asks for a page that isn't there.
  const marker = `/written-live-${Date.now()}`;
  // A second tab, as a visitor: Chromium resolves *.localhost, Node does not.
  const visitor = await page.context().newPage();
  const response = await visitor.goto(siteURL('hello-python').replace(/\/$/, marker));
  expect(response?.status()).toBe(404);
  await visitor.close();
  const line = page.locator('.logs li', { hasText: marker });
  await expect(line).toBeVisible({ timeout: 20_000 });
  await expect(line).toHaveClass(/stderr/);
  await page.screenshot({ path: testInfo.outputPath('site-output.png'), fullPage: true });
});

test('a site is taken off the air, served again and restarted from its page', async ({ page }) => {
  await signedIn(page, owner);
  await page.locator('[data-site="hello-python"] a.site-name').click();
  await page.getByRole('button', { name: 'Take off the air' }).click();
  await expect(page.locator('.operation').first()).toHaveAttribute('data-state', 'done', { timeout: 30_000 });
  const sitePage = page.url();
  await expect(async () => {
    const response = await page.goto(siteURL('hello-python'));
    expect(response?.status()).toBe(503);
  }).toPass({ timeout: 15_000 });
  await expect(page.getByRole('heading', { name: 'This site is not being served' })).toBeVisible();

  // The site's page right after: it once stayed on "Loading the site…" in about one load in
  // five (its resource was made inside the frame's Suspense; now before it).
  await page.goto(sitePage);
  await expect(page.getByRole('button', { name: 'Serve again' })).toBeVisible();
  await page.getByRole('button', { name: 'Serve again' }).click();
  await expect(page.getByRole('button', { name: 'Restart' })).toBeVisible({ timeout: 30_000 });
  await page.getByRole('button', { name: 'Restart' }).click();
  await expect(page.locator('.operation').first()).toContainText('Restart its service', { timeout: 30_000 });
  await expect(page.locator('.operation').first()).toHaveAttribute('data-state', 'done', { timeout: 30_000 });
  await expect(async () => {
    const response = await page.goto(siteURL('hello-python'));
    expect(response?.status()).toBe(200);
  }).toPass({ timeout: 30_000 });
});

/** The terminal panel on `page` once connected and showing `site`'s prompt, and its screen. */
async function connectedTerminal(page: Page, site: string) {
  const panel = page.locator('section.terminal');
  await expect(panel).toHaveAttribute('data-terminal-state', 'connected', { timeout: 20_000 });
  const screen = (): Promise<string> => panel.evaluate((el: any) => el.terminalText());
  await expect.poll(screen, { timeout: 15_000 }).toContain(`${site}:/site$`);
  return { panel, screen };
}

test('the terminal runs a shell in the site, and what it makes is served', async ({ page }, testInfo) => {
  await signedIn(page, owner);
  await page.locator('[data-site="hello-python"] a.site-name').click();
  await page.getByRole('navigation', { name: 'Site' }).getByRole('link', { name: 'Terminal' }).click();
  const { panel, screen } = await connectedTerminal(page, 'hello-python');
  await page.locator('.xterm').click();
  await page.keyboard.type('echo hello && pwd\n');
  await expect.poll(screen).toMatch(/\nhello\s*\n\/site/);
  await page.keyboard.type('echo made-in-the-terminal > public/from-terminal.html\n');

  // The network drops: the page reconnects to the same shell.
  await page.keyboard.type('KEPT=still-here\n');
  await panel.evaluate((el: any) => el.dropSocket());
  await expect(panel).toHaveAttribute('data-terminal-state', 'connected', { timeout: 20_000 });
  await page.locator('.xterm').click();
  await page.keyboard.type('echo $KEPT\n');
  await expect.poll(screen).toMatch(/\nstill-here/);
  await page.screenshot({ path: testInfo.outputPath('terminal.png'), fullPage: true });

  await page.getByRole('button', { name: 'Full window' }).click();
  await expect(panel).toHaveClass(/terminal-full/);
  await page.screenshot({ path: testInfo.outputPath('terminal-full-window.png') });

  const visitor = await page.context().newPage();
  await visitor.goto(siteURL('hello-python') + 'from-terminal.html');
  await expect(visitor.locator('body')).toContainText('made-in-the-terminal');
  await visitor.close();
});

/** Opens the Files tab of `site` from the dashboard; returns the site's id. */
async function openFiles(page: Page, site: string): Promise<number> {
  await page.locator(`[data-site="${site}"] a.site-name`).click();
  const id = siteId(page);
  await page.getByRole('navigation', { name: 'Site' }).getByRole('link', { name: 'Files' }).click();
  await expect(page.locator('tr[data-file="run.sh"]')).toBeVisible();
  return id;
}

/** A file of the site, on disk. */
function siteFile(id: number, ...parts: string[]): string {
  return path.join(server().dataDir, 'sites', String(id).padStart(4, '0'), ...parts);
}

/** The code editor's text area (CodeMirror's content element). */
const code = (page: Page) => page.locator('.cm-content');

test('the code editor edits a page that is served at once, with highlighting and an unsaved marker', async ({ page }, testInfo) => {
  await signedIn(page, owner);
  await openFiles(page, 'hello-python');
  await page.getByRole('navigation', { name: 'Folders' }).getByRole('link', { name: 'public/' }).click();
  await page.getByRole('link', { name: 'index.html' }).click();
  await expect(code(page)).toContainText('starter page of hello-python');
  // HTML is highlighted: tags get their own token classes.
  await expect(page.locator('.cm-line span').first()).toBeVisible();
  await retype(code(page), '<h1>Edited in the browser</h1>\n');
  await expect(page.getByText('Unsaved changes')).toBeVisible();
  await page.keyboard.press('Control+s');
  await expect(page.getByRole('status').filter({ hasText: 'Saved.' })).toBeVisible();
  await expect(page.getByText('Unsaved changes')).toBeHidden();
  await page.screenshot({ path: testInfo.outputPath('code-editor.png'), fullPage: true });
  const visitor = await page.context().newPage();
  await visitor.goto(siteURL('hello-python'));
  await expect(visitor.getByRole('heading', { name: 'Edited in the browser' })).toBeVisible();

  // A second save from the same editor (it kept the new version): no conflict.
  await code(page).click();
  await page.keyboard.press('Control+End');
  await page.keyboard.insertText('<p>twice</p>\n');
  await page.keyboard.press('Control+s');
  await expect(page.getByRole('status').filter({ hasText: 'Saved.' })).toBeVisible();
  // (A new address: Python's server answers a revalidation within the same second with 304.)
  await visitor.goto(siteURL('hello-python') + '?after-the-second-save');
  await expect(visitor.getByText('twice')).toBeVisible();

  // A new file: named, typed, saved, served.
  await page.getByLabel('New file').fill('public/new.html');
  await page.getByRole('button', { name: 'Create' }).click();
  await expect(page.getByRole('heading', { name: 'public/new.html' })).toBeVisible();
  await retype(code(page), '<p>brand new</p>\n');
  await page.keyboard.press('Control+s');
  await expect(page.getByRole('status').filter({ hasText: 'Saved.' })).toBeVisible();
  await expect(page.locator('tr[data-file="public/new.html"]')).toBeVisible();
  await visitor.goto(siteURL('hello-python') + 'new.html');
  await expect(visitor.getByText('brand new')).toBeVisible();
  await visitor.close();
});

test('a save refuses to overwrite a change made in the terminal or on disk since the file was opened', async ({ page }) => {
  await signedIn(page, owner);
  const id = await openFiles(page, 'hello-python');
  const editorURL = `${server().baseURL}/sites/${id}/files?path=public&open=public/index.html`;
  await page.goto(editorURL);
  await expect(code(page)).toContainText('Edited in the browser');

  // Changed in the site's terminal, in another tab.
  const terminal = await page.context().newPage();
  await terminal.goto(`${server().baseURL}/sites/${id}/terminal`);
  const { screen } = await connectedTerminal(terminal, 'hello-python');
  await terminal.locator('.xterm').click();
  await terminal.keyboard.type('echo "<h1>From the terminal</h1>" > public/index.html && echo written\n');
  await expect.poll(screen).toMatch(/\nwritten/);
  await terminal.close();

  await retype(code(page), '<h1>Mine</h1>\n');
  await page.keyboard.press('Control+s');
  await expect(page.getByText('The file changed since you opened it')).toBeVisible();
  expect(fs.readFileSync(siteFile(id, 'public', 'index.html'), 'utf8')).toBe('<h1>From the terminal</h1>\n');
  await expect(page.getByText('Unsaved changes')).toBeVisible();

  // Changed directly on disk (as over SFTP) after a reload: refused as well.
  await page.goto(editorURL);
  await expect(code(page)).toContainText('From the terminal');
  fs.writeFileSync(siteFile(id, 'public', 'index.html'), '<h1>Changed elsewhere</h1>\n');
  await retype(code(page), '<h1>Mine again</h1>\n');
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByText('The file changed since you opened it')).toBeVisible();
  expect(fs.readFileSync(siteFile(id, 'public', 'index.html'), 'utf8')).toBe('<h1>Changed elsewhere</h1>\n');
});

test('files are uploaded (chosen or dropped) and downloaded back identical, a folder as a zip', async ({ page }, testInfo) => {
  await signedIn(page, owner);
  const id = await openFiles(page, 'hello-python');
  await page.goto(`${server().baseURL}/sites/${id}/files?path=public`);
  const picture = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7 + (i >> 9)) % 256));
  await page.setInputFiles('#upload-files', [
    { name: 'picture.bin', mimeType: 'application/octet-stream', buffer: picture },
    { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('some notes\n') },
  ]);
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await expect(page.getByText('2 file(s) uploaded.')).toBeVisible();
  await expect(page.locator('tr[data-file="public/picture.bin"]')).toBeVisible();
  expect(fs.readFileSync(siteFile(id, 'public', 'picture.bin')).equals(picture)).toBe(true);

  // Dropped onto the page.
  const dropped = await page.evaluateHandle(() => {
    const transfer = new DataTransfer();
    transfer.items.add(new File(['dropped here\n'], 'dropped.txt', { type: 'text/plain' }));
    return transfer;
  });
  await page.dispatchEvent('form.upload', 'drop', { dataTransfer: dropped });
  await expect(page.locator('tr[data-file="public/dropped.txt"]')).toBeVisible();
  expect(fs.readFileSync(siteFile(id, 'public', 'dropped.txt'), 'utf8')).toBe('dropped here\n');

  // Over the limit this server was started with (2 MiB a file): refused before sending.
  await page.setInputFiles('#upload-files', [
    { name: 'huge.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(3 << 20, 1) },
  ]);
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await expect(page.getByText('huge.bin: larger than the 2 MiB a file may be. Nothing was sent.')).toBeVisible();
  expect(fs.existsSync(siteFile(id, 'public', 'huge.bin'))).toBe(false);
  await page.screenshot({ path: testInfo.outputPath('files-upload.png'), fullPage: true });

  // Back down, byte for byte.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.locator('tr[data-file="public/picture.bin"]').getByRole('link', { name: 'Download' }).click(),
  ]);
  expect(download.suggestedFilename()).toBe('picture.bin');
  expect(fs.readFileSync(await download.path()).equals(picture)).toBe(true);

  // The folder as a zip: its files are in it, the picture whole.
  const [zip] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Download public (zip)' }).click(),
  ]);
  expect(zip.suggestedFilename()).toBe('hello-python-public.zip');
  const archive = fs.readFileSync(await zip.path());
  expect(archive.subarray(0, 4).toString('latin1')).toBe('PK\u0003\u0004');
  for (const name of ['picture.bin', 'notes.txt', 'dropped.txt', 'index.html']) {
    expect(archive.includes(Buffer.from(name))).toBe(true);
  }
  // Unpacked by another zip implementation (Python's), the picture comes back whole.
  const unzipped = path.join(testInfo.outputPath('unzipped'));
  fs.mkdirSync(unzipped, { recursive: true });
  fs.writeFileSync(path.join(unzipped, 'public.zip'), archive);
  execFileSync('python3', ['-m', 'zipfile', '-e', path.join(unzipped, 'public.zip'), unzipped]);
  expect(fs.readFileSync(path.join(unzipped, 'picture.bin')).equals(picture)).toBe(true);
});

test('files are renamed, made runnable and deleted, folders with what they hold', async ({ page }) => {
  await signedIn(page, owner);
  const id = await openFiles(page, 'hello-python');
  await page.goto(`${server().baseURL}/sites/${id}/files?path=public`);
  const notes = page.locator('tr[data-file="public/notes.txt"]');
  await notes.getByText('Rename or move').click();
  await notes.getByLabel('New path of notes.txt').fill('public/docs.txt');
  await notes.getByRole('button', { name: 'Move' }).click();
  await expect(page.locator('tr[data-file="public/docs.txt"]')).toBeVisible();
  expect(fs.existsSync(siteFile(id, 'public', 'notes.txt'))).toBe(false);

  const docs = page.locator('tr[data-file="public/docs.txt"]');
  await docs.locator('td.mode summary').click();
  await docs.getByLabel('Mode of docs.txt').fill('755');
  await docs.getByRole('button', { name: 'Set' }).click();
  await expect(page.locator('tr[data-file="public/docs.txt"] code')).toHaveText('rwxr-xr-x');
  expect(fs.statSync(siteFile(id, 'public', 'docs.txt')).mode & 0o777).toBe(0o755);

  // A folder with files in it, deleted after its confirmation.
  fs.mkdirSync(siteFile(id, 'public', 'old', 'deeper'), { recursive: true });
  fs.writeFileSync(siteFile(id, 'public', 'old', 'deeper', 'a.txt'), 'a');
  await page.reload();
  const old = page.locator('tr[data-file="public/old"]');
  await old.getByText('Delete…').click();
  await old.getByRole('button', { name: 'Delete old and everything in it' }).click();
  await expect(old).toBeHidden();
  expect(fs.existsSync(siteFile(id, 'public', 'old'))).toBe(false);
  const docsRow = page.locator('tr[data-file="public/docs.txt"]');
  await docsRow.getByText('Delete…').click();
  await docsRow.getByRole('button', { name: 'Delete docs.txt for good' }).click();
  await expect(docsRow).toBeHidden();
  expect(fs.existsSync(siteFile(id, 'public', 'docs.txt'))).toBe(false);
});

test('a file that is not UTF-8 text opens read-only, to download, and is never damaged', async ({ page }, testInfo) => {
  await signedIn(page, owner);
  const id = await openFiles(page, 'hello-python');
  const bytes = Buffer.from([0x47, 0x49, 0x46, 0xff, 0xfe, 0x00, 0x80, 0x41]);
  fs.writeFileSync(siteFile(id, 'public', 'image.gif'), bytes);
  await page.goto(`${server().baseURL}/sites/${id}/files?path=public&open=public/image.gif`);
  await expect(page.getByText('is not text, so it is not opened here')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Save' })).toHaveCount(0);
  await page.screenshot({ path: testInfo.outputPath('files-binary.png'), fullPage: true });
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.locator('section.editor').getByRole('link', { name: 'Download it' }).click(),
  ]);
  expect(fs.readFileSync(await download.path()).equals(bytes)).toBe(true);
  expect(fs.readFileSync(siteFile(id, 'public', 'image.gif')).equals(bytes)).toBe(true);
});

/** Sets a TXT record in the run's DNS server. */
async function setTxt(name: string, value: string) {
  const res = await fetch(`${server().dnsManagement}/set-txt`, {
    method: 'POST',
    body: JSON.stringify({ host: `${name}.`, value }),
  });
  expect(res.ok).toBe(true);
}

/** What the edge answers for `host` (a visitor whose DNS points the name at the edge). */
function visitAs(host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: server().edgePort, path: '/', headers: { host } }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

test('a member adds a domain, proves it with a TXT record, and the site answers on it', async ({ page }, testInfo) => {
  await signedIn(page, owner);
  await page.locator('[data-site="hello-static"] a.site-name').click();
  await page.getByLabel('Add a domain').fill('192.0.2.1');
  await page.getByRole('button', { name: 'Add domain' }).click();
  await expect(page.getByText('is an IP address')).toBeVisible();
  await expect(page.getByLabel('Add a domain')).toHaveValue('192.0.2.1');
  await page.getByLabel('Add a domain').fill('*.hello.test');
  await page.getByRole('button', { name: 'Add domain' }).click();
  await expect(page.getByText('Only admins can add a wildcard domain')).toBeVisible();
  await page.getByLabel('Add a domain').fill('www.hello.test');
  await page.getByRole('button', { name: 'Add domain' }).click();
  const row = page.locator('li[data-domain="www.hello.test"]');
  await expect(row.getByText('waiting for verification')).toBeVisible();
  await expect(page.getByLabel('Add a domain'), 'emptied for the next').toHaveValue('');
  await expect(row.getByText('_director.www.hello.test')).toBeVisible();
  expect((await visitAs('www.hello.test')).status).toBe(404);

  // Checked before the record exists: the reason is shown, nothing is routed.
  await row.getByRole('button', { name: 'Verify now' }).click();
  await expect(row.getByText('No TXT record was found at _director.www.hello.test.')).toBeVisible();
  await page.screenshot({ path: testInfo.outputPath('domain-waiting.png'), fullPage: true });

  const value = (await row.locator('code.token').textContent())!;
  await setTxt('_director.www.hello.test', value);
  await row.getByRole('button', { name: 'Verify now' }).click();
  await expect(row.getByText('verified', { exact: true })).toBeVisible();
  await expect(async () => {
    const visit = await visitAs('www.hello.test');
    expect(visit.status).toBe(200);
    expect(visit.body).toContain('starter page of hello-static');
  }).toPass({ timeout: 15_000 });

  // Another site cannot take it.
  await page.goto(server().baseURL);
  await page.locator('[data-site="hello-python"] a.site-name').click();
  await page.getByLabel('Add a domain').fill('www.hello.test');
  await page.getByRole('button', { name: 'Add domain' }).click();
  await expect(page.getByText('www.hello.test belongs to another site.')).toBeVisible();

  // Removed from its site: no longer served.
  await page.goto(server().baseURL);
  await page.locator('[data-site="hello-static"] a.site-name').click();
  await page.getByRole('button', { name: 'Remove www.hello.test' }).click();
  await expect(page.locator('li[data-domain="www.hello.test"]')).toBeHidden();
  await expect(async () => expect((await visitAs('www.hello.test')).status).toBe(404)).toPass({ timeout: 15_000 });
});

test('another user cannot see or open the sites', async ({ page }) => {
  await signedIn(page, other);
  await expect(page.locator('[data-site]')).toHaveCount(0);
  const response = await page.goto(`${server().baseURL}/sites/1`);
  expect(response?.status()).toBe(404);
  expect((await page.goto(`${server().baseURL}/sites/2/terminal`))?.status()).toBe(404);
  // Their browser's websocket to the site's terminal never opens.
  const opened = await page.evaluate(() => new Promise((resolve) => {
    const ws = new WebSocket(`ws://${location.host}/sites/2/terminal/ws`);
    ws.onopen = () => resolve(true);
    ws.onclose = () => resolve(false);
  }));
  expect(opened).toBe(false);
});

test('members are added by username and removed', async ({ page }) => {
  await signedIn(page, owner);
  await page.locator('[data-site="hello-python"] a.site-name').click();
  const sitePage = page.url();
  const username = page.getByLabel('Add a member by username');
  await username.fill('nobody-here');
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await expect(page.getByText('No active user is called nobody-here.')).toBeVisible();
  await username.fill(other.username);
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await expect(page.locator('.members')).toContainText(other.username);

  const theirs = await page.context().browser()!.newPage();
  await signedIn(theirs, other);
  await expect(theirs.locator('[data-site="hello-python"]')).toBeVisible();
  await page.getByRole('button', { name: `Remove ${other.username}` }).click();
  await expect(page.locator('.members')).not.toContainText(other.username);
  const response = await theirs.goto(sitePage);
  expect(response?.status()).toBe(404);
  await theirs.close();
});

test('an admin sets a memory limit and the service has it', async ({ page }, testInfo) => {
  await signedIn(page, admin);
  await page.getByRole('link', { name: 'All sites' }).click();
  const row = page.locator('tr[data-site="hello-python"]');
  await expect(row).toContainText(owner.username);
  await page.screenshot({ path: testInfo.outputPath('admin-sites.png'), fullPage: true });
  await row.getByRole('link', { name: 'hello-python', exact: true }).click();
  const id = siteId(page);
  // The browser refuses 12 itself (min="32"); without that check the server still does.
  await page.getByLabel('Memory (MiB)').evaluate((input) => input.removeAttribute('min'));
  await page.getByLabel('Memory (MiB)').fill('12');
  await page.getByRole('button', { name: 'Save limits' }).click();
  await expect(page.getByText('Choose between 32 and 16384 MiB.')).toBeVisible();
  await page.getByLabel('Memory (MiB)').fill('256');
  await page.getByRole('button', { name: 'Save limits' }).click();
  await expect(page.locator('.operation').first()).toContainText('Apply settings', { timeout: 15_000 });
  await expect(page.locator('.operation').first()).toHaveAttribute('data-state', 'done', { timeout: 30_000 });
  expect(inspectService(id, '{{.Spec.TaskTemplate.Resources.Limits.MemoryBytes}}')).toBe(String(256 * 1024 * 1024));
  await expect(page.locator('.facts')).toContainText('256 MiB memory');
  await page.screenshot({ path: testInfo.outputPath('admin-site-page.png'), fullPage: true });
});

test('an admin disables a site with a reason its member is told, and enables it again', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  await signedIn(page, admin);
  await page.getByRole('link', { name: 'All sites' }).click();
  await page.locator('tr[data-site="hello-python"]').getByRole('link', { name: 'hello-python', exact: true }).click();
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
  await page.getByLabel('Why it is disabled (its members are told)').fill('It sends spam.');
  await page.getByRole('button', { name: 'Disable site' }).click();
  await expect(page.getByRole('button', { name: 'Enable site' })).toBeVisible({ timeout: 15_000 });
  await expect(async () => {
    const response = await page.goto(siteURL('hello-python'));
    expect(response?.status()).toBe(503);
  }).toPass({ timeout: 30_000 });

  // The member is told why, in the inbox.
  await page.context().clearCookies();
  await signedIn(page, owner);
  await page.getByRole('link', { name: /Notifications/ }).click();
  await expect(page.locator('ul.inbox')).toContainText('Your site hello-python was disabled');
  await expect(page.locator('ul.inbox')).toContainText('The reason: “It sends spam.”');
  await page.screenshot({ path: testInfo.outputPath('told-disabled.png'), fullPage: true });

  // Enabled again (a reason is not needed), it answers once more.
  await page.context().clearCookies();
  await signedIn(page, admin);
  await page.getByRole('link', { name: 'All sites' }).click();
  await page.locator('tr[data-site="hello-python"]').getByRole('link', { name: 'hello-python', exact: true }).click();
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
  await page.getByRole('button', { name: 'Enable site' }).click();
  await expect(page.getByRole('button', { name: 'Disable site' })).toBeVisible({ timeout: 15_000 });
  await expect(async () => {
    const response = await page.goto(siteURL('hello-python'));
    expect(response?.status()).toBe(200);
  }).toPass({ timeout: 60_000 });
});

test('an admin adds an image to the catalogue and new sites can use it', async ({ page }) => {
  await signedIn(page, admin);
  await page.getByRole('link', { name: 'Images' }).click();
  const form = page.locator('form.image-form').last();
  await form.getByLabel('Name').fill('tiny');
  await form.getByLabel('Docker image').fill('Not A Reference');
  await form.getByRole('button', { name: 'Add image' }).click();
  await expect(page.getByText('Enter a Docker image reference such as director/python:3.')).toBeVisible();
  await form.getByLabel('Docker image').fill('director/busybox:latest');
  await form.getByLabel('Description').fill('busybox again, for tests');
  await form.getByRole('button', { name: 'Add image' }).click();
  await expect(page.locator('form[data-image="tiny"]')).toBeVisible();
  await page.goto(`${server().baseURL}/sites/new`);
  await expect(page.getByLabel('Image').locator('option[value="tiny"]')).toHaveCount(1);
  await page.getByRole('link', { name: 'Audit' }).click();
  await expect(page.locator('table.audit')).toContainText('image.add');
  await expect(page.locator('table.audit')).toContainText('site.limits');
});

test('deleting a site takes its address away', async ({ page }, testInfo) => {
  await signedIn(page, owner);
  await page.locator('[data-site="hello-static"] a.site-name').click();
  await page.getByLabel(/Type .* to confirm/).fill('hello-static');
  await page.screenshot({ path: testInfo.outputPath('site-page.png'), fullPage: true });
  await page.getByRole('button', { name: 'Delete site' }).click();
  await expect(page.getByRole('heading', { name: 'My sites' })).toBeVisible();
  await expect(async () => {
    const response = await page.goto(siteURL('hello-static'));
    expect(response?.status()).toBe(404);
  }).toPass({ timeout: 30_000 });
  await expect(page.getByRole('heading', { name: 'No site here' })).toBeVisible();
});

test('a user adds an SSH key on their account page, sees its fingerprint, and removes it', async ({ page }, testInfo) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'director-key-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'laptop@e2e', '-f', path.join(dir, 'id')]);
  const publicKey = fs.readFileSync(path.join(dir, 'id.pub'), 'utf8');
  const fingerprint = execFileSync('ssh-keygen', ['-l', '-f', path.join(dir, 'id.pub')], { encoding: 'utf8' }).split(' ')[1];
  await signedIn(page, owner);
  await page.getByRole('link', { name: 'Account' }).click();
  await page.getByLabel('Public key').fill('ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7 short');
  await page.getByRole('button', { name: 'Add key' }).click();
  await expect(page.getByText('This is not an OpenSSH public key')).toBeVisible();
  await page.getByLabel('Public key').fill(publicKey);
  await page.getByRole('button', { name: 'Add key' }).click();
  const row = page.locator('tr[data-key="laptop@e2e"]');
  await expect(row).toContainText(fingerprint);
  await expect(page.getByText(/ssh -p \d+ <site>@<this host>/)).toBeVisible();
  await page.screenshot({ path: testInfo.outputPath('ssh-keys.png'), fullPage: true });
  await row.getByRole('button', { name: 'Remove key laptop@e2e' }).click();
  await expect(row).toHaveCount(0);
});

test('a user makes an API token, sees it once, uses it, and revokes it; the API reference renders', async ({ page, request }, testInfo) => {
  await signedIn(page, owner);
  await page.getByRole('link', { name: 'Account' }).click();
  await page.getByLabel('What it is for').fill('e2e script');
  await page.getByLabel('read and write').check();
  await page.getByRole('button', { name: 'Make token' }).click();
  const shown = page.locator('[data-secret="token"]');
  await expect(shown).toHaveText(/^dpat_/);
  const token = (await shown.textContent()) ?? '';
  const row = page.locator('tr[data-token="e2e script"]');
  await expect(row).toContainText('read, write');
  await expect(row).toContainText(token.slice(0, 9));
  await page.screenshot({ path: testInfo.outputPath('api-token.png'), fullPage: true });

  // The token works as its owner, through the API only.
  const sites = await request.get(`${server().baseURL}/api/v1/sites`, { headers: { Authorization: `Bearer ${token}` } });
  expect(sites.status()).toBe(200);
  expect((await sites.json()).sites.map((s: { name: string }) => s.name)).toContain('hello-python');

  // Shown once: a reload lists it without its secret.
  await page.reload();
  await expect(row).toBeVisible();
  await expect(page.locator('[data-secret="token"]')).toHaveCount(0);
  await expect(page.locator('body')).not.toContainText(token);

  await row.getByRole('button', { name: 'Revoke token e2e script' }).click();
  await expect(row).toContainText('revoked');
  const refused = await request.get(`${server().baseURL}/api/v1/sites`, { headers: { Authorization: `Bearer ${token}` } });
  expect(refused.status()).toBe(401);
  expect(refused.headers()['content-type']).toBe('application/problem+json');

  await page.getByRole('link', { name: 'the REST API' }).click();
  await expect(page).toHaveURL(/\/api\/docs$/);
  await expect(page.locator('#reference')).toContainText('/api/v1/sites');
  await expect(page.getByRole('button', { name: 'Authorize' })).toBeVisible();
  await page.screenshot({ path: testInfo.outputPath('api-reference.png'), fullPage: true });
});
