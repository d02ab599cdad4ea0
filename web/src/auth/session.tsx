// Who is signed in. The dashboard starts by asking GET /api/v1/me: with the API token kept in
// sessionStorage (sent as a bearer token) or with the browser's session cookie. A 401 shows
// the sign-in page; anything else that fails is shown as a problem.
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useNavigate } from 'react-router';
import { api, hasCredentials, setCsrfToken, storeToken, unwrap } from '../api/client';
import { isUnauthorized } from '../api/problem';
import { ME_QUERY_KEY } from '../api/queryClient';
import type { Me } from '../api/types';
import { ProblemMessage } from '../components/ProblemMessage';
import { Loading } from '../components/States';
import { capabilities, type Capabilities } from './capabilities';
import SignInPage from '../pages/SignIn';

export interface Session {
  me: Me;
  can: Capabilities;
  signOut: () => void;
}

const SessionContext = createContext<Session | null>(null);

/** The signed-in caller; only inside <AuthGate>. */
export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside <AuthGate>');
  return session;
}

/** What the signed-in caller may do. */
export function useCan(): Capabilities {
  return useSession().can;
}

function fetchMe(): Promise<Me> {
  return unwrap(api.GET('/api/v1/me'));
}

/** Renders its children for a signed-in caller, the sign-in page otherwise. */
export function AuthGate({ children }: { children: ReactNode }) {
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  // After a token sign-out, show the sign-in page even if a session cookie would still work.
  const [signedOut, setSignedOut] = useState(false);
  const asking = !signedOut && hasCredentials();
  const me = useQuery({ queryKey: ME_QUERY_KEY, queryFn: fetchMe, retry: false, staleTime: 5 * 60_000, enabled: asking });

  const signOut = useCallback(() => {
    if (me.data?.auth === 'session') {
      // A full page load: the server ends the session and redirects (to the provider's logout).
      window.location.assign('/auth/logout');
      return;
    }
    storeToken(null);
    setCsrfToken(undefined);
    queryClient.clear();
    setSignedOut(true);
    navigate('/', { replace: true });
  }, [me.data?.auth, navigate, queryClient]);

  const session = useMemo<Session | null>(
    () => (me.data ? { me: me.data, can: capabilities(me.data.role), signOut } : null),
    [me.data, signOut],
  );

  const onSignedIn = useCallback(
    (who: Me) => {
      queryClient.setQueryData(ME_QUERY_KEY, who);
      setSignedOut(false);
    },
    [queryClient],
  );

  if (!asking || isUnauthorized(me.error)) return <SignInPage onSignedIn={onSignedIn} />;
  if (me.isPending) {
    return (
      <main id="main" className="sign-in">
        <Loading what="your session" />
      </main>
    );
  }
  if (me.error || !session) {
    return (
      <main id="main" className="sign-in">
        <h1>CMP</h1>
        <ProblemMessage error={me.error} context="Checking who you are" />
        <button type="button" onClick={() => void me.refetch()}>
          Try again
        </button>
      </main>
    );
  }
  // Writes made with a session cookie must send its CSRF token (client.ts adds it).
  setCsrfToken(session.me.csrf_token ?? undefined);
  return <SessionContext.Provider value={session}>{children}</SessionContext.Provider>;
}

/** For tests: a fixed session without asking the server. */
export function TestSessionProvider({ session, children }: { session: Session; children: ReactNode }) {
  return <SessionContext.Provider value={session}>{children}</SessionContext.Provider>;
}
