// One certificate: its facts, lifetime, chain, findings, where it was seen, the managed
// certificate it is a version of, its audit trail, and what the caller may do with it.
import { useQuery } from '@tanstack/react-query';
import { Link, useParams } from 'react-router';
import { api, unwrap } from '../api/client';
import type { Certificate, Managed } from '../api/types';
import { useCan } from '../auth/session';
import { Downloads } from '../components/certificate/Downloads';
import { EditOwnerAndLabels } from '../components/certificate/EditOwnerAndLabels';
import { RevokeCertificate } from '../components/certificate/RevokeCertificate';
import { ProblemMessage } from '../components/ProblemMessage';
import { Section } from '../components/Section';
import { Empty, Loading } from '../components/States';
import { FindingBadges, StatusBadge } from '../components/StatusBadge';
import { ValidityBar } from '../components/ValidityBar';
import { certificateName, colonHex, formatDateTime, keyDescription } from '../lib/format';
import { usePageTitle } from '../lib/usePageTitle';
import { TableScroll } from '../components/TableScroll';
import { RenewNow } from './parts/RenewNow';

/**
 * Whether the server made this certificate's key (so that it may be downloaded). The
 * certificate does not say; the spec of the managed certificate it belongs to does.
 */
function Facts({ certificate }: { certificate: Certificate }) {
  const labels = Object.entries(certificate.labels ?? {});
  return (
    <dl className="facts">
      <dt>Subject</dt>
      <dd className="mono">{certificate.subject || '—'}</dd>
      <dt>Names (SANs)</dt>
      <dd>
        {certificate.sans.length === 0 ? (
          <span className="muted">none</span>
        ) : (
          certificate.sans.map((san) => (
            <div key={`${san.type}:${san.value}`}>
              <span className="muted">{san.type.toUpperCase()}</span> {san.value}
            </div>
          ))
        )}
      </dd>
      <dt>Issuer</dt>
      <dd className="mono">{certificate.issuer}</dd>
      <dt>Serial number</dt>
      <dd className="mono">{colonHex(certificate.serial_number)}</dd>
      <dt>SHA-256 fingerprint</dt>
      <dd className="mono">{colonHex(certificate.fingerprint_sha256)}</dd>
      <dt>Key</dt>
      <dd>{keyDescription(certificate.key)}</dd>
      <dt>Signature</dt>
      <dd>{certificate.signature_algorithm}</dd>
      <dt>Valid from</dt>
      <dd>{formatDateTime(certificate.not_before)}</dd>
      <dt>Valid until</dt>
      <dd>{formatDateTime(certificate.not_after)}</dd>
      <dt>Owner</dt>
      <dd>{certificate.owner?.name ?? <span className="muted">none</span>}</dd>
      <dt>Labels</dt>
      <dd>
        {labels.length === 0 ? (
          <span className="muted">none</span>
        ) : (
          <span className="badges">
            {labels.map(([key, value]) => (
              <span key={key} className="badge">
                {key}={value}
              </span>
            ))}
          </span>
        )}
      </dd>
      <dt>Source</dt>
      <dd>
        {certificate.source}
        {certificate.is_ca ? ', CA certificate' : ''}
        {certificate.self_signed ? ', self-signed' : ''}
      </dd>
      <dt>Added</dt>
      <dd>{formatDateTime(certificate.created_at)}</dd>
      {certificate.revoked_at ? (
        <>
          <dt>Revoked</dt>
          <dd>
            {formatDateTime(certificate.revoked_at)}
            {certificate.revocation_reason ? ` (${certificate.revocation_reason.replace(/_/g, ' ')})` : ''}
          </dd>
        </>
      ) : null}
    </dl>
  );
}

/** What a network scan's handshake showed, in a line: version, chain, STARTTLS. */
function handshakeText(endpoint: NonNullable<Certificate['locations'][number]['endpoint']>): string {
  const parts = [endpoint.tls_version, `chain ${endpoint.chain}`];
  if (endpoint.protocol !== 'tls') parts.push(`${endpoint.protocol.toUpperCase()} STARTTLS`);
  if (endpoint.legacy_versions.length > 0) parts.push(`also ${endpoint.legacy_versions.join(', ')}`);
  return parts.join(' · ');
}

