// Revokes a certificate through the CA that issued it (POST .../revoke), after a confirmation
// that names the certificate and asks for the RFC 5280 reason.
import { useId, useState } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api, unwrap } from '../../api/client';
import type { Certificate } from '../../api/types';
import { certificateName } from '../../lib/format';
import { Dialog } from '../Dialog';
import { DialogForm } from '../DialogForm';

/** RFC 5280 reason codes as the API names them, with what they mean to a person. */
const REVOCATION_REASONS: readonly { value: string; label: string }[] = [
  { value: 'unspecified', label: 'Unspecified' },
  { value: 'key_compromise', label: 'Key compromise' },
  { value: 'ca_compromise', label: 'CA compromise' },
  { value: 'affiliation_changed', label: 'Affiliation changed' },
  { value: 'superseded', label: 'Superseded' },
  { value: 'cessation_of_operation', label: 'Cessation of operation' },
  { value: 'certificate_hold', label: 'Certificate hold' },
  { value: 'privilege_withdrawn', label: 'Privilege withdrawn' },
  { value: 'aa_compromise', label: 'AA compromise' },
];

function RevokeForm({ certificate, serverKey, onDone }: { certificate: Certificate; serverKey: boolean; onDone: () => void }) {
  const queryClient = useQueryClient();
  const reasonId = useId();
  const purgeId = useId();
  const [reason, setReason] = useState('unspecified');
  const [purgeKey, setPurgeKey] = useState(false);

  const revoke = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST('/api/v1/certificates/{id}/revoke', {
          params: { path: { id: certificate.id } },
          body: { reason, purge_key: purgeKey },
        }),
      ),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ['certificate', certificate.id] });
      void queryClient.invalidateQueries({ queryKey: ['certificates'] });
      void queryClient.invalidateQueries({ queryKey: ['audit'] });
      onDone();
    },
  });

  return (
    <DialogForm
      onSubmit={() => revoke.mutate()}
      onCancel={onDone}
      submitLabel="Revoke certificate"
      busyLabel="Revoking…"
      busy={revoke.isPending}
      tone="danger"
      error={revoke.error}
      errorContext="Revoking"
    >
      <p>
        Revoke <strong>{certificateName(certificate)}</strong> (serial <code>{certificate.serial_number}</code>)? Clients that
        check revocation will stop trusting it. This cannot be undone.
      </p>
      <div className="field">
        <label htmlFor={reasonId}>Reason</label>
        <select id={reasonId} value={reason} onChange={(event) => setReason(event.target.value)}>
          {REVOCATION_REASONS.map((option) => (
            <option key={option.value} value={option.value}>
              {option.label}
            </option>
          ))}
        </select>
      </div>
      {serverKey ? (
        <div className="row">
          <input id={purgeId} type="checkbox" checked={purgeKey} onChange={(event) => setPurgeKey(event.target.checked)} />
          <label htmlFor={purgeId}>Also delete the private key the server keeps for it</label>
        </div>
      ) : null}
    </DialogForm>
  );
}

export function RevokeCertificate({ certificate, serverKey }: { certificate: Certificate; serverKey: boolean }) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <button type="button" className="danger" onClick={() => setOpen(true)}>
        Revoke…
      </button>
      <Dialog open={open} onClose={() => setOpen(false)} title="Revoke certificate">
        <RevokeForm certificate={certificate} serverKey={serverKey} onDone={() => setOpen(false)} />
      </Dialog>
    </>
  );
}
