// Sign-in through the organisation's identity provider (a real oidc-provider started by the
// global setup): its own login page, then Director's dashboard as an account made for the
// person; a provider's refusal is shown on the sign-in page; a member with a password links
// the provider from their account page, and signing out offers to sign out there too; with
// local passwords turned off, the sign-in page has no password form.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect, test } from '@playwright/test';
import { freePort, startDirector, stopDirector } from '../director';
import { createUsers, signedIn } from '../helpers';
import { server } from '../server';

const admin = { username: 'admin', password: 'admin password 123' };

test('a person signs in through the provider and gets an account of their own', async ({ page }, testInfo) => {
  await page.goto(`${server().baseURL}/login`);
  await page.getByRole('link', { name: 'Sign in with Test SSO' }).click();
  // The provider's own login page: the login is the person's id there.
  await page.locator('input[name="login"]').fill('carol-sub');
  await page.locator('input[name="password"]').fill('anything');
  await page.screenshot({ path: testInfo.outputPath('provider-login.png') });
  await page.getByRole('button', { name: 'Sign-in' }).click();
  await expect(page.getByRole('heading', { name: 'My sites' })).toBeVisible();
  await expect(page.getByText('Welcome, Carol Client.')).toBeVisible();
  await page.goto(`${server().baseURL}/account`);
  await expect(page.locator('main')).toContainText('carol');
});

test('a sign-in the provider refused comes back with the reason', async ({ page }, testInfo) => {
  await page.goto(`${server().baseURL}/auth/oidc/sso/callback?error=access_denied&error_description=End-User+aborted+interaction`);
  await expect(page).toHaveURL(/\/login\?failed=/);
  await expect(page.getByRole('alert')).toHaveText('Signing in with Test SSO failed: it was cancelled, or the provider refused it.');
  await page.screenshot({ path: testInfo.outputPath('login-refused.png') });
  // A forged callback too; no text of the address's own is ever shown; the password form is
  // still there.
  await page.goto(`${server().baseURL}/auth/oidc/sso/callback?state=forged&code=x`);
  await expect(page.getByRole('alert')).toContainText('not one Director started');
  await page.goto(`${server().baseURL}/login?failed=Call+0800+now&provider=sso`);
  await expect(page.getByRole('alert')).toHaveCount(0);
  await expect(page.getByLabel('Username')).toBeVisible();
});

test('a member links the provider from their account page, then signs out of Director and the provider', async ({ page }, testInfo) => {
  const dan = { username: 'dan', password: 'dan password 1234' };
  await createUsers(page, admin, [dan]);
  const people = JSON.parse(fs.readFileSync(server().oidcAccounts, 'utf8'));
  people.accounts['dan-sub'] = { preferred_username: 'daniel', name: 'Dan at the provider', email: 'dan@example.org', groups: [] };
  fs.writeFileSync(server().oidcAccounts, JSON.stringify(people));
  await page.context().clearCookies();
  await signedIn(page, dan);

  await page.goto(`${server().baseURL}/account`);
  await page.getByRole('button', { name: 'Link Test SSO' }).click();
  // The provider asks who the person is, even had it a session of theirs.
  await page.locator('input[name="login"]').fill('dan-sub');
  await page.locator('input[name="password"]').fill('anything');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  await expect(page).toHaveURL(/\/account\?linked=sso/);
  await expect(page.getByRole('status')).toContainText('Linked.');
  await expect(page.locator('li[data-provider="Test SSO"]')).toContainText('linked since');
  await page.screenshot({ path: testInfo.outputPath('account-linked.png') });

  // Signed out, the provider signs him in to his own account (its session still open).
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login/);
  await page.getByRole('link', { name: 'Sign in with Test SSO' }).click();
  await expect(page.getByRole('heading', { name: 'My sites' })).toBeVisible();
  await page.goto(`${server().baseURL}/account`);
  await expect(page.locator('dl.facts')).toContainText('dan');

  // Signing out of that session offers to end the provider's too.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login\?signed_out=sso/);
  await page.screenshot({ path: testInfo.outputPath('signed-out.png') });
  await page.getByRole('link', { name: 'Sign out of Test SSO too' }).click();
  // The provider's own page confirms.
  await page.getByRole('button', { name: /Yes, sign me out/ }).click();
  await page.goto(`${server().baseURL}/login`);
  await page.getByRole('link', { name: 'Sign in with Test SSO' }).click();
  await expect(page.locator('input[name="login"]')).toBeVisible();
});

test('with local passwords turned off, the sign-in page offers the provider alone', async ({ page }, testInfo) => {
  // A second director of the run's own, with passwords off (--local-login off).
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'director-e2e-no-passwords-'));
  const namespace = `${server().namespace}np`;
  const port = await freePort();
  let pid = 0;
  try {
    ({ pid } = await startDirector(dataDir, namespace, ['--listen', `127.0.0.1:${port}`, '--edge', 'off', '--ssh-listen', 'off',
      '--oidc-issuer', server().oidcIssuer, '--oidc-client-id', 'director', '--oidc-client-secret-file', server().oidcSecret,
      '--oidc-name', 'Test SSO', '--local-login', 'off'], testInfo.outputPath('director.log')));
    await page.goto(`http://127.0.0.1:${port}/login`);
    await expect(page.getByRole('link', { name: 'Sign in with Test SSO' })).toBeVisible();
    await expect(page.getByLabel('Password', { exact: true })).toHaveCount(0);
    await expect(page.getByLabel('Username')).toHaveCount(0);
    await page.screenshot({ path: testInfo.outputPath('login-passwords-off.png') });
  } finally {
    if (pid) await stopDirector(pid, dataDir, namespace);
    else fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
