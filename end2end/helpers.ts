// Steps shared by the specs.
import { expect, Locator, Page } from '@playwright/test';
import { server } from './server';

export interface Who {
  username: string;
  password: string;
  /** Their address, when they have one. */
  email?: string;
}

/** Fills in and sends the sign-in form (whatever the outcome). */
export async function signIn(page: Page, who: Who) {
  await page.goto(`${server().baseURL}/login`);
  await page.getByLabel('Username').fill(who.username);
  await page.getByLabel('Password', { exact: true }).fill(who.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Signs in and waits for the dashboard. */
export async function signedIn(page: Page, who: Who) {
  await signIn(page, who);
  await expect(page.getByRole('heading', { name: 'My sites' })).toBeVisible();
}

/** Signs in as `admin` and makes each of `users` on the users page. */
export async function createUsers(page: Page, admin: Who, users: Who[]) {
  await signedIn(page, admin);
  for (const who of users) {
    await page.goto(`${server().baseURL}/admin/users`);
    await page.getByLabel('Username').fill(who.username);
    if (who.email) await page.getByLabel('E-mail').fill(who.email);
    await page.getByLabel('Initial password').fill(who.password);
    await page.getByRole('button', { name: 'Create user' }).click();
    await expect(page.getByRole('status')).toHaveText(`Created ${who.username}.`);
  }
}

/** Replaces a code editor's whole text (CodeMirror's content element), as a person typing it. */
export async function retype(editor: Locator, text: string) {
  const keyboard = editor.page().keyboard;
  await editor.click();
  await keyboard.press('Control+a');
  await keyboard.press('Delete');
  await keyboard.insertText(text);
}
