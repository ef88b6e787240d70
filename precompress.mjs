// Writes a gzip and a brotli copy beside every script, WASM and style file
// of the built site, so the server sends them compressed at no cost per
// request. Node's own zlib does both: no extra tool to install.
//
// With the build's hash file (`hash.txt`, beside the server's binary), the
// files of earlier builds, named by other hashes, are removed first.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants, brotliCompressSync, gzipSync } from 'node:zlib';

const site = process.argv[2] ?? 'target/site';
const hashFile = process.argv[3];
const named = /\.([A-Za-z0-9_-]{22})\./;
if (hashFile && existsSync(hashFile)) {
  const current = new Set(
    readFileSync(hashFile, 'utf8')
      .split('\n')
      .map((line) => line.split(':')[1]?.trim())
      .filter(Boolean),
  );
  for (const name of readdirSync(join(site, 'pkg'))) {
    const hash = named.exec(name)?.[1];
    if (hash && !current.has(hash)) rmSync(join(site, 'pkg', name));
  }
}
for (const dir of ['pkg', 'vendor']) {
  for (const name of readdirSync(join(site, dir))) {
    if (!/\.(js|wasm|css)$/.test(name)) continue;
    const path = join(site, dir, name);
    const bytes = readFileSync(path);
    const gzip = gzipSync(bytes, { level: 9 });
    const brotli = brotliCompressSync(bytes, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: 11,
        [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
      },
    });
    writeFileSync(`${path}.gz`, gzip);
    writeFileSync(`${path}.br`, brotli);
    console.log(`${path}: ${bytes.length} bytes, gzip ${gzip.length}, brotli ${brotli.length}`);
  }
}
