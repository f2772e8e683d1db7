// Steps shared by the specs.
import { expect, Page } from '@playwright/test';
import { server } from './server';

export interface Who {
  username: string;
  password: string;
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
