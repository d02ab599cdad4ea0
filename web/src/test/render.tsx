// Rendering a page in tests: a router at a given URL, a fresh query client, a fixed session,
// and fetch answered from a table of routes (every call recorded).
import type { ReactElement, ReactNode } from 'react';
import { render } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter, useLocation } from 'react-router';
import { vi } from 'vitest';
import type { Me } from '../api/types';
import { capabilities, type Role } from '../auth/capabilities';
import { TestSessionProvider } from '../auth/session';

/** A signed-in caller of `role`. */
function meOf(role: Role, extra: Partial<Me> = {}): Me {
  return { actor: `token:${role}-test`, role, owners: [], auth: 'api_token', ...extra } as Me;
}

/** Shows the router's current URL, so that tests can read what the page put there. */
export function LocationProbe() {
  const location = useLocation();
  return <output data-testid="location">{`${location.pathname}${location.search}`}</output>;
}

export function renderPage(ui: ReactElement, { url = '/', role = 'admin' as Role } = {}) {
  const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false }, mutations: { retry: false } } });
  const session = { me: meOf(role), can: capabilities(role), signOut: vi.fn() };
  const wrapper = ({ children }: { children: ReactNode }) => (
    <QueryClientProvider client={queryClient}>
      <MemoryRouter initialEntries={[url]}>
        <TestSessionProvider session={session}>{children}</TestSessionProvider>
      </MemoryRouter>
    </QueryClientProvider>
  );
  return { ...render(ui, { wrapper }), queryClient };
}

type Answer = unknown | ((url: URL) => Response | unknown);

/**
 * Replaces fetch: each call is answered by the first route whose `METHOD /path` (path without
 * query) matches; unknown routes answer 404 problems. Returns the mock, whose calls are
 * `Request`s or (url, init) pairs.
 */
export function mockApi(routes: Record<string, Answer>) {
  const calls: { method: string; url: URL; headers: Headers }[] = [];
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(String(input), init);
    const url = new URL(request.url);
    calls.push({ method: request.method, url, headers: request.headers });
    const answer = routes[`${request.method} ${url.pathname}`];
    if (answer === undefined) {
      return json({ type: 'about:blank', title: 'Not Found', status: 404, detail: `no mock for ${url.pathname}` }, 404);
    }
    const body = typeof answer === 'function' ? (answer as (url: URL) => unknown)(url) : answer;
    return body instanceof Response ? body : json(body, 200);
  });
  vi.stubGlobal('fetch', fetchMock);
  return { fetchMock, calls };
}

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  const type = status >= 400 ? 'application/problem+json' : 'application/json';
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': type, ...headers } });
}
