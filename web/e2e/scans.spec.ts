import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { checkPage, expect, signIn, test } from './fixtures';

/** A TLS listener on loopback serving a new self-signed certificate for `name`. */
function tlsListener(name: string): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), 'cmp-e2e-tls-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30',
      '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`,
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    const server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) });
    server.on('tlsClientError', () => undefined); // the scanner closes after reading the chain
    return new Promise((listening) => server.listen(0, '127.0.0.1', () => listening(server)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('define a scan, run it, and find what it served in the inventory', async ({ page, cmp, consoleWatch }) => {
  const name = `scan-e2e-${Date.now()}.test`;
  const listener = await tlsListener(name);
  try {
    const port = (listener.address() as AddressInfo).port;
    await signIn(page, cmp.token, '/scans');
    await page.getByRole('button', { name: 'New scan' }).click();
    const form = page.getByRole('region', { name: 'New scan' });
    await form.getByLabel('Name', { exact: true }).fill('loopback-e2e');
    await form.getByLabel('Owner of what it finds').selectOption('shop');
    await form.getByLabel('Targets').fill('127.0.0.1');
    await form.getByLabel('Ports').fill(String(port));
    await form.getByLabel('SNI names').fill(name);
    await checkPage(page, 'scan-new');

    // A target outside the allowed ranges: the server names it, and nothing is created.
    consoleWatch.allow(/status of 422/);
    await form.getByLabel('Targets').fill('127.0.0.1\n10.1.2.3');
    await form.getByRole('button', { name: 'Create scan' }).click();
    await expect(form.getByRole('alert')).toContainText('spec/targets/1');
    await form.getByLabel('Targets').fill('127.0.0.1');
    await form.getByRole('button', { name: 'Create scan' }).click();
    await expect(page.getByRole('status').filter({ hasText: 'Created loopback-e2e' })).toBeVisible();
    await expect(page.getByRole('row', { name: /loopback-e2e/ })).toHaveCount(1);

    await page.getByRole('row', { name: /loopback-e2e/ }).getByRole('link', { name: 'loopback-e2e' }).click();
    await expect(page.getByRole('heading', { name: 'Scan loopback-e2e' })).toBeVisible();
    await page.getByRole('button', { name: 'Run now: loopback-e2e' }).click();
    const latest = page.getByRole('region', { name: /Latest run|Running now/ });
    await expect(latest).toContainText('Completed', { timeout: 20_000 });
    await expect(latest).toContainText('1 certificate (1 new)');
    await expect(page.getByRole('region', { name: 'Runs' }).getByRole('row')).toHaveCount(2);
    await checkPage(page, 'scan-detail');

    // What it served is in the inventory, owned by the scan's owner, seen at that endpoint.
    await page.goto(`/certificates?q=${encodeURIComponent(name)}`);
    await page.getByRole('link', { name }).click();
    await expect(page.getByRole('region', { name: 'Details' })).toContainText('shop');
    await expect(page.getByRole('region', { name: 'Seen at' })).toContainText(`127.0.0.1:${port}#${name}`);
  } finally {
    listener.close();
  }
});
