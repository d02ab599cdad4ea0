// What the two setups (global-setup.ts, oidc-provider.ts) do with the servers they start:
// wait until one answers, or fail with where its log is.
import type { ChildProcess } from 'node:child_process';

/** Resolves when `url` answers 2xx; fails when `child` exits first or after 60 s. */
export async function waitFor(url: string, what: string, child: ChildProcess, log: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`${what} exited (${child.exitCode}) before ${url} answered; see ${log}`);
    }
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not answer ${url} within 60 s; see ${log}`);
}
