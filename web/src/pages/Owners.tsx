// Owners (teams) and their policies: the list, a form to add one (admin, security), and the
// chosen owner: admins and security edit it and its policy, admins delete it. The chosen owner is in the URL
// (`?owner=<name>`), so that a policy can be linked to.
import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useSearchParams } from 'react-router';
import { api, unwrap } from '../api/client';
import type { Owner } from '../api/types';
import { useSession } from '../auth/session';
import { useAddPanel } from '../components/AddPanel';
import { DeleteButton } from '../components/DeleteButton';
import { FormButtons } from '../components/FormButtons';
import { ProblemMessage } from '../components/ProblemMessage';
import { Section } from '../components/Section';
import { TableScroll } from '../components/TableScroll';
import { Empty, Loading } from '../components/States';
import { formatDate } from '../lib/format';
import { usePageTitle } from '../lib/usePageTitle';
import { Field } from './parts/Field';
import { PolicyEditor } from './parts/PolicyEditor';
import { PolicySummary } from './parts/PolicySummary';
import '../styles-pages.css';

/** Adds an owner, or changes `owner`'s name, email and description when given. */
function OwnerForm({ owner, onDone }: { owner?: Owner; onDone: (saved: Owner | null) => void }) {
  const queryClient = useQueryClient();
  const [name, setName] = useState(owner?.name ?? '');
  const [email, setEmail] = useState(owner?.email ?? '');
  const [description, setDescription] = useState(owner?.description ?? '');
  const save = useMutation({
    mutationFn: () => {
      const fields = { name: name.trim(), email: email.trim() || null, description: description.trim() || null };
      return owner
        ? unwrap(api.PATCH('/api/v1/owners/{id}', { params: { path: { id: owner.id } }, body: fields }))
        : unwrap(
            api.POST('/api/v1/owners', {
              body: {
                name: fields.name,
                ...(fields.email ? { email: fields.email } : {}),
                ...(fields.description ? { description: fields.description } : {}),
              },
            }),
          );
    },
    onSuccess: (saved) => {
      void queryClient.invalidateQueries({ queryKey: ['owners'] });
      onDone(saved);
    },
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    save.mutate();
  }

  return (
    <form className="form-stack" onSubmit={submit}>
      <div className="form-row">
        <Field label="Name" hint="1-100 characters: letters, digits, -, _, . and spaces.">
          {(control) => (
            <input {...control} required maxLength={100} autoComplete="off" value={name} onChange={(event) => setName(event.target.value)} />
          )}
        </Field>
        <Field label="Email" hint="Optional: who to tell about expiring certificates.">
          {(control) => <input {...control} type="email" autoComplete="off" value={email} onChange={(event) => setEmail(event.target.value)} />}
        </Field>
      </div>
      <Field label="Description" hint="Optional.">
        {(control) => <input {...control} value={description} onChange={(event) => setDescription(event.target.value)} />}
      </Field>
      <FormButtons
        submitLabel={owner ? 'Save owner' : 'Add owner'}
        busyLabel={owner ? 'Saving…' : 'Adding…'}
        busy={save.isPending}
        disabled={!name.trim()}
        onCancel={() => onDone(null)}
        error={save.error}
        errorContext={owner ? 'The owner was not changed' : 'The owner was not added'}
      />
    </form>
  );
}

function ChosenOwner({ owner, onDeleted }: { owner: Owner; onDeleted: () => void }) {
  const { can } = useSession();
  const queryClient = useQueryClient();
  const [editingOwner, setEditingOwner] = useState(false);
  const [editing, setEditing] = useState(false);
  const policy = useQuery({
    queryKey: ['owner', owner.id, 'policy'],
    queryFn: () => unwrap(api.GET('/api/v1/owners/{id}/policy', { params: { path: { id: owner.id } } })),
  });
  return (
    <>
      {can.manageOwners || can.deleteOwners ? (
        <Section
          id="owner-edit"
          title={owner.name}
          actions={
            <div className="row">
              {can.manageOwners && !editingOwner ? (
                <button type="button" onClick={() => setEditingOwner(true)}>
                  Edit owner
                </button>
              ) : null}
              {can.deleteOwners ? (
                <DeleteButton
                  noun="owner"
                  name={owner.name}
                  label="Delete owner…"
                  remove={() => unwrap(api.DELETE('/api/v1/owners/{id}', { params: { path: { id: owner.id } } }))}
                  onDeleted={() => {
                    void queryClient.invalidateQueries({ queryKey: ['owners'] });
                    onDeleted();
                  }}
                >
                  <p>
                    Its certificates stay in the inventory without an owner, and its policy goes. Tokens and people of this team
                    no longer see them.
                  </p>
                </DeleteButton>
              ) : null}
            </div>
          }
        >
          {editingOwner ? (
            <OwnerForm owner={owner} onDone={() => setEditingOwner(false)} />
          ) : (
            <p className="muted">{owner.description ?? 'No description.'}</p>
          )}
        </Section>
      ) : null}
      <Section
        id="owner-policy"
        title={`Policy of ${owner.name}`}
        actions={
          can.editPolicies && policy.data && !editing ? (
            <button type="button" onClick={() => setEditing(true)}>
              Edit policy
            </button>
          ) : null
        }
      >
        {policy.isPending ? <Loading what="the policy" /> : null}
        {policy.error ? <ProblemMessage error={policy.error} context="Loading the policy" /> : null}
        {policy.data && !editing ? <PolicySummary view={policy.data} /> : null}
        {policy.data && editing ? <PolicyEditor view={policy.data} ownerName={owner.name} onDone={() => setEditing(false)} /> : null}
      </Section>
    </>
  );
}

export default function OwnersPage() {
  usePageTitle('Owners and policies');
  const { me, can } = useSession();
  const [search, setSearch] = useSearchParams();
  const owners = useQuery({ queryKey: ['owners'], queryFn: () => unwrap(api.GET('/api/v1/owners')) });

  const chosenKey = search.get('owner');
  const chosen = (owners.data ?? []).find((owner) => owner.name === chosenKey || owner.id === chosenKey) ?? null;
  const mine = new Set(me.owners);

  function choose(owner: Owner) {
    setSearch({ owner: owner.name });
  }
  const add = useAddPanel<Owner>({
    id: 'owner-add',
    label: 'Add owner',
    title: 'Add an owner',
    allowed: can.manageOwners,
    form: (done) => (
      <OwnerForm
        onDone={(created) => {
          done(created);
          if (created) choose(created);
        }}
      />
    ),
    notice: (created) => <>Added {created.name}. Its policy is the default until you edit it.</>,
  });

  return (
    <>
      <div className="page-header">
        <h1>Owners and policies</h1>
        {add.button}
      </div>
      <p className="muted">Owners are the teams certificates belong to. Each has a policy that every request for it must meet.</p>
      {add.panel}

      {owners.isPending ? <Loading what="owners" /> : null}
      {owners.error ? <ProblemMessage error={owners.error} context="Loading owners" /> : null}
      {owners.data && owners.data.length === 0 ? <Empty>No owners yet.</Empty> : null}
      {owners.data && owners.data.length > 0 ? (
        <TableScroll label="Owners, table" className="panel">
          <table>
            <caption className="visually-hidden">Owners</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Email</th>
                <th scope="col">Description</th>
                <th scope="col">Added</th>
                <th scope="col">
                  <span className="visually-hidden">Policy</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {owners.data.map((owner) => (
                <tr key={owner.id} aria-current={chosen?.id === owner.id ? 'true' : undefined}>
                  <td>
                    {owner.name}
                    {mine.has(owner.id) ? <> <span className="badge">yours</span></> : null}
                  </td>
                  <td>{owner.email ?? '—'}</td>
                  <td>{owner.description ?? '—'}</td>
                  <td>{formatDate(owner.created_at)}</td>
                  <td className="actions-cell">
                    <button
                      type="button"
                      aria-label={`Show ${owner.name} and its policy`}
                      aria-pressed={chosen?.id === owner.id}
                      onClick={() => choose(owner)}
                    >
                      Show
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      ) : null}
      {chosenKey && owners.data && !chosen ? (
        <p className="notice" role="status">
          There is no owner named {chosenKey}.
        </p>
      ) : null}
      {chosen ? <ChosenOwner key={chosen.id} owner={chosen} onDeleted={() => setSearch({})} /> : null}
    </>
  );
}
