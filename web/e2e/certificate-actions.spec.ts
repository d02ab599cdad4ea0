import { checkPage, expect, signIn, test } from './fixtures';

test('set the owner and labels of a certificate', async ({ page, cmp }) => {
  await signIn(page, cmp.token, `/certificates/${cmp.certificates['intranet.example']!.id}`);
  await page.getByRole('button', { name: 'Edit owner and labels' }).click();
  const dialog = page.getByRole('dialog', { name: 'Owner and labels' });
  await dialog.getByLabel('Owner').selectOption('payments');
  await dialog.getByRole('button', { name: 'Add label' }).click();
  await dialog.getByLabel('Label 1 name').fill('env');
  await dialog.getByLabel('Label 1 value').fill('prod');
  await checkPage(page, 'certificate-edit');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await expect(dialog).toBeHidden();
  // Focus went back to the button that opened the dialog.
  await expect(page.getByRole('button', { name: 'Edit owner and labels' })).toBeFocused();
  const details = page.getByRole('region', { name: 'Details' });
  await expect(details).toContainText('env=prod');
  await expect(details).toContainText('payments');
});

test('revoke a certificate, after confirming with a reason', async ({ page, cmp }) => {
  await signIn(page, cmp.token, `/certificates/${cmp.certificates['retired.shop.example']!.id}`);
  await page.getByRole('button', { name: 'Revoke…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Revoke certificate' });
  await expect(dialog).toContainText('retired.shop.example');
  await dialog.getByLabel('Reason').selectOption('superseded');
  await checkPage(page, 'certificate-revoke');
  // Escape closes without revoking.
  await page.keyboard.press('Escape');
  await expect(dialog).toBeHidden();
  await expect(page.getByText('Revoked', { exact: true })).toHaveCount(0);

  await page.getByRole('button', { name: 'Revoke…' }).click();
  await dialog.getByLabel('Reason').selectOption('superseded');
  await dialog.getByRole('button', { name: 'Revoke certificate' }).click();
  await expect(dialog).toBeHidden();
  await expect(page.locator('.title-row')).toContainText('Revoked');
  await expect(page.getByRole('region', { name: 'Details' })).toContainText('(superseded)');
  await expect(page.getByRole('button', { name: 'Revoke…' })).toHaveCount(0);
});

test('download the PEM with its chain', async ({ page, cmp }) => {
  await signIn(page, cmp.token, `/certificates/${cmp.certificates['pay.payments.example']!.id}`);
  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Download PEM with chain' }).click();
  const file = await download;
  expect(file.suggestedFilename()).toBe('pay.payments.example-chain.pem');
  const path = await file.path();
  const { readFileSync } = await import('node:fs');
  const pem = readFileSync(path, 'utf8');
  expect(pem.match(/-----BEGIN CERTIFICATE-----/g)?.length).toBeGreaterThan(1);
});

test('export the filtered inventory as CSV with a bearer token', async ({ page, cmp }) => {
  await signIn(page, cmp.token, '/certificates?owner=shop');
  await expect(page.getByRole('table')).toBeVisible();
  const download = page.waitForEvent('download');
  await page.getByRole('link', { name: 'Export CSV' }).click();
  const file = await download;
  expect(file.suggestedFilename()).toBe('certificates.csv');
  const { readFileSync } = await import('node:fs');
  const csv = readFileSync(await file.path(), 'utf8');
  expect(csv.split('\n')[0]).toContain('fingerprint_sha256');
  expect(csv).toContain('www.shop.example');
  expect(csv).not.toContain('pay.payments.example');
});

test('renew a managed certificate now', async ({ page, cmp }) => {
  await signIn(page, cmp.token, `/certificates/${cmp.certificates['archive.shop.example']!.id}`);
  await page.getByRole('button', { name: 'Renew now' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Renewed' })).toBeVisible();
  await page.getByRole('link', { name: 'open the new version' }).click();
  await expect(page.getByRole('heading', { name: 'archive.shop.example', level: 1 })).toBeVisible();
  const versions = page.getByRole('region', { name: 'Managed certificate', exact: true });
  await expect(versions.getByRole('row')).toHaveCount(3); // header and two versions
  await expect(versions).toContainText('current');
  // The new version is the current one.
  await expect(versions.getByRole('row').filter({ hasText: 'this certificate' })).toContainText('current');
});
