// Shown for a page the caller's role may not use (a shared link, say): the nav never offers it.
import { useSession } from '../auth/session';
import { usePageTitle } from '../lib/usePageTitle';

export default function NotAllowedPage() {
  const { me } = useSession();
  usePageTitle('Not available');
  return (
    <>
      <h1>Not available</h1>
      <p className="notice">
        This page is not available to the <strong>{me.role}</strong> role.
      </p>
    </>
  );
}
