import { checkPage, countCertificates, expect, signIn, test } from './fixtures';

test('the overview shows the counts, the expiry timeline and recent activity', async ({ page, cmp, request }) => {
  // Counted now: other tests add certificates (a renewal) before this one runs.
  const total = await countCertificates(request, cmp);
  await signIn(page, cmp.token);
  const counts = page.getByRole('list', { name: 'Certificates by status' });
  await expect(counts.getByRole('link', { name: new RegExp(`^${total}\\s*Certificates$`) })).toBeVisible();
  // Two of the seed expire within the 30-day window (20 and 25 days).
  await expect(counts.getByRole('link', { name: /^2\s*Expiring within 30 days$/ })).toBeVisible();

  const chart = page.getByTestId('expiry-chart');
  await expect(chart.locator('.recharts-bar-rectangle').first()).toBeVisible();
  // The five seeded with lifetimes under 13 weeks; the CA certificates live for years.
  await expect(page.getByText('5 certificates expire in the next 13 weeks.')).toBeVisible();

  const activity = page.getByRole('region', { name: 'Recent activity', exact: true });
  await expect(activity.getByRole('row')).toHaveCount(11); // header and the last 10 events
  await checkPage(page, 'overview');

  // The same page in the dark theme, which must pass the same contrast checks.
  const toggle = page.getByRole('button', { name: 'Dark theme' });
  await expect(toggle).toHaveAttribute('aria-pressed', 'false');
  await toggle.click();
  await expect(toggle).toHaveAttribute('aria-pressed', 'true');
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
  await checkPage(page, 'overview-dark');
  await page.reload();
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
});
