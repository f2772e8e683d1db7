// Requests for sites in Chromium: the admin has members request sites; a member asks; Carol,
// an approver by her group at the identity provider, approves after signing in there; an
// admin approves; the site is made for the member, with its progress, and loads at its
// address; the member's inbox shows each step, and the mail server received the emails. A
// denied request shows its reason to its member, and reaches the webhook they added, signed.
import { expect, test, Page } from '@playwright/test';
import { createUsers, signedIn } from '../helpers';
import { server, siteURL } from '../server';

test.describe.configure({ mode: 'serial' });

const admin = { username: 'admin', password: 'admin password 123' };
const member = { username: 'asker', password: 'asker password 12', email: 'asker@example.org' };

/** The admin's choice of how members get sites. */
async function policy(page: Page, creation: 'create sites themselves' | 'request them') {
  await signedIn(page, admin);
  await page.getByRole('link', { name: 'Requests to review' }).click();
  await page.getByLabel(creation).check();
  await page.getByLabel('an approver, then an admin').check();
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('status')).toHaveText('Saved.');
}

/** The member asks for `name`; returns the request's page address. */
async function ask(page: Page, name: string): Promise<string> {
  await page.context().clearCookies();
  await signedIn(page, member);
  await page.getByRole('link', { name: 'New site' }).click();
  await expect(page.getByRole('heading', { name: 'Request a site', level: 1 })).toBeVisible();
  await page.getByLabel('Name').fill(name);
  await page.getByLabel(/Static/).check();
  await page.getByLabel('Image').selectOption('busybox');
  await page.getByLabel('Why you want it').fill('Our club posts its results there.');
  await page.getByRole('button', { name: 'Send the request' }).click();
  await expect(page.getByRole('heading', { name: `Request for ${name}` })).toBeVisible();
  await expect(page.getByText('Waiting for an approver').first()).toBeVisible();
  return page.url();
}

test.afterAll(async ({ browser }) => {
  // The later specs' members create sites themselves.
  const page = await browser.newPage();
  await policy(page, 'create sites themselves');
  await page.close();
});

test('a request approved by an approver from the provider and by an admin becomes a live site', async ({ page }, testInfo) => {
  await createUsers(page, admin, [member]);
  await policy(page, 'request them');
  const request = await ask(page, 'club-results');
  await page.screenshot({ path: testInfo.outputPath('request-submitted.png') });

  // Carol signs in through the provider, whose groups make her an approver.
  await page.context().clearCookies();
  await page.goto(`${server().baseURL}/login`);
  await page.getByRole('link', { name: 'Sign in with Test SSO' }).click();
  const login = page.locator('input[name="login"]');
  if (await login.isVisible()) {
    await login.fill('carol-sub');
    await page.locator('input[name="password"]').fill('anything');
    await page.getByRole('button', { name: 'Sign-in' }).click();
  }
  await expect(page.getByRole('heading', { name: 'My sites' })).toBeVisible();
  await page.getByRole('link', { name: 'Requests to review' }).click();
  await page.getByRole('link', { name: 'club-results' }).click();
  await page.getByLabel('Comment').fill('Fine by me.');
  await page.getByRole('button', { name: 'Approve' }).click();
  await expect(page.getByText('Waiting for an admin').first()).toBeVisible();

  // The admin approves: the site is made for the member.
  await page.context().clearCookies();
  await signedIn(page, admin);
  await page.getByRole('link', { name: 'Requests to review' }).click();
  await page.getByRole('link', { name: 'club-results' }).click();
  await expect(page.locator('ol.history')).toContainText('Fine by me.');
  await page.getByRole('button', { name: 'Approve' }).click();
  await expect(page.getByText('Site created').first()).toBeVisible();
  await page.screenshot({ path: testInfo.outputPath('request-approved.png'), fullPage: true });

  // The member finds it among their sites, made with its progress, and it loads.
  await page.context().clearCookies();
  await signedIn(page, member);
  await page.goto(request);
  await page.getByRole('link', { name: 'Open the site' }).click();
  await expect(page.getByRole('heading', { name: 'club-results' })).toBeVisible();
  await expect(page.locator('.operation').first()).toHaveAttribute('data-state', 'done', { timeout: 30_000 });
  await page.goto(siteURL('club-results'));
  await expect(page.getByText('This is the starter page of club-results')).toBeVisible();

  // The bell counts what happened; the inbox tells each step; the emails went out too.
  await page.goto(server().baseURL);
  await expect(page.getByRole('link', { name: /Notifications, [1-9]\d* unread/ })).toBeVisible();
  await page.getByRole('link', { name: /Notifications/ }).click();
  await expect(page.locator('ul.inbox')).toContainText('Carol Client approved your request for club-results');
  await expect(page.locator('ul.inbox')).toContainText('Your site club-results was created');
  await page.screenshot({ path: testInfo.outputPath('inbox.png'), fullPage: true });
  await expect(async () => {
    const emails: { to: { address: string }[]; subject: string; text: string }[] = await (await fetch(server().mailApi)).json();
    const theirs = emails.filter((e) => e.to[0].address === member.email).map((e) => e.subject);
    expect(theirs).toContain('[Director] Carol Client approved your request for club-results');
    expect(theirs).toContain('[Director] Your site club-results was created');
  }).toPass({ timeout: 15_000 });
  await page.getByRole('button', { name: 'Mark all read' }).click();
  await expect(page.locator('ul.inbox .unread')).toHaveCount(0);
  await page.reload();
  await expect(page.getByRole('link', { name: 'Notifications, 0 unread' })).toBeVisible();
});

