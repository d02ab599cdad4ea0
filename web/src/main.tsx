import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { makeQueryClient } from './api/queryClient';
import { App } from './App';
import { applyStoredTheme } from './lib/theme';
import { preloadPage } from './routes';
import './styles.css';

// Before the first render, so that a stored dark theme does not flash light.
applyStoredTheme();
preloadPage(window.location.pathname);

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root');
createRoot(root).render(
  <StrictMode>
    <App queryClient={makeQueryClient()} />
  </StrictMode>,
);
