// What the global setup hands the tests (through a file: tests run in other processes).
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const OUTPUT_DIR = resolve(import.meta.dirname, '../test-output');
export const E2E_STATE_FILE = join(OUTPUT_DIR, 'e2e-state.json');

export interface E2eState {
  /** cmpd's base URL. */
  apiUrl: string;
  /** Where the browser opens the dashboard (cmpd itself, or a vite preview in front of it). */
  uiUrl: string;
  /** The admin token cmpd wrote to its data dir. */
  token: string;
  /** A developer token for the owner `shop` only. */
  developerToken: string;
  /** How many certificates the inventory holds after the seed (the CA's own among them). */
  certificateCount: number;
  /** Seeded certificates by name. */
  certificates: Record<string, { id: string; owner: string | null }>;
}

export function readState(): E2eState {
  return JSON.parse(readFileSync(E2E_STATE_FILE, 'utf8')) as E2eState;
}
