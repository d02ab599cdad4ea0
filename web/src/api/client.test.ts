import { describe, expect, it } from 'vitest';
import { mockApi } from '../test/render';
import { api, hasCredentials, setCsrfToken, storeToken, TOKEN_STORAGE_KEY } from './client';

describe('the API client credentials', () => {
  it('sends a kept token as a bearer token, and no CSRF token', async () => {
    const { calls } = mockApi({ 'PATCH /api/v1/certificates/c1': {} });
    storeToken('cmp_abc');
    setCsrfToken('csrf-1');
    await api.PATCH('/api/v1/certificates/{id}', { params: { path: { id: 'c1' } }, body: { labels: {} } });
    expect(calls[0]!.headers.get('Authorization')).toBe('Bearer cmp_abc');
    expect(calls[0]!.headers.get('X-CSRF-Token')).toBeNull();
    expect(sessionStorage.getItem(TOKEN_STORAGE_KEY)).toBe('cmp_abc');
  });

  it("sends a session's CSRF token on writes only", async () => {
    const { calls } = mockApi({ 'PATCH /api/v1/certificates/c1': {}, 'GET /api/v1/me': {} });
    setCsrfToken('csrf-1');
    await api.GET('/api/v1/me');
    await api.PATCH('/api/v1/certificates/{id}', { params: { path: { id: 'c1' } }, body: { labels: {} } });
    expect(calls[0]!.headers.get('X-CSRF-Token')).toBeNull();
    expect(calls[1]!.headers.get('X-CSRF-Token')).toBe('csrf-1');
    expect(calls[1]!.headers.get('Authorization')).toBeNull();
    setCsrfToken(undefined);
  });

  it('knows a session from its readable CSRF cookie, and a token from storage', () => {
    expect(hasCredentials()).toBe(false);
    document.cookie = 'cmp_csrf=abc; path=/';
    expect(hasCredentials()).toBe(true);
    document.cookie = 'cmp_csrf=; path=/; max-age=0';
    expect(hasCredentials()).toBe(false);
    storeToken('cmp_abc');
    expect(hasCredentials()).toBe(true);
  });
});
