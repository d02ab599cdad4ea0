// What every end-to-end test shares: the seeded server, a page that fails the test on any
// console error, uncaught exception or CSP violation, signing in, and the per-page check
// (axe scan for WCAG 2 A/AA with no serious or critical violation, and a full-page screenshot).
import AxeBuilder from '@axe-core/playwright';
import { test as base, expect, type APIRequestContext, type Page } from '@playwright/test';
import { join } from 'node:path';
import { OUTPUT_DIR, readState, type E2eState } from './state';

interface ConsoleWatch {
  /** Lets a test expect an error the browser logs (a refused token's 401), by pattern. */
  allow: (pattern: RegExp) => void;
}

export const test = base.extend<{ cmp: E2eState; consoleWatch: ConsoleWatch }>({
  // eslint-disable-next-line no-empty-pattern
  cmp: async ({}, use) => use(readState()),
  baseURL: async ({ cmp }, use) => use(cmp.uiUrl),
  consoleWatch: [
    async ({ page }, use) => {
      const allowed: RegExp[] = [];
      const problems: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
      });
      page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
      // Chromium logs CSP refusals too; this names the directive in any case.
      await page.addInitScript(() => {
        document.addEventListener('securitypolicyviolation', (event) => {
          console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || 'inline'}`);
        });
      });
      await use({ allow: (pattern) => allowed.push(pattern) });
      const unexpected = problems.filter((problem) => !allowed.some((pattern) => pattern.test(problem)));
      expect(unexpected, 'console errors, uncaught exceptions or CSP violations').toEqual([]);
    },
    { auto: true },
  ],
});

export { expect };

/** Signs in on the sign-in page with a pasted token, and waits for the Overview. */
export async function signIn(page: Page, token: string, path = '/'): Promise<void> {
  await page.goto(path);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in with token' }).click();
  await expect(page.getByRole('button', { name: 'Sign out' })).toBeVisible();
}

/** The checks after each page: axe (WCAG 2 A and AA) and a full-page screenshot. */
export async function checkPage(page: Page, name: string): Promise<void> {
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa']).analyze();
  const severe = results.violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map((violation) => `${violation.impact}: ${violation.id} (${violation.help}) at ${violation.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  expect(severe, `axe violations on ${name}`).toEqual([]);
  await page.screenshot({ path: join(OUTPUT_DIR, 'screenshots', `${name}.png`), fullPage: true });
}

/** How many certificates the inventory holds now (tests before may have added some). */
export async function countCertificates(request: APIRequestContext, cmp: E2eState): Promise<number> {
  const listing = await request.get(`${cmp.apiUrl}/api/v1/certificates?limit=500`, {
    headers: { Authorization: `Bearer ${cmp.token}` },
  });
  expect(listing.ok()).toBe(true);
  return ((await listing.json()) as { items: unknown[] }).items.length;
}
