// Who did something, in words: the audit trail and requests name callers `token:<id>`,
// `oidc:<provider>:<sub>` or `agent:<name>`; an admin, who may list tokens, sees their names.
import { useQuery } from '@tanstack/react-query';
import { api, unwrap } from '../../api/client';
import { useCan } from '../../auth/session';

/** A function from an actor to what to show; token names when the caller may list tokens. */
export function useActorName(): (actor: string) => string {
  const can = useCan();
  const tokens = useQuery({
    queryKey: ['tokens'],
    queryFn: () => unwrap(api.GET('/api/v1/tokens')),
    enabled: can.viewTokens,
    staleTime: 60_000,
  });
  const names = new Map((tokens.data ?? []).map((token) => [`token:${token.id}`, token.name]));
  return (actor: string) => {
    const name = names.get(actor);
    return name ? `${name} (${actor})` : actor;
  };
}
