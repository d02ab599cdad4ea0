import { useEffect } from 'react';

/** Sets the tab's title to `title · CMP` while the page is shown. */
export function usePageTitle(title: string): void {
  useEffect(() => {
    document.title = `${title} · CMP`;
  }, [title]);
}
