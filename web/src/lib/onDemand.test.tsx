import { Suspense, type ComponentType } from 'react';
import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { onDemand } from './onDemand';

function Greeting({ name }: { name: string }) {
  return <p>Hello, {name}</p>;
}

function renderIn(Component: ComponentType<{ name: string }>) {
  return render(
    <Suspense fallback={<p>Loading…</p>}>
      <Component name="ops" />
    </Suspense>,
  );
}

describe('onDemand', () => {
  it('suspends until the chunk arrives, then renders it with its props', async () => {
    let arrive: (chunk: { default: typeof Greeting }) => void = () => undefined;
    const greeting = onDemand(() => new Promise<{ default: typeof Greeting }>((resolve) => (arrive = resolve)));
    renderIn(greeting.Component);
    expect(screen.getByText('Loading…')).toBeInTheDocument();
    arrive({ default: Greeting });
    expect(await screen.findByText('Hello, ops')).toBeInTheDocument();
  });

  it('renders at once, with no fallback, once the chunk is loaded', async () => {
    let fetched = 0;
    const greeting = onDemand(() => {
      fetched += 1;
      return Promise.resolve({ default: Greeting });
    });
    await greeting.load();
    await greeting.load();
    renderIn(greeting.Component);
    // Synchronously: React.lazy alone would show the fallback first.
    expect(screen.getByText('Hello, ops')).toBeInTheDocument();
    expect(screen.queryByText('Loading…')).not.toBeInTheDocument();
    expect(fetched).toBe(1);
  });

  it('fetches again after a failed fetch', async () => {
    let fetched = 0;
    const greeting = onDemand<{ name: string }>(() => {
      fetched += 1;
      return fetched === 1 ? Promise.reject(new Error('offline')) : Promise.resolve({ default: Greeting });
    });
    await expect(greeting.load()).rejects.toThrow('offline');
    await greeting.load();
    expect(fetched).toBe(2);
  });
});
