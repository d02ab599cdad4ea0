// A titled part of a page: a region landmark named by its heading, with what belongs beside
// the heading (buttons, badges) at the end of its line.
import type { ReactNode } from 'react';

export function Section({ id, title, actions, children }: { id: string; title: string; actions?: ReactNode; children: ReactNode }) {
  return (
    <section className="panel" aria-labelledby={id}>
      <div className="section-header">
        <h2 id={id}>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}
