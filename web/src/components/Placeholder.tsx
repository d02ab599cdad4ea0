// Stands in for a page that is still being written (its file is in the route table already).
import { usePageTitle } from '../lib/usePageTitle';

export function Placeholder({ title }: { title: string }) {
  usePageTitle(title);
  return (
    <>
      <h1>{title}</h1>
      <p className="notice">This page is not built yet.</p>
    </>
  );
}
