// Placeholder: this page is another helper's to write; replace the whole file.
import { Placeholder } from '../components/Placeholder';

export default function OwnersPage() {
  return <Placeholder title="Owners and policies" />;
}
