// A site's image and environment in Chromium: a member sets an environment variable on a
// Python site and the site shows it; adds a Debian package to its recipe, watches the build's
// output arrive while it runs, and the site then uses the package; a bad package name is
// refused with the reason; once an admin allows it, the site is built from its own Dockerfile;
// another user gets 404. An admin adds a catalogue image built from a pasted Dockerfile and
// follows its output.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect, test } from '@playwright/test';
import { createUsers, signedIn } from '../helpers';
import { server, siteURL } from '../server';

test.describe.configure({ mode: 'serial' });

const owner = { username: 'imgowner', password: 'imgowner password 1' };
const other = { username: 'imgoutsider', password: 'imgoutsider password 1' };
const admin = { username: 'admin', password: 'admin password 123' };

let siteId = 0;

/** Writes a file into the site's directory as the site's own user owns its files. */
function writeSiteFile(id: number, name: string, text: string, mode: number) {
  const file = path.join(server().dataDir, 'sites', String(id).padStart(4, '0'), name);
  fs.writeFileSync(file, text, { mode });
  fs.chownSync(file, 100_000 + id, 100_000 + id);
}

/** The site's page: its greeting, and what jq makes of a document (if jq is there). */
const RUN_SH = `#!/bin/sh
{
  echo "greeting: $GREETING"
  echo '{"answer": 41}' | jq '.answer + 1' 2>/dev/null || echo "no jq"
} > /tmp/index.html
exec python3 -m http.server "$PORT" -d /tmp
`;

async function visit(page: import('@playwright/test').Page, text: string | RegExp) {
  const visitor = await page.context().newPage();
  await expect(async () => {
    await visitor.goto(siteURL('imgsite'));
    await expect(visitor.locator('body')).toContainText(text, { timeout: 1_000 });
  }).toPass({ timeout: 120_000 });
  await visitor.close();
}

test('users for the image tests', async ({ page }) => {
  await createUsers(page, admin, [owner, other]);
});

test('a variable set on the page reaches the site', async ({ page }, testInfo) => {
  test.setTimeout(600_000);
  await signedIn(page, owner);
  await page.getByRole('link', { name: 'New site' }).click();
  await page.getByLabel('Name').fill('imgsite');
  await page.getByLabel(/Dynamic/).check();
  await page.getByLabel('Image').selectOption('python');
  await page.getByLabel('Description').fill('a site with packages of its own');
  await page.getByRole('button', { name: 'Create site' }).click();
  await expect(page.getByRole('heading', { name: 'imgsite' })).toBeVisible();
  await expect(page.locator('.operation').first()).toHaveAttribute('data-state', 'done', { timeout: 300_000 });
  siteId = Number(new URL(page.url()).pathname.split('/').pop());
  writeSiteFile(siteId, 'run.sh', RUN_SH, 0o755);

  await page.getByRole('navigation', { name: 'Site' }).getByRole('link', { name: 'Image & environment' }).click();
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
  await expect(page.locator('.running-image')).toHaveText('director/python:3');
  const env = page.locator('section', { has: page.getByRole('heading', { name: 'Environment variables' }) });
  // Director's own names are refused, with the reason.
  await env.getByLabel('Name').fill('PORT');
  await env.getByLabel('Value').fill('1');
  await env.getByRole('button', { name: 'Set the variable' }).click();
  await expect(env.getByText('PORT is set by Director')).toBeVisible();
  await env.getByLabel('Name').fill('GREETING');
  await env.getByLabel('Value').fill('hello from the page');
  await env.getByRole('button', { name: 'Set the variable' }).click();
  await expect(env.locator('tr[data-variable="GREETING"] code.value')).toHaveText('hello from the page');
  await env.getByLabel('Name').fill('TOKEN');
  await env.getByLabel('Value').fill('not to be shown');
  await env.getByLabel(/Secret/).check();
  await env.getByRole('button', { name: 'Set the variable' }).click();
  await expect(env.locator('tr[data-variable="TOKEN"]')).toContainText('secret (hidden)');
  await expect(page.locator('body')).not.toContainText('not to be shown');
  await expect(page.locator('.operation').first()).toHaveAttribute('data-state', 'done', { timeout: 120_000 });
  await visit(page, 'greeting: hello from the page');
  await page.screenshot({ path: testInfo.outputPath('image-variables.png'), fullPage: true });
});

