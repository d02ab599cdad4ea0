import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkPage, expect, signIn, test } from './fixtures';

interface Received {
  headers: IncomingHttpHeaders;
  body: { rule?: { name?: string }; notices?: { event?: string }[] };
}

/** A webhook receiver on loopback that keeps what it is sent. */
function receiver(received: Received[]): Promise<Server> {
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      received.push({ headers: request.headers, body: JSON.parse(body) as Received['body'] });
      response.writeHead(204).end();
    });
  });
  return new Promise((listening) => server.listen(0, '127.0.0.1', () => listening(server)));
}

test('add a webhook rule, send it a signed test message, and see it among the messages', async ({ page, cmp }) => {
  const received: Received[] = [];
  const hook = await receiver(received);
  try {
    const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
    await signIn(page, cmp.token, '/notifications');
    await page.getByRole('button', { name: 'Add rule' }).click();
    const form = page.getByRole('region', { name: 'Add a rule' });
    await form.getByLabel('Name', { exact: true }).fill('shop-hook');
    await form.getByLabel('For the certificates of').selectOption('shop');
    // Platform events are not offered for one owner's rule.
    await expect(form.getByLabel('Agent offline')).toHaveCount(0);
    await form.getByLabel('Certificate revoked').check();
    await form.getByLabel('URL').fill(url);
    await form.getByLabel('Signing secret').fill('e2e-signing-secret');
    await checkPage(page, 'notification-rule-new');
    await form.getByRole('button', { name: 'Add rule' }).click();
    await expect(page.getByRole('status').filter({ hasText: 'Added shop-hook' })).toBeVisible();

    const card = page.getByRole('region', { name: 'shop-hook' });
    await expect(card).toContainText('Certificate revoked');
    await expect(card).toContainText('kept in the secret store');
    await expect(card).not.toContainText('e2e-signing-secret');
    await card.getByRole('button', { name: 'Send a test message: shop-hook' }).click();
    await expect(card.getByRole('status')).toContainText('sent');
    expect(received).toHaveLength(1);
    expect(received[0]?.body.rule?.name).toBe('shop-hook');
    expect(received[0]?.headers['x-cmp-signature']).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);

    const messages = page.getByRole('region', { name: 'Messages' });
    await expect(messages.getByRole('row', { name: /shop-hook/ })).toHaveCount(1);
    await messages.getByLabel('State').selectOption('failed');
    await expect(messages).toContainText('No messages failed yet.');
    await checkPage(page, 'notifications');

    await card.getByRole('button', { name: 'Pause' }).click();
    await expect(card).toContainText('Paused');
  } finally {
    hook.close();
  }
});
