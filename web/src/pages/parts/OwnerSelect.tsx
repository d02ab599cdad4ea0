// A choice of owner by name (what the API takes wherever an owner is named), with a first
// choice that means none.
import { useQuery } from '@tanstack/react-query';
import { api, unwrap } from '../../api/client';
import { useCan } from '../../auth/session';
import type { ControlProps } from './Field';

interface OwnerSelectProps {
  control: ControlProps;
  owners: readonly { id: string; name: string }[];
  value: string;
  onChange: (name: string) => void;
  /** The words of the first choice, whose value is empty. */
  none: string;
}

export function OwnerSelect({ control, owners, value, onChange, none }: OwnerSelectProps) {
  return (
    <select {...control} value={value} onChange={(event) => onChange(event.target.value)}>
      <option value="">{none}</option>
      {owners.map((owner) => (
        <option key={owner.id} value={owner.name}>
          {owner.name}
        </option>
      ))}
    </select>
  );
}

/** The owners the caller may list, to choose from (none until they load, or for a role that may not). */
export function useOwnerChoices(): readonly { id: string; name: string }[] {
  const can = useCan();
  const owners = useQuery({ queryKey: ['owners'], queryFn: () => unwrap(api.GET('/api/v1/owners')), enabled: can.viewOwners });
  return owners.data ?? [];
}
