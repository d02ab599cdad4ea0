import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { hasCredentials } from './api/client';
import { makeQueryClient } from './api/queryClient';
import { App } from './App';
import { applyStoredTheme } from './lib/theme';
import { preloadPage } from './routes';
import './styles.css';

// Before the first render, so that a stored dark theme does not flash light.
applyStoredTheme();
const queryClient = makeQueryClient();
preloadPage(window.location, queryClient, hasCredentials());

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root');
createRoot(root).render(
  <StrictMode>
    <App queryClient={queryClient} />
  </StrictMode>,
);
