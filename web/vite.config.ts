// Vite builds the dashboard into dist/ (hashed files under dist/assets/), which cmpd embeds.
import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

const api = process.env.CMP_API ?? 'http://127.0.0.1:3900';

// What cmpd sends with the page: `vite preview` sends it too, so that a CSP violation shows
// up in the end-to-end tests before the page is embedded.
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const proxy = Object.fromEntries(
  ['/api', '/auth', '/pki', '/healthz', '/readyz'].map((prefix) => [prefix, { target: api }]),
);

export default defineConfig({
  plugins: [react()],
  server: { port: 5173, strictPort: false, proxy },
  preview: { proxy, headers: { 'Content-Security-Policy': CONTENT_SECURITY_POLICY } },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    // The polyfill would be inlined into index.html's module script; every supported browser
    // has modulepreload, and the CSP allows no inline script.
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.{ts,tsx}'],
    setupFiles: ['src/test/setup.ts'],
    css: false,
  },
});
