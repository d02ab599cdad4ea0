// What the global setup hands the tests: a file in the run's own temp dir (tests run in
// other processes), named by CMP_E2E_STATE, which the setup sets and the workers inherit; so
// two runs at once on one machine do not read each other's server.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export const OUTPUT_DIR = resolve(import.meta.dirname, '../test-output');
export const STATE_ENV = 'CMP_E2E_STATE';

export interface E2eState {
  /** cmpd's base URL. */
  apiUrl: string;
  /** Where the browser opens the dashboard (cmpd itself, or a vite preview in front of it). */
  uiUrl: string;
  /** The admin token cmpd wrote to its data dir. */
  token: string;
  /** A developer token for the owner `shop` only. */
  developerToken: string;
  /** Seeded certificates by name. */
  certificates: Record<string, { id: string; owner: string | null }>;
}

export function readState(): E2eState {
  const file = process.env[STATE_ENV];
  if (!file) throw new Error(`${STATE_ENV} is not set: run the tests with playwright test (its global setup sets it)`);
  return JSON.parse(readFileSync(file, 'utf8')) as E2eState;
}
