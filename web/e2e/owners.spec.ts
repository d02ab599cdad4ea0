import { checkPage, expect, signIn, test } from './fixtures';

test('edit an owner, then delete it: its certificates stay, without an owner', async ({ page, cmp, request }) => {
  const auth = { Authorization: `Bearer ${cmp.token}` };
  const created = await request.post(`${cmp.apiUrl}/api/v1/owners`, { headers: auth, data: { name: 'short-lived-team' } });
  expect(created.status()).toBe(201);
  const owner = (await created.json()) as { id: string };
  const issued = await request.post(`${cmp.apiUrl}/api/v1/requests`, {
    headers: auth,
    data: { owner: 'short-lived-team', key_type: 'ecdsa_p256', dns_names: ['left.short-lived.example'], validity_days: 30 },
  });
  expect(issued.status()).toBe(201);
  const certificateId = ((await issued.json()) as { certificate_id: string }).certificate_id;

  await signIn(page, cmp.token, '/owners');
  await page.getByRole('button', { name: 'Show short-lived-team and its policy' }).click();
  const chosen = page.getByRole('region', { name: 'short-lived-team', exact: true });
  await chosen.getByRole('button', { name: 'Edit owner' }).click();
  await chosen.getByLabel('Email').fill('team@short-lived.example');
  await chosen.getByLabel('Description').fill('Here for a test');
  await checkPage(page, 'owners-edit');
  await chosen.getByRole('button', { name: 'Save owner' }).click();
  const row = page.getByRole('row', { name: /short-lived-team/ });
  await expect(row).toContainText('team@short-lived.example');
  await expect(chosen).toContainText('Here for a test');

  await chosen.getByRole('button', { name: 'Delete owner…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Delete short-lived-team?' });
  await expect(dialog).toContainText('stay in the inventory without an owner');
  await dialog.getByRole('button', { name: 'Delete owner' }).click();
  await expect(row).toHaveCount(0);
  await expect(page).not.toHaveURL(/owner=/);

  const gone = await request.get(`${cmp.apiUrl}/api/v1/owners/${owner.id}`, { headers: auth });
  expect(gone.status()).toBe(404);
  const certificate = await request.get(`${cmp.apiUrl}/api/v1/certificates/${certificateId}`, { headers: auth });
  expect(certificate.status()).toBe(200);
  expect(((await certificate.json()) as { owner: unknown }).owner ?? null).toBeNull();
});
