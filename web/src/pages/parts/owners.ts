// Owners by name: requests, tokens and stats hold owner ids, and people know owners by name.
import { useQuery } from '@tanstack/react-query';
import { api, unwrap } from '../../api/client';
import { useCan } from '../../auth/session';

/** Owner names by id, for a caller who may list owners (else empty: ids are shown instead). */
export function useOwnerNames(enabled = true): ReadonlyMap<string, string> {
  const can = useCan();
  const owners = useQuery({
    queryKey: ['owners'],
    queryFn: () => unwrap(api.GET('/api/v1/owners')),
    enabled: enabled && can.viewOwners,
  });
  return new Map((owners.data ?? []).map((owner) => [owner.id, owner.name]));
}

/** An owner's name from a map of ids, or the id itself when unknown. */
export function ownerName(owners: ReadonlyMap<string, string>, id: string | null | undefined): string {
  if (!id) return '—';
  return owners.get(id) ?? id;
}
