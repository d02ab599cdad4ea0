// Placeholder: this page is another helper's to write; replace the whole file.
// The certificate page links here as /request?from=<certificate id> ("Request a replacement",
// for a certificate that no managed certificate renews): prefill its names and owner.
import { Placeholder } from '../components/Placeholder';

export default function RequestPage() {
  return <Placeholder title="Request a certificate" />;
}
