// The end-to-end tests' data, put in through the API as a user would: two owners, certificates
// made with openssl and imported, two issued by the builtin CA (one as a managed certificate,
// with a server-made key), and a developer token for one owner.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { E2eState } from './state';

interface SelfSigned {
  name: string;
  owner: string | null;
  days: number;
  /** openssl -newkey argument. */
  key: string;
}

// Chosen to cover the Overview and the filters: expiring ones, a weak key, one without owner.
const IMPORTED: SelfSigned[] = [
  { name: 'shop-static.example', owner: 'shop', days: 75, key: 'ec:param:P-256' },
  { name: 'legacy.payments.example', owner: 'payments', days: 20, key: 'rsa:1024' },
  { name: 'intranet.example', owner: null, days: 200, key: 'rsa:2048' },
];

/** A self-signed leaf made with openssl, as PEM (its key is left in `dir`). */
export function selfSigned(dir: string, cert: Omit<SelfSigned, 'owner'>): string {
  const keyParams = cert.key.startsWith('ec:param:')
    ? ['-newkey', 'ec', '-pkeyopt', `ec_paramgen_curve:${cert.key.slice('ec:param:'.length)}`]
    : ['-newkey', cert.key];
  const out = join(dir, `${cert.name}.pem`);
  execFileSync('openssl', [
    'req', '-x509', ...keyParams, '-nodes', '-keyout', join(dir, `${cert.name}.key`), '-out', out,
    '-days', String(cert.days), '-subj', `/CN=${cert.name}/O=CMP e2e`, '-addext', `subjectAltName=DNS:${cert.name}`,
    // A leaf, not the CA that openssl req -x509 makes by default.
    '-addext', 'basicConstraints=critical,CA:FALSE',
  ], { stdio: 'pipe' });
  return readFileSync(out, 'utf8');
}

/** A call to cmpd's API with `token`; the answer's JSON, or an error that says what was refused. */
export async function call<T>(apiUrl: string, token: string, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
  const response = await fetch(`${apiUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': contentType },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`seed: ${method} ${path} answered ${response.status}: ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

export async function seed(
  apiUrl: string,
  token: string,
  workDir: string,
): Promise<Pick<E2eState, 'developerToken' | 'certificates'>> {
  const certificates: E2eState['certificates'] = {};
  for (const owner of ['shop', 'payments']) {
    await call(apiUrl, token, 'POST', '/api/v1/owners', { name: owner, description: `The ${owner} team` });
  }

  for (const cert of IMPORTED) {
    const query = cert.owner ? `?owner=${cert.owner}` : '';
    const answer = await call<{ certificates: { id: string }[] }>(
      apiUrl, token, 'POST', `/api/v1/certificates/import${query}`, selfSigned(workDir, cert), 'application/x-pem-file',
    );
    certificates[cert.name] = { id: answer.certificates[0]!.id, owner: cert.owner };
  }

  const issued = await call<{ certificate_id: string }>(apiUrl, token, 'POST', '/api/v1/requests', {
    owner: 'payments', key_type: 'ecdsa_p256', dns_names: ['pay.payments.example'], validity_days: 45,
  });
  certificates['pay.payments.example'] = { id: issued.certificate_id, owner: 'payments' };
  const www = await call<{ certificate_id: string }>(apiUrl, token, 'POST', '/api/v1/requests', {
    owner: 'shop', key_type: 'ecdsa_p256', dns_names: ['www.shop.example'], validity_days: 25,
  });
  certificates['www.shop.example'] = { id: www.certificate_id, owner: 'shop' };
  // For the revocation test; its lifetime keeps it out of the Overview's 13 weeks.
  const revocable = await call<{ certificate_id: string }>(apiUrl, token, 'POST', '/api/v1/requests', {
    owner: 'shop', key_type: 'ecdsa_p256', dns_names: ['retired.shop.example'], validity_days: 200,
  });
  certificates['retired.shop.example'] = { id: revocable.certificate_id, owner: 'shop' };
  const managed = await call<{ current_certificate_id: string }>(apiUrl, token, 'POST', '/api/v1/managed-certificates', {
    name: 'web', owner: 'shop', key_type: 'ecdsa_p256', dns_names: ['api.shop.example'], validity_days: 60,
  });
  certificates['api.shop.example'] = { id: managed.current_certificate_id, owner: 'shop' };

  // For the renewal test; its 200 days keep it and its renewal out of the Overview's 13 weeks.
  const archive = await call<{ current_certificate_id: string }>(apiUrl, token, 'POST', '/api/v1/managed-certificates', {
    name: 'archive', owner: 'shop', key_type: 'ecdsa_p256', dns_names: ['archive.shop.example'], validity_days: 200,
  });
  certificates['archive.shop.example'] = { id: archive.current_certificate_id, owner: 'shop' };

  const developer = await call<{ token: string }>(apiUrl, token, 'POST', '/api/v1/tokens', {
    name: 'e2e developer', role: 'developer', owners: ['shop'],
  });
  return { developerToken: developer.token, certificates };
}
