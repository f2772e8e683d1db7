// Sign-in through the organisation's identity provider (a real oidc-provider started by the
// global setup): its own login page, then Director's dashboard as an account made for the
// person; a provider's refusal is shown on the sign-in page.
import { expect, test } from '@playwright/test';
import { server } from '../server';

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
