// The dashboard: sign-in gate, shell, and the route table's pages (each loaded on demand).
import { Suspense } from 'react';
import { QueryClientProvider, type QueryClient } from '@tanstack/react-query';
import { BrowserRouter, Route, Routes, useLocation } from 'react-router';
import { AuthGate, useCan } from './auth/session';
import { AppShell } from './components/AppShell';
import { ErrorBoundary } from './components/ErrorBoundary';
import { Loading } from './components/States';
import NotAllowedPage from './pages/NotAllowed';
import NotFoundPage from './pages/NotFound';
import { PAGE_ROUTES } from './routes';

function PageRoutes() {
  const can = useCan();
  const location = useLocation();
  return (
    // Keyed by path: an error on one page does not stick to the next.
    <ErrorBoundary key={location.pathname}>
      <Suspense fallback={<Loading what="the page" />}>
        <Routes>
          {PAGE_ROUTES.map(({ path, capability, Page }) => (
            <Route key={path} path={path} element={can[capability] ? <Page /> : <NotAllowedPage />} />
          ))}
          <Route path="*" element={<NotFoundPage />} />
        </Routes>
      </Suspense>
    </ErrorBoundary>
  );
}

export function App({ queryClient }: { queryClient: QueryClient }) {
  return (
    <QueryClientProvider client={queryClient}>
      <BrowserRouter>
        <AuthGate>
          <AppShell>
            <PageRoutes />
          </AppShell>
        </AuthGate>
      </BrowserRouter>
    </QueryClientProvider>
  );
}
