// "Delete…": a danger button that asks first, in a dialog that says what deleting does, and
// deletes only once confirmed; a refusal is shown in the dialog, which stays open.
import { useState, type ReactNode } from 'react';
import { useMutation } from '@tanstack/react-query';
import { Dialog } from './Dialog';
import { DialogForm } from './DialogForm';

interface DeleteButtonProps {
  /** What is deleted, e.g. "scan": in the dialog's button and its failure. */
  noun: string;
  /** Its name, in the dialog's title. */
  name: string;
  /** The button's words (default "Delete…"). */
  label?: string;
  remove: () => Promise<unknown>;
  onDeleted: () => void;
  /** What deleting does and keeps. */
  children: ReactNode;
}

export function DeleteButton({ noun, name, label = 'Delete…', remove, onDeleted, children }: DeleteButtonProps) {
  const [confirming, setConfirming] = useState(false);
  const deletion = useMutation({
    mutationFn: remove,
    onSuccess: () => {
      setConfirming(false);
      onDeleted();
    },
  });
  return (
    <>
      <button type="button" className="danger" onClick={() => setConfirming(true)}>
        {label}
      </button>
      <Dialog open={confirming} onClose={() => setConfirming(false)} title={`Delete ${name}?`}>
        <DialogForm
          onSubmit={() => deletion.mutate()}
          onCancel={() => setConfirming(false)}
          submitLabel={`Delete ${noun}`}
          busyLabel="Deleting…"
          busy={deletion.isPending}
          tone="danger"
          error={deletion.error}
          errorContext={`The ${noun} was not deleted`}
        >
          {children}
        </DialogForm>
      </Dialog>
    </>
  );
}
