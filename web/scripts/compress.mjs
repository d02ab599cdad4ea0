// Writes a gzip copy (`<file>.gz`, level 9) beside every text file of a built dashboard, when
// it is smaller: cmpd serves it to browsers that accept gzip, compressed once at build time
// instead of on every answer. Run by crates/cmp-web/build.rs after `vite build`.
//
//   node scripts/compress.mjs <dist dir>
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync, constants } from 'node:zlib';

const COMPRESSIBLE = /\.(js|css|html|svg|json|txt|map)$/;

function compressTree(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      compressTree(path);
    } else if (COMPRESSIBLE.test(entry.name)) {
      const body = readFileSync(path);
      const gzip = gzipSync(body, { level: constants.Z_BEST_COMPRESSION });
      if (gzip.length < body.length) {
        writeFileSync(`${path}.gz`, gzip);
      }
    }
  }
}

const dist = process.argv[2];
if (!dist) {
  console.error('usage: node scripts/compress.mjs <dist dir>');
  process.exit(2);
}
compressTree(dist);
