// Sites' databases in Chromium: a member adds a PostgreSQL database to a Python site whose
// run.sh reads DATABASE_URL, makes a table and a row in the SQL console, and the site shows the
// row; the password is shown only when asked for; a dump downloads; the console works without
// JavaScript; another user gets 404; MySQL the same way, shorter.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect, test, Page } from '@playwright/test';
import { createUsers, retype, signedIn } from '../helpers';
import { server, siteURL } from '../server';

test.describe.configure({ mode: 'serial' });

const owner = { username: 'dbowner', password: 'dbowner password 1' };
const other = { username: 'dboutsider', password: 'dboutsider password 1' };
const admin = { username: 'admin', password: 'admin password 123' };

let siteId = 0;

/** The site's app: a count and the last row of `notes`, read with DATABASE_URL. */
const APP = `import http.server, os
import psycopg2

class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with psycopg2.connect(os.environ["DATABASE_URL"]) as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*), coalesce(max(body), '') FROM notes")
                count, last = cur.fetchone()
            body = f"notes: {count}; last: {last}"
        except Exception as error:
            body = f"no notes yet: {type(error).__name__}"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), Page).serve_forever()
`;

/** Writes a file into the site's directory as the site's own user owns its files. */
function writeSiteFile(id: number, name: string, text: string, mode: number) {
  const file = path.join(server().dataDir, 'sites', String(id).padStart(4, '0'), name);
  fs.writeFileSync(file, text, { mode });
  fs.chownSync(file, 100_000 + id, 100_000 + id);
}

async function openDatabaseTab(page: Page) {
  await page.goto(`${server().baseURL}/sites/${siteId}/database`);
  await expect(page.getByRole('heading', { name: 'dbsite' })).toBeVisible();
}

/** Types `sql` into the console's editor and runs it with Ctrl-Enter. */
async function runSql(page: Page, sql: string) {
  await retype(page.locator('section.console .cm-content'), sql);
  await page.keyboard.press('Control+Enter');
}

test('users for the database tests', async ({ page }) => {
  await createUsers(page, admin, [owner, other]);
});

test('a PostgreSQL database added to a Python site is used by it and by the SQL console', async ({ page }, testInfo) => {
  // A new machine makes the Python and PostgreSQL images first.
  test.setTimeout(600_000);
  await signedIn(page, owner);
  await page.getByRole('link', { name: 'New site' }).click();
  await page.getByLabel('Name').fill('dbsite');
  await page.getByLabel(/Dynamic/).check();
  await page.getByLabel('Image').selectOption('python');
  await page.getByLabel('Description').fill('a site with a database');
  await page.getByRole('button', { name: 'Create site' }).click();
  await expect(page.getByRole('heading', { name: 'dbsite' })).toBeVisible();
  await expect(page.locator('.operation').first()).toHaveAttribute('data-state', 'done', { timeout: 120_000 });
  siteId = Number(new URL(page.url()).pathname.split('/').pop());
  writeSiteFile(siteId, 'app.py', APP, 0o644);
  writeSiteFile(siteId, 'run.sh', '#!/bin/sh\nexec python3 /site/app.py\n', 0o755);

  await page.getByRole('navigation', { name: 'Site' }).getByRole('link', { name: 'Database' }).click();
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
  const started = Date.now();
  await page.getByRole('button', { name: 'Add a PostgreSQL database' }).click();
  const card = page.locator('section.database[data-kind="postgresql"]');
  await expect(card.locator('.badge')).toHaveText('ready', { timeout: 120_000 });
  testInfo.annotations.push({ type: 'database ready after', description: `${Date.now() - started} ms` });
  // The URL is shown without its password until asked for.
  await expect(card.locator('.database-url')).toHaveText('postgresql://site_dbsite@postgres.director:5432/site_dbsite');
  await card.getByRole('button', { name: 'Show the password' }).click();
  await expect(card.locator('.database-url')).toHaveText(/^postgresql:\/\/site_dbsite:[A-Za-z0-9]{48}@postgres\.director:5432\/site_dbsite$/);

  // The site runs its new run.sh with DATABASE_URL: no table yet.
  const visitor = await page.context().newPage();
  await expect(async () => {
    await visitor.goto(siteURL('dbsite'));
    await expect(visitor.locator('body')).toContainText('no notes yet', { timeout: 1_000 });
  }).toPass({ timeout: 60_000 });

  await runSql(page, "CREATE TABLE notes (body text);\nINSERT INTO notes VALUES ('written in the console');\nSELECT * FROM notes");
  const output = page.locator('.console-output');
  await expect(output.locator('table.result td')).toHaveText('written in the console');
  await page.screenshot({ path: testInfo.outputPath('database-page.png'), fullPage: true });
  // An error shows the server's words and where it points.
  await runSql(page, 'SELECT 1;\nSELEC 2');
  await expect(output.getByRole('alert')).toContainText('syntax error');
  await expect(output.getByRole('alert')).toContainText('line 2, column 1');

  await expect(async () => {
    await visitor.goto(siteURL('dbsite'));
    await expect(visitor.locator('body')).toHaveText('notes: 1; last: written in the console', { timeout: 1_000 });
  }).toPass({ timeout: 30_000 });
  await visitor.close();
});

