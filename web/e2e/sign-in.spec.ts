import { checkPage, expect, signIn, test } from './fixtures';

test('signs in with a pasted API token, and out again', async ({ page, cmp }) => {
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Sign in to CMP' })).toBeVisible();
  await checkPage(page, 'sign-in');

  await page.getByLabel('API token').fill(cmp.token);
  await page.getByRole('button', { name: 'Sign in with token' }).click();
  await expect(page.getByRole('heading', { name: 'Overview', level: 1 })).toBeVisible();
  await expect(page.getByRole('banner')).toContainText('Administrator');
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Overview' })).toHaveAttribute(
    'aria-current',
    'page',
  );

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('heading', { name: 'Sign in to CMP' })).toBeVisible();
  expect(await page.evaluate(() => sessionStorage.getItem('cmp_token'))).toBeNull();
});

test('a refused token shows the server problem and is not kept', async ({ page, consoleWatch }) => {
  consoleWatch.allow(/status of 401/);
  await page.goto('/');
  await page.getByLabel('API token').fill('cmp_not_a_real_token');
  await page.getByRole('button', { name: 'Sign in with token' }).click();
  await expect(page.getByRole('alert')).toContainText('That token was not accepted');
  await expect(page.getByRole('alert')).toContainText('Request id');
  expect(await page.evaluate(() => sessionStorage.getItem('cmp_token'))).toBeNull();
});

test('a developer is offered only what its role may do', async ({ page, cmp }) => {
  await signIn(page, cmp.developerToken);
  const nav = page.getByRole('navigation', { name: 'Main' });
  await expect(nav.getByRole('link', { name: 'Certificates' })).toBeVisible();
  await expect(nav.getByRole('link', { name: 'Managed' })).toBeVisible();
  for (const hidden of ['Approvals', 'Audit log', 'API tokens']) {
    await expect(nav.getByRole('link', { name: hidden })).toHaveCount(0);
  }
  await expect(page.getByRole('heading', { name: 'Recent activity' })).toHaveCount(0);
  await page.goto('/audit');
  await expect(page.getByText('This page is not available to the developer role.')).toBeVisible();
});

test('the keyboard reaches the content through the skip link', async ({ page, cmp }) => {
  await signIn(page, cmp.token);
  // Wait for the page's links: before they load, the content has nothing to focus.
  await expect(page.getByRole('list', { name: 'Certificates by status' })).toBeVisible();
  await page.keyboard.press('Tab');
  const skip = page.getByRole('link', { name: 'Skip to content' });
  await expect(skip).toBeFocused();
  await expect(skip).toBeInViewport();
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/#main$/);
  await page.keyboard.press('Tab');
  // The next stop is in the page's content, past the header and the nav.
  await expect(page.locator('main :focus')).toHaveCount(1);
});
