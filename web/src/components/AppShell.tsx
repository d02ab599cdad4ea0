// The frame around every page: skip link, header (who is signed in, theme, sign-out), the nav
// of what the caller's role may use, and the main landmark.
import { useEffect, useRef, type ReactNode } from 'react';
import { NavLink, useLocation } from 'react-router';
import { useSession } from '../auth/session';
import { PAGE_ROUTES } from '../routes';
import { ThemeToggle } from './ThemeToggle';

const ROLE_LABELS: Record<string, string> = {
  admin: 'Administrator',
  security: 'Security',
  developer: 'Developer',
  agent: 'Agent',
};

export function AppShell({ children }: { children: ReactNode }) {
  const { me, can, signOut } = useSession();
  const mainRef = useRef<HTMLElement>(null);
  const location = useLocation();
  const firstRender = useRef(true);

  // After a navigation, focus moves to the new page (as a full page load would): screen
  // readers then read it from the top. Not on the first load, which keeps the browser's focus.
  useEffect(() => {
    if (firstRender.current) {
      firstRender.current = false;
      return;
    }
    mainRef.current?.focus();
  }, [location.pathname]);

  const navItems = PAGE_ROUTES.filter((route) => route.navLabel && can[route.capability]);
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="app-header">
        <NavLink to="/" className="brand">
          CMP
        </NavLink>
        <div className="whoami">
          <span>
            <span className="visually-hidden">Signed in as </span>
            {me.email ?? me.actor}
          </span>
          <span className="role">{ROLE_LABELS[me.role] ?? me.role}</span>
        </div>
        <ThemeToggle />
        <button type="button" onClick={signOut}>
          Sign out
        </button>
      </header>
      <div className="app-body">
        <nav className="app-nav" aria-label="Main">
          <ul>
            {navItems.map((route) => (
              <li key={route.path}>
                <NavLink to={route.path} end={route.path === '/'}>
                  {route.navLabel}
                </NavLink>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main" ref={mainRef} tabIndex={-1}>
          {children}
        </main>
      </div>
    </>
  );
}
