// Sites end to end in Chromium: a member creates a static site and a Python one and loads them
// at their addresses; another member cannot see them; deleting one takes its address away.
import { expect, test, Page } from '@playwright/test';
import { signedIn } from '../helpers';
import { server, siteURL } from '../server';

test.describe.configure({ mode: 'serial' });

const owner = { username: 'siteowner', password: 'siteowner password 1' };
const other = { username: 'outsider', password: 'outsider password 1' };

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
  await signedIn(page, { username: 'admin', password: 'admin password 123' });
  for (const who of [owner, other]) {
    await page.goto(`${server().baseURL}/admin/users`);
    await page.getByLabel('Username').fill(who.username);
    await page.getByLabel('Initial password').fill(who.password);
    await page.getByRole('button', { name: 'Create user' }).click();
    await expect(page.getByRole('status')).toHaveText(`Created ${who.username}.`);
  }
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

  await page.goto(sitePage);
  await page.getByRole('button', { name: 'Serve again' }).click();
  await expect(page.getByRole('button', { name: 'Restart' })).toBeVisible({ timeout: 30_000 });
  await page.getByRole('button', { name: 'Restart' }).click();
  await expect(page.locator('.operation').first()).toContainText('restart-service', { timeout: 30_000 });
  await expect(page.locator('.operation').first()).toHaveAttribute('data-state', 'done', { timeout: 30_000 });
  await expect(async () => {
    const response = await page.goto(siteURL('hello-python'));
    expect(response?.status()).toBe(200);
  }).toPass({ timeout: 30_000 });
});

test('another user cannot see or open the sites', async ({ page }) => {
  await signedIn(page, other);
  await expect(page.locator('[data-site]')).toHaveCount(0);
  const response = await page.goto(`${server().baseURL}/sites/1`);
  expect(response?.status()).toBe(404);
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
