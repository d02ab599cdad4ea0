import { checkPage, countCertificates, expect, signIn, test } from './fixtures';

test('search the inventory and open a certificate', async ({ page, cmp }) => {
  await signIn(page, cmp.token);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Certificates' }).click();
  await expect(page.getByRole('heading', { name: 'Certificates', level: 1 })).toBeVisible();
  await expect(page.getByRole('table')).toBeVisible();
  await checkPage(page, 'inventory');

  await page.getByRole('searchbox', { name: 'Search' }).fill('www.shop');
  await page.getByRole('searchbox', { name: 'Search' }).press('Enter');
  await expect(page).toHaveURL(/[?&]q=www.shop/);
  const rows = page.getByRole('table').getByRole('row');
  await expect(rows).toHaveCount(2);
  await rows.nth(1).getByRole('link', { name: 'www.shop.example' }).click();

  await expect(page).toHaveURL(new RegExp(`/certificates/${cmp.certificates['www.shop.example']!.id}$`));
  await expect(page.getByRole('heading', { name: 'www.shop.example', level: 1 })).toBeVisible();
  await expect(page.getByRole('meter', { name: 'Lifetime elapsed' })).toBeVisible();
  await expect(page.getByText('SHA-256 fingerprint')).toBeVisible();
  await expect(page.getByText(/The certificate and \d+ CA certificates? above it/)).toBeVisible();
  await expect(page.getByRole('button', { name: 'Revoke…' })).toBeVisible();
  await expect(page.getByRole('region', { name: 'Audit trail', exact: true }).getByRole('row').first()).toBeVisible();
  await checkPage(page, 'certificate');
});

test('a managed certificate shows its versions and offers its key', async ({ page, cmp }) => {
  await signIn(page, cmp.token, `/certificates/${cmp.certificates['api.shop.example']!.id}`);
  await expect(page.getByRole('heading', { name: 'api.shop.example', level: 1 })).toBeVisible();
  await expect(page.getByRole('region', { name: 'Managed certificate', exact: true })).toContainText('this certificate');
  await expect(page.getByRole('button', { name: 'Renew now' })).toBeVisible();

  await page.getByRole('button', { name: 'Download key (PKCS#12)…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Download the key as PKCS#12' });
  await expect(dialog).toBeVisible();
  await expect(dialog.getByLabel('Password for the file')).toBeFocused();
  await dialog.getByLabel('Password for the file').fill('correct horse battery');
  const download = page.waitForEvent('download');
  await dialog.getByRole('button', { name: 'Download PKCS#12' }).click();
  expect((await download).suggestedFilename()).toBe('api.shop.example.p12');
  await expect(dialog).toBeHidden();
});

test('a key the server made for a plain request is offered too; an imported certificate has none', async ({ page, cmp }) => {
  await signIn(page, cmp.token, `/certificates/${cmp.certificates['pay.payments.example']!.id}`);
  await expect(page.getByRole('heading', { name: 'pay.payments.example', level: 1 })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Download key (PKCS#12)…' })).toBeVisible();
  await page.goto(`/certificates/${cmp.certificates['intranet.example']!.id}`);
  await expect(page.getByRole('button', { name: 'Download PEM', exact: true })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Download key (PKCS#12)…' })).toHaveCount(0);
});

test('filters live in the URL and survive a reload', async ({ page, cmp, request }) => {
  await signIn(page, cmp.token, '/certificates');
  await page.getByRole('combobox', { name: 'Status' }).selectOption('expiring');
  await page.getByRole('combobox', { name: 'Owner' }).selectOption('payments');
  await expect(page).toHaveURL(/status=expiring/);
  await expect(page).toHaveURL(/owner=payments/);
  await expect(page.getByRole('table').getByRole('row')).toHaveCount(2);

  await page.reload();
  await expect(page.getByRole('combobox', { name: 'Status' })).toHaveValue('expiring');
  await expect(page.getByRole('combobox', { name: 'Owner' })).toHaveValue('payments');
  const rows = page.getByRole('table').getByRole('row');
  await expect(rows).toHaveCount(2);
  await expect(rows.nth(1)).toContainText('legacy.payments.example');

  await page.getByRole('button', { name: 'Clear filters' }).first().click();
  await expect(page).toHaveURL(/\/certificates$/);
  await expect(rows).toHaveCount((await countCertificates(request, cmp)) + 1); // and the header
});
