// The one API client: openapi-fetch typed by the generated schema, with the caller's
// credentials added in one middleware (bearer token or the session's CSRF token).
import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from './schema';
import { problemFromResponse } from './problem';

/** sessionStorage key of a pasted API token: gone when the tab closes. */
export const TOKEN_STORAGE_KEY = 'cmp_token';

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

// The session's CSRF token, from /api/v1/me: cookie-authenticated writes must send it back.
let csrfToken: string | undefined;

export function setCsrfToken(token: string | undefined): void {
  csrfToken = token;
}

export function storedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_STORAGE_KEY);
  } catch {
    return null; // storage disabled: cookies still work
  }
}

export function storeToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(TOKEN_STORAGE_KEY);
  else sessionStorage.setItem(TOKEN_STORAGE_KEY, token);
}

/**
 * Whether the browser holds any credential: a kept token, or a session (its CSRF cookie,
 * readable by design, lives as long as the HttpOnly session cookie). Without one, the
 * sign-in page shows at once instead of after a 401 from /api/v1/me.
 */
export function hasCredentials(): boolean {
  if (storedToken()) return true;
  return typeof document !== 'undefined' && document.cookie.split(/;\s*/).some((c) => c.startsWith('cmp_csrf='));
}

/** Headers that authenticate a request of `method`: for openapi-fetch and for raw downloads. */
function authHeaders(method: string): Record<string, string> {
  const token = storedToken();
  if (token) return { Authorization: `Bearer ${token}` };
  if (csrfToken && WRITE_METHODS.has(method.toUpperCase())) return { 'X-CSRF-Token': csrfToken };
  return {};
}

const authenticate: Middleware = {
  onRequest({ request }) {
    for (const [name, value] of Object.entries(authHeaders(request.method))) {
      // A caller that set its own (the sign-in form checking a pasted token) wins.
      if (!request.headers.has(name)) request.headers.set(name, value);
    }
    return request;
  },
};

export const api = createClient<paths>({
  // Absolute, so that the same code runs under jsdom; the page and the API share an origin.
  baseUrl: apiBase(),
  // Looked up per call rather than captured once, so that tests can replace fetch.
  fetch: (request) => globalThis.fetch(request),
});
api.use(authenticate);

interface FetchResult<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The data of an openapi-fetch call, or its problem thrown as an ApiProblem. */
export async function unwrap<T>(call: Promise<FetchResult<T>>): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok || error !== undefined) throw problemFromResponse(response, error);
  return data as T;
}

/** The API's base URL: the page's own origin. */
function apiBase(): string {
  return typeof window === 'undefined' ? 'http://localhost' : window.location.origin;
}

async function readBody(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A raw GET for a file: the caller's credentials, problems thrown like the typed client's. */
export async function fetchBlob(path: string, headers: Record<string, string> = {}): Promise<Blob> {
  const response = await globalThis.fetch(new URL(path, apiBase()), {
    headers: { ...authHeaders('GET'), ...headers },
  });
  if (!response.ok) throw problemFromResponse(response, await readBody(response));
  return response.blob();
}
