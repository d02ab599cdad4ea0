// Saving a file the API returned. Downloads go through fetch (so a bearer token travels in a
// header, never in a URL) and are handed to the browser as an object URL.

/** Offers `blob` to the user as a file named `filename`. */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const anchor = document.createElement('a');
  anchor.href = url;
  anchor.download = filename;
  anchor.hidden = true;
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  // Revoked on the next tick: some browsers start the download only after click() returns.
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

/** A file name safe on every OS, from a certificate's name. */
export function fileStem(name: string): string {
  const stem = name.replace(/^\*\./, 'wildcard.').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '');
  return stem.slice(0, 80) || 'certificate';
}
