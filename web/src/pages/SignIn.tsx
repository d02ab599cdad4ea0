// Sign-in: the OpenID Connect providers the server knows (a full-page login at the provider),
// or an API token pasted here, checked with /api/v1/me before it is kept for this tab.
import { useEffect, useId, useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { useLocation } from 'react-router';
import { api, storeToken, unwrap } from '../api/client';
import { ApiProblem, toApiProblem } from '../api/problem';
import type { Me } from '../api/types';
import { ProblemMessage } from '../components/ProblemMessage';
import { Loading } from '../components/States';

interface SignInPageProps {
  onSignedIn: (me: Me) => void;
}

/** Where the provider's login sends the user back: the page they asked for. */
function loginHref(provider: string, returnTo: string): string {
  const query = new URLSearchParams({ provider, return_to: returnTo });
  return `/auth/login?${query.toString()}`;
}

/** The query string without `login_error`: what the page was before a refused login. */
function withoutLoginError(search: string): string {
  const query = new URLSearchParams(search);
  query.delete(LOGIN_ERROR);
  const rest = query.toString();
  return rest ? `?${rest}` : '';
}

/** Where the server's callback puts why a single sign-on was refused (docs/API.md). */
const LOGIN_ERROR = 'login_error';

export default function SignInPage({ onSignedIn }: SignInPageProps) {
  const location = useLocation();
  const returnTo = `${location.pathname}${withoutLoginError(location.search)}`;
  const loginError = new URLSearchParams(location.search).get(LOGIN_ERROR);
  const tokenId = useId();
  const [token, setToken] = useState('');
  const [checking, setChecking] = useState(false);
  const [failure, setFailure] = useState<ApiProblem | null>(null);

  useEffect(() => {
    document.title = 'Sign in · CMP';
  }, []);

  const providers = useQuery({
    queryKey: ['auth-providers'],
    queryFn: () => unwrap(api.GET('/auth/providers')),
    staleTime: 5 * 60_000,
  });

  async function submit(event: FormEvent) {
    event.preventDefault();
    const candidate = token.trim();
    if (!candidate) return;
    setChecking(true);
    setFailure(null);
    try {
      const me = await unwrap(
        api.GET('/api/v1/me', { headers: { Authorization: `Bearer ${candidate}` } }),
      );
      storeToken(candidate);
      setToken('');
      onSignedIn(me);
    } catch (error) {
      setFailure(toApiProblem(error));
    } finally {
      setChecking(false);
    }
  }

  return (
    <main id="main" className="sign-in">
      <div className="panel">
        <h1>Sign in to CMP</h1>
        {loginError ? (
          <ProblemMessage
            error={new ApiProblem({ title: 'Single sign-on did not sign you in', detail: loginError }, 403)}
          />
        ) : null}
        {providers.isPending ? <Loading what="sign-in options" /> : null}
        {providers.error ? <ProblemMessage error={providers.error} context="Loading sign-in options" /> : null}
        {providers.data && providers.data.length > 0 ? (
          <div className="providers">
            {providers.data.map((provider) => (
              <a key={provider.name} className="button primary" href={loginHref(provider.name, returnTo)}>
                Sign in with {provider.name}
              </a>
            ))}
          </div>
        ) : null}
        <form onSubmit={submit} aria-describedby={`${tokenId}-hint`}>
          <h2>{providers.data && providers.data.length > 0 ? 'Or use an API token' : 'Use an API token'}</h2>
          <div className="field">
            <label htmlFor={tokenId}>API token</label>
            <input
              id={tokenId}
              name="token"
              type="password"
              autoComplete="off"
              spellCheck={false}
              placeholder="cmp_…"
              value={token}
              onChange={(event) => setToken(event.target.value)}
              required
            />
            <span id={`${tokenId}-hint`} className="hint">
              Kept in this tab only (sessionStorage) until you sign out or close it.
            </span>
          </div>
          {failure ? <ProblemMessage error={failure} context="That token was not accepted" /> : null}
          <div>
            <button type="submit" className="primary" disabled={checking}>
              {checking ? 'Checking…' : 'Sign in with token'}
            </button>
          </div>
        </form>
      </div>
    </main>
  );
}
