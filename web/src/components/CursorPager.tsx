// Paging through a list by the server's opaque cursor (the inventory, the audit log): a cursor
// only leads on, so the way back is to the first page.
interface CursorPagerProps {
  /** This page's cursor; none on the first page. */
  cursor: string | undefined;
  /** The server's `next_cursor`; none on the last page. */
  nextCursor: string | null | undefined;
  /** While a page loads, Next waits for it. */
  loading: boolean;
  onPage: (cursor: string | undefined) => void;
}

export function CursorPager({ cursor, nextCursor, loading, onPage }: CursorPagerProps) {
  return (
    <nav className="pager" aria-label="Pages">
      <button type="button" onClick={() => onPage(undefined)} disabled={!cursor}>
        First page
      </button>
      <button type="button" onClick={() => onPage(nextCursor ?? undefined)} disabled={!nextCursor || loading}>
        Next page
      </button>
    </nav>
  );
}