test('a package added to the recipe is built live and then used by the site', async ({ page }, testInfo) => {
  test.setTimeout(600_000);
  await signedIn(page, owner);
  await page.goto(`${server().baseURL}/sites/${siteId}/image`);
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
  const recipe = page.locator('form.recipe');
  // Options and shell syntax are not package names.
  await recipe.getByLabel('Debian packages').fill('jq;id');
  await recipe.getByRole('button', { name: 'Save and build' }).click();
  await expect(recipe.getByText('is not a Debian package name')).toBeVisible();

  // A step of its own that takes a few seconds (a new marker each run, so the engine's cache
  // never skips it): its output is on the page while the build still runs.
  const marker = `step-${Date.now()}`;
  await recipe.getByLabel('Debian packages').fill('jq');
  await recipe.getByLabel(/Setup commands/).fill(`echo ${marker} && sleep 6`);
  await recipe.getByRole('button', { name: 'Save and build' }).click();
  const log = page.locator('pre.build-log');
  await expect(log).toContainText(marker, { timeout: 300_000 });
  await expect(log).toHaveAttribute('data-state', 'running');
  await page.screenshot({ path: testInfo.outputPath('image-building.png'), fullPage: true });
  await expect(log).toHaveAttribute('data-state', 'succeeded', { timeout: 300_000 });
  await expect(log).toContainText('jq');
  await expect(page.locator('.operation').first()).toHaveAttribute('data-state', 'done', { timeout: 180_000 });
  // Tests run Director in a namespace of their own, which prefixes the image's name.
  await expect(page.locator('.running-image')).toHaveText(new RegExp(`^director/(\\w+_)?site_${String(siteId).padStart(4, '0')}:\\d+$`));
  await visit(page, /greeting: hello from the page\s+42/);
  await page.screenshot({ path: testInfo.outputPath('image-built.png'), fullPage: true });
});

test('a member builds the site from its own Dockerfile once an admin allows it', async ({ page }, testInfo) => {
  test.setTimeout(600_000);
  // The admin lets sites on the Python image build their own Dockerfile.
  await signedIn(page, admin);
  await page.goto(`${server().baseURL}/admin/images`);
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
  const python = page.locator('form[data-image="python"]');
  const reference = await python.getByLabel('Docker image').inputValue();
  await python.getByLabel(/Sites may build their own Dockerfile/).check();
  await python.getByRole('button', { name: 'Save' }).click();
  await expect(python.getByLabel(/Sites may build their own Dockerfile/)).toBeChecked();

  await page.context().clearCookies();
  await signedIn(page, owner);
  writeSiteFile(siteId, 'Dockerfile', `FROM ${reference}\nRUN echo built from its own Dockerfile > /opt/own.txt\n`, 0o644);
  writeSiteFile(siteId, 'run.sh', '#!/bin/sh\ncp /opt/own.txt /tmp/index.html\nexec python3 -m http.server "$PORT" -d /tmp\n', 0o755);
  await page.goto(`${server().baseURL}/sites/${siteId}/image`);
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
  const recipe = page.locator('form.recipe');
  await recipe.getByLabel(/The site's own Dockerfile/).check();
  await recipe.getByLabel(/Dockerfile \(a path/).fill('Dockerfile');
  await recipe.getByRole('button', { name: 'Save and build' }).click();
  const log = page.locator('pre.build-log');
  await expect(log).toContainText('Dockerfile, with the folder . as its context', { timeout: 120_000 });
  await expect(log).toHaveAttribute('data-state', 'succeeded', { timeout: 300_000 });
  await expect(page.locator('.operation').first()).toHaveAttribute('data-state', 'done', { timeout: 180_000 });
  await visit(page, 'built from its own Dockerfile');
  await page.screenshot({ path: testInfo.outputPath('image-own-dockerfile.png'), fullPage: true });
});

test('another user cannot see the site\'s image', async ({ page }) => {
  await signedIn(page, other);
  const response = await page.goto(`${server().baseURL}/sites/${siteId}/image`);
  expect(response?.status()).toBe(404);
});

test('an admin adds a catalogue image built from a pasted Dockerfile and watches its output', async ({ page }, testInfo) => {
  test.setTimeout(600_000);
  await signedIn(page, admin);
  await page.goto(`${server().baseURL}/admin/images`);
  await page.locator('html[data-hydrated]').waitFor({ state: 'attached' });
  const python = await page.locator('form[data-image="python"]').getByLabel('Docker image').inputValue();
  const form = page.locator('form.image-form').last();
  await form.getByLabel('Name').fill('pasted');
  // A step of a few seconds with a new marker each run: seen while the build still runs.
  const marker = `pasted-${Date.now()}`;
  await form.getByLabel(/Or build it from this Dockerfile/).fill(`FROM ${python}\nRUN echo ${marker} && sleep 4\n`);
  await form.getByRole('button', { name: 'Add image' }).click();
  const built = page.locator('form[data-image="pasted"]');
  const log = built.locator('pre.build-log');
  await expect(log).toContainText(marker, { timeout: 300_000 });
  await expect(log).toHaveAttribute('data-state', 'succeeded', { timeout: 300_000 });
  // The catalogue points to the image its build made.
  await expect(built.getByLabel('Docker image')).toHaveValue(/catalogue_\d+:1$/);
  await page.screenshot({ path: testInfo.outputPath('catalogue-built.png'), fullPage: true });
});
