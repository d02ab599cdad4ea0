// Single sign-on in the browser, end to end: a real OpenID provider (scripts/oidc-provider)
// and a cmpd of this file's own that knows it (oidc-provider.ts). Each test is a fresh browser
// context, so a fresh login at the provider; the provider logs in whoever the login names
// (login_hint, which /auth/login passes on) or ada, without a form.
import type { Page } from '@playwright/test';
import { checkPage, expect, test } from './fixtures';
import { PROVIDER_NAME, USERS, startSsoWorld, type SsoWorld, type UserName } from './oidc-provider';

let world: SsoWorld;

test.beforeAll(async () => {
  test.setTimeout(120_000);
  world = await startSsoWorld();
});

test.afterAll(async () => {
  await world?.stop();
});

/**
 * Makes the dashboard's "Sign in with corp" log in `user`: the dashboard sends no login_hint,
 * so the test redirects its /auth/login to the same URL with one, as a link from a portal that
 * names the user would.
 */
async function loginAs(page: Page, user: UserName): Promise<void> {
  await page.route(
    (url) => url.origin === world.uiUrl && url.pathname === '/auth/login' && !url.searchParams.has('login_hint'),
    (route) => {
      const url = new URL(route.request().url());
      url.searchParams.set('login_hint', user);
      return route.fulfill({ status: 303, headers: { location: url.toString() } });
    },
  );
}

/** Opens `path` signed out, and signs in as `user` with the provider's button there. */
async function signInWithProvider(page: Page, user: UserName, path = '/'): Promise<void> {
  await loginAs(page, user);
  await page.goto(`${world.uiUrl}${path}`);
  await expect(page.getByRole('heading', { name: 'Sign in to CMP' })).toBeVisible();
  await page.getByRole('link', { name: `Sign in with ${PROVIDER_NAME}` }).click();
}

/** The session cookie's value in this browser, if any. */
async function sessionCookie(page: Page): Promise<string | undefined> {
  return (await page.context().cookies(world.uiUrl)).find((c) => c.name === 'cmp_session')?.value;
}

/** GET /api/v1/me with nothing but `cmp_session=<value>`, from outside the browser. */
async function meWithCookie(value: string): Promise<Response> {
  return fetch(`${world.uiUrl}/api/v1/me`, { headers: { Cookie: `cmp_session=${value}` } });
}

