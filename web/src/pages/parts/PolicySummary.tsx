// An owner's policy as a short list of facts: the names, keys and lifetime it allows and
// whether a person must approve each request.
import type { components } from '../../api/schema';
import { describeKeys, describeNames, describeValidity } from './policy';

type PolicyView = components['schemas']['PolicyView'];

export function PolicySummary({ view }: { view: PolicyView }) {
  const { policy } = view;
  return (
    <dl className="facts policy-summary">
      <dt>Allowed names</dt>
      <dd>{describeNames(policy)}</dd>
      <dt>Keys</dt>
      <dd>{describeKeys(policy)}</dd>
      <dt>Lifetime</dt>
      <dd>{describeValidity(policy)}</dd>
      <dt>Approval</dt>
      <dd>{policy.require_approval ? 'Each request waits for a security reviewer' : 'Not needed: issued at once'}</dd>
      {view.explicit ? null : (
        <>
          <dt>Source</dt>
          <dd className="muted">The default policy: this owner has none of its own</dd>
        </>
      )}
    </dl>
  );
}
