// Components whose code is fetched on demand (a chunk each), rendered at once when the chunk
// is already here. `React.lazy` alone suspends on its first render even then, and React 19
// holds content back for up to 300 ms after a Suspense fallback was shown (its fallback
// throttle): that was 300 ms of the inventory's first paint (docs/PERFORMANCE.md).
import { lazy, type ComponentType } from 'react';

export interface OnDemand<P extends object> {
  /** Renders the component: at once once loaded, through Suspense before. */
  Component: ComponentType<P>;
  /** Fetches the chunk (once; again after a failure). */
  load: () => Promise<{ default: ComponentType<P> }>;
}

export function onDemand<P extends object>(fetchChunk: () => Promise<{ default: ComponentType<P> }>): OnDemand<P> {
  let loaded: ComponentType<P> | undefined;
  let pending: Promise<{ default: ComponentType<P> }> | undefined;
  const load = () =>
    (pending ??= fetchChunk().then(
      (chunk) => {
        loaded = chunk.default;
        return chunk;
      },
      (error: unknown) => {
        pending = undefined;
        throw error;
      },
    ));
  const Lazy = lazy(load);
  function Component(props: P) {
    const Loaded = loaded;
    return Loaded ? <Loaded {...props} /> : <Lazy {...props} />;
  }
  return { Component, load };
}