test('a denied request shows its reason to its member, and their webhook hears of it', async ({ page }, testInfo) => {
  // The member adds a webhook: the cloud's metadata address is refused with the reason; the
  // run's endpoint is taken, its secret shown once, and a test reaches it.
  await page.context().clearCookies();
  await signedIn(page, member);
  await page.getByRole('link', { name: /Notifications/ }).click();
  const url = page.getByLabel('Endpoint URL');
  await url.fill('http://169.254.169.254/latest/meta-data/');
  await page.getByRole('button', { name: 'Add webhook' }).click();
  await expect(page.getByText(/169\.254\.169\.254 is a link-local address/)).toBeVisible();
  const endpoint = `${server().hooks}/asker`;
  await url.fill(endpoint);
  await page.getByRole('button', { name: 'Add webhook' }).click();
  const secret = (await page.locator('[data-secret]').textContent())!;
  expect(secret).toMatch(/^whsec_/);
  await fetch(`${server().hooks}/_secret/asker`, { method: 'PUT', body: secret });
  await page.getByRole('button', { name: `Test ${endpoint}` }).click();
  await expect(page.getByText(`Delivered: ${server().hooks} answered 204 No Content`)).toBeVisible();
  await page.screenshot({ path: testInfo.outputPath('webhooks.png'), fullPage: true });

  const request = await ask(page, 'second-club');
  await page.context().clearCookies();
  await signedIn(page, admin);
  await page.goto(request);
  await page.getByLabel('Reason for a denial').fill('Use the club-results site for this.');
  await page.getByRole('button', { name: 'Deny' }).click();
  await expect(page.getByText('Denied').first()).toBeVisible();

  await page.context().clearCookies();
  await signedIn(page, member);
  await page.getByRole('link', { name: 'My requests' }).click();
  await expect(page.locator('tr[data-request="second-club"]')).toContainText('Denied');
  await page.getByRole('link', { name: 'second-club' }).click();
  await expect(page.locator('ol.history')).toContainText('Use the club-results site for this.');
  await page.screenshot({ path: testInfo.outputPath('request-denied.png'), fullPage: true });

  // The endpoint received the denial, signed with the secret (it checks that itself).
  await expect(async () => {
    const received: { path: string; verified: boolean; body: { event: string; subject: string } }[] =
      await (await fetch(`${server().hooks}/_received`)).json();
    const denial = received.find((r) => r.path === '/asker' && r.body.event === 'request-denied');
    expect(denial?.verified).toBe(true);
    expect(denial?.body.subject).toContain('second-club');
  }).toPass({ timeout: 15_000 });
});
