// Accounts end to end in Chromium: first-run setup, sign-in, admin pages, permissions,
// sign-out, and the manager with JavaScript off and on.
import { expect, test } from '@playwright/test';
import { signIn, signedIn } from '../helpers';
import { server } from '../server';

test.describe.configure({ mode: 'serial' });

const admin = { username: 'admin', password: 'admin password 123' };
const alice = { username: 'alice', password: 'alice password 123' };

test('the setup link creates the first admin and signs them in', async ({ page }) => {
  await page.goto(server().setupLink);
  await expect(page.getByRole('heading', { name: 'Create the first admin' })).toBeVisible();
  await page.getByLabel('Username').fill(admin.username);
  await page.getByLabel('Password', { exact: true }).fill(admin.password);
  await page.getByLabel('Password again').fill(admin.password);
  await page.getByRole('button', { name: 'Create admin and sign in' }).click();
  await expect(page.getByRole('heading', { name: 'My sites' })).toBeVisible();

  // The link is spent.
  await page.goto(server().setupLink);
  await expect(page.getByRole('heading', { name: 'This setup link is no longer valid' })).toBeVisible();
});

test('a wrong password shows an error and makes no session', async ({ page, context }) => {
  await signIn(page, { username: admin.username, password: 'not the password' });
  await expect(page.getByRole('alert')).toHaveText('Wrong username or password.');
  const cookies = await context.cookies();
  expect(cookies.find((c) => c.name === 'director_session')).toBeUndefined();
  await signIn(page, { username: 'nobody', password: 'not the password' });
  await expect(page.getByRole('alert')).toHaveText('Wrong username or password.');
});

test('an admin creates a user', async ({ page }) => {
  await signIn(page, admin);
  await expect(page.getByRole('heading', { name: 'My sites' })).toBeVisible();
  await page.getByRole('link', { name: 'Users' }).click();
  await expect(page.getByRole('heading', { name: 'Users', exact: true })).toBeVisible();

  await page.getByLabel('Username').fill('Bad Name');
  await page.getByLabel('Initial password').fill(alice.password);
  await page.getByRole('button', { name: 'Create user' }).click();
  await expect(page.locator('#username-error')).toContainText('starts with a letter');

  await page.getByLabel('Username').fill(alice.username);
  await page.getByLabel('Display name').fill('Alice Liddell');
  await page.getByRole('button', { name: 'Create user' }).click();
  await expect(page.getByRole('status')).toHaveText('Created alice.');
  await expect(page.locator('tr[data-username="alice"]')).toContainText('Alice Liddell');
});

test('an admin sees where each image stands on the engine', async ({ page }, testInfo) => {
  await signedIn(page, admin);
  await page.getByRole('link', { name: 'Images' }).click();
  await expect(page.getByRole('heading', { name: 'Images', exact: true })).toBeVisible();
  // Director connects to Docker (and makes any base image it lacks) in the background.
  await expect(async () => {
    await page.reload();
    for (const image of ['busybox', 'python']) {
      await expect(page.locator(`form[data-image="${image}"] .engine-state`)).toHaveText('On the engine.', {
        timeout: 1000,
      });
    }
  }).toPass({ timeout: 120_000 });
  await page.screenshot({ path: testInfo.outputPath('images.png'), fullPage: true });
});

test('a member cannot open admin pages or call admin functions', async ({ page }) => {
  await signIn(page, alice);
  await expect(page.getByRole('heading', { name: 'My sites' })).toBeVisible();
  await expect(page.getByRole('link', { name: 'Users' })).toHaveCount(0);

  const response = await page.goto(`${server().baseURL}/admin/users`);
  expect(response?.status()).toBe(403);
  await expect(page.getByRole('heading', { name: 'Not allowed' })).toBeVisible();

  // Straight at the server functions, with alice's session and a same-origin Origin header.
  const headers = { origin: server().baseURL, accept: 'application/json' };
  const list = await page.request.post(`${server().baseURL}/fn/list_users`, { headers, form: {} });
  expect(list.status()).toBe(403);
  const create = await page.request.post(`${server().baseURL}/fn/create_user`, {
    headers,
    form: { username: 'mallory', display_name: '', email: '', password: 'mallory password', role: 'admin' },
  });
  expect(create.status()).toBe(403);
  const promote = await page.request.post(`${server().baseURL}/fn/set_user_role`, {
    headers,
    form: { id: '2', role: 'admin' },
  });
  expect(promote.status()).toBe(403);
});

test('the certificates page says why there are none on plain HTTP, to admins only', async ({ page }) => {
  await signedIn(page, admin);
  await page.getByRole('link', { name: 'Certificates' }).click();
  await expect(page.getByRole('heading', { name: 'Certificates' })).toBeVisible();
  await expect(page.getByText("Director's edge gets no certificates")).toBeVisible();

  await page.context().clearCookies();
  await signedIn(page, alice);
  const response = await page.goto(`${server().baseURL}/admin/certificates`);
  expect(response?.status()).toBe(403);
});

test('signing out ends the session', async ({ page, context }) => {
  await signIn(page, alice);
  await expect(page.getByRole('heading', { name: 'My sites' })).toBeVisible();
  const session = (await context.cookies()).find((c) => c.name === 'director_session');
  expect(session?.httpOnly).toBe(true);
  expect(session?.sameSite).toBe('Lax');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
  // The old cookie no longer opens anything, even if replayed.
  await context.addCookies([session!]);
  await page.goto(`${server().baseURL}/`);
  await expect(page).toHaveURL(/\/login\?next=\//);
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('sign-in, errors and the dashboard work as plain forms', async ({ page }) => {
    await signIn(page, { username: alice.username, password: 'wrong password' });
    await expect(page.getByRole('alert')).toHaveText('Wrong username or password.');
    // The show-password button needs the client, so it stays hidden.
    await expect(page.getByRole('button', { name: 'Show' })).toBeHidden();
    await signIn(page, alice);
    await expect(page.getByRole('heading', { name: 'My sites' })).toBeVisible();
    await expect(page.getByText('Welcome, Alice Liddell.')).toBeVisible();
  });
});

test('the hydrated page is interactive', async ({ page }) => {
  await page.goto(`${server().baseURL}/login`);
  const password = page.getByLabel('Password', { exact: true });
  const toggle = page.getByRole('button', { name: 'Show' });
  await expect(toggle).toBeVisible();
  await password.fill('secret value');
  await expect(password).toHaveAttribute('type', 'password');
  await toggle.click();
  await expect(password).toHaveAttribute('type', 'text');
  await expect(page.getByRole('button', { name: 'Hide' })).toHaveAttribute('aria-pressed', 'true');
});

test('the dashboard, as a screenshot', async ({ page }, testInfo) => {
  await signIn(page, admin);
  await expect(page.getByRole('heading', { name: 'My sites' })).toBeVisible();
  const file = testInfo.outputPath('dashboard.png');
  await page.screenshot({ path: file, fullPage: true });
  await testInfo.attach('dashboard', { path: file, contentType: 'image/png' });
  await page.goto(`${server().baseURL}/admin/users`);
  await page.screenshot({ path: testInfo.outputPath('users.png'), fullPage: true });
});