test('the database shell runs psql as the site\'s role', async ({ page }, testInfo) => {
  await signedIn(page, owner);
  await openDatabaseTab(page);
  await page.locator('section.database[data-kind="postgresql"]').getByRole('link', { name: 'Database shell' }).click();
  const panel = page.locator('section.terminal');
  await expect(panel).toHaveAttribute('data-terminal-state', 'connected', { timeout: 60_000 });
  const screen = (): Promise<string> => panel.evaluate((el: any) => el.terminalText());
  await expect.poll(screen, { timeout: 30_000 }).toContain('site_dbsite=>');
  await page.locator('.xterm').click();
  await page.keyboard.type('\\dt\n');
  await expect.poll(screen, { timeout: 15_000 }).toMatch(/public \| notes \| table \| site_dbsite/);
  await page.screenshot({ path: testInfo.outputPath('database-shell.png'), fullPage: true });
});

test('a dump of the database downloads as SQL named after the site', async ({ page }) => {
  await signedIn(page, owner);
  await openDatabaseTab(page);
  const card = page.locator('section.database[data-kind="postgresql"]');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    card.getByRole('link', { name: 'Download a dump' }).click(),
  ]);
  expect(download.suggestedFilename()).toMatch(/^dbsite-postgresql-\d{8}-\d{6}\.sql$/);
  const dump = fs.readFileSync(await download.path(), 'utf8');
  expect(dump).toContain('CREATE TABLE public.notes');
  expect(dump).toContain('written in the console');
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the SQL console is a plain form that shows its run', async ({ page }) => {
    await signedIn(page, owner);
    await openDatabaseTab(page);
    await page.getByLabel('SQL statements').fill('SELECT count(*) AS n, NULL AS nothing FROM notes');
    await page.getByRole('button', { name: 'Run' }).click();
    await expect(page).toHaveURL(new RegExp(`/sites/${siteId}/database\\??$`));
    const output = page.locator('.console-output');
    await expect(output.locator('table.result td')).toHaveText(['1', 'NULL']);
    await page.getByLabel('SQL statements').fill('SELECT 1;\nSELEC');
    await page.getByRole('button', { name: 'Run' }).click();
    await expect(output.getByRole('alert')).toContainText('syntax error');
    await expect(output.getByRole('alert')).toContainText('line 2, column 1');
    // Shown once: the page loaded again is the console without a run.
    await page.reload();
    await expect(page.locator('.console-output')).toHaveCount(0);
    await expect(page.getByLabel('SQL statements')).toHaveValue(/SELEC$/);
  });
});

test('another user gets 404 for the database page', async ({ page }) => {
  await signedIn(page, other);
  const response = await page.goto(`${server().baseURL}/sites/${siteId}/database`);
  expect(response?.status()).toBe(404);
});

test('a MySQL database is added beside it and answers in the console', async ({ page }, testInfo) => {
  test.setTimeout(600_000);
  await signedIn(page, owner);
  await openDatabaseTab(page);
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
  await page.getByRole('button', { name: 'Add a MySQL (MariaDB) database' }).click();
  const card = page.locator('section.database[data-kind="mysql"]');
  await expect(card.locator('.badge')).toHaveText('ready', { timeout: 120_000 });
  await page.locator('section.console select[name="kind"]').selectOption('mysql');
  await runSql(page, 'SELECT 1 + 1 AS two, NULL AS nothing');
  const output = page.locator('.console-output');
  await expect(output.locator('table.result th')).toHaveText(['two', 'nothing']);
  await expect(output.locator('table.result td')).toHaveText(['2', 'NULL']);
  await page.screenshot({ path: testInfo.outputPath('database-mysql.png'), fullPage: true });
});

test('an admin sees both servers with the sites\' databases on them', async ({ page }, testInfo) => {
  await signedIn(page, admin);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Databases' }).click();
  await expect(page.getByRole('heading', { name: 'Database servers' })).toBeVisible();
  for (const kind of ['postgresql', 'mysql']) {
    const server = page.locator(`section.database-server[data-kind="${kind}"]`);
    await expect(server.locator('.badge').first()).toHaveText('up');
    await expect(server.locator('tr[data-site="dbsite"]')).toContainText('ready');
  }
  await expect(page.locator('section.database-server[data-kind="postgresql"] dd').first()).toHaveText(/^15\./);
  await page.screenshot({ path: testInfo.outputPath('admin-databases.png'), fullPage: true });
});

test('a member is refused the servers\' page', async ({ page }) => {
  await signedIn(page, owner);
  const response = await page.goto(`${server().baseURL}/admin/databases`);
  expect(response?.status()).toBe(403);
});
