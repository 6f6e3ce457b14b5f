// scripts/precompress.mjs FILE…: writes FILE.gz (gzip -9) and FILE.br
// (brotli quality 11) beside each FILE, so that a static host serving
// precompressed files (nginx gzip_static/brotli_static, Caddy
// precompressed, most CDNs) sends the small one; prints the three sizes.
import { readFileSync, writeFileSync } from "node:fs";
import { gzipSync, brotliCompressSync, constants } from "node:zlib";

for (const file of process.argv.slice(2)) {
  const raw = readFileSync(file);
  const gz = gzipSync(raw, { level: 9 });
  const br = brotliCompressSync(raw, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: raw.length },
  });
  writeFileSync(file + ".gz", gz);
  writeFileSync(file + ".br", br);
  console.log(`${file}: ${raw.length} bytes raw, ${gz.length} gzip, ${br.length} brotli`);
}