async function certificateLabels(id: string): Promise<Record<string, string>> {
  const response = await fetch(`${world.apiUrl}/api/v1/certificates/${id}`, {
    headers: { Authorization: `Bearer ${world.token}` },
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { labels: Record<string, string> }).labels;
}

test('the sign-in page offers the provider, whose login brings ada back to the page she asked for', async ({ page }) => {
  await page.goto(`${world.uiUrl}/certificates?status=valid`);
  await expect(page.getByRole('heading', { name: 'Sign in to CMP' })).toBeVisible();
  const button = page.getByRole('link', { name: `Sign in with ${PROVIDER_NAME}` });
  await expect(button).toBeVisible();
  await expect(button).toHaveAttribute('href', '/auth/login?provider=corp&return_to=%2Fcertificates%3Fstatus%3Dvalid');
  await checkPage(page, 'oidc-sign-in');

  // Through the provider (no login_hint: it logs in its default user, ada) and back.
  const hops: string[] = [];
  page.on('request', (request) => {
    if (request.isNavigationRequest()) hops.push(request.url());
  });
  const callback = page.waitForResponse((r) => new URL(r.url()).pathname === '/auth/callback');
  await button.click();
  expect((await callback).status()).toBe(303);
  await expect(page).toHaveURL(`${world.uiUrl}/certificates?status=valid`);
  await expect(page.getByRole('heading', { name: 'Certificates', level: 1 })).toBeVisible();
  await expect(page.getByRole('combobox', { name: 'Status' })).toHaveValue('valid');
  const banner = page.getByRole('banner');
  await expect(banner).toContainText(USERS.ada.email);
  await expect(banner).toContainText(USERS.ada.role);
  await expect(page.getByRole('table').getByRole('link', { name: 'app.team-a.example' })).toBeVisible();
  await expect(page.getByRole('table').getByRole('link', { name: 'db.elsewhere.example' })).toBeVisible();
  // The login went by the provider: its authorization endpoint, then its interaction.
  expect(hops.some((url) => url.startsWith(`${world.issuer}/auth?`))).toBe(true);
  expect(hops.some((url) => url.startsWith(`${world.issuer}/interaction/`))).toBe(true);
  const me = await page.evaluate(async () => (await fetch('/api/v1/me')).json());
  expect(me).toMatchObject({ auth: 'session', role: 'admin', actor: 'oidc:corp:ada', email: USERS.ada.email });

  // Nothing is kept in the page's storage; the session cookie is out of the page's reach.
  const stored = await page.evaluate(() => Object.keys(sessionStorage).map((key) => [key, sessionStorage.getItem(key)]));
  expect(stored.filter(([key, value]) => key === 'cmp_token' || value?.startsWith('cmp_'))).toEqual([]);
  const cookies = await page.context().cookies(world.uiUrl);
  const session = cookies.find((c) => c.name === 'cmp_session');
  expect(session, 'the cmp_session cookie').toBeDefined();
  expect(session).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' });
  expect(cookies.find((c) => c.name === 'cmp_csrf')).toMatchObject({ httpOnly: false, value: me.csrf_token });
  expect(await page.evaluate(() => document.cookie)).not.toContain('cmp_session');
  // The login cookie was only for the trip to the provider.
  expect(cookies.find((c) => c.name === 'cmp_login')).toBeUndefined();

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Overview' }).click();
  await expect(page.getByRole('heading', { name: 'Overview', level: 1 })).toBeVisible();
  await checkPage(page, 'oidc-overview-admin');
});

test('writes through the session carry the CSRF token; one without it is refused', async ({ page, consoleWatch }) => {
  const { id } = world.certificates['app.team-a.example']!;
  await signInWithProvider(page, 'ada', `/certificates/${id}`);
  await expect(page.getByRole('heading', { name: 'app.team-a.example', level: 1 })).toBeVisible();
  await expect(page.getByRole('banner')).toContainText(USERS.ada.email);

  await page.getByRole('button', { name: 'Edit owner and labels' }).click();
  const dialog = page.getByRole('dialog', { name: 'Owner and labels' });
  await dialog.getByRole('button', { name: 'Add label' }).click();
  await dialog.getByLabel('Label 1 name').fill('signed-in-by');
  await dialog.getByLabel('Label 1 value').fill('sso');
  const saved = page.waitForResponse((r) => r.request().method() === 'PATCH' && r.url().endsWith(`/api/v1/certificates/${id}`));
  await dialog.getByRole('button', { name: 'Save' }).click();
  const patch = await saved;
  expect(patch.status()).toBe(200);
  // The dashboard sent the session's CSRF token, and no bearer token.
  const sent = await patch.request().allHeaders();
  expect(sent['x-csrf-token']).toBeTruthy();
  expect(sent.authorization).toBeUndefined();
  await expect(dialog).toBeHidden();
  const details = page.getByRole('region', { name: 'Details' });
  await expect(details).toContainText('signed-in-by=sso');
  await page.reload();
  await expect(page.getByRole('region', { name: 'Details' })).toContainText('signed-in-by=sso');
  expect(await certificateLabels(id)).toEqual({ 'signed-in-by': 'sso' });

  // The same write from the page without the header: the cookie alone does not do.
  consoleWatch.allow(/status of 403/);
  const refused = await page.evaluate(async (path) => {
    const response = await fetch(path, {
      method: 'PATCH',
      body: JSON.stringify({ labels: { forged: 'yes' } }),
      headers: { 'content-type': 'application/json' },
    });
    return { status: response.status, type: response.headers.get('content-type'), body: await response.json() };
  }, `/api/v1/certificates/${id}`);
  expect(refused.status).toBe(403);
  expect(refused.type).toContain('application/problem+json');
  expect(refused.body.detail).toContain('X-CSRF-Token');
  expect(await certificateLabels(id)).toEqual({ 'signed-in-by': 'sso' });
  await page.reload();
  await expect(page.getByRole('region', { name: 'Details' })).not.toContainText('forged');
});

test('dev, of team-a, sees only team-a and none of the pages of other roles', async ({ page }) => {
  await signInWithProvider(page, 'dev', '/certificates');
  await expect(page).toHaveURL(`${world.uiUrl}/certificates`);
  await expect(page.getByRole('heading', { name: 'Certificates', level: 1 })).toBeVisible();
  const banner = page.getByRole('banner');
  await expect(banner).toContainText(USERS.dev.email);
  await expect(banner).toContainText(USERS.dev.role);

  const table = page.getByRole('table');
  await expect(table.getByRole('link', { name: 'app.team-a.example' })).toBeVisible();
  await expect(table.getByRole('link', { name: 'db.elsewhere.example' })).toHaveCount(0);
  await expect(table.getByRole('row')).toHaveCount(2); // the header and team-a's one

  const nav = page.getByRole('navigation', { name: 'Main' });
  await expect(nav.getByRole('link', { name: 'Certificates' })).toBeVisible();
  for (const hidden of ['Approvals', 'API tokens', 'Audit log']) {
    await expect(nav.getByRole('link', { name: hidden })).toHaveCount(0);
  }
  const me = await page.evaluate(async () => (await fetch('/api/v1/me')).json());
  expect(me).toMatchObject({ auth: 'session', role: 'developer', actor: 'oidc:corp:dev' });
  expect(me.owners).toHaveLength(1);

  await nav.getByRole('link', { name: 'Overview' }).click();
  await expect(page.getByRole('heading', { name: 'Overview', level: 1 })).toBeVisible();
  await checkPage(page, 'oidc-overview-developer');
});

test('eve, whose groups give no role, is refused with the reason and not signed in', async ({ page }) => {
  const callback = page.waitForResponse((r) => new URL(r.url()).pathname === '/auth/callback');
  await signInWithProvider(page, 'eve', '/certificates');
  const answer = await callback;
  // A browser is sent back to the dashboard's sign-in page with the reason, no session made.
  expect(answer.status()).toBe(303);
  expect((await answer.headerValue('set-cookie')) ?? '').not.toContain('cmp_session=');
  await expect(page.getByRole('heading', { name: 'Sign in to CMP' })).toBeVisible();
  const alert = page.getByRole('alert');
  await expect(alert).toContainText('Single sign-on did not sign you in');
  await expect(alert).toContainText('eve at corp has no role in CMP');
  await checkPage(page, 'oidc-refused');
  expect(await sessionCookie(page)).toBeUndefined();
  // Signing in again from here returns to the page itself, without the old error.
  const href = await page.getByRole('link', { name: 'Sign in with corp' }).getAttribute('href');
  expect(href).not.toContain('login_error');

  await page.goto(`${world.uiUrl}/certificates`);
  await expect(page.getByRole('heading', { name: 'Sign in to CMP' })).toBeVisible();
  await expect(page.getByRole('banner')).toHaveCount(0);
  // Nothing was written: eve is not a user.
  const users = await fetch(`${world.apiUrl}/api/v1/users`, { headers: { Authorization: `Bearer ${world.token}` } });
  expect(((await users.json()) as { subject: string }[]).map((u) => u.subject)).not.toContain('eve');
});

test('signing out ends the session on the server and at the provider, back to the sign-in page', async ({ page }) => {
  await signInWithProvider(page, 'ada');
  await expect(page.getByRole('heading', { name: 'Overview', level: 1 })).toBeVisible();
  const old = await sessionCookie(page);
  expect(old).toBeTruthy();
  expect((await meWithCookie(old!)).status).toBe(200);

  await page.getByRole('button', { name: 'Sign out' }).click();
  // The provider's end-session page asks; the test says yes.
  await expect(page).toHaveURL((url) => url.origin === world.issuer && url.pathname.startsWith('/session/end'));
  await expect(page.getByRole('heading', { name: 'Sign out?' })).toBeVisible();
  await page.getByRole('button', { name: 'Sign out' }).click();

  await expect(page).toHaveURL(`${world.uiUrl}/`);
  await expect(page.getByRole('heading', { name: 'Sign in to CMP' })).toBeVisible();
  await expect(page.getByRole('link', { name: `Sign in with ${PROVIDER_NAME}` })).toBeVisible();
  expect(await sessionCookie(page)).toBeUndefined();
  expect((await page.context().cookies(world.uiUrl)).find((c) => c.name === 'cmp_csrf')).toBeUndefined();

  // The old cookie, replayed, is dead: the session is gone on the server, not only here.
  const replayed = await meWithCookie(old!);
  expect(replayed.status).toBe(401);
  await page.reload();
  await expect(page.getByRole('heading', { name: 'Sign in to CMP' })).toBeVisible();
});
