// Sets a certificate's owner and labels (PATCH /api/v1/certificates/{id}).
import { useId, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, unwrap } from '../../api/client';
import type { Certificate } from '../../api/types';
import { Dialog } from '../Dialog';
import { DialogForm } from '../DialogForm';

interface LabelRow {
  key: string;
  value: string;
}

function EditForm({ certificate, onDone }: { certificate: Certificate; onDone: () => void }) {
  const queryClient = useQueryClient();
  const ownerId = useId();
  const [owner, setOwner] = useState(certificate.owner?.name ?? '');
  const [labels, setLabels] = useState<LabelRow[]>(
    Object.entries(certificate.labels ?? {}).map(([key, value]) => ({ key, value })),
  );
  const owners = useQuery({ queryKey: ['owners'], queryFn: () => unwrap(api.GET('/api/v1/owners')) });

  const save = useMutation({
    mutationFn: () =>
      unwrap(
        api.PATCH('/api/v1/certificates/{id}', {
          params: { path: { id: certificate.id } },
          body: {
            owner: owner || null,
            labels: Object.fromEntries(labels.filter((row) => row.key.trim()).map((row) => [row.key.trim(), row.value])),
          },
        }),
      ),
    onSuccess: (updated) => {
      queryClient.setQueryData(['certificate', certificate.id], updated);
      void queryClient.invalidateQueries({ queryKey: ['certificates'] });
      onDone();
    },
  });

  function setRow(index: number, change: Partial<LabelRow>) {
    setLabels((rows) => rows.map((row, i) => (i === index ? { ...row, ...change } : row)));
  }

  const ownerNames = (owners.data ?? []).map((o) => o.name);
  if (owner && !ownerNames.includes(owner)) ownerNames.unshift(owner);

  return (
    <DialogForm
      onSubmit={() => save.mutate()}
      onCancel={onDone}
      submitLabel="Save"
      busyLabel="Saving…"
      busy={save.isPending}
      tone="primary"
      error={save.error}
      errorContext="Saving"
    >
      <div className="field">
        <label htmlFor={ownerId}>Owner</label>
        <select id={ownerId} value={owner} onChange={(event) => setOwner(event.target.value)}>
          <option value="">No owner</option>
          {ownerNames.map((name) => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </select>
      </div>
      <fieldset>
        <legend>Labels</legend>
        {labels.length === 0 ? <p className="muted">No labels.</p> : null}
        <div className="labels-editor">
          {labels.map((row, index) => (
            <LabelEditorRow
              key={index}
              row={row}
              index={index}
              onChange={(change) => setRow(index, change)}
              onRemove={() => setLabels((rows) => rows.filter((_, i) => i !== index))}
            />
          ))}
        </div>
        <p>
          <button type="button" onClick={() => setLabels((rows) => [...rows, { key: '', value: '' }])}>
            Add label
          </button>
        </p>
      </fieldset>
    </DialogForm>
  );
}

function LabelEditorRow({
  row,
  index,
  onChange,
  onRemove,
}: {
  row: LabelRow;
  index: number;
  onChange: (change: Partial<LabelRow>) => void;
  onRemove: () => void;
}) {
  const id = useId();
  return (
    <>
      <div className="field">
        <label htmlFor={`${id}-key`}>Label {index + 1} name</label>
        <input id={`${id}-key`} value={row.key} onChange={(event) => onChange({ key: event.target.value })} />
      </div>
      <div className="field">
        <label htmlFor={`${id}-value`}>Label {index + 1} value</label>
        <input id={`${id}-value`} value={row.value} onChange={(event) => onChange({ value: event.target.value })} />
      </div>
      <button type="button" onClick={onRemove} aria-label={`Remove label ${index + 1}`}>
        Remove
      </button>
    </>
  );
}

export function EditOwnerAndLabels({ certificate }: { certificate: Certificate }) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <button type="button" onClick={() => setOpen(true)}>
        Edit owner and labels
      </button>
      <Dialog open={open} onClose={() => setOpen(false)} title="Owner and labels">
        <EditForm certificate={certificate} onDone={() => setOpen(false)} />
      </Dialog>
    </>
  );
}
