// Where the dashboard shows the entity an audit event is about: the audit log and the
// Overview's recent activity link it.
import type { AuditEvent } from '../api/types';

/** The page of an audit event's entity, or null when the dashboard has none for its type. */
export function auditEntityLink(event: Pick<AuditEvent, 'entity_type' | 'entity_id'>): string | null {
  const id = encodeURIComponent(event.entity_id);
  switch (event.entity_type) {
    case 'certificate':
      return `/certificates/${id}`;
    case 'managed_certificate':
      return `/managed/${id}`;
    case 'issuance_request':
      return `/request?id=${id}`;
    default:
      return null;
  }
}
