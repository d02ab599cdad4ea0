// The main flow of the platform, in the browser only: an admin gives the owner `shop` a policy
// that needs approval and makes tokens for a developer of shop and for a security reviewer
// (read from the shown-once dialog); the developer requests a certificate with a server-made
// key and sees it wait; security approves it, sees it issued, downloads its PEM, revokes it
// and finds it revoked in the inventory. Then every other workflow and admin page is scanned.
//
// Other specs read the seeded data: what this one changes (shop's policy, two tokens, one
// certificate) is put back through the API afterwards.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from '@playwright/test';
import { checkPage, expect, signIn, test } from './fixtures';
import { readState } from './state';

const NAME = 'checkout.shop.example';
/** Requested with a CSR made here, for an owner whose policy needs no approval. */
const CSR_NAME = 'csr-flow.payments.example';

async function adminCall<T>(method: string, path: string, body?: unknown): Promise<T> {
  const { apiUrl, token } = readState();
  const response = await fetch(`${apiUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

interface Owner {
  id: string;
  name: string;
}

let shopPolicy: unknown = null;

test.beforeAll(async () => {
  const owners = await adminCall<Owner[]>('GET', '/api/v1/owners');
  const shop = owners.find((owner) => owner.name === 'shop');
  if (!shop) throw new Error('the seed made no owner shop');
  shopPolicy = (await adminCall<{ policy: unknown }>('GET', `/api/v1/owners/${shop.id}/policy`)).policy;
});

test.afterAll(async () => {
  const owners = await adminCall<Owner[]>('GET', '/api/v1/owners');
  const shop = owners.find((owner) => owner.name === 'shop');
  if (shop && shopPolicy) await adminCall('PUT', `/api/v1/owners/${shop.id}/policy`, shopPolicy);
  const tokens = await adminCall<{ id: string; name: string; revoked_at?: string | null }[]>('GET', '/api/v1/tokens');
  for (const token of tokens.filter((t) => t.name.startsWith('flow ') && !t.revoked_at)) {
    await adminCall('DELETE', `/api/v1/tokens/${token.id}`);
  }
  for (const name of [NAME, CSR_NAME]) {
    const issued = await adminCall<{ items: { id: string }[] }>('GET', `/api/v1/certificates?q=${name}`);
    for (const certificate of issued.items) await adminCall('DELETE', `/api/v1/certificates/${certificate.id}`);
  }
});

async function signOut(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('heading', { name: 'Sign in to CMP' })).toBeVisible();
}

async function openNav(page: Page, label: string, heading: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
  await expect(page.getByRole('heading', { name: heading, level: 1 })).toBeVisible();
}

/** Creates a token on the Tokens page and returns it, read from the dialog that shows it once. */
async function createToken(page: Page, name: string, role: 'developer' | 'security', owner?: string): Promise<string> {
  await page.getByRole('button', { name: 'Create token' }).click();
  const form = page.getByRole('region', { name: 'Create a token' });
  await form.getByLabel('Name').fill(name);
  await form.getByLabel('Role').selectOption(role);
  if (owner) await form.getByRole('checkbox', { name: owner }).check();
  await form.getByLabel('Expires in (days)').fill('1');
  await form.getByRole('button', { name: 'Create token' }).click();

  const dialog = page.getByRole('dialog', { name: 'Your new token' });
  await expect(dialog).toBeVisible();
  await expect(dialog).toContainText('You will not see it again');
  const secret = await dialog.getByLabel(`API token for ${name}`).inputValue();
  expect(secret).toMatch(/^cmp_/);
  await dialog.getByRole('button', { name: 'Copy' }).click();
  await expect(dialog.getByText('Copied to the clipboard.')).toBeVisible();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
  if (role === 'developer') await checkPage(page, 'tokens-created');
  await dialog.getByRole('button', { name: 'I have copied it' }).click();
  await expect(dialog).toBeHidden();
  // Listed by name, never by secret.
  await expect(page.getByRole('row', { name: new RegExp(name) })).toBeVisible();
  expect(await page.content()).not.toContain(secret);
  return secret;
}

test('request, approve, download and revoke a certificate', async ({ page, cmp, consoleWatch }) => {
  test.setTimeout(180_000);
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: cmp.uiUrl });

  // --- The admin: shop's policy needs approval; tokens for a developer and a reviewer. ---
  await signIn(page, cmp.token);
  await openNav(page, 'Owners and policies', 'Owners and policies');
  await page.getByRole('button', { name: 'Show shop and its policy' }).click();
  await expect(page).toHaveURL(/[?&]owner=shop/);
  const policy = page.getByRole('region', { name: 'Policy of shop' });
  await policy.getByRole('button', { name: 'Edit policy' }).click();
  await policy.getByLabel('Allowed names').fill('.shop.example');
  await policy.getByLabel('Longest lifetime (days)').fill('90');
  await policy.getByLabel("Each request needs a security reviewer's approval").check();
  await checkPage(page, 'owners-policy-edit');
  await policy.getByRole('button', { name: 'Save policy' }).click();
  await expect(policy).toContainText('Each request waits for a security reviewer');
  await expect(policy).toContainText('.shop.example');
  await checkPage(page, 'owners');

  await openNav(page, 'API tokens', 'API tokens');
  await checkPage(page, 'tokens');
  const developerToken = await createToken(page, 'flow developer', 'developer', 'shop');
  const securityToken = await createToken(page, 'flow security', 'security');
  await signOut(page);

  // --- The developer asks for a certificate with a server-made key. ---
  await signIn(page, developerToken);
  await openNav(page, 'Request', 'Request a certificate');
  const hints = page.getByRole('complementary', { name: 'Policy of shop' });
  await expect(hints).toContainText('Each request waits for a security reviewer');
  await expect(hints).toContainText('.shop.example');
  await expect(page.getByLabel('Owner')).toHaveValue(/.+/);

  // Outside the policy first: refused with the server's reason, and nothing typed is lost.
  consoleWatch.allow(/status of 422/);
  await page.getByLabel('DNS names').fill('checkout.elsewhere.example');
  await page.getByLabel('Let the server make the key').check();
  await page.getByLabel('Key type').selectOption('ecdsa_p256');
  await page.getByLabel('Validity (days)').fill('30');
  await page.getByRole('button', { name: 'Request certificate' }).click();
  const refusal = page.getByRole('alert');
  await expect(refusal).toContainText('The request was refused');
  await expect(page.getByLabel('DNS names')).toHaveValue('checkout.elsewhere.example');
  await expect(page.getByLabel('DNS names')).toHaveAttribute('aria-invalid', 'true');
  await checkPage(page, 'request-refused');

  await page.getByLabel('DNS names').fill(NAME);
  await checkPage(page, 'request');
  await page.getByRole('button', { name: 'Request certificate' }).click();
  await expect(page).toHaveURL(/\/request\?id=/);
  const requestUrl = new URL(page.url());
  const state = page.getByText(/^State:/);
  await expect(state).toContainText('Awaiting approval');
  await expect(page.getByRole('region', { name: 'What was asked' })).toContainText(NAME);
  await checkPage(page, 'request-state');
  await signOut(page);

  // --- Security approves it, and it is issued. ---
  await signIn(page, securityToken);
  await openNav(page, 'Approvals', 'Approvals');
  const row = page.getByRole('row', { name: new RegExp(NAME) });
  await expect(row).toContainText('shop');
  await expect(row).toContainText('Made by the server: ECDSA P-256');
  await expect(row).toContainText('30 days');
  await checkPage(page, 'approvals');
  await row.getByRole('button', { name: `Approve the request for ${NAME}` }).click();
  const dialog = page.getByRole('dialog', { name: 'Approve request' });
  await dialog.getByLabel(/Comment/).fill('Checked with the shop team');
  await checkPage(page, 'approvals-dialog');
  await dialog.getByRole('button', { name: 'Approve' }).click();
  await expect(dialog).toBeHidden();
  await expect(page.getByRole('status').filter({ hasText: 'Approved and issued' })).toBeVisible();
  await expect(page.getByRole('row', { name: new RegExp(NAME) })).toHaveCount(0);

  await page.goto(`${requestUrl.pathname}${requestUrl.search}`);
  await expect(page.getByText(/^State:/)).toContainText('Issued');
  await expect(page.getByRole('region', { name: 'What was asked' })).toContainText('Checked with the shop team');
  await checkPage(page, 'request-issued');
  await page.getByRole('link', { name: 'Open the issued certificate' }).click();
  await expect(page.getByRole('heading', { name: NAME, level: 1 })).toBeVisible();

  // --- Its PEM is a certificate for the name asked. ---
  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Download PEM', exact: true }).click();
  const file = await download;
  expect(file.suggestedFilename()).toBe(`${NAME}.pem`);
  const pem = readFileSync(await file.path(), 'utf8');
  // One certificate, nothing else (no key, no chain); the server ends lines with CRLF.
  expect(pem).toMatch(/^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\r?\n?$/);
  const certificate = new X509Certificate(pem);
  expect(certificate.subjectAltName).toContain(`DNS:${NAME}`);
  expect(certificate.ca).toBe(false);

  // --- Revoked with a reason, and listed as revoked. ---
  await page.getByRole('button', { name: 'Revoke…' }).click();
  const revoke = page.getByRole('dialog', { name: 'Revoke certificate' });
  await revoke.getByLabel('Reason').selectOption('key_compromise');
  await revoke.getByRole('button', { name: 'Revoke certificate' }).click();
  await expect(revoke).toBeHidden();
  await expect(page.getByRole('region', { name: 'Details' })).toContainText('(key compromise)');

  await openNav(page, 'Certificates', 'Certificates');
  await page.getByRole('searchbox', { name: 'Search' }).fill(NAME);
  await page.getByRole('searchbox', { name: 'Search' }).press('Enter');
  const listed = page.getByRole('row', { name: new RegExp(NAME) });
  await expect(listed).toHaveCount(1);
  await expect(listed).toContainText('Revoked');
});

/** A P-256 key and a CSR for `name`, made by openssl; the key stays here. */
function makeCsr(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'cmp-flow-csr-'));
  try {
    execFileSync('openssl', [
      'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'csr.pem'), '-subj', `/CN=${name}`,
      '-addext', `subjectAltName=DNS:${name}`,
    ], { stdio: 'pipe' });
    return readFileSync(join(dir, 'csr.pem'), 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the workflow and admin pages pass axe', async ({ page, cmp }) => {
  test.setTimeout(120_000);
  await signIn(page, cmp.token);

  // A request with a pasted CSR, for an owner without approval: issued at once.
  await openNav(page, 'Request', 'Request a certificate');
  await expect(page.getByRole('region', { name: 'Recent requests' }).getByRole('table')).toBeVisible();
  await page.getByLabel('Owner').selectOption({ label: 'payments' });
  await expect(page.getByRole('complementary', { name: 'Policy of payments' })).toContainText('Not needed');
  await page.getByLabel('CSR (PEM)').fill(makeCsr(CSR_NAME));
  await page.getByLabel('Validity (days)').fill('40');
  await checkPage(page, 'request-admin');
  await page.getByRole('button', { name: 'Request certificate' }).click();
  await expect(page.getByText(/^State:/)).toContainText('Issued');
  // The names came from the CSR.
  await expect(page.getByRole('region', { name: 'What was asked' })).toContainText(CSR_NAME);
  await expect(page.getByRole('region', { name: 'What was asked' })).toContainText('From a CSR');
  await page.getByRole('link', { name: 'Open the issued certificate' }).click();
  await expect(page.getByRole('heading', { name: CSR_NAME, level: 1 })).toBeVisible();

  await openNav(page, 'Approvals', 'Approvals');
  await expect(page.getByText('No request is waiting for approval.')).toBeVisible();
  await checkPage(page, 'approvals-empty');

  await openNav(page, 'Managed', 'Managed certificates');
  await expect(page.getByRole('link', { name: 'shop/web' })).toBeVisible();
  await checkPage(page, 'managed');
  await page.getByRole('link', { name: 'shop/web' }).click();
  await expect(page.getByRole('heading', { name: 'shop/web', level: 1 })).toBeVisible();
  await expect(page.getByRole('region', { name: 'Desired state' })).toContainText('api.shop.example');
  await expect(page.getByRole('region', { name: 'Renewal' })).toContainText(/Wait|Renew|not looked/);
  await expect(page.getByRole('region', { name: 'Deployments' })).toContainText('Not deployed by any agent.');
  await checkPage(page, 'managed-detail');

  await openNav(page, 'Adapters', 'Adapters');
  await expect(page.getByText('Healthy', { exact: true }).first()).toBeVisible();
  await checkPage(page, 'adapters');
  await page.getByRole('button', { name: 'Add adapter' }).click();
  const form = page.getByRole('region', { name: 'Add an adapter' });
  await form.getByLabel('Kind').selectOption('vault_pki');
  await expect(form.getByLabel('Vault token')).toBeVisible();
  await checkPage(page, 'adapters-add-vault');
  await form.getByLabel('Kind').selectOption('acme');
  await expect(form.getByLabel('Solvers (JSON)')).toBeVisible();
  await checkPage(page, 'adapters-add-acme');
  await form.getByRole('button', { name: 'Cancel' }).click();

  await openNav(page, 'Audit log', 'Audit log');
  await expect(page.getByRole('region', { name: 'Chain verification' })).toContainText('Intact');
  await page.getByRole('combobox', { name: 'Entity type' }).fill('certificate');
  await page.getByRole('combobox', { name: 'Entity type' }).press('Enter');
  await expect(page).toHaveURL(/[?&]entity_type=certificate/);
  await expect(page.getByRole('region', { name: 'Audit events, table' }).getByRole('row').nth(1)).toContainText('certificate');
  await checkPage(page, 'audit');
  // The filters survive a reload.
  await page.reload();
  await expect(page.getByRole('combobox', { name: 'Entity type' })).toHaveValue('certificate');
});
