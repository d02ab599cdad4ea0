// Downloads of a certificate: PEM, PEM with its chain, and (where the server made the key and
// the caller may have it) the key with the chain as a password-protected PKCS#12 file. All go
// through fetch, so that a bearer token stays in a header.
import { useId, useState } from 'react';
import { fetchBlob } from '../../api/client';
import { toApiProblem, type ApiProblem } from '../../api/problem';
import type { Certificate } from '../../api/types';
import { fileStem, saveBlob } from '../../lib/download';
import { certificateName } from '../../lib/format';
import { Dialog } from '../Dialog';
import { DialogForm } from '../DialogForm';
import { ProblemMessage } from '../ProblemMessage';

const MIN_PKCS12_PASSWORD = 8;

function Pkcs12Form({ certificate, onDone }: { certificate: Certificate; onDone: () => void }) {
  const passwordId = useId();
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<ApiProblem | null>(null);

  async function download() {
    setBusy(true);
    setFailure(null);
    try {
      const blob = await fetchBlob(`/api/v1/certificates/${encodeURIComponent(certificate.id)}/key?format=pkcs12`, {
        'X-Pkcs12-Password': password,
      });
      saveBlob(blob, `${fileStem(certificateName(certificate))}.p12`);
      setPassword('');
      onDone();
    } catch (error) {
      setFailure(toApiProblem(error));
    } finally {
      setBusy(false);
    }
  }

  return (
    <DialogForm
      onSubmit={() => void download()}
      onCancel={onDone}
      submitLabel="Download PKCS#12"
      busyLabel="Preparing…"
      busy={busy}
      tone="primary"
      disabled={password.length < MIN_PKCS12_PASSWORD}
      error={failure}
      errorContext="Downloading the key"
    >
      <p>
        The file holds the private key, the certificate and its chain, encrypted with this password. Every download is
        recorded in the audit log.
      </p>
      <div className="field">
        <label htmlFor={passwordId}>Password for the file</label>
        <input
          id={passwordId}
          type="password"
          autoComplete="new-password"
          minLength={MIN_PKCS12_PASSWORD}
          required
          value={password}
          onChange={(event) => setPassword(event.target.value)}
          aria-describedby={`${passwordId}-hint`}
        />
        <span id={`${passwordId}-hint`} className="hint">
          At least {MIN_PKCS12_PASSWORD} characters.
        </span>
      </div>
    </DialogForm>
  );
}

export function Downloads({ certificate, offerKey }: { certificate: Certificate; offerKey: boolean }) {
  const [failure, setFailure] = useState<ApiProblem | null>(null);
  const [keyOpen, setKeyOpen] = useState(false);
  const stem = fileStem(certificateName(certificate));
  const base = `/api/v1/certificates/${encodeURIComponent(certificate.id)}/pem`;

  async function download(path: string, filename: string) {
    setFailure(null);
    try {
      saveBlob(await fetchBlob(path), filename);
    } catch (error) {
      setFailure(toApiProblem(error));
    }
  }

  return (
    <>
      <div className="actions">
        <button type="button" onClick={() => void download(base, `${stem}.pem`)}>
          Download PEM
        </button>
        <button type="button" onClick={() => void download(`${base}?chain=true`, `${stem}-chain.pem`)}>
          Download PEM with chain
        </button>
        {offerKey ? (
          <button type="button" onClick={() => setKeyOpen(true)}>
            Download key (PKCS#12)…
          </button>
        ) : null}
      </div>
      {failure ? <ProblemMessage error={failure} context="Downloading" /> : null}
      {offerKey ? (
        <Dialog open={keyOpen} onClose={() => setKeyOpen(false)} title="Download the key as PKCS#12">
          <Pkcs12Form certificate={certificate} onDone={() => setKeyOpen(false)} />
        </Dialog>
      ) : null}
    </>
  );
}
