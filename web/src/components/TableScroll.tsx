// The box a wide table scrolls in, sideways on narrow screens. It is focusable and named, so
// that keyboard users can scroll it too (WCAG 2.1.1; axe: scrollable-region-focusable).
import type { ReactNode } from 'react';

export function TableScroll({ label, className, children }: { label: string; className?: string; children: ReactNode }) {
  return (
    <div className={className ? `table-wrap ${className}` : 'table-wrap'} role="region" aria-label={label} tabIndex={0}>
      {children}
    </div>
  );
}