function Locations({ certificate }: { certificate: Certificate }) {
  if (certificate.locations.length === 0) return <Empty>Not seen anywhere yet.</Empty>;
  return (
    <TableScroll label="Locations, table">
      <table>
        <thead>
          <tr>
            <th scope="col">Kind</th>
            <th scope="col">Where</th>
            <th scope="col">Handshake</th>
            <th scope="col">Findings</th>
            <th scope="col">First seen</th>
            <th scope="col">Last seen</th>
          </tr>
        </thead>
        <tbody>
          {certificate.locations.map((location) => (
            <tr key={`${location.kind}:${location.address}`}>
              <td>{location.kind}</td>
              <td className="mono">{location.address}</td>
              <td>{location.endpoint ? handshakeText(location.endpoint) : ''}</td>
              <td>
                <FindingBadges findings={location.findings ?? []} />
              </td>
              <td>{formatDateTime(location.first_seen)}</td>
              <td>
                {location.gone_at
                  ? `gone since ${formatDateTime(location.gone_at)}`
                  : formatDateTime(location.last_seen)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableScroll>
  );
}

function ManagedVersions({ managed, certificateId }: { managed: Managed; certificateId: string }) {
  return (
    <>
      <p>
        A version of <Link to={`/managed/${encodeURIComponent(managed.id)}`}>{managed.owner_name ? `${managed.owner_name}/` : ''}{managed.name}</Link>.
        {managed.renewal ? ` ${managed.renewal.message}.` : ''}
      </p>
      {managed.last_error ? (
        <p className="problem">
          Last renewal failed{managed.renewal_failures > 1 ? ` (${managed.renewal_failures} times)` : ''}: {managed.last_error}
        </p>
      ) : null}
      <TableScroll label="Versions, table">
        <table>
          <caption className="visually-hidden">Versions of {managed.name}</caption>
          <thead>
            <tr>
              <th scope="col">Serial</th>
              <th scope="col">Valid from</th>
              <th scope="col">Valid until</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {managed.versions.map((version) => {
              const isThis = version.certificate_id === certificateId;
              const isCurrent = version.certificate_id === managed.current_certificate_id;
              return (
                <tr key={version.certificate_id} aria-current={isThis ? 'true' : undefined}>
                  <td className="mono">
                    {isThis ? (
                      version.serial_number
                    ) : (
                      <Link to={`/certificates/${encodeURIComponent(version.certificate_id)}`}>{version.serial_number}</Link>
                    )}
                  </td>
                  <td>{formatDateTime(version.not_before)}</td>
                  <td>{formatDateTime(version.not_after)}</td>
                  <td>
                    <span className="badges">
                      {isCurrent ? <span className="badge ok">current</span> : null}
                      {version.revoked ? <span className="badge bad">revoked</span> : null}
                      {isThis ? <span className="badge">this certificate</span> : null}
                    </span>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </TableScroll>
    </>
  );
}

/** An audit event's details as `key: value` lines (they are small, flat objects). */
function AuditDetails({ details }: { details: unknown }) {
  if (!details || typeof details !== 'object') return null;
  return (
    <>
      {Object.entries(details as Record<string, unknown>).map(([key, value]) => (
        <div key={key}>
          <span className="muted">{key}:</span> <span className="mono">{typeof value === 'string' ? value : JSON.stringify(value)}</span>
        </div>
      ))}
    </>
  );
}

function AuditTrail({ certificateId }: { certificateId: string }) {
  const events = useQuery({
    queryKey: ['audit', { entity_type: 'certificate', entity_id: certificateId }],
    queryFn: () =>
      unwrap(
        api.GET('/api/v1/audit', {
          params: { query: { entity_type: 'certificate', entity_id: certificateId, limit: 50 } },
        }),
      ),
  });
  if (events.isPending) return <Loading what="audit events" />;
  if (events.error) return <ProblemMessage error={events.error} context="Loading audit events" />;
  if (events.data.items.length === 0) return <Empty>No audit events for this certificate.</Empty>;
  return (
    <TableScroll label="Audit events, table">
      <table>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Who</th>
            <th scope="col">What</th>
            <th scope="col">Details</th>
          </tr>
        </thead>
        <tbody>
          {events.data.items.map((event) => (
            <tr key={event.seq}>
              <td>{formatDateTime(event.occurred_at)}</td>
              <td className="mono">{event.actor}</td>
              <td>{event.action}</td>
              <td className="details-cell">
                <AuditDetails details={event.details} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableScroll>
  );
}

function Chain({ certificateId }: { certificateId: string }) {
  const chain = useQuery({
    queryKey: ['certificate', certificateId, 'pem', { chain: true }],
    queryFn: () =>
      unwrap(
        api.GET('/api/v1/certificates/{id}/pem', {
          params: { path: { id: certificateId }, query: { chain: true } },
          parseAs: 'text',
        }),
      ),
  });
  if (chain.isPending) return <Loading what="the chain" />;
  if (chain.error) return <ProblemMessage error={chain.error} context="Loading the chain" />;
  const count = (chain.data.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length;
  return (
    <>
      <p>
        {count <= 1
          ? 'No chain is recorded for this certificate (an imported certificate has none): the PEM holds the certificate alone.'
          : `The certificate and ${count - 1} CA certificate${count > 2 ? 's' : ''} above it, issuing CA first.`}
      </p>
      <details>
        <summary>Show PEM</summary>
        <pre>{chain.data}</pre>
      </details>
    </>
  );
}

export default function CertificateDetailPage() {
  const { id = '' } = useParams();
  const can = useCan();
  const certificate = useQuery({
    queryKey: ['certificate', id],
    queryFn: () => unwrap(api.GET('/api/v1/certificates/{id}', { params: { path: { id } } })),
  });
  const managedId = certificate.data?.managed_certificate_id ?? null;
  const managed = useQuery({
    queryKey: ['managed', managedId],
    queryFn: () =>
      unwrap(api.GET('/api/v1/managed-certificates/{id}', { params: { path: { id: managedId ?? '' } } })),
    enabled: Boolean(managedId) && can.viewManaged,
  });
  usePageTitle(certificate.data ? certificateName(certificate.data) : 'Certificate');

  if (certificate.isPending) return <Loading what="the certificate" />;
  if (certificate.error) {
    return (
      <>
        <h1>Certificate</h1>
        <ProblemMessage error={certificate.error} context="Loading the certificate" />
        <p>
          <Link to="/certificates">Back to the certificates</Link>
        </p>
      </>
    );
  }

  const cert = certificate.data;
  const serverKey = cert.has_server_key;
  const revocable = can.revokeCertificate && cert.source === 'issued' && cert.status !== 'revoked';
  const renewable = can.renewManaged && managed.data && !cert.revoked_at;

  return (
    <>
      <p>
        <Link to="/certificates">Certificates</Link> ›
      </p>
      <div className="title-row">
        <h1>{certificateName(cert)}</h1>
        <StatusBadge status={cert.status} />
      </div>

      <ValidityBar notBefore={cert.not_before} notAfter={cert.not_after} status={cert.status} />

      <Section id="certificate-actions" title="Actions">
        <div className="actions">
          {can.editCertificate ? <EditOwnerAndLabels certificate={cert} /> : null}
          {renewable && managed.data ? <RenewNow managed={managed.data} /> : null}
          {!managedId && can.createRequest && cert.source === 'issued' ? (
            <Link className="button" to={`/request?from=${encodeURIComponent(cert.id)}`}>
              Request a replacement
            </Link>
          ) : null}
          {revocable ? <RevokeCertificate certificate={cert} serverKey={serverKey && can.downloadKey} /> : null}
        </div>
        <h3>Downloads</h3>
        <Downloads certificate={cert} offerKey={serverKey && can.downloadKey && !cert.revoked_at} />
      </Section>

      <div className="grid-2">
        <Section id="certificate-facts" title="Details">
          <Facts certificate={cert} />
        </Section>
        <div>
          <Section id="certificate-findings" title="Findings">
            <FindingBadges findings={cert.findings} />
          </Section>
          <Section id="certificate-locations" title="Seen at">
            <Locations certificate={cert} />
          </Section>
        </div>
      </div>

      {managedId ? (
        <Section id="certificate-managed" title="Managed certificate">
          {!can.viewManaged ? <p className="muted">A version of a managed certificate.</p> : null}
          {managed.isPending && can.viewManaged ? <Loading what="the managed certificate" /> : null}
          {managed.error ? <ProblemMessage error={managed.error} context="Loading the managed certificate" /> : null}
          {managed.data ? <ManagedVersions managed={managed.data} certificateId={cert.id} /> : null}
        </Section>
      ) : null}

      <Section id="certificate-chain" title="Chain">
        <Chain certificateId={cert.id} />
      </Section>

      {can.viewAudit ? (
        <Section id="certificate-audit" title="Audit trail">
          <AuditTrail certificateId={cert.id} />
        </Section>
      ) : null}
    </>
  );
}
